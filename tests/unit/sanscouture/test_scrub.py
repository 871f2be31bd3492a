"""Log hygiene: what scrub() removes, and that every record of the process goes through it."""

from __future__ import annotations

import logging

import pytest

from sanscouture import scrub

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmOng6ODEwMTAwMDAwMDAxIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ('"GET /authorize?client_id=rp&state=s3cr3t&login_hint=810100000001 HTTP/1.1" 302',
         '"GET /authorize?[query removed] HTTP/1.1" 302'),
        ("https://127.0.0.1:7071/callback?code=abc&state=xyz failed",
         "https://127.0.0.1:7071/callback?[query removed] failed"),
        (f"id_token_hint {JWT} refused", "id_token_hint [token] refused"),
        ("body code=abc123&code_verifier=v&grant_type=authorization_code",
         "body code=[removed]&code_verifier=[removed]&grant_type=authorization_code"),
        ("paired 810100000001 and RPPS 10100000001", "paired …0001 and RPPS …0001"),
        ("auth_time (1764567890) too old", "auth_time (1764567890) too old"),  # epoch seconds stay
    ],
)
def test_scrub_removes_queries_tokens_secrets_and_national_identifiers(raw: str, kept: str) -> None:
    assert scrub.scrub(raw) == kept


def test_every_record_is_scrubbed_extras_included(caplog: pytest.LogCaptureFixture) -> None:
    scrub.install()
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    logging.getLogger("urllib3.connectionpool").debug('%s "GET %s HTTP/1.1"', "https://h", "/cb?code=c&state=s")
    logging.getLogger("anything").warning("refused", extra={"error_detail": "https://rp/jwks?key=1 at 810100000001"})
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == 'https://h "GET /cb?[query removed] HTTP/1.1"'
    assert caplog.records[1].error_detail == "https://rp/jwks?[query removed] at …0001"
