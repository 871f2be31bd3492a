"""The logout token and its queue message (OpenID Connect Back-Channel Logout 1.0 §2.2, §2.4)."""

from __future__ import annotations

import pytest

from sanscouture.models import Client
from sanscouture.oidc.backchannel import LOGOUT_EVENT
from sanscouture.oidc.backchannel import LOGOUT_TOKEN_TTL
from sanscouture.oidc.backchannel import LOGOUT_TOKEN_TYPE
from sanscouture.oidc.backchannel import LogoutNotice
from sanscouture.oidc.backchannel import logout_token_claims
from sanscouture.oidc.backchannel import notices_for
from tests.unit.oidc.fakes import ISSUER

RP = Client("rp", ("https://rp.example.fr/cb",), client_secret="s",
            backchannel_logout_uri="https://rp.example.fr/backchannel")
STRICT = Client("strict", ("https://strict.example.fr/cb",), client_secret="s",
                backchannel_logout_uri="https://strict.example.fr/bcl", backchannel_logout_session_required=True)
QUIET = Client("quiet", ("https://quiet.example.fr/cb",), client_secret="s")
SUB = "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:899700427885"


def test_the_logout_token_has_exactly_the_claims_of_section_2_4() -> None:
    claims = logout_token_claims(RP, LogoutNotice("rp", SUB, "0f1e2d3c"), issuer=ISSUER, now=1_800_000_000,
                                 jti="jti-1")
    assert claims == {
        "iss": ISSUER,
        "aud": "rp",
        "iat": 1_800_000_000,
        "exp": 1_800_000_120,
        "jti": "jti-1",
        "sub": SUB,
        "sid": "0f1e2d3c",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    }
    assert "nonce" not in claims  # §2.4: a logout token must never pass for an ID token
    assert LOGOUT_EVENT == "http://schemas.openid.net/event/backchannel-logout"


def test_the_token_is_explicitly_typed_and_short_lived() -> None:
    """§2.3 / RFC 8725 3.11: the header's typ is logout+jwt; the 2-minute lifetime is the OP's choice."""
    assert LOGOUT_TOKEN_TYPE == "logout+jwt"
    assert LOGOUT_TOKEN_TTL == 120


def test_without_a_known_session_the_token_names_the_subject_only() -> None:
    claims = logout_token_claims(RP, LogoutNotice("rp", SUB, None), issuer=ISSUER, now=10, jti="j")
    assert "sid" not in claims and claims["sub"] == SUB


def test_an_empty_sid_is_no_session_either() -> None:
    claims = logout_token_claims(RP, LogoutNotice("rp", SUB, ""), issuer=ISSUER, now=10, jti="j")
    assert "sid" not in claims and claims["sub"] == SUB


@pytest.mark.parametrize("sid", [None, ""])
def test_a_client_that_requires_sid_gets_no_token_without_one(sid: str | None) -> None:
    """§2.2 backchannel_logout_session_required."""
    # The message is what deliver() logs as error_detail: pinned whole.
    with pytest.raises(ValueError, match=r"^the client requires sid and the session is not known$"):
        logout_token_claims(STRICT, LogoutNotice("strict", SUB, sid), issuer=ISSUER, now=10, jti="j")
    assert logout_token_claims(STRICT, LogoutNotice("strict", SUB, "s1"), issuer=ISSUER, now=10, jti="j")["sid"] == "s1"


def test_a_notice_is_for_its_own_client_only() -> None:
    with pytest.raises(ValueError, match=r"^the notice is for another client$"):
        logout_token_claims(RP, LogoutNotice("strict", SUB, "s1"), issuer=ISSUER, now=10, jti="j")


def test_the_message_round_trips_and_a_foreign_one_is_refused() -> None:
    notice = LogoutNotice("rp", SUB, "s1", attempt=3)
    assert notice.to_message() == f'{{"client_id":"rp","sub":"{SUB}","sid":"s1","attempt":3}}'
    assert LogoutNotice.from_message(notice.to_message()) == notice
    assert notice.retried() == LogoutNotice("rp", SUB, "s1", attempt=4)
    for body in ("", "[]", '{"client_id":"rp"}', '{"client_id":"rp","sub":"x","sid":1,"attempt":1}',
                 '{"client_id":"rp","sub":"x","sid":null,"attempt":0}'):
        with pytest.raises(ValueError, match=r"^not a back-channel logout message$"):
            LogoutNotice.from_message(body)


@pytest.mark.parametrize("body", [
    "not json",
    "null",
    '"rp"',
    '{"client_id":"","sub":"x","sid":null,"attempt":1}',
    '{"client_id":7,"sub":"x","sid":null,"attempt":1}',
    '{"client_id":null,"sub":"x","sid":null,"attempt":1}',
    '{"client_id":"rp","sub":"","sid":null,"attempt":1}',
    '{"client_id":"rp","sub":7,"sid":null,"attempt":1}',
    '{"client_id":"rp","sid":null,"attempt":1}',
    '{"client_id":"rp","sub":"x","sid":["s"],"attempt":1}',
    '{"client_id":"rp","sub":"x","sid":null,"attempt":"1"}',
    '{"client_id":"rp","sub":"x","sid":null}',
    '{"client_id":"rp","sub":"x","sid":null,"attempt":-1}',
])
def test_each_field_of_the_message_is_checked_on_its_own(body: str) -> None:
    """Every other field valid: the one wrong field alone refuses the message."""
    with pytest.raises(ValueError, match=r"^not a back-channel logout message$"):
        LogoutNotice.from_message(body)


def test_a_message_without_sid_or_with_a_later_attempt_is_read_as_written() -> None:
    assert LogoutNotice.from_message('{"client_id":"rp","sub":"x","sid":null,"attempt":1}') == LogoutNotice(
        "rp", "x", None, 1)
    assert LogoutNotice.from_message('{"client_id":"rp","sub":"x","attempt":2}') == LogoutNotice("rp", "x", None, 2)


def test_notices_go_once_to_each_client_with_a_back_channel_uri() -> None:
    notices = notices_for((RP, STRICT, QUIET), ["quiet", "rp", "unknown", "rp", "strict"], sub=SUB, sid="s1")
    assert notices == [LogoutNotice("rp", SUB, "s1"), LogoutNotice("strict", SUB, "s1")]
