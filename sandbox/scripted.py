"""A scripted browser and relying party over real HTTPS, for the end-to-end tests and the benchmarks.

``Browser`` keeps cookies like a browser, follows redirects one hop at a time (so each hop can be
checked), reads the forms of the broker's pages and submits them with their CSRF token. It picks the
simulators' personas non-interactively through ``login_hint``: the RP's hint is passed on to Entra ID
by the broker, and the PSC hint is added to the wallet URL the broker redirects to.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from dataclasses import field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit

import jwt
import requests

from sandbox.run import RegisteredClient
from sandbox.run import Sandbox


@dataclass
class Form:
    action: str
    fields: dict[str, str]
    buttons: list[tuple[str, str, str]]  # (name, value, label)


@dataclass
class Page:
    url: str
    status: int
    html: str
    headers: requests.structures.CaseInsensitiveDict[str]
    forms: list[Form] = field(default_factory=list)
    title: str = ""
    h1: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)

    def button(self, value: str) -> tuple[Form, str, str]:
        for form in self.forms:
            for name, button_value, _label in form.buttons:
                if button_value == value:
                    return form, name, button_value
        raise AssertionError(f"no button with value {value!r} on {self.h1!r}")

    def link(self, text_part: str) -> str:
        for href, text in self.links:
            if text_part in text:
                return href
        raise AssertionError(f"no link containing {text_part!r} on {self.h1!r}")


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.h1 = ""
        self.title = ""
        self.links: list[tuple[str, str]] = []
        self._in: str | None = None
        self._button: tuple[str, str] | None = None
        self._button_text = ""
        self._link: str | None = None
        self._link_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.forms.append(Form(action=a.get("action", ""), fields={}, buttons=[]))
        elif tag == "input" and self.forms and a.get("type") == "hidden":
            self.forms[-1].fields[a.get("name", "")] = a.get("value", "")
        elif tag == "button" and self.forms:
            self._button = (a.get("name", ""), a.get("value", ""))
            self._button_text = ""
        elif tag in ("h1", "title"):
            self._in = tag
        elif tag == "a":
            self._link = a.get("href", "")
            self._link_text = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button and self.forms:
            self.forms[-1].buttons.append((*self._button, " ".join(self._button_text.split())))
            self._button = None
        elif tag in ("h1", "title"):
            self._in = None
        elif tag == "a" and self._link is not None:
            self.links.append((self._link, " ".join(self._link_text.split())))
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button_text += data
        if self._link is not None:
            self._link_text += data
        if self._in == "h1":
            self.h1 += data.strip()
        elif self._in == "title":
            self.title += data.strip()


@dataclass
class Landing:
    """The browser arrived at the relying party's redirect_uri: the authorization response."""

    url: str
    params: dict[str, str]


@dataclass
class Pkce:
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Browser:
    """One browser profile (its own cookie jar)."""

    def __init__(self, sandbox: Sandbox, psc_persona: str | None = None, entra_persona: str | None = None) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.psc_persona = psc_persona
        self.entra_persona = entra_persona
        self.visited: list[str] = []
        self.pages: list[Page] = []

    def go(self, url: str, stop_at: str | None = None) -> Page | Landing:
        return self._walk("GET", url, None, stop_at)

    def submit(self, page: Page, button_value: str, stop_at: str | None = None) -> Page | Landing:
        form, name, value = page.button(button_value)
        data = dict(form.fields)
        if name:
            data[name] = value
        return self._walk("POST", urljoin(page.url, form.action), data, stop_at)

    def _walk(self, method: str, url: str, data: dict[str, str] | None, stop_at: str | None) -> Page | Landing:
        for _ in range(20):
            if stop_at and url.startswith(stop_at):
                return Landing(url, {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()})
            if self.psc_persona and url.startswith(f"{self.sandbox.psc_url}/wallet/auth"):
                url += "&" + urlencode({"login_hint": self.psc_persona})
            if self.entra_persona and url.startswith(self.sandbox.entra_url) and "/oauth2/v2.0/authorize" in url:
                url += "&" + urlencode({"login_hint": self.entra_persona})
            self.visited.append(url)
            response = self.session.request(method, url, data=data, allow_redirects=False, timeout=30)
            method, data = "GET", None
            if response.status_code in (301, 302, 303, 307):
                url = urljoin(url, response.headers["Location"])
                continue
            parser = _PageParser()
            parser.feed(response.text)
            page = Page(url, response.status_code, response.text, response.headers, parser.forms, parser.title,
                        parser.h1, parser.links)
            self.pages.append(page)
            return page
        raise AssertionError("too many redirects")

    def html_pages_from(self, base_url: str) -> list[Page]:
        return [page for page in self.pages if page.url.startswith(base_url)
                and page.headers.get("Content-Type", "").startswith("text/html")]


@dataclass
class RelyingParty:
    """A relying party of the tests, speaking to the broker as any OIDC client would."""

    sandbox: Sandbox
    client: RegisteredClient

    @property
    def redirect_uri(self) -> str:
        return self.client.redirect_uris[0]

    def authorization_url(self, pkce: Pkce, **extra: str) -> str:
        params = {
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": "openid profile scope_all",
            "state": pkce.state,
            "nonce": pkce.nonce,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
        params.update(extra)
        params = {key: value for key, value in params.items() if value != ""}
        return f"{self.sandbox.broker_url}/authorize?{urlencode(params)}"

    def redeem(self, code: str, pkce: Pkce, **overrides: str) -> requests.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": pkce.verifier,
        }
        data.update(overrides)
        auth: Any = None
        if self.client.auth_method == "client_secret_basic":
            auth = (self.client.client_id, self.client.secret)
        elif self.client.auth_method == "client_secret_post":
            data.update(client_id=self.client.client_id, client_secret=self.client.secret or "")
        else:
            data.update(client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        client_assertion=self.assertion())
        return requests.post(f"{self.sandbox.broker_url}/token", data=data, auth=auth, timeout=30)

    def assertion(self) -> str:
        import time

        assert self.client.private_jwk is not None
        key = jwt.PyJWK(dict(self.client.private_jwk))
        now = int(time.time())
        claims = {"iss": self.client.client_id, "sub": self.client.client_id,
                  "aud": f"{self.sandbox.broker_url}/token", "iat": now, "exp": now + 60,
                  "jti": secrets.token_urlsafe(16)}
        return jwt.encode(claims, key.key, algorithm="RS256", headers={"kid": self.client.private_jwk["kid"]})

    def verify_id_token(self, id_token: str, nonce: str | None) -> dict[str, Any]:
        jwks = jwt.PyJWKClient(f"{self.sandbox.broker_url}/jwks")
        key = jwks.get_signing_key_from_jwt(id_token)
        claims: dict[str, Any] = jwt.decode(
            id_token, key.key, algorithms=["RS256"], audience=self.client.client_id, issuer=self.sandbox.broker_url
        )
        assert claims.get("nonce") == nonce
        return claims

    def userinfo(self, access_token: str) -> requests.Response:
        return requests.get(f"{self.sandbox.broker_url}/userinfo",
                            headers={"Authorization": f"Bearer {access_token}"}, timeout=30)


PAIRING_TITLE = "Appairage du compte"
CONFIRMATION_TITLE = "Connexion"


def sign_in(browser: Browser, party: RelyingParty, pkce: Pkce, **extra: str) -> Landing:
    """The whole interactive sign-in: pair when the broker asks, then confirm; the RP's landing."""
    page = browser.go(party.authorization_url(pkce, **extra), stop_at=party.redirect_uri)
    if isinstance(page, Page) and page.h1 == PAIRING_TITLE:
        page = browser.submit(page, "pair", stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == CONFIRMATION_TITLE, getattr(page, "h1", page)
    landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing) and "code" in landing.params, landing
    return landing

