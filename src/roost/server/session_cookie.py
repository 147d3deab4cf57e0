"""The dashboard's credential: an httpOnly session cookie, honoured only with its CSRF token.

A browser sends cookies with every request to this origin, including ones another site makes
it send, so the cookie alone never authenticates. The request must also carry the CSRF token
in the `X-Roost-CSRF` header (or `csrf` on the WebSocket's URL, where a page cannot set
headers). The token is an HMAC of the session token under a key derived from the signing key:
another site cannot read it (it sits in a SameSite=Strict cookie of this origin, and no CORS
answer lets a page read ours), nor forge one for a cookie it planted (signed double submit).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from roost.errors import AuthorizationError
from roost.services.context import Platform
from roost.services.principals import Credential

SESSION_COOKIE = "roost_dashboard"
CSRF_COOKIE = "roost_dashboard_csrf"
CSRF_HEADER = "x-roost-csrf"
_PURPOSE = "dashboard-csrf-v1"


def csrf_token(platform: Platform, session_token: str) -> str:
    """The CSRF token that goes with a dashboard session cookie."""
    key = platform.access_tokens.derive(_PURPOSE)
    return hmac.new(key, session_token.encode(), hashlib.sha256).hexdigest()


def cookies_of(header: str | None) -> dict[str, str]:
    """The cookies of a Cookie header (the first of each name). Hand-parsed: the stdlib's
    SimpleCookie drops every cookie after one it cannot read, which lets a planted cookie hide
    ours."""
    found: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in found:
            found[name] = value.strip().strip('"')
    return found


def cookie_credential(platform: Platform, headers: Mapping[str, str]) -> Credential | None:
    """The dashboard session of a request, when it carries the cookie and the matching CSRF
    header; None without the header (the cookie is then ignored: the request is anonymous).
    A header that does not match the cookie is refused: the request was forged or is stale."""
    token = cookies_of(headers.get("cookie")).get(SESSION_COOKIE)
    given = headers.get(CSRF_HEADER)
    if not token or given is None:
        return None
    if not hmac.compare_digest(given.encode(), csrf_token(platform, token).encode()):
        raise AuthorizationError(
            "the X-Roost-CSRF header does not match this dashboard session: reload the "
            "dashboard, or sign in again",
            code="csrf_refused",
            details={"field": "X-Roost-CSRF"},
        )
    return Credential("session_token", token)
