"""RFC 7636 at the token endpoint: S256 only, exact error codes."""

from __future__ import annotations

import pytest

from sanscouture.errors import InvalidGrantError
from sanscouture.errors import InvalidRequestError
from sanscouture.oidc.pkce import check_pkce
from sanscouture.oidc.pkce import check_verifier_matches
from sanscouture.oidc.pkce import check_verifier_present
from sanscouture.oidc.pkce import check_verifier_syntax
from sanscouture.oidc.pkce import s256
from tests.unit.oidc.fakes import CHALLENGE
from tests.unit.oidc.fakes import VERIFIER


def test_s256_matches_the_rfc_7636_appendix_b_example() -> None:
    assert s256(VERIFIER) == CHALLENGE


def test_matching_verifier_passes() -> None:
    check_pkce(VERIFIER, CHALLENGE)


@pytest.mark.parametrize("verifier", [None, ""])
def test_missing_verifier_is_invalid_grant(verifier: str | None) -> None:
    with pytest.raises(InvalidGrantError) as raised:
        check_verifier_present(verifier)
    assert raised.value.error == "invalid_grant"
    assert raised.value.description == "PKCE verification failed: code_verifier is required"


@pytest.mark.parametrize(
    "verifier",
    ["a" * 42, "a" * 129, "a" * 42 + "!", "a" * 42 + " ", "é" * 43, "a" * 42 + "+"],
)
def test_malformed_verifier_is_invalid_request(verifier: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        check_verifier_syntax(verifier)
    assert raised.value.error == "invalid_request"
    assert raised.value.description == "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~"


@pytest.mark.parametrize("verifier", ["a" * 43, "A-._~" * 25 + "abc", "0" * 128])
def test_verifier_of_43_to_128_unreserved_characters_is_well_formed(verifier: str) -> None:
    check_verifier_syntax(verifier)


def test_wrong_verifier_is_invalid_grant() -> None:
    with pytest.raises(InvalidGrantError) as raised:
        check_verifier_matches("b" * 43, CHALLENGE)
    assert raised.value.error == "invalid_grant"
    assert raised.value.description == "PKCE verification failed"


def test_plain_method_is_not_honoured_the_verifier_itself_never_matches() -> None:
    # A client that sent code_challenge_method=plain would present the challenge as verifier.
    with pytest.raises(InvalidGrantError):
        check_pkce(CHALLENGE, CHALLENGE)


def test_checks_run_in_order_missing_before_syntax() -> None:
    with pytest.raises(InvalidGrantError):
        check_pkce(None, CHALLENGE)
    with pytest.raises(InvalidRequestError):
        check_pkce("short", CHALLENGE)
