"""The broker's rules for an Entra authentication: tenant allow-list, auth_time freshness, acrs."""

from __future__ import annotations

import pytest

from sanscouture.entra_policy import check_entra_account
from sanscouture.entra_policy import max_age_for_entra
from sanscouture.errors import SignInRefused
from sanscouture.models import AuthorizationRequest
from sanscouture.models import EntraAccount
from sanscouture.settings import Settings
from tests.unit.oidc.fakes import make_settings

TENANT = "11111111-2222-3333-4444-555555555555"
NOW = 1_800_000_000
STARTED = NOW - 30  # the journey began 30 s ago


def settings(acrs: tuple[str, ...] = ("c1",)) -> Settings:
    return make_settings(entra_allowed_tenants=frozenset({TENANT}), entra_required_acrs=acrs)


def account(**changes: object) -> EntraAccount:
    values = {"tid": TENANT, "oid": "oid-1", "auth_time": NOW - 60, "acrs": ("c1",)}
    values.update(changes)
    return EntraAccount(**values)  # type: ignore[arg-type]


def request(max_age: int | None = None, prompt: frozenset[str] = frozenset()) -> AuthorizationRequest:
    return AuthorizationRequest("sn", "https://sn/cb", ("openid",), "c" * 43, max_age=max_age, prompt=prompt)


def reason(acct: EntraAccount, req: AuthorizationRequest | None = None, s: Settings | None = None) -> str:
    with pytest.raises(SignInRefused) as raised:
        check_entra_account(acct, req or request(), s or settings(), STARTED, NOW)
    return raised.value.reason


def test_a_compliant_recent_authentication_in_an_allowed_tenant_passes() -> None:
    check_entra_account(account(), request(), settings(), STARTED, NOW)


def test_another_tenant_is_refused() -> None:
    assert reason(account(tid="99999999-2222-3333-4444-555555555555")) == "tenant_not_allowed"


def test_missing_required_acrs_is_not_compliant() -> None:
    assert reason(account(acrs=())) == "authentication_not_compliant"


def test_no_acrs_required_means_none_checked() -> None:
    check_entra_account(account(acrs=()), request(), settings(acrs=()), STARTED, NOW)


def test_authentication_older_than_four_hours_is_too_old() -> None:
    assert reason(account(auth_time=NOW - 4 * 3600 - 121)) == "auth_too_old"


def test_rp_max_age_bounds_the_authentication_age() -> None:
    assert reason(account(auth_time=NOW - 600), request(max_age=60)) == "auth_too_old"


def test_max_age_zero_is_met_by_an_authentication_during_the_journey() -> None:
    check_entra_account(account(auth_time=NOW - 20), request(max_age=0), settings(), STARTED, NOW)


def test_prompt_login_needs_an_authentication_during_the_journey() -> None:
    assert reason(account(auth_time=STARTED - 61), request(prompt=frozenset({"login"}))) == "auth_too_old"
    check_entra_account(account(auth_time=STARTED + 5), request(prompt=frozenset({"login"})), settings(), STARTED, NOW)


def test_auth_time_in_the_future_is_refused() -> None:
    assert reason(account(auth_time=NOW + 3600)) == "upstream_token_invalid"


def test_entra_is_always_asked_for_an_authentication_no_older_than_the_4_hour_rule() -> None:
    assert max_age_for_entra(request(), settings()) == 4 * 3600
    assert max_age_for_entra(request(max_age=600), settings()) == 600
    assert max_age_for_entra(request(max_age=0), settings()) == 0
    assert max_age_for_entra(request(max_age=86400), settings()) == 4 * 3600


def refusal(acct: EntraAccount, req: AuthorizationRequest | None = None, s: Settings | None = None) -> SignInRefused:
    with pytest.raises(SignInRefused) as raised:
        check_entra_account(acct, req or request(), s or settings(), STARTED, NOW)
    return raised.value


def test_each_refusal_logs_its_reason() -> None:
    other = "99999999-2222-3333-4444-555555555555"
    assert refusal(account(tid=other)).detail == f"tenant {other} is not allowed"
    assert refusal(account(auth_time=NOW + 3600)).detail == "entra auth_time is in the future"
    assert refusal(account(auth_time=NOW - 4 * 3600 - 121)).detail == f"entra auth_time is {4 * 3600 + 121} s old"
    assert refusal(account(acrs=()), s=settings(acrs=("c1", "c7"))).detail == "entra acrs missing: c1,c7"
    assert refusal(account(acrs=("c7",)), s=settings(acrs=("c1", "c7"))).detail == "entra acrs missing: c1"
    login = refusal(account(auth_time=STARTED - 61), request(prompt=frozenset({"login"})))
    assert login.detail == "prompt=login but the upstream authentication is older"
    aged = refusal(account(auth_time=NOW - 600), request(max_age=60))
    assert aged.detail == "upstream authentication older than the RP's max_age"


def test_the_bounds_are_inclusive_to_the_second() -> None:
    check_entra_account(account(auth_time=NOW + 120), request(), settings(), STARTED, NOW)  # the skew allowed
    assert reason(account(auth_time=NOW + 121)) == "upstream_token_invalid"
    check_entra_account(account(auth_time=NOW - 4 * 3600 - 120), request(), settings(), STARTED, NOW)
    login = request(prompt=frozenset({"login"}))
    check_entra_account(account(auth_time=STARTED - 60), login, settings(), STARTED, NOW)
    check_entra_account(account(auth_time=NOW - 600), request(max_age=600), settings(), STARTED, NOW)
    assert reason(account(auth_time=NOW - 601), request(max_age=600)) == "auth_too_old"


def test_an_authentication_during_the_journey_meets_any_max_age() -> None:
    check_entra_account(account(auth_time=STARTED - 60), request(max_age=10), settings(), STARTED, NOW)
    assert reason(account(auth_time=STARTED - 61), request(max_age=10)) == "auth_too_old"
