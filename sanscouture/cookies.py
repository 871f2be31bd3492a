"""The broker's cookies (docs/design.md: ``__Host-`` prefix, Secure, HttpOnly, SameSite=Lax).

``__Host-`` pins a cookie to the broker's origin with ``Path=/`` and no ``Domain`` (RFC 6265bis
4.1.3.2). SameSite=Lax still sends it on the top-level GET redirects back from Entra ID and PSC.
"""

from __future__ import annotations

SESSION_COOKIE = "__Host-sc-session"


def set_cookie(name: str, value: str, max_age: int | None = None) -> str:
    """A Set-Cookie header value with the broker's attributes; no Max-Age = until the browser closes."""
    parts = [f"{name}={value}", "Path=/", "Secure", "HttpOnly", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def clear_cookie(name: str) -> str:
    return f"{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
