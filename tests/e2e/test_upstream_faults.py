"""The broker against upstream providers that send what an attacker or a misconfiguration would (issue 8,
point 11), over HTTPS through the sandbox.

Each simulator switch puts one fault into Entra's or PSC's ID token, or into PSC's userinfo
(``sandbox/token_faults.py``; each switch's docstring says what it models). Every test signs in through
the broker with one fault on and shows what the broker does: its French refusal page (403), the service
then gets the error through « Retourner au service », and nothing is stored (no pairing, no broker
session, no code). The log names the check that refused, so that each test fails if that check is
deleted (docs/design.md "Upstream checks"). MSAL 1.38+ checks only the nonce and ``auth_time`` of
Entra's ID token; a refusal by MSAL counts when the broker turns it into its page.

Entra faults stop the sign-in at Entra's callback; PSC faults stop the pairing that follows it. The
Entra persona is ``cpx-interne``, unpaired first.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import pytest

from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.switches import switched
from tests.e2e.pairings import binding_row
from tests.e2e.pairings import persona_oid
from tests.e2e.pairings import unpair
from tests.e2e.test_journey import PAIRING
from tests.e2e.test_journey import rp
from tests.e2e.test_journey import start
from tests.e2e.test_psc_fidelity import audit_reasons

ENTRA = "cpx-interne"
PSC = "medecin-cps"

UNEXPECTED = "Erreur inattendue"  # upstream_token_invalid shares the unexpected-error page
NOT_CONFIRMED = "Identité non confirmée"  # psc_refused
INCOMPLETE = "Configuration de la connexion incomplète"  # entra_claim_missing


@dataclass(frozen=True)
class Fault:
    """A switch of a simulator, and what the broker must answer with it on."""

    switch: str
    reason: str  # the audited refusal reason (docs/design.md "Refusals")
    h1: str
    detail: str  # the logged detail: names the broker's check that refused
    value: object = True
    rp_error: str = "access_denied"

    def __str__(self) -> str:
        return self.switch


ENTRA_FAULTS = [
    Fault("id-token-wrong-signature", "upstream_token_invalid", UNEXPECTED,
          "entra: InvalidSignatureError: Signature verification failed"),
    Fault("id-token-alg-none", "upstream_token_invalid", UNEXPECTED, "entra: alg 'none' refused"),
    Fault("id-token-hs256-public-key", "upstream_token_invalid", UNEXPECTED, "entra: alg 'HS256' refused"),
    Fault("id-token-foreign-issuer", "upstream_token_invalid", UNEXPECTED, "entra: unexpected issuer"),
    Fault("id-token-wrong-audience", "upstream_token_invalid", UNEXPECTED,
          "entra: InvalidAudienceError: Audience doesn't match"),
    Fault("id-token-expired", "upstream_token_invalid", UNEXPECTED,
          "entra: ExpiredSignatureError: Signature has expired"),
    # MSAL compares the nonce first (msal/oauth2cli/oidc.py); the broker turns its refusal into the page.
    Fault("id-token-wrong-nonce", "upstream_token_invalid", UNEXPECTED, "entra: MSAL refused the ID token (nonce)"),
    Fault("id-token-no-nonce", "upstream_token_invalid", UNEXPECTED, "entra: MSAL refused the ID token (nonce)"),
    # MSAL wants auth_time because the broker always sends max_age; the page sends the admin to the
    # app registration's optional claims, and the service gets server_error (docs/design.md "Refusals").
    Fault("id-token-no-auth-time", "entra_claim_missing", INCOMPLETE,
          "entra: the ID token has no auth_time claim: declare the optional claim auth_time of the ID token in "
          "the app registration (infra/bicep/entra-optional-claims.json)", rp_error="server_error"),
]

PSC_FAULTS = [
    Fault("id-token-wrong-signature", "upstream_token_invalid", UNEXPECTED,
          "psc: InvalidSignatureError: Signature verification failed"),
    Fault("id-token-alg-none", "upstream_token_invalid", UNEXPECTED, "psc: alg 'none' refused"),
    Fault("id-token-hs256-public-key", "upstream_token_invalid", UNEXPECTED, "psc: alg 'HS256' refused"),
    Fault("id-token-foreign-issuer", "upstream_token_invalid", UNEXPECTED, "psc: unexpected issuer"),
    Fault("id-token-wrong-audience", "upstream_token_invalid", UNEXPECTED,
          "psc: InvalidAudienceError: Audience doesn't match"),
    Fault("id-token-wrong-nonce", "upstream_token_invalid", UNEXPECTED, "psc: nonce mismatch"),
    Fault("id-token-no-nonce", "upstream_token_invalid", UNEXPECTED, "psc: nonce mismatch"),
    Fault("id-token-expired", "upstream_token_invalid", UNEXPECTED,
          "psc: ExpiredSignatureError: Signature has expired"),
    Fault("id-token-no-auth-time", "psc_refused", NOT_CONFIRMED, "psc: ID token has no auth_time"),
    Fault("id-token-acr", "psc_refused", NOT_CONFIRMED, "psc acr '0' is not eidas1", value="0"),
    Fault("userinfo-other-sub", "psc_refused", NOT_CONFIRMED, "psc: userinfo sub differs from the ID token's"),
    Fault("signed-userinfo-wrong-iss", "psc_refused", NOT_CONFIRMED, "psc userinfo JWT: unexpected issuer"),
    Fault("signed-userinfo-wrong-aud", "psc_refused", NOT_CONFIRMED, "psc userinfo JWT: not for this client"),
]


@pytest.fixture
def refusals(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="sanscouture")
    return caplog


@pytest.mark.parametrize("fault", ENTRA_FAULTS, ids=str)
def test_an_entra_id_token_fault_is_refused_and_nothing_is_stored(
    sandbox: Sandbox, refusals: pytest.LogCaptureFixture, fault: Fault
) -> None:
    unpair(sandbox, ENTRA)
    browser, party, pkce = Browser(sandbox, psc_persona=PSC), rp(sandbox), Pkce()
    with switched(sandbox.entra_url, **{fault.switch: fault.value}):
        page = start(browser, party, pkce, login_hint=ENTRA)
    assert_refused(sandbox, browser, party, pkce, page, fault, refusals)


@pytest.mark.parametrize("fault", PSC_FAULTS, ids=str)
def test_a_psc_fault_during_pairing_is_refused_and_nothing_is_paired(
    sandbox: Sandbox, refusals: pytest.LogCaptureFixture, fault: Fault
) -> None:
    unpair(sandbox, ENTRA)
    browser, party, pkce = Browser(sandbox, psc_persona=PSC), rp(sandbox), Pkce()
    page = start(browser, party, pkce, login_hint=ENTRA)
    assert isinstance(page, Page) and page.h1 == PAIRING, getattr(page, "h1", page)
    with switched(sandbox.psc_url, **{fault.switch: fault.value}):
        page = browser.submit(page, "pair", stop_at=party.redirect_uri)
    assert_refused(sandbox, browser, party, pkce, page, fault, refusals)


def assert_refused(
    sandbox: Sandbox, browser: Browser, party: RelyingParty, pkce: Pkce, page: Page | Landing, fault: Fault,
    refusals: pytest.LogCaptureFixture,
) -> None:
    """The French refusal page, the check named in the log and the audit, the service's error, nothing stored."""
    assert isinstance(page, Page), page  # never a code straight back to the service
    assert (page.status, page.h1) == (403, fault.h1)
    assert page.headers["Content-Type"].startswith("text/html") and 'lang="fr"' in page.html
    assert "Traceback" not in page.html
    details = [getattr(r, "error_detail", None) for r in refusals.records if r.getMessage() == "sign-in refused"]
    assert details == [fault.detail]
    reference = re.search(r'<span class="code">([^<]+)</span>', page.html)
    assert reference and audit_reasons(sandbox, reference.group(1)) == [fault.reason]

    landing = browser.go(page.link("Retourner au service"), stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    assert (landing.params["error"], landing.params["state"]) == (fault.rp_error, pkce.state)
    assert landing.params["iss"] == sandbox.broker_url and "code" not in landing.params

    assert binding_row(sandbox, persona_oid(sandbox, ENTRA)) is None  # no pairing
    silent = start(browser, party, Pkce(), prompt="none")  # no broker session either
    assert isinstance(silent, Landing) and silent.params["error"] == "login_required", silent
