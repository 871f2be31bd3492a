"""/authorize request validation: one rule per test, exact OAuth error codes (OIDC Core 3.1.2.1)."""

from __future__ import annotations

import pytest

from sanscouture.errors import OAuthError
from sanscouture.models import Client
from sanscouture.oidc.authorize import validate_authorization_request
from sanscouture.settings import Settings
from tests.unit.oidc.fakes import make_settings

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
REDIRECT = "https://sn.example/callback"


def settings() -> Settings:
    client = Client(
        client_id="sn", redirect_uris=(REDIRECT,), client_secret="s", scope=("openid", "profile", "scope_all")
    )
    return make_settings(client)


def params(**overrides: str | None) -> dict[str, str]:
    base = {
        "client_id": "sn",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid scope_all",
        "state": "xyz",
        "nonce": "n-0S6_WzA2Mj",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def refused(p: dict[str, str], repeated: frozenset[str] = frozenset()) -> OAuthError:
    with pytest.raises(OAuthError) as raised:
        validate_authorization_request(p, repeated, settings())
    return raised.value


def test_a_valid_request_is_accepted_and_keeps_what_the_rp_sent() -> None:
    p = params(prompt="login", max_age="0", login_hint="cpx")
    request = validate_authorization_request(p, frozenset(), settings())
    assert request.client_id == "sn"
    assert request.scope == ("openid", "scope_all")
    assert request.state == "xyz" and request.nonce == "n-0S6_WzA2Mj"
    assert request.prompt == frozenset({"login"}) and request.max_age == 0
    assert request.login_hint == "cpx"


def test_unknown_client_is_not_redirectable() -> None:
    error = refused(params(client_id="nobody"))
    assert (error.error, error.redirectable) == ("invalid_client", False)


def test_missing_client_id_is_not_redirectable() -> None:
    assert refused(params(client_id=None)).redirectable is False


def test_unregistered_redirect_uri_is_not_redirectable() -> None:
    error = refused(params(redirect_uri="https://evil.example/callback"))
    assert (error.error, error.redirectable) == ("invalid_request", False)


def test_redirect_uri_must_match_exactly_not_by_prefix() -> None:
    assert refused(params(redirect_uri=REDIRECT + "/extra")).redirectable is False
    assert refused(params(redirect_uri=REDIRECT + "?a=b")).redirectable is False


def test_missing_redirect_uri_is_refused() -> None:
    assert refused(params(redirect_uri=None)).redirectable is False


def test_unsupported_response_type() -> None:
    assert refused(params(response_type="token")).error == "unsupported_response_type"


def test_missing_response_type() -> None:
    assert refused(params(response_type=None)).error == "invalid_request"


def test_missing_openid_scope() -> None:
    assert refused(params(scope="profile")).error == "invalid_scope"


def test_unknown_scopes_are_ignored() -> None:
    request = validate_authorization_request(params(scope="openid unknown profile"), frozenset(), settings())
    assert request.scope == ("openid", "profile")


def test_missing_pkce_is_refused() -> None:
    error = refused(params(code_challenge=None, code_challenge_method=None))
    assert (error.error, error.description) == ("invalid_request", "code_challenge is required (PKCE S256)")


def test_plain_pkce_is_refused() -> None:
    error = refused(params(code_challenge_method="plain"))
    assert (error.error, error.description) == ("invalid_request", "code_challenge_method must be S256")


def test_pkce_without_method_means_plain_and_is_refused() -> None:
    assert refused(params(code_challenge_method=None)).description == "code_challenge_method must be S256"


def test_malformed_challenge_is_refused() -> None:
    assert refused(params(code_challenge="short")).error == "invalid_request"


def test_prompt_none_cannot_be_combined() -> None:
    assert refused(params(prompt="none login")).error == "invalid_request"


def test_negative_or_garbage_max_age_is_refused() -> None:
    assert refused(params(max_age="-1")).error == "invalid_request"
    assert refused(params(max_age="soon")).error == "invalid_request"


def test_request_objects_are_not_supported() -> None:
    assert refused(params(request="eyJ...")).error == "request_not_supported"
    assert refused(params(request_uri="https://sn.example/r")).error == "request_uri_not_supported"


def test_repeated_parameters_are_refused() -> None:
    assert refused(params(), repeated=frozenset({"scope"})).error == "invalid_request"


def test_response_mode_other_than_query_is_refused() -> None:
    assert refused(params(response_mode="form_post")).error == "invalid_request"


def test_unknown_parameters_are_ignored() -> None:
    assert validate_authorization_request(params(foo="bar", ui_locales="fr"), frozenset(), settings()).client_id == "sn"


def test_errors_after_client_checks_are_redirectable() -> None:
    assert refused(params(response_type="token")).redirectable is True


# -- exact descriptions, limits and what a valid request keeps ----------------------------------


def test_unknown_client_says_so_and_logs_the_client_id() -> None:
    error = refused(params(client_id="nobody"))
    assert (error.description, error.detail) == ("client_id is missing or unknown", "client_id='nobody'")
    assert refused(params(client_id=None)).detail == "client_id=''"


def test_unregistered_redirect_uri_logs_the_client_and_the_uri() -> None:
    error = refused(params(redirect_uri="https://evil.example/callback"))
    assert error.description == "redirect_uri did not match any of the client's registered redirect_uris"
    assert error.detail == "client sn: 'https://evil.example/callback'"


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"response_type": None}, "response_type is required"),
        ({"response_type": "token"}, "only response_type=code is supported"),
        ({"response_mode": "form_post"}, "response_mode must be query"),
        ({"scope": "profile"}, "the openid scope is required"),
        ({"code_challenge": "short"}, "code_challenge must be 43 base64url characters"),
        ({"code_challenge": CHALLENGE[:-1] + "+"}, "code_challenge must be 43 base64url characters"),
        ({"prompt": "none login"}, "prompt=none cannot be combined with other values"),
        ({"max_age": "-1"}, "max_age must be a non-negative integer"),
        ({"max_age": "１２"}, "max_age must be a non-negative integer"),  # full-width digits are not ASCII
        ({"max_age": "12345678901"}, "max_age must be a non-negative integer"),
        ({"request": "eyJ..."}, "request objects are not supported"),
        ({"request_uri": "https://sn.example/r"}, "request_uri is not supported"),
    ],
)
def test_each_refusal_has_its_exact_description(overrides: dict[str, str | None], description: str) -> None:
    assert refused(params(**overrides)).description == description


def test_the_first_repeated_single_valued_parameter_is_named() -> None:
    error = refused(params(), repeated=frozenset({"state", "nonce", "acr_values"}))
    assert (error.error, error.description) == ("invalid_request", "nonce is included more than once")


def test_repeated_parameters_that_are_not_single_valued_are_accepted() -> None:
    assert validate_authorization_request(params(), frozenset({"acr_values", "foo"}), settings()).client_id == "sn"


@pytest.mark.parametrize(
    ("name", "limit"), [("state", 2048), ("nonce", 512), ("login_hint", 256), ("id_token_hint", 16384),
                        ("acr_values", 256)]
)
def test_lengths_are_bounded_in_encoded_bytes(name: str, limit: int) -> None:
    validate_authorization_request(params(**{name: "a" * limit}), frozenset(), settings())
    assert refused(params(**{name: "a" * (limit + 1)})).description == f"{name} is too long"
    assert refused(params(**{name: "é" * (limit // 2 + 1)})).description == f"{name} is too long"


def test_a_valid_request_keeps_s256_and_reads_absent_values_as_none() -> None:
    request = validate_authorization_request(
        params(state="", nonce=None, response_mode="query", max_age=""), frozenset(), settings()
    )
    assert (request.code_challenge, request.code_challenge_method) == (CHALLENGE, "S256")
    assert (request.state, request.nonce, request.login_hint, request.max_age) == (None, None, None, None)
    assert request.prompt == frozenset()
    assert request.redirect_uri == REDIRECT


def test_max_age_of_ten_digits_is_read_as_a_number() -> None:
    assert validate_authorization_request(params(max_age="9999999999"), frozenset(), settings()).max_age == 9999999999


def test_prompt_keeps_the_known_values_only_and_none_alone_is_accepted() -> None:
    keep = validate_authorization_request(params(prompt="login consent magic"), frozenset(), settings())
    assert keep.prompt == frozenset({"login", "consent"})
    assert validate_authorization_request(params(prompt="none"), frozenset(), settings()).prompt == {"none"}


def test_scope_keeps_each_allowed_value_once_and_openid_always() -> None:
    request = validate_authorization_request(params(scope="openid profile openid email profile"), frozenset(),
                                             settings())
    assert request.scope == ("openid", "profile")  # email is not among the client's scopes
    narrow = Client(client_id="sn", redirect_uris=(REDIRECT,), client_secret="s", scope=("profile",))
    only_openid = validate_authorization_request(params(scope="openid scope_all"), frozenset(), make_settings(narrow))
    assert only_openid.scope == ("openid",)


def test_logged_values_are_truncated() -> None:
    assert refused(params(client_id="c" * 100)).detail == f"client_id={'c' * 64!r}"
    long_uri = "https://evil.example/" + "x" * 300
    assert refused(params(redirect_uri=long_uri)).detail == f"client sn: {long_uri[:200]!r}"


def test_a_request_without_scope_is_invalid_scope() -> None:
    error = refused(params(scope=None))
    assert (error.error, error.description) == ("invalid_scope", "the openid scope is required")
