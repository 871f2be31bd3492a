"""Faults a simulator puts into the ID tokens it mints, each switched on by one switch (issue 8).

A relying party must refuse every one of them (OIDC Core 3.1.3.7, RFC 8725): the Entra and PSC
simulators register a switch per fault (``sandbox/entra_sim/switches.py``, ``sandbox/psc_sim/state.py``)
whose docstring says which attack or misconfiguration it models, and the end-to-end tests in
``tests/e2e/test_upstream_faults.py`` show that the broker refuses each. A fault is a mutation of the
claims at minting time, or a way of signing them (:data:`sandbox.oidc_keys.FORGERIES`); several may be
on at once, the signing fault switched on last wins.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

from sandbox.oidc_keys import FORGERIES
from sandbox.oidc_keys import KeySet

ClaimsFault = Callable[[dict[str, Any]], None]

EXPIRED_SINCE = 600
"""How long ago an expired token expired: well past any relying party's clock-skew leeway (MSAL and
the broker allow 120 s)."""


class IdTokenFaults:
    """The faults switched on in one simulator: claim mutations by switch name, and the signing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claims: dict[str, ClaimsFault] = {}
        self._signing = "valid"

    def claims_fault(self, name: str, fault: ClaimsFault, on: bool) -> None:
        """Switch the mutation ``name`` on or off."""
        with self._lock:
            if on:
                self._claims[name] = fault
            else:
                self._claims.pop(name, None)

    def signing_fault(self, signing: str, on: bool) -> None:
        """Sign with ``signing`` (one of :data:`FORGERIES`), or back to a valid signature if it was that one."""
        if signing not in FORGERIES:
            raise ValueError(f"unknown signing {signing!r}")
        with self._lock:
            if on:
                self._signing = signing
            elif self._signing == signing:
                self._signing = "valid"

    def mint(self, keys: KeySet, claims: Mapping[str, Any]) -> str:
        """The ID token of ``claims`` with every fault that is on."""
        with self._lock:
            faults, signing = list(self._claims.values()), self._signing
        faulty = dict(claims)
        for fault in faults:
            fault(faulty)
        return keys.forge(faulty, signing)


def boolean(value: Any, name: str) -> bool:
    """A switch's value that must be true or false."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} takes true or false, not {value!r}")
    return value


def set_claim(name: str, value: Any) -> ClaimsFault:
    """The claim ``name`` replaced by ``value``."""

    def fault(claims: dict[str, Any]) -> None:
        claims[name] = value

    return fault


def drop_claim(name: str) -> ClaimsFault:
    """The claim ``name`` removed."""

    def fault(claims: dict[str, Any]) -> None:
        claims.pop(name, None)

    return fault


def other_audience(client_id: str) -> ClaimsFault:
    """Issued to ``client_id``: ``aud`` and, where the provider sets it, ``azp`` name that client."""

    def fault(claims: dict[str, Any]) -> None:
        claims["aud"] = client_id
        if "azp" in claims:
            claims["azp"] = client_id

    return fault


def other_nonce(claims: dict[str, Any]) -> None:
    """The ``nonce`` of another authorization request."""
    claims["nonce"] = secrets.token_urlsafe(16)


def expired(claims: dict[str, Any]) -> None:
    """Issued one lifetime plus :data:`EXPIRED_SINCE` ago: ``iat``, ``nbf`` and ``exp`` moved back
    together, ``auth_time`` no later than the new ``iat``."""
    shift = int(claims["exp"]) - int(claims["iat"]) + EXPIRED_SINCE
    for name in ("iat", "nbf", "exp"):
        if name in claims:
            claims[name] = int(claims[name]) - shift
    if "auth_time" in claims:
        claims["auth_time"] = min(int(claims["auth_time"]), int(claims["iat"]))
