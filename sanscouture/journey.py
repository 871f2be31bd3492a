"""The sans-couture sign-in: authorize → Entra ID → pairing through PSC or confirmation → code.

Each public function is one browser endpoint (docs/design.md "The journey"): it opens the journey this
browser holds (sealed in its own cookie, :mod:`sanscouture.journeys`), checks that it is at a step the
endpoint can continue, does one step, and either renders the next French page or redirects (to Entra
ID, to PSC, or back to the relying party), with the journey's cookie updated, or removed at the end.

Storage round trips (docs/architecture.md): none before an upstream authentication; a warm paired
sign-in reads the pairing at /callback, then at Confirmer checks it unchanged (one conditional write),
inserts the code (keyed by the journey: its single use) and writes the audit record.

Rules kept here, beyond the protocol checks of :mod:`sanscouture.oidc.authorize`:
- a pairing is created only from the two authentications of one journey, with an insert that never
  overwrites (a concurrent pairing wins and is shown);
- "another PSC identity" is used for this sign-in only: the stored pairing is untouched;
- an upstream refusal shows a French page that says what happened, then hands ``access_denied`` to
  the relying party; storage or upstream outages show a "try again" page (503).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace

from sanscouture.audit import AuditLog
from sanscouture.backchannel import announce
from sanscouture.bindings import BindingStore
from sanscouture.cookies import SESSION_COOKIE
from sanscouture.entra_policy import check_entra_account
from sanscouture.entra_policy import check_fresh_for_request
from sanscouture.entra_policy import max_age_for_entra
from sanscouture.error_pages import error_page
from sanscouture.error_pages import too_many_requests_page
from sanscouture.errors import AccessDeniedError
from sanscouture.errors import InvalidRedirectUriError
from sanscouture.errors import LoginRequiredError
from sanscouture.errors import OAuthError
from sanscouture.errors import SignInRefused
from sanscouture.journeys import Journey
from sanscouture.journeys import JourneyStore
from sanscouture.journeys import Purpose
from sanscouture.journeys import Step
from sanscouture.journeys import cookieless_post_as_get
from sanscouture.keys import KeyRing
from sanscouture.limits import Limits
from sanscouture.limits import SlowDownError
from sanscouture.limits import source_of
from sanscouture.models import AuthorizationRequest
from sanscouture.models import Binding
from sanscouture.models import Client
from sanscouture.models import CodeGrant
from sanscouture.models import EntraAccount
from sanscouture.models import PscIdentity
from sanscouture.models import UpstreamStart
from sanscouture.oidc.authorize import MAX_BYTES
from sanscouture.oidc.authorize import validate_authorization_request
from sanscouture.oidc.authorize import validate_client_and_redirect
from sanscouture.oidc.codes import issue_code
from sanscouture.oidc.codes import new_grant_id
from sanscouture.oidc.par import authorization_parameters
from sanscouture.oidc.par import check_pushed_when_required
from sanscouture.oidc.responses import code_response
from sanscouture.oidc.responses import error_redirect
from sanscouture.oidc.responses import error_redirect_url
from sanscouture.pages import render as pages
from sanscouture.ports import Clock
from sanscouture.ports import EntraSignIn
from sanscouture.ports import MessageQueue
from sanscouture.ports import PscSignIn
from sanscouture.ports import TableSet
from sanscouture.reverification import due_at
from sanscouture.reverification import proven_at
from sanscouture.reverification import reverification_due
from sanscouture.sealing import Sealer
from sanscouture.sessions import BrokerSession
from sanscouture.sessions import SessionStore
from sanscouture.settings import Settings
from sanscouture.web import Request
from sanscouture.web import Response

log = logging.getLogger("sanscouture.journey")

# Pairing and "another identity" accept a PSC auth_time up to this much before the broker asked for a
# fresh authentication: clock skew between PSC and the broker (both NTP-synchronised servers), no more,
# since that is also how old a previous person's PSC session may be and still pass for fresh.
PSC_CLOCK_SKEW = 10
# The same for Entra ID: an authentication "after the broker asked" may be a few seconds earlier.
UPSTREAM_CLOCK_SKEW = PSC_CLOCK_SKEW

ACR_EIDAS1 = "eidas1"  # the level PSC's means give, and the only one ANS's Keycloak connector accepts

ALREADY_PAIRED_NOTICE = "Ce compte était déjà appairé à l'identité ci-dessous ; l'appairage existant est conservé."


@dataclass(frozen=True)
class Broker:
    """The collaborators of the journey, built once per worker (functions/_wiring.py)."""

    settings: Settings
    tables: TableSet
    entra: EntraSignIn
    psc: PscSignIn
    keys: KeyRing  # verifies an id_token_hint; its derived keys seal journeys and sessions
    clock: Clock = time.time
    limits: Limits | None = None  # per-source abuse limits of the worker (None: unlimited, unit tests)
    # The back-channel logout queue (sanscouture/backchannel.py); None: no client registers a URI.
    outbox: MessageQueue | None = None

    def spend_journey(self, request: Request) -> None:
        """A new journey for this source, within BROKER_LIMIT_JOURNEYS_PER_MINUTE (else SlowDownError)."""
        if self.limits is not None:
            self.limits.journeys.spend(source_of(request))

    @property
    def journeys(self) -> JourneyStore:
        return JourneyStore(Sealer(self.keys, "journey", self.clock), self.clock)

    @property
    def sessions(self) -> SessionStore:
        return SessionStore(
            Sealer(self.keys, "session", self.clock), self.settings.session_max_age,
            self.settings.session_idle_timeout, self.clock,
        )

    @property
    def bindings(self) -> BindingStore:
        return BindingStore(self.tables["bindings"], self.clock)

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.tables["audit"], self.clock)

    def url(self, path: str) -> str:
        return f"{self.settings.issuer}{path}"


# -- /authorize ----------------------------------------------------------------------------------


def authorize(broker: Broker, request: Request) -> Response:
    """OIDC Core 3.1.2: validate, then continue a broker session or start a journey."""
    as_get = cookieless_post_as_get(request, broker.settings.issuer, "/authorize")
    if as_get is not None:
        return as_get
    try:  # RFC 9126 4: a request_uri from /par stands for the pushed parameters (two round trips)
        found = authorization_parameters(request, broker.tables["par"])
    except OAuthError as error:
        log.warning("pushed authorization request refused", extra={"error": error.error, "error_detail": error.detail})
        return error_page(error.error, status=error.status)  # 400, or 503 for a storage outage
    params = found.params
    try:
        client, redirect_uri = validate_client_and_redirect(params, broker.settings)
    except OAuthError as error:
        log.warning("authorization request refused", extra={"error": error.error, "error_detail": error.detail})
        reason = "invalid_redirect_uri" if isinstance(error, InvalidRedirectUriError) else "unknown_client"
        return error_page(reason, status=400)
    try:
        check_pushed_when_required(client, found.pushed)
        auth_request = validate_authorization_request(params, found.repeated, broker.settings)
    except OAuthError as error:
        log.info("authorization request rejected", extra={"error": error.error, "client_id": client.client_id})
        # An over-long state is not echoed back (it is what the error is about).
        state = params.get("state")
        state = state if state is not None and len(state.encode("utf-8")) <= MAX_BYTES["state"] else None
        issuer = broker.settings.issuer
        return Response.redirect(error_redirect_url(redirect_uri, state, issuer, error.error, error.description))
    hint = params.get("id_token_hint")
    if hint:
        auth_request = replace(auth_request, hinted_sub=_hinted_subject(broker, hint) or "")
    try:
        return _start(broker, request, auth_request, client)
    except SlowDownError as error:
        return too_many_requests_page(error)
    except OAuthError as error:  # storage outage (temporarily_unavailable) or a value storage refused
        log.warning("authorize: request not completed", extra={"error": error.error, "error_detail": error.detail})
        return error_redirect(auth_request, broker.settings.issuer, error)


def _start(broker: Broker, request: Request, auth_request: AuthorizationRequest, client: Client) -> Response:
    session = _usable_session(broker, request, auth_request)
    if "none" in auth_request.prompt:
        if session is None:
            return error_redirect(auth_request, broker.settings.issuer, LoginRequiredError("no broker session"))
        return _sign_in_with_session(broker, auth_request, session)
    broker.spend_journey(request)  # every path below starts a journey
    journeys = broker.journeys
    if "select_account" in auth_request.prompt or broker.settings.show_mire:
        journey = journeys.new(Step.MIRE, auth_request)
        page = pages.render_mire(
            client_name=client.client_name, form_action=f"/choose?j={journey.id}", csrf_token=journey.csrf
        )
        return Response.html(page, cookies=journeys.started(request.cookies, journey))
    if session is not None:
        binding = broker.bindings.find(session.account.tid, session.account.oid)
        if binding is not None and _session_still_holds(broker, session, binding):
            journey = _at_pairing(broker, journeys.new(Step.CONFIRM, auth_request).advance(account=session.account),
                                  binding)
            return _pairing_page(broker, journey, binding, client, cookies=journeys.started(request.cookies, journey))
    journey = journeys.new(Step.ENTRA, auth_request)
    start = _begin_entra(broker, journey, auth_request)
    journey = journey.advance(entra_flow=dict(start.flow), entra_asked_at=int(broker.clock()))
    return Response.redirect(start.url, cookies=journeys.started(request.cookies, journey))


def _session_still_holds(broker: Broker, session: BrokerSession, binding: Binding) -> bool:
    """The session's pairing still names the same identity and admits the session (not ended, opened
    through this very pairing: a removed pairing's sessions end with it)."""
    return binding.identity.sub == session.sub and binding.admits_session(
        session.public_sid, session.created_at, broker.clock(), session.pairing_id)


def _at_pairing(broker: Broker, journey: Journey, binding: Binding) -> Journey:
    """The journey of the page an account with a pairing sees, showing ``binding``: « Connexion »,
    whose Confirmer signs in as it only if the pairing row is still this version (its ETag); or
    « Vérification périodique » when the pairing's re-verification is due (from the row just read:
    no round trip of its own)."""
    days = broker.settings.pairing_reverify_days
    step = Step.REVERIFY if reverification_due(binding, broker.clock(), days) else Step.CONFIRM
    return journey.advance(step=step, shown_sub=binding.identity.sub, shown_etag=binding.etag,
                           shown_pairing_id=binding.pairing_id, shown_identity=binding.identity,
                           shown_due_at=due_at(binding, days))


def _usable_session(broker: Broker, request: Request, auth_request: AuthorizationRequest) -> BrokerSession | None:
    """The broker session, unless this request needs a fresh authentication.

    Not usable: ``prompt=login``; an authentication older than ``max_age`` or than
    BROKER_ENTRA_MAX_AUTH_AGE (a session never stretches the 4-hour re-authentication rule); an
    ``id_token_hint`` naming someone else, or not issued by the broker (OIDC Core 3.1.2.1).
    """
    if "login" in auth_request.prompt:
        return None
    session = broker.sessions.find(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    age = broker.clock() - session.auth_time
    if age > broker.settings.entra_max_auth_age or (auth_request.max_age is not None and age > auth_request.max_age):
        return None
    if auth_request.hinted_sub is not None and auth_request.hinted_sub != session.sub:
        return None
    return session


def _hinted_subject(broker: Broker, hint: str) -> str | None:
    """The ``sub`` of an ID token the broker issued (expired ones too), or None."""
    if broker.keys is None or len(hint.encode("utf-8")) > MAX_BYTES["id_token_hint"]:
        return None
    try:
        claims = broker.keys.decode(hint, issuer=broker.settings.issuer, typ="JWT", verify_exp=False)
    except Exception:
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) else None


def _sign_in_with_session(broker: Broker, auth_request: AuthorizationRequest, session: BrokerSession) -> Response:
    """prompt=none with a live session (three round trips): the pairing must still exist (an admin may
    have removed it) and the session must not have been ended (its cookie copied before a logout)."""
    binding = broker.bindings.find(session.account.tid, session.account.oid)
    if binding is None or binding.identity.sub != session.sub:
        return error_redirect(auth_request, broker.settings.issuer, LoginRequiredError("pairing no longer valid"))
    if not binding.admits_session(session.public_sid, session.created_at, broker.clock(), session.pairing_id):
        return error_redirect(auth_request, broker.settings.issuer, LoginRequiredError("the broker session has ended"))
    if reverification_due(binding, broker.clock(), broker.settings.pairing_reverify_days):
        # OIDC Core 3.1.2.6: what is missing is an authentication of the End-User (a CPS / e-CPS
        # proof through PSC), the case login_required names; never a silent sign-in.
        return error_redirect(auth_request, broker.settings.issuer,
                              LoginRequiredError("the pairing's periodic re-verification is due"))
    session = _with_client(broker, broker.sessions.touch(session), auth_request.client_id)
    code = _issue(broker, auth_request, binding.identity, session.auth_time, session.public_sid,
                  session.account, new_grant_id())
    assert code is not None  # a new random grant id is never taken
    broker.audit.record("login_succeeded", client_id=auth_request.client_id, mode="session", **_who(binding.identity))
    return code_response(auth_request, code, broker.settings.issuer, cookies=(broker.sessions.cookie(session),))


def _begin_entra(
    broker: Broker, journey: Journey, auth_request: AuthorizationRequest, *, fresh: bool = False
) -> UpstreamStart:
    """``fresh``: a new authentication whatever Entra's session (prompt=login, max_age=0)."""
    # login wins over select_account: a fresh authentication is the stronger demand.
    prompt = "login" if fresh or "login" in auth_request.prompt else None
    if prompt is None and "select_account" in auth_request.prompt:
        prompt = "select_account"
    return broker.entra.begin(
        redirect_uri=broker.url("/callback"),
        state=journey.id,
        prompt=prompt,
        login_hint=auth_request.login_hint,
        max_age=0 if fresh else max_age_for_entra(auth_request, broker.settings),
    )


# -- /choose (the "mire") ------------------------------------------------------------------------


def choose(broker: Broker, request: Request) -> Response:
    """The mire's choice: Entra ID (délégation) or Pro Santé Connect directly (one-off)."""
    journey, failure = _load_for_form(broker, request, Step.MIRE)
    if journey is None:
        return failure
    assert journey.request is not None
    choice = request.form.get("choice")
    if choice == "entra":
        start = _begin_entra(broker, journey, journey.request)
        chosen = journey.advance(step=Step.ENTRA, entra_flow=dict(start.flow), entra_asked_at=int(broker.clock()))
        return _advance_and_redirect(broker, chosen, start.url)
    if choice == "psc":
        return _go_to_psc(broker, journey, Purpose.DIRECT)
    return error_page("stale_step", status=400)


# -- /callback (from Entra ID) -------------------------------------------------------------------


def entra_callback(broker: Broker, request: Request) -> Response:
    """Redeem Entra's code, verify the account against the rules, then pairing or confirmation."""
    params = request.params if request.method == "POST" else request.query
    journey = broker.journeys.load(request.cookies, params.get("state"))
    if journey is not None and journey.step == Step.ACCOUNT_ENTRA:  # « Mes appairages », not a sign-in
        from sanscouture.account import entra_returned

        return entra_returned(broker, journey, params)
    if journey is None or journey.expired(broker.clock()) or journey.step != Step.ENTRA:
        return error_page("session_expired", status=400)
    assert journey.request is not None and journey.entra_flow is not None
    auth_request = journey.request
    try:
        account = broker.entra.finish(journey.entra_flow, params)
        check_entra_account(account, auth_request, broker.settings, journey.started_at, broker.clock())
        client = _client(broker, auth_request)
    except SignInRefused as refusal:
        return _refuse(broker, journey, refusal)
    binding = broker.bindings.find(account.tid, account.oid)
    if binding is None:
        if not _fresh_for_pairing(journey, account):
            if journey.entra_fresh_asked:  # Entra answered with its session again: never pair from it
                return _refuse(broker, journey, SignInRefused(
                    "auth_too_old", detail="entra: no fresh authentication for a pairing, even with prompt=login"))
            return _ask_entra_afresh(broker, journey)
        journey = journey.advance(step=Step.PAIRING, account=account)
        page = pages.render_pairing(
            client_name=client.client_name,
            entra_name=account.name,
            entra_username=account.preferred_username,
            form_action=f"/pair?j={journey.id}",
            csrf_token=journey.csrf,
        )
        return Response.html(page, cookies=(broker.journeys.cookie(journey),))
    journey = _at_pairing(broker, journey.advance(account=account), binding)
    return _pairing_page(broker, journey, binding, client, cookies=(broker.journeys.cookie(journey),))


def _fresh_for_pairing(journey: Journey, account: EntraAccount) -> bool:
    """A pairing links this Entra account to whoever presents a card next: the account's holder
    must have authenticated after the broker sent them to Entra, not hours ago on a workstation
    left unlocked (Windows-session SSO gives the Windows logon's auth_time)."""
    asked_at = journey.entra_asked_at or journey.started_at
    return account.auth_time >= asked_at - UPSTREAM_CLOCK_SKEW


def _ask_entra_afresh(broker: Broker, journey: Journey) -> Response:
    """Back to Entra for a new authentication of the same person (Windows Hello's prompt, the card's
    PIN), once: the pairing page comes after it."""
    assert journey.request is not None
    start = _begin_entra(broker, journey, journey.request, fresh=True)
    again = journey.advance(entra_flow=dict(start.flow), entra_asked_at=int(broker.clock()), entra_fresh_asked=True)
    return _advance_and_redirect(broker, again, start.url)


# -- /pair and /pair/callback (PSC) --------------------------------------------------------------


def pair(broker: Broker, request: Request) -> Response:
    """The pairing page's choice (go to PSC to prove the national identity, or cancel), and the
    « Vérification périodique » page's (prove it again, or cancel): the same PSC leg, as strict."""
    journey, failure = _load_for_form(broker, request, Step.PAIRING, Step.REVERIFY)
    if journey is None:
        return failure
    action = request.form.get("action")
    if action == "cancel":
        return _cancel(broker, journey)
    if journey.step == Step.PAIRING and action == "pair":
        return _go_to_psc(broker, journey, Purpose.PAIR)
    if journey.step == Step.REVERIFY and action == "verify":
        return _go_to_psc(broker, journey, Purpose.REVERIFY)
    return error_page("stale_step", status=400)


def psc_callback(broker: Broker, request: Request) -> Response:
    """Verify PSC's authentication, then pair (first sign-in) or sign in once as that identity."""
    journey = broker.journeys.load(request.cookies, request.query.get("state"))
    if journey is None or journey.expired(broker.clock()) or journey.step != Step.PSC:
        return error_page("session_expired", status=400)
    assert journey.request is not None and journey.psc_flow is not None
    try:
        psc = broker.psc.finish(journey.psc_flow, request.query)
        _check_psc_freshness(broker, journey, psc.auth_time)
        if journey.psc_purpose == Purpose.PAIR:
            return _pair(broker, journey, psc.identity)
        if journey.psc_purpose == Purpose.REVERIFY:
            return _reverified(broker, request, journey, psc.identity)
    except SignInRefused as refusal:
        return _refuse(broker, journey, refusal)
    # Purpose OTHER or DIRECT: this identity for this sign-in only; the stored pairing is untouched.
    return _finish_with_code(
        broker, request, journey, psc.identity, psc.auth_time, account=None, mode=journey.psc_purpose or ""
    )


def _check_psc_freshness(broker: Broker, journey: Journey, auth_time: int) -> None:
    """Pairing, re-verification and "another identity" need a CPS / e-CPS authentication made after the broker asked
    PSC for one (prompt=login, max_age=0): on a shared workstation, PSC's SSO session may be the
    previous person's, and a wallet that ignores prompt=login returns it with its original
    auth_time. That is refused (never retried: it would loop, never paired). The mire's direct PSC
    sign-in follows the relying party's prompt and max_age."""
    assert journey.request is not None and journey.psc_flow is not None
    if journey.psc_purpose in (Purpose.PAIR, Purpose.OTHER, Purpose.REVERIFY):
        asked_at = journey.psc_flow.get("asked_at")
        asked_at = asked_at if isinstance(asked_at, int) else journey.started_at  # a journey from before asked_at
        if auth_time < asked_at - PSC_CLOCK_SKEW:
            raise SignInRefused(
                "psc_session_stale", detail=f"PSC returned an authentication {asked_at - auth_time}s older than asked"
            )
        return
    check_fresh_for_request(auth_time, journey.request, journey.started_at, broker.clock())


def _pair(broker: Broker, journey: Journey, identity: PscIdentity) -> Response:
    """Insert the pairing (never over an existing one), then the confirmation page. A replayed
    callback finds the browser's journey past this step, and PSC's code already used."""
    assert journey.account is not None and journey.request is not None
    client = _client(broker, journey.request)
    account = {"tid": journey.account.tid, "oid": journey.account.oid}
    entry = broker.audit.entry("pairing_created", {**account, **_who(identity)})
    try:
        binding, created = broker.bindings.create(journey.account, identity, audit=entry)
    except LookupError as error:  # removed by an administrator between our insert and read
        raise SignInRefused("pairing_failed", detail="pairing removed while being created") from error
    if created:  # the entry is in the pairing's row too: the sweep restores it if this write fails
        broker.audit.write(entry)
    else:
        broker.audit.record("pairing_existing", **account, **_who(binding.identity))
    # The confirmation shows, and Confirmer signs in as, the pairing that exists (ours, or the one a
    # concurrent pairing made first); its row version is not known here, so Confirmer reads it again.
    journey = journey.advance(step=Step.CONFIRM, psc_flow=None, shown_sub=binding.identity.sub,
                              shown_identity=binding.identity)
    notice = None if created else ALREADY_PAIRED_NOTICE
    return _confirm_page(broker, journey, binding, client, notice=notice, cookies=(broker.journeys.cookie(journey),))


def _reverified(broker: Broker, request: Request, journey: Journey, identity: PscIdentity) -> Response:
    """The periodic re-verification's PSC answer. The pairing's own identity (same PSC ``sub``)
    renews it, with a write conditional on the row version the page was read from, and the sign-in
    goes on as a confirmed one. Another identity is refused and audited: the pairing is never
    replaced, and stays due."""
    assert journey.account is not None
    account = {"tid": journey.account.tid, "oid": journey.account.oid}
    if identity.sub != journey.shown_sub:
        paired = {"paired_national_id": journey.shown_identity.masked_national_id} if journey.shown_identity else {}
        broker.audit.record("pairing_reverification_refused", **account, **_who(identity), **paired)
        raise SignInRefused("reverification_refused", detail="PSC proved another identity than the pairing's")
    if not broker.bindings.renew(journey.account.tid, journey.account.oid, journey.shown_etag, identity):
        raise SignInRefused("pairing_failed", detail="pairing removed or replaced during its re-verification")
    # The session is bound to the pairing the page showed: were the renewal made on a pairing made again
    # meanwhile (same identity), that session would be refused at its next use, never the other way.
    return _finish_with_code(broker, request, journey, identity, journey.account.auth_time, account=journey.account,
                             pairing_id=journey.shown_pairing_id, mode="reverified",
                             first_events=(("pairing_reverified", {**account, **_who(identity)}),))


# -- /confirm ------------------------------------------------------------------------------------


def confirm(broker: Broker, request: Request) -> Response:
    """The confirmation page's choice: Confirmer, another PSC identity, or cancel."""
    journey, failure = _load_for_form(broker, request, Step.CONFIRM)
    if journey is None:
        return failure
    assert journey.account is not None and journey.request is not None
    action = request.form.get("action")
    if action == "cancel":
        return _cancel(broker, journey)
    if action == "other":
        return _go_to_psc(broker, journey, Purpose.OTHER)
    if action != "confirm":
        return error_page("stale_step", status=400)
    if journey.shown_due_at and broker.clock() >= journey.shown_due_at:
        return _due_since_shown(broker, journey)
    shown = _pairing_as_shown(broker, journey)
    if shown is None:
        # Removed or replaced while the page was open: never sign in as someone the page did not show.
        return _refuse(broker, journey, SignInRefused("pairing_failed", detail="pairing changed during the journey"))
    identity, pairing_id = shown
    return _finish_with_code(broker, request, journey, identity, journey.account.auth_time, account=journey.account,
                             pairing_id=pairing_id, mode="paired")


def _due_since_shown(broker: Broker, journey: Journey) -> Response:
    """The pairing fell due for re-verification while its « Connexion » page was open: no sign-in
    as it, the « Vérification périodique » page instead (a rare case that reads the row again)."""
    assert journey.account is not None and journey.request is not None
    binding = broker.bindings.find(journey.account.tid, journey.account.oid)
    if binding is None or binding.identity.sub != journey.shown_sub:
        return _refuse(broker, journey, SignInRefused("pairing_failed", detail="pairing changed during the journey"))
    try:
        client = _client(broker, journey.request)
    except SignInRefused as refusal:
        return _refuse(broker, journey, refusal)
    journey = _at_pairing(broker, journey, binding)
    return _pairing_page(broker, journey, binding, client, cookies=(broker.journeys.cookie(journey),))


def _pairing_as_shown(broker: Broker, journey: Journey) -> tuple[PscIdentity, str] | None:
    """The identity Confirmer signs in as, with the id of the pairing it signs in through: the one the
    page showed, if the pairing still names it.

    One round trip when the row is the version the page was read from: a write conditional on its
    ETag, which also records the use (``last_used_at``). Otherwise (changed since, or just paired) the
    row is read again and must still name the identity shown.
    """
    assert journey.account is not None
    tid, oid = journey.account.tid, journey.account.oid
    if (journey.shown_etag and journey.shown_identity is not None
            and broker.bindings.use_if_unchanged(tid, oid, journey.shown_etag)):
        return journey.shown_identity, journey.shown_pairing_id
    binding = broker.bindings.find(tid, oid)
    if binding is None or binding.identity.sub != journey.shown_sub:
        return None
    return binding.identity, binding.pairing_id


# -- shared steps --------------------------------------------------------------------------------


def _finish_with_code(
    broker: Broker,
    request: Request,
    journey: Journey,
    identity: PscIdentity,
    auth_time: int,
    *,
    account: EntraAccount | None,
    mode: str,
    pairing_id: str = "",
    first_events: tuple[tuple[str, Mapping[str, object]], ...] = (),
) -> Response:
    """Issue the journey's one code, keep or open the broker session when paired, and end the journey.

    A one-off PSC identity ("autre identité", the mire's PSC choice) ends the browser's broker
    session: on a shared workstation it is the previous person's, and a later ``prompt=none`` from
    another service must not sign them in silently.
    """
    assert journey.request is not None
    hinted = journey.request.hinted_sub
    if hinted and hinted != identity.sub:  # OIDC Core 3.1.2.1: not the person the hint names
        return _refuse(broker, journey, SignInRefused(
            "hint_mismatch", detail="id_token_hint names another subject", rp_error="login_required"))
    current = broker.sessions.find(request.cookies.get(SESSION_COOKIE))
    session = _session_for(broker, current, identity, account, auth_time, pairing_id) if account is not None else None
    sid = session.public_sid if session is not None else secrets.token_urlsafe(16)
    # The code is the journey's single use: a replayed or double-submitted form finds it taken.
    code = _issue(broker, journey.request, identity, auth_time, sid, account, journey.grant_id)
    if code is None:
        return error_page("stale_step", status=409)
    if session is not None:
        session = _with_client(broker, session, journey.request.client_id)
    cookies = [broker.journeys.ended(journey)]
    if session is not None:
        cookies.append(broker.sessions.cookie(session))
    elif SESSION_COOKIE in request.cookies:
        cookies.append(broker.sessions.cleared())  # a one-off identity ends the previous person's session
    if current is not None and (session is None or current.sid != session.sid):
        _end(broker, current)  # replaced or ended by this sign-in: a copy of its cookie must not live on
    events: list[tuple[str, Mapping[str, object]]] = list(first_events)
    if mode == "paired" and journey.account is not None:
        events.append(("pairing_confirmed", {"tid": journey.account.tid, "oid": journey.account.oid}))
    events.append(("login_succeeded", {"client_id": journey.request.client_id, "mode": mode, **_who(identity)}))
    broker.audit.record_all(events)
    return code_response(journey.request, code, broker.settings.issuer, cookies=tuple(cookies))


def _session_for(
    broker: Broker, current: BrokerSession | None, identity: PscIdentity, account: EntraAccount, auth_time: int,
    pairing_id: str,
) -> BrokerSession:
    """The browser's session when it is this same sign-in through this same pairing (touched: its 4-hour
    limit still runs from its creation), else a new one bound to ``pairing_id``. A confirmation never
    renews a session's lifetime."""
    same = (
        current is not None
        and (current.account.tid, current.account.oid) == (account.tid, account.oid)
        and current.sub == identity.sub
        and current.auth_time == auth_time
        and current.pairing_id == pairing_id
    )
    if current is not None and same:
        return broker.sessions.touch(current)
    return broker.sessions.create(account, identity.sub, auth_time, identity.masked_national_id, pairing_id)


def _end(broker: Broker, session: BrokerSession) -> None:
    """A session ended before its time: listed in its pairing's row until it would have expired."""
    end_session(broker, session)


def end_session(broker: Broker, session: BrokerSession) -> None:
    """End ``session`` before its time (logout, another person's or a newer sign-in): listed in its
    pairing's row until it would have expired, so a copy of its cookie is refused, and announced to
    the relying parties it signed in to that registered a back-channel logout URI (Back-Channel
    Logout 1.0 §2: queued, never waited on)."""
    recorded = broker.bindings.revoke_session(session.account.tid, session.account.oid, session.public_sid,
                                              broker.sessions.expires_at(session))
    clients = tuple(dict.fromkeys((*session.bcl_clients, *recorded)))
    announce(broker.outbox, broker.settings.clients, clients, sub=session.sub, sid=session.public_sid)


def _with_client(broker: Broker, session: BrokerSession, client_id: str) -> BrokerSession:
    """The session, knowing that it signed in to ``client_id``. Only relying parties with a
    back-channel logout URI are kept, and recorded once per session in the pairing's row (one merge)
    so that a removal of the pairing made elsewhere reaches them: a sign-in to any other client costs
    no round trip."""
    client = broker.settings.client(client_id)
    if client is None or not client.backchannel_logout_uri or client_id in session.bcl_clients:
        return session
    session = replace(session, bcl_clients=(*session.bcl_clients, client_id))
    broker.bindings.record_rp_session(session.account.tid, session.account.oid, session.public_sid,
                                      session.bcl_clients, broker.sessions.expires_at(session))
    return session


def _acr(broker: Broker, account: EntraAccount | None) -> str | None:
    """``eidas1`` only when the authentication met it: PSC's own (its acr is checked), or Entra's when
    an enforced authentication context proved the phishing-resistant strength. Without required
    contexts (BROKER_ENTRA_REQUIRED_ACRS=none, sandbox only) the broker does not know the level."""
    if account is None or broker.settings.entra_required_acrs:
        return ACR_EIDAS1
    return None


def _issue(
    broker: Broker,
    auth_request: AuthorizationRequest,
    identity: PscIdentity,
    auth_time: int,
    sid: str,
    account: EntraAccount | None,
    grant_id: str,
) -> str | None:
    acr = _acr(broker, account)
    grant = CodeGrant(
        client_id=auth_request.client_id,
        redirect_uri=auth_request.redirect_uri,
        code_challenge=auth_request.code_challenge,
        scope=auth_request.scope,
        identity=identity,
        auth_time=auth_time,
        sid=sid,
        nonce=auth_request.nonce,
        acr=acr,
        tid=account.tid if account is not None else None,
        oid=account.oid if account is not None else None,
    )
    return issue_code(broker.tables["codes"], grant, grant_id)


def _go_to_psc(broker: Broker, journey: Journey, purpose: str) -> Response:
    assert journey.request is not None
    prompt: str | None = "login"
    max_age: int | None = 0
    if purpose == Purpose.DIRECT:
        prompt = "login" if "login" in journey.request.prompt else None
        max_age = journey.request.max_age
    # Otherwise (pairing, another identity) a fresh CPS / e-CPS authentication, asked for both ways
    # Keycloak honours (prompt=login, max_age=0): never the PSC SSO session of whoever used the
    # browser before. asked_at is what _check_psc_freshness compares PSC's auth_time with.
    start = broker.psc.begin(
        redirect_uri=broker.url("/pair/callback"), state=journey.id, prompt=prompt, max_age=max_age
    )
    flow = {**start.flow, "asked_at": int(broker.clock())}
    return _advance_and_redirect(
        broker, journey.advance(step=Step.PSC, psc_flow=flow, psc_purpose=purpose), start.url
    )


def _advance_and_redirect(broker: Broker, journey: Journey, url: str) -> Response:
    return Response.redirect(url, status=303, cookies=(broker.journeys.cookie(journey),))


def _pairing_page(
    broker: Broker, journey: Journey, binding: Binding, client: Client, *, cookies: tuple[str, ...]
) -> Response:
    """The page of the step :func:`_at_pairing` chose."""
    if journey.step == Step.REVERIFY:
        return _reverify_page(broker, journey, binding, client, cookies=cookies)
    return _confirm_page(broker, journey, binding, client, cookies=cookies)


def _reverify_page(
    broker: Broker, journey: Journey, binding: Binding, client: Client, *, cookies: tuple[str, ...]
) -> Response:
    identity = binding.identity
    page = pages.render_reverification(
        client_name=client.client_name,
        identity_name=_identity_name(identity),
        profession=pages.profession_label(identity.claims),
        masked_national_id=identity.subject_name_id[-4:],
        entra_username=journey.account.preferred_username if journey.account else "",
        proven_on=pages.french_date(proven_at(binding)),
        days=broker.settings.pairing_reverify_days,
        form_action=f"/pair?j={journey.id}",
        csrf_token=journey.csrf,
    )
    return Response.html(page, cookies=cookies)


def _identity_name(identity: PscIdentity) -> str:
    return pages.display_name(identity.claims) or f"{identity.given_name} {identity.family_name}".strip()


def _confirm_page(
    broker: Broker,
    journey: Journey,
    binding: Binding,
    client: Client,
    *,
    notice: str | None = None,
    cookies: tuple[str, ...] = (),
) -> Response:
    identity = binding.identity
    page = pages.render_confirm(
        client_name=client.client_name,
        identity_name=_identity_name(identity),
        profession=pages.profession_label(identity.claims),
        masked_national_id=identity.subject_name_id[-4:],
        auth_mode_label=pages.auth_mode_label(identity.auth_mode),
        entra_username=journey.account.preferred_username if journey.account else "",
        form_action=f"/confirm?j={journey.id}",
        csrf_token=journey.csrf,
        notice=notice,
    )
    return Response.html(page, cookies=cookies)


def _cancel(broker: Broker, journey: Journey) -> Response:
    assert journey.request is not None
    broker.audit.record("login_refused", client_id=journey.request.client_id, reason="cancelled")
    return error_redirect(journey.request, broker.settings.issuer, AccessDeniedError("the user cancelled the sign-in"),
                          cookies=(broker.journeys.ended(journey),))


def _refuse(broker: Broker, journey: Journey, refusal: SignInRefused) -> Response:
    """French page explaining the refusal, with a way back that hands the error to the RP."""
    assert journey.request is not None
    reference = secrets.token_hex(4)
    log.warning(
        "sign-in refused",
        extra={"reason": refusal.reason, "error_detail": refusal.detail, "reference": reference,
               "client_id": journey.request.client_id},
    )
    broker.audit.record(
        "login_refused", client_id=journey.request.client_id, reason=refusal.reason, reference=reference,
        **({"tid": journey.account.tid, "oid": journey.account.oid} if journey.account else {}),
    )
    return_url = error_redirect_url(
        journey.request.redirect_uri, journey.request.state, broker.settings.issuer, refusal.rp_error,
        _RP_DESCRIPTIONS.get(refusal.reason, "the authentication was refused"),
    )
    return error_page(
        refusal.reason, status=403, return_url=return_url, reference=reference, extra_link=_way_out(broker, refusal),
        cookies=(broker.journeys.ended(journey),),
    )


def _way_out(broker: Broker, refusal: SignInRefused) -> pages.Link | None:
    """A stale PSC session is closed at PSC's end_session_endpoint (without post_logout_redirect_uri:
    the broker knows of no post-logout URI registered with ANS; PSC then shows its own page)."""
    if refusal.reason != "psc_session_stale":
        return None
    url = broker.psc.end_session_url()
    return pages.Link(pages.CLOSE_PSC_SESSION, url) if url else None


def _load_for_form(broker: Broker, request: Request, *steps: str) -> tuple[Journey | None, Response]:
    """A POSTed journey form: this browser must hold the journey (its cookie), unexpired, at one of ``steps``,
    and the CSRF token must match (docs/design.md: forms carry a CSRF token bound to the journey)."""
    journey = broker.journeys.load(request.cookies, request.query.get("j") or request.form.get("j"))
    if journey is None:  # another browser's journey, or none at all
        return None, error_page("csrf", status=403)
    if journey.expired(broker.clock()):
        return None, error_page("session_expired", status=400)
    if not journey.csrf_ok(request.form.get("csrf_token")):
        return None, error_page("csrf", status=403)
    if journey.step not in steps or journey.request is None:
        return None, error_page("stale_step", status=409)
    return journey, Response()


def _client(broker: Broker, auth_request: AuthorizationRequest) -> Client:
    client = broker.settings.client(auth_request.client_id)
    if client is None:  # the registration was removed during the journey
        raise SignInRefused("unknown_client", detail="client removed during the journey")
    return client


def _who(identity: PscIdentity) -> dict[str, str]:
    # Never the full national identifier in logs or audit (docs/design.md "Protocol rules").
    return {"national_id": identity.masked_national_id, "auth_mode": identity.auth_mode}


_RP_DESCRIPTIONS: Mapping[str, str] = {
    "authentication_not_compliant": "the Entra ID authentication does not meet the required strength",
    "tenant_not_allowed": "the Entra ID tenant is not allowed",
    "auth_too_old": "the authentication is too old",
    "entra_claim_missing": "the Entra ID app registration of the broker lacks an optional claim",
    "hint_mismatch": "the user who signed in is not the one named by id_token_hint",
    "psc_refused": "Pro Sante Connect did not confirm the identity",
    "psc_session_stale": "Pro Sante Connect returned an earlier authentication instead of a new one",
    "reverification_refused": "the identity proven is not the one the account is paired with",
    "session_expired": "the sign-in took too long",
}
