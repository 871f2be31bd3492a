"""OAuth 2.0 / OpenID Connect errors, the one error model of the broker.

Each class carries the RFC ``error`` code, its HTTP status, a public ``description`` (shown to the
relying party, restricted to the RFC 6749 character set) and a ``detail`` that is logged and never
shown. ``redirectable`` says whether the error may be sent back to the client's redirect_uri; errors
about the client or redirect_uri themselves never are (OIDC Core 3.1.2.6, RFC 6749 4.1.2.1).
"""

from __future__ import annotations

import re

# RFC 6749 Appendix A.7: error_description is %x20-21 / %x23-5B / %x5D-7E.
_DESCRIPTION_CHARS = re.compile(r'^[\x20-\x21\x23-\x5B\x5D-\x7E]*$')


class OAuthError(Exception):
    """Base class; subclasses set ``error``, ``status`` and a default description."""

    error: str = "server_error"
    status: int = 400
    description: str = ""
    redirectable: bool = True

    def __init__(self, description: str | None = None, *, detail: str = "") -> None:
        description = description if description is not None else type(self).description
        if not _DESCRIPTION_CHARS.match(description):
            raise ValueError(f"error_description has characters outside RFC 6749 A.7: {description!r}")
        super().__init__(f"{self.error}: {description}")
        self.description = description
        self.detail = detail

    def body(self) -> dict[str, str]:
        """The JSON body of RFC 6749 5.2 (token endpoint) and RFC 6750 3 (resource)."""
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class InvalidRequestError(OAuthError):
    error = "invalid_request"
    description = "the request is missing a parameter or is malformed"


class RequestTooLargeError(InvalidRequestError):
    """A body, a header or a number of fields beyond the broker's limits (:mod:`sanscouture.web`)."""

    status = 413
    description = "the request is too large"
    redirectable = False


class InvalidClientError(OAuthError):
    """RFC 6749 5.2: client authentication failed; 401 with a WWW-Authenticate challenge."""

    error = "invalid_client"
    status = 401
    description = "client authentication failed"
    redirectable = False


class InvalidGrantError(OAuthError):
    error = "invalid_grant"
    description = "the authorization code is invalid, expired, used or was issued to another client"


class UnauthorizedClientError(OAuthError):
    """RFC 6749 5.2: the client is not registered for this grant type."""

    error = "unauthorized_client"
    description = "the client is not registered for this grant type"


class UnsupportedGrantTypeError(OAuthError):
    error = "unsupported_grant_type"
    description = "only grant_type=authorization_code and refresh_token are supported"


class UnsupportedResponseTypeError(OAuthError):
    error = "unsupported_response_type"
    description = "only response_type=code is supported"


class InvalidScopeError(OAuthError):
    error = "invalid_scope"
    description = "the requested scope is invalid"


class AccessDeniedError(OAuthError):
    error = "access_denied"
    description = "the authentication was refused"


class LoginRequiredError(OAuthError):
    """OIDC Core 3.1.2.6: prompt=none and no broker session."""

    error = "login_required"
    description = "the user must sign in"


class RequestNotSupportedError(OAuthError):
    error = "request_not_supported"
    description = "request objects are not supported"


class RequestUriNotSupportedError(OAuthError):
    error = "request_uri_not_supported"
    description = "request_uri is not supported"


class InvalidTokenError(OAuthError):
    """RFC 6750 3.1: the access token is invalid, expired or revoked."""

    error = "invalid_token"
    status = 401
    description = "the access token is invalid or expired"


class UnknownClientError(OAuthError):
    """At /authorize: no such client_id. Never redirected (there is no trusted redirect_uri)."""

    error = "invalid_client"
    description = "unknown client_id"
    redirectable = False


class InvalidRedirectUriError(OAuthError):
    """Never redirected: the redirect_uri is the thing that cannot be trusted."""

    error = "invalid_request"
    description = "redirect_uri did not match any of the client's registered redirect_uris"
    redirectable = False


class ServerError(OAuthError):
    error = "server_error"
    status = 500
    description = "the broker could not complete the request"


class TemporarilyUnavailableError(OAuthError):
    """A dependency (Table Storage, an upstream provider) is unreachable: 503, try again."""

    error = "temporarily_unavailable"
    status = 503
    description = "the service is temporarily unavailable, try again"


class StorageUnavailableError(TemporarilyUnavailableError):
    """Raised by storage adapters when Table Storage cannot be reached or answers 5xx."""

    description = "storage is temporarily unavailable, try again"


class SignInRefused(Exception):
    """An upstream sign-in failed or broke one of the broker's rules (docs/design.md "/callback").

    ``reason`` selects the French error page (``sanscouture.pages`` catalogue); the relying party
    then receives ``rp_error`` (``access_denied`` unless the upstream said ``login_required`` or
    ``interaction_required`` to a ``prompt=none`` request). ``detail`` is logged, never shown.
    """

    def __init__(self, reason: str, *, detail: str = "", rp_error: str = "access_denied") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.rp_error = rp_error


class UpstreamUnavailableError(TemporarilyUnavailableError):
    """Entra ID or PSC could not be reached (network, 5xx, malformed discovery)."""

    description = "an upstream identity provider is temporarily unavailable, try again"
