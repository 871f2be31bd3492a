"""Pushed authorization requests (RFC 9126): ``POST /par`` keeps a validated request for 60 s, and
``/authorize`` takes it back, once, by the ``request_uri`` it was given.

:func:`push` reads as the list of its checks (RFC 9126 2.1): POST, form-encoded, no repeated parameter,
the client authenticated exactly as at ``/token``, ``client_id`` naming that client, no ``request_uri``,
then every check of an authorization request (:mod:`sanscouture.oidc.authorize`). The request is stored
in one row of the ``par`` table, keyed by the SHA-256 of the ``request_uri``'s random part (the table
never holds a usable ``request_uri``, as ``codes`` never holds a code).

At ``/authorize``, :func:`authorization_parameters` turns a ``request_uri`` of ours into the pushed
parameters, and only them (RFC 9126 4): the row is consumed (read, then deleted ``If-Match`` its ETag),
so of two uses one at most gets it, and a failed check after that burns it too. An unknown, expired,
used or another client's ``request_uri`` leaves no trusted ``redirect_uri`` (the request carries none):
the error (RFC 9101 7 ``invalid_request_uri``) is shown to the person, never redirected (RFC 6749
4.1.2.1). A plain ``/authorize`` costs no table round trip still; a pushed one costs two.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sanscouture.errors import InvalidRequestError
from sanscouture.errors import OAuthError
from sanscouture.limits import RateLimiter
from sanscouture.models import Client
from sanscouture.oidc.authorize import AUTHORIZATION_PARAMETERS
from sanscouture.oidc.authorize import validate_authorization_request
from sanscouture.oidc.client_auth import JwksFetcher
from sanscouture.oidc.client_auth import authenticate_client_counting_failures
from sanscouture.oidc.client_auth import par_audience
from sanscouture.oidc.token import check_form_encoded
from sanscouture.oidc.token import check_no_repeated_parameters
from sanscouture.oidc.token import token_error_response
from sanscouture.ports import Clock
from sanscouture.ports import RowStore
from sanscouture.ports import TableSet
from sanscouture.settings import Settings
from sanscouture.web import NO_STORE
from sanscouture.web import Request
from sanscouture.web import Response

# RFC 9126 2.2: "urn:ietf:params:oauth:request_uri:<reference-value>", the reference being random.
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
# RFC 9126 2.2: the lifetime is the server's choice, "typically ... between 5 and 600 seconds". 60 s is
# RFC 9126's example and the code's lifetime: the client redirects the browser right after pushing.
PAR_LIFETIME = 60
PAR_ROW = "request"  # one row per partition: the partition is the request_uri's hash


class MethodNotAllowedError(InvalidRequestError):
    """RFC 9126 2.3: a request that is not a POST gets 405 (with ``Allow: POST``, RFC 9110 15.5.6)."""

    status = 405
    description = "the pushed authorization request endpoint only accepts POST"
    redirectable = False


class InvalidRequestUriError(OAuthError):
    """RFC 9101 7: "The request_uri in the authorization request returns an error or contains invalid
    data". Never redirected: without the pushed request, no redirect_uri is known."""

    error = "invalid_request_uri"
    description = "the request_uri is unknown, expired or was already used"
    redirectable = False


@dataclass(frozen=True)
class ParEndpoint:
    """The collaborators of the pushed authorization request endpoint (those of ``/token``'s client
    authentication, and its limiter: failures at either endpoint count against the source)."""

    settings: Settings
    tables: TableSet
    client_jwks: JwksFetcher
    clock: Clock = time.time
    failed_client_auth: RateLimiter | None = None


@dataclass(frozen=True)
class PushedRequest:
    """RFC 9126 2.2: the successful answer."""

    request_uri: str
    expires_in: int

    def body(self) -> dict[str, Any]:
        return {"request_uri": self.request_uri, "expires_in": self.expires_in}


@dataclass(frozen=True)
class AuthorizationParameters:
    """What ``/authorize`` validates: the request's own parameters, or the pushed ones (``pushed``)."""

    params: Mapping[str, str]
    repeated: frozenset[str]
    pushed: bool


# -- POST /par --------------------------------------------------------------------------------------


def handle_par_request(request: Request, endpoint: ParEndpoint) -> Response:
    """RFC 9126 2.2: 201 Created, JSON, never cached; OAuth errors propagate to the caller."""
    return Response.json(push(request, endpoint).body(), status=201, headers=NO_STORE)


def push(request: Request, endpoint: ParEndpoint) -> PushedRequest:
    """RFC 9126 2.1, one check per line; the request is stored only when every check passed."""
    check_post(request)
    check_form_encoded(request)
    check_no_repeated_parameters(request)
    client = authenticate_client_counting_failures(
        request, endpoint.settings, endpoint.tables["jti"], endpoint.client_jwks, endpoint.clock,
        endpoint.failed_client_auth, audience=par_audience(endpoint.settings.issuer),
    )
    params = pushed_parameters(request.form)
    check_client_id(params, client)
    check_no_request_uri(params)
    validate_authorization_request(params, frozenset(), endpoint.settings)
    return store_pushed_request(endpoint.tables["par"], client, params)


def check_post(request: Request) -> None:
    """RFC 9126 2.3: "If the request did not use the POST method ... 405 (Method Not Allowed)"."""
    if request.method != "POST":
        raise MethodNotAllowedError()


def pushed_parameters(form: Mapping[str, str]) -> dict[str, str]:
    """The authorization request in the form: the parameters ``/authorize`` reads (RFC 9126 2.1). The
    client authentication parameters serve only to authenticate, and unknown ones are ignored."""
    return {name: form[name] for name in AUTHORIZATION_PARAMETERS if name in form}


def check_client_id(params: Mapping[str, str], client: Client) -> None:
    """RFC 9126 2.1: ``client_id`` is "similarly required in a pushed authorization request"; it
    names the client that authenticated."""
    client_id = params.get("client_id")
    if not client_id:
        raise InvalidRequestError("client_id is required")
    if client_id != client.client_id:
        raise InvalidRequestError("client_id does not match the authenticated client")


def check_no_request_uri(params: Mapping[str, str]) -> None:
    """RFC 9126 2.1: "The request_uri authorization request parameter ... MUST NOT be provided"."""
    if "request_uri" in params:
        raise InvalidRequestError("request_uri must not be pushed")


def store_pushed_request(store: RowStore, client: Client, params: Mapping[str, str]) -> PushedRequest:
    """RFC 9126 2.2: a request_uri with 256 random bits, bound to the client, for PAR_LIFETIME seconds."""
    reference = secrets.token_urlsafe(32)
    data = {"client_id": client.client_id, "params": dict(params)}
    inserted = store.insert(row_key(reference), PAR_ROW, data, expires_in=PAR_LIFETIME)
    assert inserted  # a new random reference is never taken
    return PushedRequest(REQUEST_URI_PREFIX + reference, PAR_LIFETIME)


def row_key(reference: str) -> str:
    """The row's partition: the SHA-256 of the request_uri's random part, in hex (a valid Table key
    whatever the request carried)."""
    return hashlib.sha256(reference.encode("utf-8")).hexdigest()


def par_error_response(error: OAuthError) -> Response:
    """RFC 9126 2.3: the token endpoint's error format (401 with its challenge, 429 with Retry-After);
    405 names the method it allows."""
    response = token_error_response(error)
    if isinstance(error, MethodNotAllowedError):
        response = dataclasses.replace(response, headers=(*response.headers, ("Allow", "POST")))
    return response


# -- /authorize -------------------------------------------------------------------------------------


def is_pushed(params: Mapping[str, str]) -> bool:
    """The request names a pushed request of this broker (any other ``request_uri`` is a JAR reference,
    which is not supported: ``request_uri_not_supported``, sanscouture/oidc/authorize.py)."""
    return params.get("request_uri", "").startswith(REQUEST_URI_PREFIX)


def authorization_parameters(request: Request, store: RowStore) -> AuthorizationParameters:
    """RFC 9126 4: with a ``request_uri`` from ``/par``, the pushed parameters and nothing else ("the
    authorization server MUST validate authorization requests arising from a pushed request as it
    would any other": the caller validates them again, the client's registration may have changed);
    without one, the request's own parameters. Only the first touches a table."""
    if not is_pushed(request.params):
        return AuthorizationParameters(request.params, request.repeated, pushed=False)
    return AuthorizationParameters(take_pushed_request(store, request.params, request.repeated), frozenset(), True)


def take_pushed_request(store: RowStore, params: Mapping[str, str], repeated: Iterable[str]) -> dict[str, str]:
    """RFC 9126 4: the request_uri used once ("SHOULD treat request_uri values as one-time use"),
    unexpired ("An expired request_uri MUST be rejected as invalid"), by the client it is bound to
    (2.2). The row is consumed before the client is compared: a wrong attempt burns it."""
    check_single_reference(repeated)
    client_id = check_client_id_present(params)
    row = store.consume(row_key(params["request_uri"].removeprefix(REQUEST_URI_PREFIX)), PAR_ROW)
    if row is None:
        raise InvalidRequestUriError(detail="unknown, expired or already used request_uri")
    if row.data.get("client_id") != client_id:
        pushed_by = row.data.get("client_id")
        raise InvalidRequestUriError(detail=f"request_uri pushed by {pushed_by!r}, used by {client_id[:64]!r}")
    pushed = row.data.get("params")
    if not isinstance(pushed, dict):
        raise InvalidRequestUriError(detail="malformed pushed request row")
    return {str(name): str(value) for name, value in pushed.items()}


def check_single_reference(repeated: Iterable[str]) -> None:
    """RFC 6749 3.1: neither ``request_uri`` nor ``client_id`` may be repeated (which would be used?)."""
    duplicated = sorted({"request_uri", "client_id"}.intersection(repeated))
    if duplicated:
        raise InvalidRequestError(f"{duplicated[0]} is included more than once")


def check_client_id_present(params: Mapping[str, str]) -> str:
    """RFC 9126 4 (and RFC 9101 5: "client_id ... REQUIRED"): the authorization request names its client."""
    client_id = params.get("client_id")
    if not client_id:
        raise InvalidRequestError("client_id is required with request_uri")
    return client_id


def check_pushed_when_required(client: Client, pushed: bool) -> None:
    """RFC 9126 4 and 6: a client registered with ``require_pushed_authorization_requests`` starts an
    authorization only with a request_uri from /par; "the authorization server will refuse, using the
    invalid_request error code" (redirected: the request's redirect_uri was checked as registered)."""
    if client.require_pushed_authorization_requests and not pushed:
        raise InvalidRequestError("this client must use pushed authorization requests (PAR)")


def par_required_of_every_client(clients: Iterable[Client]) -> bool:
    """RFC 9126 5: the server-wide ``require_pushed_authorization_requests`` is true only when every
    registered client must use PAR (per client, it is the client's registration, RFC 9126 6)."""
    registered = tuple(clients)
    return bool(registered) and all(client.require_pushed_authorization_requests for client in registered)
