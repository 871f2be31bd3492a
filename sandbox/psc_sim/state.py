"""What a test may change in a running PSC simulator: one switch function per documented behaviour.

Served at ``/_sim/switches`` (``sandbox.switches``). A behaviour of the real PSC found later is one
more function here and one test in ``tests/sandbox/test_psc_sim.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.switches import Switchboard


@dataclass
class PscState:
    """The simulator's mutable behaviour; every field is set by the switch of the same name."""

    wallet_ignores_prompt_login: bool = False
    userinfo_signed: bool = False


SWITCHES: Switchboard[PscState] = Switchboard()


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} takes true or false, not {value!r}")
    return value


@SWITCHES.switch("wallet-ignores-prompt-login", default=False)
def wallet_ignores_prompt_login(state: PscState, value: Any) -> None:
    """A wallet that ignores prompt=login and max_age: within a live PSC SSO session it answers at once,
    for the session's person and with the session's original auth_time, instead of asking for the
    card or e-CPS again (what Keycloak's requireReauthentication would force)."""
    state.wallet_ignores_prompt_login = _boolean(value, "wallet-ignores-prompt-login")


@SWITCHES.switch("userinfo-signed", default=False)
def userinfo_signed(state: PscState, value: Any) -> None:
    """Every registration asks for a signed userinfo (Keycloak client setting "User info signed response
    algorithm" = RS256, which ansforge/keycloak-prosanteconnect reads): userinfo answers application/jwt,
    a JWS of the claims with a JWT envelope (iss and aud as Keycloak's UserInfoEndpoint, plus iat, exp, nbf and jti)."""
    state.userinfo_signed = _boolean(value, "userinfo-signed")
