"""Cookies, CSRF tokens and the security headers every console page carries.

- The session cookie holds the session token and an HMAC of it under the console secret: a forged or altered
  cookie is refused before any lookup. HttpOnly, SameSite=Lax, Secure when the console is served over HTTPS.
- CSRF: every state change carries a token (form field ``csrf_token`` or header ``X-CSRF-Token``) that is an
  HMAC of the session token, and must come from this origin (``Origin`` / ``Sec-Fetch-Site``). Before sign-in
  the token is bound to a random pre-session cookie instead.
- Pages carry a Content-Security-Policy without inline scripts or styles; every asset comes from this origin.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "tw_session"
PRESESSION_COOKIE = "tw_presession"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def load_or_create_secret(configured: str | None, data_dir: Path) -> bytes:
    """``TAPWIRE_CONSOLE_SECRET``, else a random secret kept in the data directory (embedded mode)."""
    if configured:
        return configured.encode("utf-8")
    path = data_dir / "console.secret"
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode("ascii")
    path.write_bytes(secret)
    path.chmod(0o600)
    return secret


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}\x1f{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def sign_session(self, token: str) -> str:
        return f"{token}.{self._mac('session', token)}"

    def session_token(self, cookie: str | None) -> str | None:
        """The token of a genuine session cookie, else None."""
        if not cookie or "." not in cookie or len(cookie) > 300:
            return None
        token, mac = cookie.rsplit(".", 1)
        return token if hmac.compare_digest(mac, self._mac("session", token)) else None

    def csrf_for(self, bound_to: str) -> str:
        return self._mac("csrf", bound_to)

    def csrf_valid(self, bound_to: str | None, given: str | None) -> bool:
        return bool(bound_to and given) and hmac.compare_digest(self.csrf_for(bound_to or ""), given or "")


def same_origin(request: Request) -> bool:
    """False for a request a browser marks as cross-site, or whose Origin is another site."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


def is_https(request: Request, public_url: str) -> bool:
    return request.url.scheme == "https" or public_url.startswith("https://")


def set_session_cookie(response: Response, value: str, *, secure: bool, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE, value, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/"
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=secure, path="/")


def new_presession() -> str:
    return secrets.token_urlsafe(32)
