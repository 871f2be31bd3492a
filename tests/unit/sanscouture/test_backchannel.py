"""Announcing ended sessions and delivering logout tokens (sanscouture/backchannel.py): 2xx done,
otherwise retried with a doubling backoff, dead-lettered after the last attempt; all audited."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import jwt
import pytest

from sanscouture.audit import AuditLog
from sanscouture.backchannel import announce
from sanscouture.backchannel import deliver
from sanscouture.backchannel import retry_delay
from sanscouture.errors import StorageUnavailableError
from sanscouture.keys import KeyRing
from sanscouture.models import Client
from sanscouture.oidc.backchannel import LogoutNotice
from tests.unit.oidc.fakes import ISSUER
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeKeySource
from tests.unit.oidc.fakes import FakeRowStore
from tests.unit.oidc.fakes import make_settings

RP = Client("rp", ("https://rp.example.fr/cb",), client_secret="s",
            backchannel_logout_uri="https://rp.example.fr/backchannel")
QUIET = Client("quiet", ("https://quiet.example.fr/cb",), client_secret="s")
STRICT = Client("strict", ("https://strict.example.fr/cb",), client_secret="s",
                backchannel_logout_uri="https://strict.example.fr/bcl", backchannel_logout_session_required=True)
SUB = "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:899700427885"
SETTINGS = make_settings(RP, QUIET, STRICT, queues="UseDevelopmentStorage=true",
                         backchannel_retry_seconds=30, backchannel_max_attempts=3)


class FakeQueue:
    def __init__(self, name: str, *, down: bool = False) -> None:
        self.name = name
        self.sent: list[tuple[str, int]] = []
        self.down = down

    def send(self, body: str, *, delay: int = 0) -> None:
        if self.down:
            raise StorageUnavailableError(detail="queue down")
        self.sent.append((body, delay))


class Receiver:
    """A relying party's back-channel endpoint answering ``status`` (or raising ``error``)."""

    def __init__(self, status: int = 200, error: Exception | None = None) -> None:
        self.status = status
        self.error = error
        self.posts: list[tuple[str, dict[str, str], float]] = []

    def __call__(self, url: str, form: Mapping[str, str], timeout: float) -> int:
        self.posts.append((url, dict(form), timeout))
        if self.error is not None:
            raise self.error
        return self.status


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keys(clock: FakeClock) -> KeyRing:
    return KeyRing(FakeKeySource(), clock=clock)


def run(body: str, receiver: Receiver, keys: KeyRing, clock: FakeClock, audit: FakeRowStore,
        outbox: FakeQueue, poison: FakeQueue) -> str:
    return deliver(body, settings=SETTINGS, sign=keys.sign, post=receiver, outbox=outbox, poison=poison,
                   audit=AuditLog(audit, clock), clock=clock)


def events(audit: FakeRowStore) -> list[dict[str, object]]:
    return [dict(row.data) for row in audit.rows.values()]


def test_a_2xx_answer_delivers_a_verifiable_logout_token_and_is_audited(keys: KeyRing, clock: FakeClock) -> None:
    receiver, audit, outbox, poison = Receiver(204), FakeRowStore("audit", clock), FakeQueue("o"), FakeQueue("p")
    outcome = run(LogoutNotice("rp", SUB, "sid-1").to_message(), receiver, keys, clock, audit, outbox, poison)
    assert outcome == "delivered" and outbox.sent == [] and poison.sent == []
    ((url, form, timeout),) = receiver.posts
    assert url == "https://rp.example.fr/backchannel" and list(form) == ["logout_token"] and timeout == 5.0
    token = form["logout_token"]
    assert jwt.get_unverified_header(token)["typ"] == "logout+jwt"
    claims = keys.decode(token, issuer=ISSUER, audience="rp", typ="logout+jwt")
    assert claims["sub"] == SUB and claims["sid"] == "sid-1" and claims["iat"] == int(NOW)
    assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}} and "nonce" not in claims
    assert [(e["event"], e["client_id"], e["sid"], e["attempt"]) for e in events(audit)] == [
        ("backchannel_logout_delivered", "rp", "sid-1", 1)]


@pytest.mark.parametrize("receiver", [Receiver(500), Receiver(302), Receiver(error=TimeoutError("slow"))])
def test_a_failure_is_retried_later_with_a_doubling_backoff(receiver: Receiver, keys: KeyRing,
                                                            clock: FakeClock) -> None:
    audit, outbox, poison = FakeRowStore("audit", clock), FakeQueue("o"), FakeQueue("p")
    assert run(LogoutNotice("rp", SUB, "s").to_message(), receiver, keys, clock, audit, outbox, poison) == "retried"
    assert outbox.sent == [(LogoutNotice("rp", SUB, "s", attempt=2).to_message(), 30)]
    assert run(outbox.sent[0][0], receiver, keys, clock, audit, outbox, poison) == "retried"
    assert outbox.sent[1] == (LogoutNotice("rp", SUB, "s", attempt=3).to_message(), 60)
    assert poison.sent == [] and events(audit) == []


def test_the_last_failed_attempt_goes_to_the_poison_queue_and_is_audited(keys: KeyRing, clock: FakeClock) -> None:
    audit, outbox, poison = FakeRowStore("audit", clock), FakeQueue("o"), FakeQueue("p")
    last = LogoutNotice("rp", SUB, "s", attempt=3).to_message()
    assert run(last, Receiver(500), keys, clock, audit, outbox, poison) == "dead_lettered"
    assert poison.sent == [(last, 0)] and outbox.sent == []
    assert [(e["event"], e["client_id"], e["sid"], e["attempts"], e["reason"], e["error"])
            for e in events(audit)] == [("backchannel_logout_dead_lettered", "rp", "s", 3, "http_error", "HTTP 500")]
    unreachable = LogoutNotice("rp", SUB, "t", attempt=3).to_message()
    assert run(unreachable, Receiver(error=TimeoutError("slow")), keys, clock, audit, outbox, poison) == "dead_lettered"
    assert ("unreachable", "TimeoutError") in {(e["reason"], e["error"]) for e in events(audit)}


@pytest.mark.parametrize("body", ["not json", LogoutNotice("quiet", SUB, "s").to_message(),
                                  LogoutNotice("gone", SUB, "s").to_message()])
def test_a_message_for_no_registered_back_channel_is_dropped(body: str, keys: KeyRing, clock: FakeClock) -> None:
    receiver, audit, outbox, poison = Receiver(), FakeRowStore("audit", clock), FakeQueue("o"), FakeQueue("p")
    assert run(body, receiver, keys, clock, audit, outbox, poison) == "dropped"
    assert receiver.posts == [] and outbox.sent == [] and poison.sent == []


def test_retry_delays_double_and_stay_within_the_queue_limit() -> None:
    assert [retry_delay(30, attempt) for attempt in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(30, 40) == 7 * 24 * 3600


def test_announce_enqueues_one_notice_per_client_with_a_uri_and_survives_an_outage() -> None:
    outbox = FakeQueue("o")
    assert announce(outbox, SETTINGS.clients, ["quiet", "rp", "rp"], sub=SUB, sid="s") == 1
    assert outbox.sent == [(LogoutNotice("rp", SUB, "s").to_message(), 0)]
    assert announce(FakeQueue("o", down=True), SETTINGS.clients, ["rp"], sub=SUB, sid="s") == 0
    assert announce(None, SETTINGS.clients, ["rp"], sub=SUB, sid="s") == 0


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, dict[str, object]]]:
    """The back-channel module's own records: level, message and the extra fields operators query."""
    names = ("clients", "client_id", "attempt", "retry_in", "error_detail")
    return [(r.levelname, r.getMessage(), {n: getattr(r, n) for n in names if hasattr(r, n)})
            for r in caplog.records if r.name == "sanscouture.backchannel"]


@pytest.mark.parametrize("status", [200, 201, 299])
def test_every_2xx_status_and_only_those_delivers(status: int, keys: KeyRing, clock: FakeClock) -> None:
    """§2.8: the RP answers 200 OK (or another 2xx); the range is closed at 200 and open at 300."""
    audit, outbox, poison = FakeRowStore("audit", clock), FakeQueue("o"), FakeQueue("p")
    assert run(LogoutNotice("rp", SUB, "s").to_message(), Receiver(status), keys, clock, audit, outbox,
               poison) == "delivered"


@pytest.mark.parametrize("status", [199, 300, 301, 400])
def test_a_status_outside_2xx_is_retried(status: int, keys: KeyRing, clock: FakeClock) -> None:
    audit, outbox, poison = FakeRowStore("audit", clock), FakeQueue("o"), FakeQueue("p")
    assert run(LogoutNotice("rp", SUB, "s").to_message(), Receiver(status), keys, clock, audit, outbox,
               poison) == "retried"
    assert len(outbox.sent) == 1 and poison.sent == []


def test_without_a_session_the_audit_names_none(keys: KeyRing, clock: FakeClock) -> None:
    """The audit keeps no empty field: a notice without sid is audited without one, delivered or not."""
    audit, outbox, poison = FakeRowStore("audit", clock), FakeQueue("o"), FakeQueue("p")
    assert run(LogoutNotice("rp", SUB, None).to_message(), Receiver(200), keys, clock, audit, outbox,
               poison) == "delivered"
    assert run(LogoutNotice("rp", SUB, None, attempt=3).to_message(), Receiver(503), keys, clock, audit, outbox,
               poison) == "dead_lettered"
    assert sorted((str(e["event"]), "sid" in e) for e in events(audit)) == [
        ("backchannel_logout_dead_lettered", False), ("backchannel_logout_delivered", False)]


def test_each_logout_token_has_a_fresh_128_bit_jti(keys: KeyRing, clock: FakeClock) -> None:
    """§2.4 jti: unique per token; 16 random bytes, 22 base64url characters."""
    receiver, audit, outbox, poison = Receiver(200), FakeRowStore("audit", clock), FakeQueue("o"), FakeQueue("p")
    for _ in range(2):
        run(LogoutNotice("rp", SUB, "s").to_message(), receiver, keys, clock, audit, outbox, poison)
    jtis = [keys.decode(form["logout_token"], issuer=ISSUER, audience="rp", typ="logout+jwt")["jti"]
            for _, form, _ in receiver.posts]
    assert len(set(jtis)) == 2 and [len(jti) for jti in jtis] == [22, 22]


def test_a_client_requiring_sid_gets_nothing_for_an_unknown_session(
        keys: KeyRing, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """§2.2 backchannel_logout_session_required: no token without sid; the message is dropped, logged."""
    receiver, audit, outbox, poison = Receiver(), FakeRowStore("audit", clock), FakeQueue("o"), FakeQueue("p")
    with caplog.at_level(logging.WARNING, logger="sanscouture.backchannel"):
        assert run(LogoutNotice("strict", SUB, None).to_message(), receiver, keys, clock, audit, outbox,
                   poison) == "dropped"
    assert receiver.posts == [] and outbox.sent == [] and poison.sent == [] and events(audit) == []
    assert logged(caplog) == [("WARNING", "back-channel logout: no token can be made",
                               {"client_id": "strict",
                                "error_detail": "the client requires sid and the session is not known"})]


def test_dropped_messages_are_logged_with_their_reason(keys: KeyRing, clock: FakeClock,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    receiver, audit, outbox, poison = Receiver(), FakeRowStore("audit", clock), FakeQueue("o"), FakeQueue("p")
    with caplog.at_level(logging.WARNING, logger="sanscouture.backchannel"):
        run("not json", receiver, keys, clock, audit, outbox, poison)
        run(LogoutNotice("quiet", SUB, "s").to_message(), receiver, keys, clock, audit, outbox, poison)
    assert logged(caplog) == [
        ("ERROR", "back-channel logout: a message the broker did not write was dropped", {}),
        ("WARNING", "back-channel logout: client no longer registered for it", {"client_id": "quiet"}),
    ]


def test_a_retry_is_logged_with_its_attempt_delay_and_cause(keys: KeyRing, clock: FakeClock,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    audit, outbox, poison = FakeRowStore("audit", clock), FakeQueue("o"), FakeQueue("p")
    with caplog.at_level(logging.WARNING, logger="sanscouture.backchannel"):
        run(LogoutNotice("rp", SUB, "s", attempt=2).to_message(), Receiver(500), keys, clock, audit, outbox, poison)
    assert logged(caplog) == [("WARNING", "back-channel logout failed, retried later",
                               {"client_id": "rp", "attempt": 2, "retry_in": 60, "error_detail": "HTTP 500"})]


def test_announce_counts_every_notice_sent_and_nothing_when_no_client_has_a_uri() -> None:
    outbox = FakeQueue("o")
    assert announce(outbox, SETTINGS.clients, ["quiet"], sub=SUB, sid="s") == 0
    assert announce(None, SETTINGS.clients, ["quiet"], sub=SUB, sid="s") == 0
    assert outbox.sent == []
    assert announce(outbox, SETTINGS.clients, ["rp", "strict"], sub=SUB, sid="s") == 2
    assert [body for body, _ in outbox.sent] == [LogoutNotice("rp", SUB, "s").to_message(),
                                                  LogoutNotice("strict", SUB, "s").to_message()]


def test_announce_logs_a_missing_or_unavailable_queue(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="sanscouture.backchannel"):
        announce(None, SETTINGS.clients, ["rp", "strict"], sub=SUB, sid="s")
        announce(FakeQueue("o", down=True), SETTINGS.clients, ["rp"], sub=SUB, sid="s")
    assert logged(caplog) == [
        ("ERROR", "back-channel logout not announced: no queue configured", {"clients": 2}),
        ("ERROR", "back-channel logout not announced: queue unavailable",
         {"client_id": "rp", "error_detail": "queue down"}),
    ]
