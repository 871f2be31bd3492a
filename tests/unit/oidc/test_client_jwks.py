"""The client JWKS fetcher (adapters/client_jwks.py): cache, rate-limited refresh, failures."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from sanscouture.adapters.client_jwks import ClientJwksFetcher
from sanscouture.errors import InvalidClientError
from tests.unit.oidc.fakes import FakeClock

URI = "https://rp.example.fr/jwks"


class FakeResponse:
    """What the fetcher uses of a streamed ``requests.Response``."""

    def __init__(self, status: int, content: bytes) -> None:
        self.status_code = status
        self.content = content
        self.headers: dict[str, str] = {}

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def iter_content(self, chunk_size: int) -> Any:
        for start in range(0, len(self.content), chunk_size):
            yield self.content[start:start + chunk_size]


class FakeSession:
    def __init__(self) -> None:
        self.answers: list[Any] = []
        self.calls: list[str] = []

    def get(self, url: str, **kwargs: Any) -> FakeResponse:
        self.calls.append(url)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def jwks(kid: str) -> FakeResponse:
    return FakeResponse(200, json.dumps({"keys": [{"kty": "RSA", "kid": kid}]}).encode())


def fetcher(session: FakeSession, clock: FakeClock) -> ClientJwksFetcher:
    return ClientJwksFetcher(session, ttl=300, min_refresh_interval=30, clock=clock)  # type: ignore[arg-type]


def test_jwks_is_cached_for_its_ttl() -> None:
    session, clock = FakeSession(), FakeClock()
    session.answers = [jwks("a"), jwks("b")]
    fetch = fetcher(session, clock)
    assert fetch(URI)["keys"][0]["kid"] == "a"
    clock.now += 299
    assert fetch(URI)["keys"][0]["kid"] == "a"
    clock.now += 1
    assert fetch(URI)["keys"][0]["kid"] == "b"
    assert len(session.calls) == 2


def test_refresh_is_honoured_at_most_once_per_interval() -> None:
    session, clock = FakeSession(), FakeClock()
    session.answers = [jwks("a"), jwks("b")]
    fetch = fetcher(session, clock)
    fetch(URI)
    assert fetch(URI, refresh=True)["keys"][0]["kid"] == "a"  # too soon
    clock.now += 30
    assert fetch(URI, refresh=True)["keys"][0]["kid"] == "b"
    assert len(session.calls) == 2


@pytest.mark.parametrize(
    "answer",
    [
        FakeResponse(500, b""),
        FakeResponse(200, b"not json"),
        FakeResponse(200, b'{"no": "keys"}'),
        FakeResponse(200, b"{" + b" " * 70000 + b"}"),
        requests.ConnectionError("down"),
    ],
)
def test_unusable_answer_without_cache_is_invalid_client(answer: Any) -> None:
    session = FakeSession()
    session.answers = [answer]
    with pytest.raises(InvalidClientError) as raised:
        fetcher(session, FakeClock())(URI)
    assert raised.value.description == "the client's jwks_uri could not be fetched"


def test_failed_refresh_keeps_the_cached_set() -> None:
    session, clock = FakeSession(), FakeClock()
    session.answers = [jwks("a"), requests.Timeout("slow")]
    fetch = fetcher(session, clock)
    fetch(URI)
    clock.now += 300
    assert fetch(URI)["keys"][0]["kid"] == "a"


def test_plain_http_jwks_uri_is_refused() -> None:
    with pytest.raises(InvalidClientError):
        fetcher(FakeSession(), FakeClock())("http://rp.example.fr/jwks")
