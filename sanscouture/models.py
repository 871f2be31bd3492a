"""Frozen dataclasses that cross boundaries between the core, the adapters and the HTTP layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any


@dataclass(frozen=True)
class Client:
    """A registered relying party (RFC 7591 client metadata names)."""

    client_id: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 - a method name
    client_secret: str | None = field(default=None, repr=False)
    post_logout_redirect_uris: tuple[str, ...] = ()
    jwks: Mapping[str, Any] | None = None
    jwks_uri: str | None = None
    scope: tuple[str, ...] = ("openid", "scope_all")
    client_name: str = ""
    grant_types: tuple[str, ...] = ("authorization_code",)  # RFC 7591 2: add "refresh_token" for refresh

    @property
    def may_refresh(self) -> bool:
        return "refresh_token" in self.grant_types
    # RFC 9126 6: this client may start an authorization only with a request_uri from /par.
    require_pushed_authorization_requests: bool = False
    # OpenID Connect Back-Channel Logout 1.0 §2.2: where the broker POSTs logout tokens, and whether
    # they must carry the session's ``sid``.
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False


@dataclass(frozen=True)
class Row:
    """One entity as the core sees it: keys, values, ETag and expiry (None = until removed)."""

    partition: str
    row: str
    data: Mapping[str, Any]
    etag: str
    expires_at: float | None = None


@dataclass(frozen=True)
class KeyVersion:
    """One version of the signing key as its store lists it, without any key material.

    ``id`` is the Key Vault version (the ``kid`` in the sandbox's file); ``kid`` is None when the
    version holds no usable key (the key ring skips it). ``enabled`` is False for a disabled or expired
    version, which the key ring never loads.
    """

    id: str
    kid: str | None
    created: float | None
    not_before: float | None
    enabled: bool

    def activation(self) -> float | None:
        """When it began (or begins) to sign: its ``not_before``, else its creation (None: unknown)."""
        return self.not_before if self.not_before is not None else self.created


@dataclass(frozen=True)
class DependencyStatus:
    """The readiness of one dependency, as reported by ``/health``."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated RP authorization request (OIDC Core 3.1.2.1), sealed in the journey cookie."""

    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    code_challenge: str
    code_challenge_method: str = "S256"
    state: str | None = None
    nonce: str | None = None
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None
    login_hint: str | None = None
    # The sub of the id_token_hint, when the broker issued it; "" for a hint it did not issue.
    hinted_sub: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": list(self.scope),
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
            "state": self.state,
            "nonce": self.nonce,
            "prompt": sorted(self.prompt),
            "max_age": self.max_age,
            "login_hint": self.login_hint,
            "hinted_sub": self.hinted_sub,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthorizationRequest:
        return cls(
            client_id=data["client_id"],
            redirect_uri=data["redirect_uri"],
            scope=tuple(data["scope"]),
            code_challenge=data["code_challenge"],
            code_challenge_method=data.get("code_challenge_method", "S256"),
            state=data.get("state"),
            nonce=data.get("nonce"),
            prompt=frozenset(data.get("prompt") or ()),
            max_age=data.get("max_age"),
            login_hint=data.get("login_hint"),
            hinted_sub=data.get("hinted_sub"),
        )


@dataclass(frozen=True)
class PscIdentity:
    """A national identity proven through Pro Santé Connect: its ``sub`` and userinfo claims.

    ``claims`` is PSC's userinfo JSON as received (``SubjectNameID``, ``SubjectRefPro``,
    ``otherIds``, ...); the broker's own ``/userinfo`` serves it back, so relying parties see exactly
    what PSC would have given them.
    """

    sub: str
    subject_name_id: str
    given_name: str
    family_name: str
    auth_mode: str
    claims: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "subject_name_id": self.subject_name_id,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "auth_mode": self.auth_mode,
            "claims": dict(self.claims),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PscIdentity:
        return cls(
            sub=data["sub"],
            subject_name_id=data["subject_name_id"],
            given_name=data.get("given_name", ""),
            family_name=data.get("family_name", ""),
            auth_mode=data.get("auth_mode", ""),
            claims=data.get("claims") or {},
        )

    @classmethod
    def from_userinfo(cls, userinfo: Mapping[str, Any]) -> PscIdentity:
        return cls(
            sub=str(userinfo["sub"]),
            subject_name_id=str(userinfo.get("SubjectNameID") or userinfo.get("preferred_username") or ""),
            given_name=str(userinfo.get("given_name") or ""),
            family_name=str(userinfo.get("family_name") or ""),
            auth_mode=str(userinfo.get("authMode") or ""),
            claims=dict(userinfo),
        )

    @property
    def masked_national_id(self) -> str:
        """The national identifier with all but its last 4 characters hidden (for logs and audit)."""
        return mask_national_id(self.subject_name_id)


def mask_national_id(value: str) -> str:
    """All but the last 4 characters hidden: the only form a national identifier is logged or shown in."""
    return "*" * max(len(value) - 4, 0) + value[-4:]


@dataclass(frozen=True)
class CodeGrant:
    """What an authorization code stands for (row of the ``codes`` table, keyed by the code's hash).

    ``grant_id`` names everything issued from the code, so that a replayed code can revoke it
    (RFC 6749 4.1.2, OIDC conformance ``oidcc-codereuse-30seconds``).
    """

    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: tuple[str, ...]
    identity: PscIdentity
    auth_time: int
    sid: str
    nonce: str | None = None
    acr: str | None = "eidas1"  # None: the authentication's level is not known (sandbox without acrs)
    amr: tuple[str, ...] = ()
    # The pairing the sign-in went through (Entra account), None for a one-off PSC identity: a refresh
    # token is bound to it and dies with it.
    tid: str | None = None
    oid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "code_challenge": self.code_challenge,
            "scope": list(self.scope),
            "identity": self.identity.to_dict(),
            "auth_time": self.auth_time,
            "sid": self.sid,
            "nonce": self.nonce,
            "acr": self.acr,
            "amr": list(self.amr),
            "tid": self.tid,
            "oid": self.oid,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CodeGrant:
        return cls(
            client_id=data["client_id"],
            redirect_uri=data["redirect_uri"],
            code_challenge=data["code_challenge"],
            scope=tuple(data["scope"]),
            identity=PscIdentity.from_dict(data["identity"]),
            auth_time=int(data["auth_time"]),
            sid=data["sid"],
            nonce=data.get("nonce"),
            acr=data.get("acr"),
            amr=tuple(data.get("amr") or ()),
            tid=data.get("tid"),
            oid=data.get("oid"),
        )


@dataclass(frozen=True)
class EntraAccount:
    """The hospital account Entra ID authenticated, from its verified ID token.

    ``(tid, oid)`` is the stable key (never ``sub``, which is pairwise, nor the mutable
    ``preferred_username``).
    """

    tid: str
    oid: str
    auth_time: int
    name: str = ""
    preferred_username: str = ""
    acrs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "tid": self.tid,
            "oid": self.oid,
            "auth_time": self.auth_time,
            "name": self.name,
            "preferred_username": self.preferred_username,
            "acrs": list(self.acrs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EntraAccount:
        return cls(
            tid=data["tid"],
            oid=data["oid"],
            auth_time=int(data["auth_time"]),
            name=data.get("name", ""),
            preferred_username=data.get("preferred_username", ""),
            acrs=tuple(data.get("acrs") or ()),
        )


@dataclass(frozen=True)
class Binding:
    """A pairing: an Entra account linked to a PSC identity after both authentications in one journey."""

    tid: str
    oid: str
    identity: PscIdentity
    paired_at: int
    last_used_at: int
    # When the national identity was last proven through PSC for this pairing: its creation, then
    # each periodic re-verification (sanscouture.reverification). 0: as paired_at (older rows).
    verified_at: int = 0
    # This pairing's own id, new each time the account is paired: the sessions opened through it carry
    # it, so that a session of a removed pairing is refused by the next one, however soon it is made.
    # "" for rows written before it existed.
    pairing_id: str = ""
    # The row's version when read (a confirmation checks it is unchanged), and the sessions of the
    # account ended before their time (public ``sid`` -> until when): storage state, not the pairing.
    etag: str | None = field(default=None, compare=False)
    revoked_sessions: Mapping[str, int] = field(default_factory=dict, compare=False)
    # The relying parties with a back-channel logout URI that each live session of the account signed
    # in to (public ``sid`` -> client ids): whom a removal of the pairing must tell (Back-Channel Logout).
    rp_sessions: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    def session_revoked(self, public_sid: str, now: float) -> bool:
        """Whether the session whose ``sid`` claim is ``public_sid`` was ended before its time."""
        until = self.revoked_sessions.get(public_sid)
        return until is not None and until > now

    def admits_session(self, public_sid: str, created_at: int, now: float, pairing_id: str = "") -> bool:
        """A broker session may sign in through this pairing: it was opened through this very pairing
        (a session of a removed pairing never comes back with a later pairing, even of the same
        identity) and it was not ended before its time.

        Through this pairing: the pairing id the session carries is this one's. A session or a row from
        before pairing ids falls back on the times, which come from the instances' clocks (whole
        seconds): opened since the pairing was made."""
        if pairing_id and self.pairing_id:
            opened_through_it = pairing_id == self.pairing_id
        else:
            opened_through_it = created_at >= self.paired_at
        return opened_through_it and not self.session_revoked(public_sid, now)


@dataclass(frozen=True)
class UpstreamStart:
    """Where to send the browser for an upstream sign-in, and the flow state to keep server-side."""

    url: str
    flow: Mapping[str, Any]


@dataclass(frozen=True)
class PscAuthentication:
    """A verified PSC sign-in: the identity (userinfo) and when PSC authenticated the person."""

    identity: PscIdentity
    auth_time: int
    acr: str
