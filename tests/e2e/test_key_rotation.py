"""Signing-key rotation with no failed sign-in, over HTTPS: two broker workers sign people in without a
pause while ``python -m tools.keys rotate`` runs (issue 10; docs/design.md "Keys and secrets").

The two workers are two ``Services`` — each its own key ring, Entra and PSC adapters, limits — over the
same tables (Azurite) and the same key source (a key file of this test), serving the real
``function_app`` behind the sandbox broker's address, as the platform's front end spreads requests over
instances: in turn, or to the worker a request names in ``X-Test-Worker`` (``functions._wiring.serving``
names the worker of each request; nothing else of the app changes). Relying parties check every ID
token against ``/jwks`` of each worker, fetched right after the token: what any relying party would see.

Time: the workers' key rings and the rotation tool share a clock that moves only when the test moves it,
and every duration of the rotation rules is scaled down by one factor (an hour becomes a second): the
workers' key cache, the ``/jwks`` max-age, the lead, the lifetimes and the margin of the retention. The
rules are the production ones (``Durations.scaled``); the broker's own clock (tokens, sealed cookies) is
not scaled, which is what lets the test still hold, after the retention, an access token, an ID token and
a session cookie of the first key, and see them refused only once that key is disabled.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import pytest
import requests

import function_app
from functions import _wiring
from sandbox.host import FunctionsHost
from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.scripted import sign_in
from sanscouture.adapters.keyfile import FileKeySource
from sanscouture.adapters.keyfile import ensure_key_file
from sanscouture.cookies import SESSION_COOKIE
from sanscouture.keys import KeyRing
from sanscouture.rotation import Durations
from sanscouture.settings import Settings
from tools import keys as keys_tool

SCALE = 1 / 3600  # an hour of the rules becomes a second of the test's clock
WORKER_HEADER = "X-Test-Worker"
WORKERS = ("0", "1")
SIGNING_IN = (("cpx", "medecin-cps"), ("whfb-sso", "infirmier-ecps"))  # one person per thread
KEPT = ("fido2", "pharmacien-cps")  # signed in before the rotation; their artefacts are kept


class WorkersClock:
    """The workers' and the rotation tool's time: it moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Fleet:
    """Two workers behind one address, and the threads signing people in through them."""

    def __init__(self, sandbox: Sandbox, workers: list[_wiring.Services], clock: WorkersClock) -> None:
        self.sandbox = sandbox
        self.workers = workers
        self.clock = clock
        self.party = RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == "rp-basic"))
        self._host = FunctionsHost(function_app.app)
        self._turn = itertools.count()
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self.completed: dict[str, int] = {}
        self.failures: list[str] = []
        self.kids: list[str] = []  # the kid of every ID token issued
        self.latest_access_token = ""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        pinned = environ.get("HTTP_" + WORKER_HEADER.upper().replace("-", "_"))
        index = WORKERS.index(pinned) if pinned in WORKERS else next(self._turn) % len(self.workers)
        with _wiring.serving(self.workers[index]):
            return self._host(environ, start_response)

    # -- the people signing in -------------------------------------------------------------------

    def start_signing_in(self) -> None:
        for entra, psc in SIGNING_IN:
            self.completed[entra] = 0
            thread = threading.Thread(target=self._keep_signing_in, args=(entra, psc), name=f"sign-in-{entra}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _keep_signing_in(self, entra: str, psc: str) -> None:
        while not self._stop.is_set():
            try:
                issued = self.sign_in_twice(entra, psc)
            except Exception as error:  # every failure is a failed sign-in: recorded, and the test fails
                with self._changed:
                    self.failures.append(f"{entra}: {type(error).__name__}: {error}")
                    self._changed.notify_all()
                continue
            with self._changed:
                self.kids.extend(kid for kid, _ in issued)
                self.latest_access_token = issued[-1][1]
                self.completed[entra] += 1
                self._changed.notify_all()

    def sign_in_twice(self, entra: str, psc: str) -> list[tuple[str, str]]:
        """An interactive sign-in, then a silent one (prompt=none) on its session: (kid, access token) each."""
        browser, pkce = Browser(self.sandbox, psc_persona=psc), Pkce()
        first = self.redeem_and_check(sign_in(browser, self.party, pkce, login_hint=entra), pkce)
        silent_pkce = Pkce()
        landing = browser.go(self.party.authorization_url(silent_pkce, prompt="none"), stop_at=self.party.redirect_uri)
        assert isinstance(landing, Landing) and "code" in landing.params, landing
        return [first, self.redeem_and_check(landing, silent_pkce)]

    def redeem_and_check(self, landing: Landing, pkce: Pkce) -> tuple[str, str]:
        """The relying party's part: /token, the ID token checked against each worker's /jwks fetched
        right after, /userinfo."""
        response = self.party.redeem(landing.params["code"], pkce)
        assert response.status_code == 200, response.text
        tokens = response.json()
        kid = jwt.get_unverified_header(tokens["id_token"])["kid"]
        for worker in WORKERS:
            claims = self.verify_id_token(tokens["id_token"], self.jwks(worker))
            assert claims["nonce"] == pkce.nonce
        userinfo = self.party.userinfo(tokens["access_token"])
        assert userinfo.status_code == 200, userinfo.text
        return kid, tokens["access_token"]

    def verify_id_token(self, id_token: str, jwks: dict[str, Any]) -> dict[str, Any]:
        kid = jwt.get_unverified_header(id_token)["kid"]
        known = {key["kid"]: key for key in jwks["keys"]}
        assert kid in known, f"the ID token's key {kid} is not at /jwks {sorted(known)}"
        claims: dict[str, Any] = jwt.decode(id_token, jwt.PyJWK(known[kid]).key, algorithms=["RS256"],
                                            audience=self.party.client.client_id, issuer=self.sandbox.broker_url)
        return claims

    def jwks(self, worker: str) -> dict[str, Any]:
        response = requests.get(f"{self.sandbox.broker_url}/jwks", headers={WORKER_HEADER: worker}, timeout=30)
        assert response.status_code == 200
        jwks: dict[str, Any] = response.json()
        return jwks

    def published(self, worker: str) -> list[str]:
        return [key["kid"] for key in self.jwks(worker)["keys"]]

    # -- the test's pace ---------------------------------------------------------------------------

    def each_signs_in_again(self) -> None:
        """Wait until every thread has completed one more double sign-in (a failure ends the wait)."""
        with self._changed:
            target = {entra: count + 1 for entra, count in self.completed.items()}
            done = self._changed.wait_for(
                lambda: self.failures or all(self.completed[e] >= n for e, n in target.items()), timeout=180
            )
        assert done and self.failures == [], self.failures

    def move_time_to(self, moment: float) -> None:
        """The workers' time moves to ``moment``, then everyone signs in again."""
        self.clock.advance(moment - self.clock())
        self.each_signs_in_again()


@pytest.fixture
def rotation(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[Fleet, Path, Durations]]:
    """Two workers over this test's key file, behind the sandbox broker's address for the test."""
    key_file = tmp_path / "signing-keys.json"
    ensure_key_file(key_file)
    durations = Durations.from_settings(session_max_age=14400, access_token_ttl=120).scaled(SCALE)
    durations = dataclasses.replace(durations, lead=durations.minimum_lead)  # the shortest lead the rules allow
    clock = WorkersClock()
    settings = dataclasses.replace(Settings.from_env(os.environ), signing_key_file=str(key_file))
    workers = []
    for _ in WORKERS:
        worker = _wiring.Services(settings)
        vars(worker)["key_ring"] = KeyRing(
            FileKeySource(key_file), clock=clock, refresh_after=durations.worker_cache,
            unknown_kid_interval=60 * SCALE, retry_after_failure=30 * SCALE,
        )
        workers.append(worker)
    fleet = Fleet(sandbox, workers, clock)
    server = next(running for running in sandbox.servers if running.name == "broker").server
    sandbox_broker = server.app
    server.app = fleet
    try:
        yield fleet, key_file, durations
    finally:
        fleet.stop()
        server.app = sandbox_broker


def rotate(fleet: Fleet, key_file: Path, durations: Durations, *argv: str) -> str:
    out = io.StringIO()
    status = keys_tool.main(["rotate", *argv], {"BROKER_SIGNING_KEY_FILE": str(key_file)}, out, fleet.clock, durations)
    assert status == 0, out.getvalue()
    return out.getvalue()


def file_keys(key_file: Path) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = json.loads(key_file.read_text())["keys"]
    return keys


def silent_sign_in(fleet: Fleet, session_cookie: str, worker: str) -> dict[str, str]:
    """prompt=none with only this session cookie, on one worker: the relying party's landing."""
    response = requests.get(
        fleet.party.authorization_url(Pkce(), prompt="none"), allow_redirects=False, timeout=30,
        headers={"Cookie": f"{SESSION_COOKIE}={session_cookie}", WORKER_HEADER: worker},
    )
    assert response.status_code in (302, 303) and response.headers["Location"].startswith(fleet.party.redirect_uri)
    return {name: values[0] for name, values in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def userinfo_status(fleet: Fleet, access_token: str, worker: str) -> int:
    return requests.get(f"{fleet.sandbox.broker_url}/userinfo", timeout=30,
                        headers={"Authorization": f"Bearer {access_token}", WORKER_HEADER: worker}).status_code


def logout_status(fleet: Fleet, id_token_hint: str, worker: str) -> int:
    target = fleet.party.client.post_logout_redirect_uris[0]
    query = urlencode({"id_token_hint": id_token_hint, "post_logout_redirect_uri": target})
    return requests.get(f"{fleet.sandbox.broker_url}/logout?{query}", allow_redirects=False, timeout=30,
                        headers={WORKER_HEADER: worker}).status_code


def signed_by(jwk: dict[str, Any], access_token: str) -> str:
    """The same access token (live record, same claims) signed by another of the broker's keys."""
    claims = jwt.decode(access_token, options={"verify_signature": False})
    return jwt.encode(claims, jwt.PyJWK(jwk).key, algorithm="RS256", headers={"kid": jwk["kid"], "typ": "at+jwt"})


def test_two_workers_sign_in_without_a_single_failure_while_the_signing_key_rotates(
    rotation: tuple[Fleet, Path, Durations],
) -> None:
    fleet, key_file, durations = rotation
    [first_key] = file_keys(key_file)
    fleet.start_signing_in()
    fleet.each_signs_in_again()

    # Before the rotation: a session cookie, an ID token and an access token of the first key.
    browser, pkce = Browser(fleet.sandbox, psc_persona=KEPT[1]), Pkce()
    landing = sign_in(browser, fleet.party, pkce, login_hint=KEPT[0])
    kept_tokens = fleet.party.redeem(landing.params["code"], pkce).json()
    kept_session = browser.session.cookies.get(SESSION_COOKIE)
    assert kept_session is not None
    assert jwt.get_unverified_header(kept_tokens["id_token"])["kid"] == first_key["kid"]

    # The rotation adds the next key, published before it signs.
    rotated_at = fleet.clock()
    text = rotate(fleet, key_file, durations)
    second_key = file_keys(key_file)[0]
    assert second_key["nbf"] == pytest.approx(rotated_at + durations.lead)
    assert f"add      {second_key['kid']}" in text and f"signing  {first_key['kid']}" in text
    fleet.move_time_to(second_key["nbf"] - durations.jwks_max_age / 2)  # people keep signing in, first key
    fleet.move_time_to(second_key["nbf"])  # the second key becomes active
    fleet.move_time_to(second_key["nbf"] + durations.worker_cache)  # every worker has reloaded since
    assert set(fleet.kids) == {first_key["kid"], second_key["kid"]}  # the second key signs now
    assert fleet.kids[-1] == second_key["kid"]

    # The first key no longer signs but is kept: what it signed or sealed still works, on both workers.
    fresh_token = fleet.latest_access_token
    for worker in WORKERS:
        assert fleet.published(worker) == [second_key["kid"], first_key["kid"]]
        assert "code" in silent_sign_in(fleet, kept_session, worker)
        assert userinfo_status(fleet, kept_tokens["access_token"], worker) == 200
        assert userinfo_status(fleet, signed_by(first_key, fresh_token), worker) == 200
    assert logout_status(fleet, kept_tokens["id_token"], WORKERS[0]) in (302, 303)  # a recognised hint: no question

    # Until its retention has passed, a rotation keeps it.
    retired_at = second_key["nbf"]
    fleet.move_time_to(retired_at + durations.retention - durations.worker_cache / 4)
    text = rotate(fleet, key_file, durations, "--dry-run")
    assert f"keep     {first_key['kid']}" in text
    assert [key.get("disabled") for key in file_keys(key_file)] == [None, None]

    # After it, the monthly rotation adds a third key and disables the first.
    fleet.clock.advance(durations.worker_cache / 4)
    text = rotate(fleet, key_file, durations)
    third_key = file_keys(key_file)[0]
    assert f"add      {third_key['kid']}" in text and f"disable  {first_key['kid']}" in text
    assert [(key["kid"], key.get("disabled")) for key in file_keys(key_file)] == [
        (third_key["kid"], None), (second_key["kid"], None), (first_key["kid"], True)]

    # Once the workers have reloaded their keys, the first key's artefacts are refused, and only them.
    fleet.move_time_to(fleet.clock() + durations.worker_cache)
    assert fleet.clock() < third_key["nbf"]  # the third key is published, not yet signing
    fresh_token = fleet.latest_access_token
    for worker in WORKERS:
        assert fleet.published(worker) == [third_key["kid"], second_key["kid"]]
        assert silent_sign_in(fleet, kept_session, worker)["error"] == "login_required"
        assert userinfo_status(fleet, signed_by(first_key, fresh_token), worker) == 401
        assert userinfo_status(fleet, fresh_token, worker) == 200
        assert logout_status(fleet, kept_tokens["id_token"], worker) == 400  # an unknown hint, as a foreign one
    fleet.each_signs_in_again()

    fleet.stop()
    assert fleet.failures == []
    assert set(fleet.kids) == {first_key["kid"], second_key["kid"]}
    assert sum(fleet.completed.values()) >= 10
