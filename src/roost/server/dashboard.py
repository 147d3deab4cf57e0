"""The dashboard's door: its files at `/_/` and its sign-in at `/_/session`.

The page calls the same REST and WebSocket doors as the SDK. What it adds is a credential a
script cannot read: `POST /_/session` signs in (password, then the second factor when the
server asks for one) and sets the session token in an httpOnly, SameSite=Strict cookie, with
its CSRF token in a cookie the page reads (`server/session_cookie.py` says how the doors honour
them). `DELETE /_/session` signs out and clears both. `POST /_/session/switch` trades the
session for one of the person's member account in another tenant (`auth.switch_tenant`) and
puts that in the cookies instead: the page changes tenant without signing in again.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import mimetypes
from importlib import resources
from importlib.abc import Traversable
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from roost.errors import AuthorizationError, NotFoundError, RoostError, ValidationError
from roost.server.dispatch import Dispatcher, error_response, headers_of
from roost.server.responses import request_id
from roost.server.session_cookie import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, csrf_token
from roost.wire.codec import JSON
from roost.wire.common import TenantName

_MAX_BODY = 16 * 1024
# The page loads only its own files and talks only to this origin; nothing may frame it.
_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
_CREDENTIAL_HEADERS = ("cookie", "authorization", "x-session-token", CSRF_HEADER)
_OTHER_CREDENTIALS = ("authorization", "x-session-token")


class SignIn(Struct, forbid_unknown_fields=True):
    """A dashboard sign-in: username and password, or a second-factor challenge and code."""

    tenant: TenantName = "default"
    username: Annotated[str, Meta(max_length=254)] = ""
    password: Annotated[str, Meta(max_length=1024)] = ""
    challenge: Annotated[str, Meta(max_length=512)] = ""
    code: Annotated[str, Meta(max_length=64)] = ""


class Switch(Struct, forbid_unknown_fields=True):
    """The tenant to switch the dashboard's session to (one where the person is a member)."""

    tenant: TenantName


class _File(msgspec.Struct, frozen=True):
    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


@functools.cache
def _load_files() -> dict[str, _File]:
    """The page's files, read once into memory (~50 KB): served with no file system access
    and no thread hop per request (Starlette's StaticFiles took ~0.7 s a file on a busy
    2-core machine), gzipped once, and looked up in a dict, so no path can leave the folder.
    Read when the dashboard is first asked for, not when the server starts (reading, gzip
    and the MIME table took ~10 ms of every start)."""
    found: dict[str, _File] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            name = prefix + entry.name
            if entry.is_dir():
                walk(entry, name + "/")
                continue
            body = entry.read_bytes()
            guessed = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
            media_type = "text/javascript" if entry.name.endswith(".js") else guessed
            if media_type.startswith("text/"):
                media_type += "; charset=utf-8"
            packed = gzip.compress(body, compresslevel=9, mtime=0)
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            found[name] = _File(body, packed if len(packed) < len(body) else None, media_type, etag)

    walk(resources.files("roost.dashboard") / "static", "")
    return found


def dashboard_routes(dispatcher: Dispatcher) -> list[Route]:
    async def sign_in(request: Request) -> Response:
        headers = headers_of(request.scope)
        rid = request_id(headers.get("x-request-id"))
        try:
            # a page of another site cannot set this header, so it cannot sign a browser in
            # to an account of its choosing (login CSRF)
            _require_header(headers)
            body = await _body(request)
            params = JSON.decode_input(body, SignIn, "the sign-in")
            clean = {k: v for k, v in headers.items() if k not in _CREDENTIAL_HEADERS}
            clean["x-roost-tenant"] = params.tenant
            ctx = await dispatcher.context_from_scope(request.scope, clean, rid)
            if params.challenge:
                name = "auth.verify_totp"
                call: dict[str, Any] = {"challenge": params.challenge, "code": params.code}
            else:
                name = "auth.login"
                call = {"username": params.username, "password": params.password}
            call["session_token"] = True
            op = dispatcher.operation(name)
            pair = await dispatcher.invoke(ctx, op, msgspec.json.encode(call), JSON)
            dispatcher.meter(ctx)
        except Exception as exc:
            return _no_store(error_response(exc, rid, JSON).as_response())
        return signed_in(request, pair.session_token, params.tenant, pair.expires_in)

    def signed_in(request: Request, token: str, tenant: str, expires_in: int) -> Response:
        """The answer that puts a session in the dashboard's cookies."""
        csrf = csrf_token(dispatcher.platform, token)
        answer = {"csrf": csrf, "tenant": tenant, "expires_in": expires_in}
        response = Response(msgspec.json.encode(answer), media_type="application/json")
        # behind a TLS proxy the request reaches us as http: ROOST_PUBLIC_URL says https
        public = dispatcher.platform.settings.public_url or ""
        secure = request.url.scheme == "https" or public.startswith("https://")
        response.set_cookie(
            SESSION_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/"
        )
        response.set_cookie(
            CSRF_COOKIE, csrf, httponly=False, samesite="strict", secure=secure, path="/"
        )
        return _no_store(response)

    async def switch(request: Request) -> Response:
        headers = headers_of(request.scope)
        rid = request_id(headers.get("x-request-id"))
        try:
            _require_header(headers)  # and its token must match the cookie's session
            params = JSON.decode_input(await _body(request), Switch, "the switch")
            # the dashboard's session only: the cookie (with its CSRF header), not another
            # credential a request may carry
            cookie_only = {k: v for k, v in headers.items() if k not in _OTHER_CREDENTIALS}
            ctx = await dispatcher.context_from_scope(request.scope, cookie_only, rid)
            # a member account with a second factor answers SecondFactorRequired: the page
            # then signs in to that tenant with its own form, which asks for the code
            call = {"tenant": params.tenant, "session_token": True}
            pair = await dispatcher.invoke(
                ctx, dispatcher.operation("auth.switch_tenant"), msgspec.json.encode(call), JSON
            )
            dispatcher.meter(ctx)
        except Exception as exc:
            return _no_store(error_response(exc, rid, JSON).as_response())
        if ctx.principal is not None:
            # the session it came from leaves with the cookie that held it: nothing can use it
            # any more, so it is signed out rather than left to expire
            with contextlib.suppress(RoostError):
                await dispatcher.invoke(ctx, dispatcher.operation("auth.logout"), b"{}", JSON)
        return signed_in(request, pair.session_token, params.tenant, pair.expires_in)

    async def sign_out(request: Request) -> Response:
        headers = headers_of(request.scope)
        rid = request_id(headers.get("x-request-id"))
        try:
            _require_header(headers)
            ctx = await dispatcher.context_from_scope(request.scope, headers, rid)
            if ctx.principal is not None:
                await dispatcher.invoke(ctx, dispatcher.operation("auth.logout"), b"{}", JSON)
        except Exception as exc:
            response = error_response(exc, rid, JSON).as_response()
        else:
            response = Response(b'{"ok":true}', media_type="application/json")
        # cleared even when the session was already gone, so the browser forgets it
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.delete_cookie(name, path="/", samesite="strict", httponly=True)
        return _no_store(response)

    async def to_page(request: Request) -> Response:
        return RedirectResponse("/_/")

    async def page_file(request: Request) -> Response:
        found = _load_files().get(request.path_params["path"] or "index.html")
        if found is None:
            headers = headers_of(request.scope)
            missing = NotFoundError(f"the dashboard has no file {request.url.path[:200]!r}")
            rid = request_id(headers.get("x-request-id"))
            return error_response(missing, rid, JSON).as_response()
        # the names are not versioned, so the browser asks again each time: a 304 when unchanged
        headers = {**_PAGE_HEADERS, "etag": found.etag, "cache-control": "no-cache"}
        if request.headers.get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        body = found.body
        if found.gzipped and "gzip" in request.headers.get("accept-encoding", "").lower():
            body = found.gzipped
            headers["content-encoding"] = "gzip"
        headers["vary"] = "Accept-Encoding"
        return Response(body, media_type=found.media_type, headers=headers)

    return [
        Route("/_/session", sign_in, methods=["POST"]),
        Route("/_/session", sign_out, methods=["DELETE"]),
        Route("/_/session/switch", switch, methods=["POST"]),
        Route("/_", to_page, methods=["GET"]),
        Route("/_/{path:path}", page_file, methods=["GET", "HEAD"]),
    ]


def _require_header(headers: dict[str, str]) -> None:
    if not headers.get(CSRF_HEADER):
        raise AuthorizationError(
            "dashboard requests carry the X-Roost-CSRF header: use the dashboard's page",
            code="csrf_refused",
            details={"field": "X-Roost-CSRF"},
        )


async def _body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise ValidationError("the request is too large", details={"field": "body"})
    return body


def _no_store(response: Response) -> Response:
    response.headers["cache-control"] = "no-store"
    response.headers["x-content-type-options"] = "nosniff"
    return response
