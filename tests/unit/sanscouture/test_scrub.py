"""Log hygiene: what scrub() removes, and that every record of the process goes through it."""

from __future__ import annotations

import logging

import pytest

from sanscouture import scrub

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmOng6ODEwMTAwMDAwMDAxIn0.c2lnbmF0dXJl"
# The broker's code and refresh token shape (sanscouture/oidc/codes.py, refresh.py): grant id . secret.
GRANT = "9f86d081884c7d659a2feaa0c55ad015"
CODE = GRANT + ".q1w2E3r4T5y6U7i8O9p0-_aSdFgHjKlZxCvBnMqWeRt"
SEALED = "s1.B2sxAbC3kLmN0pQ_rStUvWxYz-0123456789AbCdEfGhIjKlMnOpQrSt"


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
        # the broker's opaque codes and refresh tokens, whatever surrounds them; the grant id alone stays
        (f"redeem failed for {CODE}", f"redeem failed for {GRANT}.[removed]"),
        (f"refresh of {GRANT} refused", f"refresh of {GRANT} refused"),
        (f'{{"code": "{CODE}", "grant_type": "authorization_code"}}',
         '{"code": "[removed]", "grant_type": "authorization_code"}'),
        (f"{{'refresh_token': '{CODE}'}}", "{'refresh_token': '[removed]'}"),
        ('{"client_secret":"s3\\"cr3t","client_id":"rp"}', '{"client_secret":"[removed]","client_id":"rp"}'),
        ("code: AbC-123.xyz, state: Zm9v_YmFy", "code: [removed], state: [removed]"),
        ("login_hint: 810100000001", "login_hint: [removed]"),
        # credential headers, as lines of text or as JSON keys, and bearer tokens
        ("Cookie: a=b", "Cookie: [removed]"),
        ("GET /token\nAuthorization: Bearer opaque-Token.1~+/=\nHost: broker",
         "GET /token\nAuthorization: [removed]\nHost: broker"),
        ("set-cookie:__Host-sc-session=x; Path=/", "set-cookie:[removed]"),
        ('{"Authorization": "Basic cnA6czNjcjN0", "Accept": "application/json"}',
         '{"Authorization": "[removed]", "Accept": "application/json"}'),
        ("sent Bearer mF_9.B5f-4.1JqM to /userinfo", "sent Bearer [removed] to /userinfo"),
        # sealed journeys and sessions under any cookie name, a pushed request's reference
        (f"__Host-sc-j-abc={SEALED}; __Host-sc-session={SEALED}",
         "__Host-sc-j-abc=s1.[removed]; __Host-sc-session=s1.[removed]"),
        ("request_uri urn:ietf:params:oauth:request_uri:bwc4JK-ESC0w8acc191e-Y1LTC2 expired",
         "request_uri urn:ietf:params:oauth:request_uri:[removed] expired"),
    ],
)
def test_scrub_removes_queries_tokens_secrets_and_national_identifiers(raw: str, kept: str) -> None:
    assert scrub.scrub(raw) == kept


@pytest.mark.parametrize(
    "kept",
    [
        # Azure's error bodies and messages: the error code is what tells an operator what went wrong
        '{"error":{"code":"SecretNotFound","message":"A secret with (name/id) broker-signing-keys was not found"}}',
        "(ResourceNotFound) The specified resource does not exist.\nCode: ResourceNotFound",
        '{"odata.error":{"code":"UpdateConditionNotSatisfied"}}',
        "HTTP status code: 503",
        "replayed code: the access token it gave was revoked",
        '{"state": "pairing", "error": "invalid_grant", "nonce": "absent"}',
        'WWW-Authenticate: Bearer error="invalid_token"',  # a challenge, no credential
        "Bearer error=\"invalid_token\", error_description=\"expired\"",
        "x-authorization-mode: on; code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "audit login_succeeded",
    ],
)
def test_scrub_keeps_what_is_no_credential(kept: str) -> None:
    assert scrub.scrub(kept) == kept


def test_every_record_is_scrubbed_extras_included(caplog: pytest.LogCaptureFixture) -> None:
    scrub.install()
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    logging.getLogger("urllib3.connectionpool").debug('%s "GET %s HTTP/1.1"', "https://h", "/cb?code=c&state=s")
    logging.getLogger("anything").warning("refused", extra={"error_detail": "https://rp/jwks?key=1 at 810100000001"})
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == 'https://h "GET /cb?[query removed] HTTP/1.1"'
    assert caplog.records[1].error_detail == "https://rp/jwks?[query removed] at …0001"
