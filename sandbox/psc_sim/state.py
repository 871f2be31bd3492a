"""What a test may change in a running PSC simulator: one switch function per documented behaviour.

Served at ``/_sim/switches`` (``sandbox.switches``). A behaviour of the real PSC found later is one
more function here and one test in ``tests/sandbox/test_psc_sim.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from sandbox.switches import Switchboard
from sandbox.token_faults import IdTokenFaults
from sandbox.token_faults import boolean
from sandbox.token_faults import drop_claim
from sandbox.token_faults import expired
from sandbox.token_faults import other_audience
from sandbox.token_faults import other_nonce
from sandbox.token_faults import set_claim


@dataclass
class PscState:
    """The simulator's mutable behaviour; every field is set by the switch of the same name (the faults
    of the ID token by the ``id-token-*`` switches, the signed userinfo's envelope by ``signed-userinfo-*``)."""

    wallet_ignores_prompt_login: bool = False
    userinfo_signed: bool = False
    clock_offset: int = 0
    id_token_faults: IdTokenFaults = field(default_factory=IdTokenFaults)
    userinfo_other_sub: bool = False
    signed_userinfo_iss: str | None = None  # None: PSC's issuer
    signed_userinfo_aud: str | None = None  # None: the client's id


SWITCHES: Switchboard[PscState] = Switchboard()


@SWITCHES.switch("wallet-ignores-prompt-login", default=False)
def wallet_ignores_prompt_login(state: PscState, value: Any) -> None:
    """A wallet that ignores prompt=login and max_age: within a live PSC SSO session it answers at once,
    for the session's person and with the session's original auth_time, instead of asking for the
    card or e-CPS again (what Keycloak's requireReauthentication would force)."""
    state.wallet_ignores_prompt_login = boolean(value, "wallet-ignores-prompt-login")


@SWITCHES.switch("userinfo-signed", default=False)
def userinfo_signed(state: PscState, value: Any) -> None:
    """Every registration asks for a signed userinfo (Keycloak client setting "User info signed response
    algorithm" = RS256, which ansforge/keycloak-prosanteconnect reads): userinfo answers application/jwt,
    a JWS of the claims with a JWT envelope (iss and aud as Keycloak's UserInfoEndpoint, plus iat, exp, nbf and jti)."""
    state.userinfo_signed = boolean(value, "userinfo-signed")


@SWITCHES.switch("clock-offset", default=0)
def clock_offset(state: PscState, value: Any) -> None:
    """Seconds added to PSC's clock (auth_time, iat, exp, SSO sessions, codes): the time that passed
    between two requests, so a test needs no sleep. 0: the machine's clock."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("a whole number of seconds")
    state.clock_offset = value


# -- ID-token and userinfo faults: what the broker must refuse (OIDC Core 3.1.3.7 and 5.3.2;
# sandbox/token_faults.py). The broker redeems PSC's code itself: no library checks anything before it.

OTHER_CLIENT_ID = "autre-service-psc"
"""Another service registered with PSC (fictitious)."""

OTHER_REALM_ISSUER = "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet"
"""The issuer of PSC's test platform (BAS, "bac à sable"), as ANS's own connector configures it
(ansforge/keycloak-prosanteconnect, src/main/resources/psc.properties, ``psc.bas.issuer.url``): a
genuine PSC issuer, but not the one the broker is configured with."""


@SWITCHES.switch("id-token-wrong-signature", default=False)
def id_token_wrong_signature(state: PscState, value: Any) -> None:
    """ID tokens signed with a key that is not in the realm's JWKS, under the kid of a genuine key: a
    forged or tampered token (claims edited after signing). Only the signature check catches it."""
    state.id_token_faults.signing_fault("wrong-key", boolean(value, "id-token-wrong-signature"))


@SWITCHES.switch("id-token-alg-none", default=False)
def id_token_alg_none(state: PscState, value: Any) -> None:
    """Unsigned ID tokens, header alg "none" (RFC 7519 6.1): the "none" attack, accepted by any relying
    party that lets the token's header choose how it is verified (RFC 8725 2.1)."""
    state.id_token_faults.signing_fault("alg-none", boolean(value, "id-token-alg-none"))


@SWITCHES.switch("id-token-hs256-public-key", default=False)
def id_token_hs256_public_key(state: PscState, value: Any) -> None:
    """ID tokens with alg HS256 whose HMAC secret is the realm's public RSA key (its PEM, which anyone can
    fetch from the JWKS): the algorithm-confusion attack of RFC 8725 2.1 and 3.1."""
    state.id_token_faults.signing_fault("hs256-public-key", boolean(value, "id-token-hs256-public-key"))


@SWITCHES.switch("id-token-foreign-issuer", default=False)
def id_token_foreign_issuer(state: PscState, value: Any) -> None:
    """ID tokens whose iss is another PSC environment's (:data:`OTHER_REALM_ISSUER`), signed with this
    realm's keys: a token minted for another issuer than the one configured, which only the iss check
    refuses."""
    fault = set_claim("iss", OTHER_REALM_ISSUER)
    state.id_token_faults.claims_fault("foreign-issuer", fault, boolean(value, "id-token-foreign-issuer"))


@SWITCHES.switch("id-token-wrong-audience", default=False)
def id_token_wrong_audience(state: PscState, value: Any) -> None:
    """ID tokens issued to another service registered with PSC (aud and azp = its client id): a token
    obtained by, or for, another service and injected into the broker's pairing (token substitution)."""
    fault = other_audience(OTHER_CLIENT_ID)
    state.id_token_faults.claims_fault("wrong-audience", fault, boolean(value, "id-token-wrong-audience"))


@SWITCHES.switch("id-token-wrong-nonce", default=False)
def id_token_wrong_nonce(state: PscState, value: Any) -> None:
    """ID tokens carrying the nonce of another authorization request: a token replayed or injected from
    another sign-in (OIDC Core 15.5.2)."""
    state.id_token_faults.claims_fault("wrong-nonce", other_nonce, boolean(value, "id-token-wrong-nonce"))


@SWITCHES.switch("id-token-no-nonce", default=False)
def id_token_no_nonce(state: PscState, value: Any) -> None:
    """ID tokens without the nonce that was sent (Keycloak omits it when the request had none): a token
    of a request that is not the broker's, which nothing binds to this pairing."""
    fault = drop_claim("nonce")
    state.id_token_faults.claims_fault("no-nonce", fault, boolean(value, "id-token-no-nonce"))


@SWITCHES.switch("id-token-expired", default=False)
def id_token_expired(state: PscState, value: Any) -> None:
    """ID tokens that expired 10 minutes ago (iat and exp moved back one lifetime and 600 s): an old token
    replayed, or a provider whose clock is wrong."""
    state.id_token_faults.claims_fault("expired", expired, boolean(value, "id-token-expired"))


@SWITCHES.switch("id-token-no-auth-time", default=False)
def id_token_no_auth_time(state: PscState, value: Any) -> None:
    """ID tokens without auth_time: nothing then says whether the card or e-CPS was asked for now or the
    answer came from an old PSC SSO session, possibly someone else's (the pairing's fresh-proof rule)."""
    fault = drop_claim("auth_time")
    state.id_token_faults.claims_fault("no-auth-time", fault, boolean(value, "id-token-no-auth-time"))


@SWITCHES.switch("id-token-acr", default=None)
def id_token_acr(state: PscState, value: Any) -> None:
    """The acr of every ID token instead of "eidas1", e.g. "0" or "1": what Keycloak puts there when no
    level-of-assurance mapping applies ("0" after an SSO-cookie login, "1" otherwise: keycloak/keycloak
    services/src/main/java/org/keycloak/protocol/oidc/TokenManager.java), i.e. an authentication that
    PSC does not vouch for at eIDAS substantial. null: "eidas1"."""
    if value is not None and not isinstance(value, str):
        raise ValueError('an acr value (a string), or null for "eidas1"')
    state.id_token_faults.claims_fault("acr", set_claim("acr", value), value is not None)


@SWITCHES.switch("userinfo-other-sub", default=False)
def userinfo_other_sub(state: PscState, value: Any) -> None:
    """Userinfo answers with another professional's claims (another sub) than the ID token's: the
    access token of someone else's session substituted for the broker's, or a mix-up between two
    sessions. OIDC Core 5.3.2: the sub "MUST be verified to exactly match" the ID token's."""
    state.userinfo_other_sub = boolean(value, "userinfo-other-sub")


@SWITCHES.switch("signed-userinfo-wrong-iss", default=False)
def signed_userinfo_wrong_iss(state: PscState, value: Any) -> None:
    """Userinfo signed (application/jwt) with the realm's key but with iss another PSC environment's
    (:data:`OTHER_REALM_ISSUER`): a signed response of another issuer (OIDC Core 5.3.2: iss "SHOULD"
    be the OP's issuer and then must be checked)."""
    state.signed_userinfo_iss = OTHER_REALM_ISSUER if boolean(value, "signed-userinfo-wrong-iss") else None


@SWITCHES.switch("signed-userinfo-wrong-aud", default=False)
def signed_userinfo_wrong_aud(state: PscState, value: Any) -> None:
    """Userinfo signed (application/jwt) with aud another service registered with PSC
    (:data:`OTHER_CLIENT_ID`): a signed response obtained for another client and replayed to the broker."""
    state.signed_userinfo_aud = OTHER_CLIENT_ID if boolean(value, "signed-userinfo-wrong-aud") else None
