"""The one path every call takes, whatever door it came through, and the door kit.

`identify` turns a request's headers into a Context (tenant + principal) once per request;
`invoke` checks access and scope, decodes the parameters, admits the call past the caller's
limits (`server/limits.py`: calls in flight and rate, per principal and per tenant) and runs
the handler; `stream` does the same for a streamed operation and yields its items (the call
counts as in flight until the stream ends). Errors are RoostErrors from here on; the doors
only turn them into responses or frames.

The door kit is what every door (REST and batch, WebSocket, files) does around a call, written
once here: `context_from_scope` builds the Context of an ASGI request, `guard` maps any error
to the one error shape under a request id, and `meter` / `metered` count the call and its
bytes (file bodies as they stream) against the caller.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

from starlette.types import Scope

from roost.errors import (
    AuthenticationError,
    AuthorizationError,
    NotAuthenticatedError,
    NotFoundError,
    RoostError,
    ValidationError,
)
from roost.server.limits import Limits
from roost.server.responses import Reply, as_roost_error, error_reply
from roost.server.session_cookie import cookie_credential
from roost.services.context import Context, Platform
from roost.services.functions import invocations as functions
from roost.services.principals import Credential, authenticate
from roost.services.registry import Operation, Registry, each_valid
from roost.services.tenants import DEFAULT_TENANT, ensure_exists
from roost.wire.codec import Codec
from roost.wire.common import TENANT_NAME

T = TypeVar("T")

_TENANT = re.compile(TENANT_NAME)


class Dispatcher:
    """Runs operations of a registry for requests of a platform."""

    def __init__(self, platform: Platform, registry: Registry) -> None:
        self.platform = platform
        self.registry = registry
        self.limits = Limits(platform.settings, platform.limiter)
        platform.db.quiet = self.limits.quiet  # small writes inline only when alone

    def operation(self, name: str) -> Operation:
        """The operation `name`: one of the registry's, or `fn.<name>`, a deployed function,
        as a unary call (a generator handler then answers the list of its items; `resolve`
        knows which functions stream)."""
        op = self.registry.get(name)
        if op is not None:
            return op
        if name.startswith(functions.RPC_PREFIX):
            return functions.function_operation(name)
        raise NotFoundError(
            f"no operation named {name[:100]!r}; /api/v1/openapi.json lists them",
            details={"operation": name[:100]},
        )

    async def resolve(self, ctx: Context, name: str) -> Operation:
        """`operation` for a caller: `fn.<name>` is the function of the caller's tenant,
        streamed if its handler is a generator (NotFoundError if there is no such function;
        a caller who may not run functions learns nothing of which exist)."""
        op = self.registry.get(name)
        if op is not None or not name.startswith(functions.RPC_PREFIX):
            return op or self.operation(name)
        check_access(ctx, functions.EXECUTE_SCOPE, name[:100])
        return await functions.rpc_operation(ctx, name)

    async def identify(
        self,
        headers: Mapping[str, str],
        *,
        host: str = "",
        client_address: str = "",
        request_id: str = "",
    ) -> Context:
        """The tenant and the principal of a request (headers with lower-case names)."""
        credential = header_credential(headers) or cookie_credential(self.platform, headers)
        requested = _requested_tenant(headers, host, self.platform.settings.base_domain)
        principal = None
        if credential is not None:
            principal = await authenticate(self.platform, credential)
            if requested and requested != principal.tenant:
                raise AuthenticationError(
                    f"this credential belongs to tenant {principal.tenant!r}, not {requested!r}",
                    code="wrong_tenant",
                )
            tenant = principal.tenant
        else:
            tenant = requested or DEFAULT_TENANT
            await ensure_exists(self.platform, tenant)
        return Context(
            platform=self.platform,
            tenant=tenant,
            principal=principal,
            request_id=request_id,
            client_address=client_address,
            user_agent=headers.get("user-agent", ""),
        )

    def context_from_scope(
        self,
        scope: Scope,
        headers: Mapping[str, str],
        request_id: str = "",
        *,
        tenant: str | None = None,
    ) -> Awaitable[Context]:
        """The Context of an ASGI request (HTTP or WebSocket, `headers` as `headers_of` gives
        them), to await. Its caller is identified from its headers; with `tenant`, it is an
        anonymous caller of that tenant whose authority is the link it followed (a signed link,
        a public file), so nothing is checked here: the service that serves the link does.
        (Not a coroutine itself: every request awaits it, and a layer of coroutine costs.)"""
        client = scope.get("client")
        address = client[0] if client else ""
        if tenant is not None:
            return _ready(
                Context(
                    platform=self.platform,
                    tenant=tenant,
                    principal=None,
                    request_id=request_id,
                    client_address=address,
                    user_agent=headers.get("user-agent", ""),
                )
            )
        return self.identify(
            headers, host=headers.get("host", ""), client_address=address, request_id=request_id
        )

    def meter(
        self, ctx: Context | None, bytes_in: int = 0, bytes_out: int = 0, *, calls: int = 1
    ) -> None:
        """Count `calls` calls and their bytes against the caller of `ctx`; a caller the server
        could not identify (`ctx` None) is not metered."""
        if ctx is not None:
            principal = ctx.principal
            key = principal.api_key_id if principal else None
            self.platform.meter.count(ctx.tenant, key, bytes_in, bytes_out, calls=calls)

    async def metered(
        self, ctx: Context, chunks: AsyncIterable[bytes], *, incoming: bool
    ) -> AsyncIterator[bytes]:
        """`chunks` (a file body going in or out), each counted against the caller as it
        passes: a transfer cut short is metered for what it moved."""
        async for chunk in chunks:
            if incoming:
                self.meter(ctx, len(chunk), calls=0)
            else:
                self.meter(ctx, bytes_out=len(chunk), calls=0)
            yield chunk

    async def invoke(
        self, ctx: Context, op: Operation, body: bytes, codec: Codec, *, screened: bool = False
    ) -> Any:
        """Check that the caller may run `op`, decode its parameters and run it. `screened`:
        `body` is a part of a frame that passed `limits.passes_screen` (see `decode_body`)."""
        # `check_operation` and `decode_body` written out: every call of every door runs this
        if op.kind != "unary":
            require_kind(op, "unary")
        if op.access != "public":
            principal = ctx.principal
            if principal is None or (op.scope is not None and not principal.allows(op.scope)):
                check_access(ctx, op.scope, op.name)  # raises: it says why
        params = codec.decode_input(
            body or _empty(codec), op.input_type, op.what, screened=screened
        )
        limits = self.limits
        who = limits.enter(ctx)
        try:
            return await op.handler(ctx, params)
        finally:
            limits.leave(who, ctx.tenant)

    async def stream(
        self, ctx: Context, op: Operation, body: bytes, codec: Codec, *, screened: bool = False
    ) -> AsyncGenerator[Any, None]:
        """`invoke` for a streamed operation: its items, in order. Nothing runs until the first
        item is asked for (a refusal is raised there); closing this iterator closes the
        handler's generator."""
        check_operation(ctx, op, "stream")
        params = decode_body(body, codec, op.input_type, op.what, screened=screened)
        who = self.limits.enter(ctx)
        items = op.handler(ctx, params)
        try:
            async for item in items:
                yield item
        finally:
            try:
                await items.aclose()
            finally:
                self.limits.leave(who, ctx.tenant)

    async def invoke_many(
        self,
        ctx: Context,
        op: Operation,
        bodies: list[bytes],
        codec: Codec,
        *,
        screened: bool = False,
    ) -> list[Any]:
        """`invoke` for many calls of an operation that has a batch handler: a result or the
        RoostError of each call, in order. Access and limits are checked once, for all of them
        (a run past a limit is refused whole)."""
        batch = op.batch
        assert batch is not None
        check_operation(ctx, op, "unary")
        what = op.what
        who = self.limits.enter(ctx, len(bodies))
        try:
            return await each_valid(
                bodies,
                lambda body: decode_body(body, codec, op.input_type, what, screened=screened),
                lambda params: batch(ctx, params),
            )
        finally:
            self.limits.leave(who, ctx.tenant, len(bodies))


async def _ready(value: T) -> T:
    return value


def headers_of(scope: Mapping[str, Any]) -> dict[str, str]:
    """An ASGI scope's headers as one dict (lower-case names), for O(1) lookups."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def check_operation(ctx: Context, op: Operation, kind: str) -> None:
    """The caller may run `op`, and runs it as what it is (`kind`)."""
    require_kind(op, kind)
    check_access(ctx, op.scope, op.name, public=op.access == "public")


def require_kind(op: Operation, kind: str) -> None:
    """Refuse to run `op` the way of another kind (a stream called as unary, ...)."""
    if op.kind != kind:
        how = {
            "unary": "call it as usual (one answer)",
            "stream": "read it as a stream: NDJSON over HTTP, or chunk frames on the WebSocket",
            "subscription": "subscribe to it on the WebSocket door (/api/v1/ws)",
        }[op.kind]
        raise ValidationError(
            f"{op.name} is a {op.kind} operation: {how}",
            code="wrong_operation_kind",
            details={"operation": op.name, "kind": op.kind},
        )


def check_access(ctx: Context, scope: str | None, what: str, *, public: bool = False) -> None:
    """The one access check of every door: unless `what` (an operation, a subscription, a
    file transfer) is public, a signed-in caller, holding `scope` when one is named."""
    if public:
        return
    if ctx.principal is None:
        raise NotAuthenticatedError(f"{what} needs a credential: sign in, or send an API key")
    if scope is not None and not ctx.principal.allows(scope):
        raise AuthorizationError(
            f"{what} needs the scope {scope!r}, which this credential does not have",
            code="missing_scope",
            details={"scope": scope},
        )


def guard(exc: BaseException, request_id: str) -> RoostError:
    """The one error mapping of every door: the RoostError to answer `exc` with. Anything
    unexpected is logged under `request_id` (which the answer carries) and answered without
    internals."""
    return as_roost_error(exc, request_id)


def error_response(exc: BaseException, request_id: str, codec: Codec) -> Reply:
    """An HTTP door's answer to a call that failed: `{"error": {...}}` with the error's status
    and the X-Request-Id header."""
    return error_reply(guard(exc, request_id), codec, request_id)


def decode_body(
    body: bytes, codec: Codec, into: type[T], what: str, *, screened: bool = False
) -> T:
    """`body` decoded into `into`; a bad body is a ValidationError naming the field at fault.
    `screened`: `body` is a part of a frame that passed `limits.passes_screen`."""
    return codec.decode_input(body or _empty(codec), into, what, screened=screened)


def _empty(codec: Codec) -> bytes:
    return b"{}" if codec.format == "json" else b"\x80"


def header_credential(headers: Mapping[str, str]) -> Credential | None:
    """The credential of the Authorization header (Bearer or Api-Key), if there is one."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if not token:
            raise AuthenticationError(
                "the Authorization header has no token", code="invalid_credentials"
            )
        scheme_name = scheme.lower()
        if scheme_name == "bearer":
            return Credential("jwt", token)
        if scheme_name == "api-key":
            return Credential("api_key", token)
        raise AuthenticationError(
            f"unsupported Authorization scheme {scheme!r}; use Bearer or Api-Key",
            code="invalid_credentials",
        )
    session_token = headers.get("x-session-token")
    if session_token:
        return Credential("session_token", session_token.strip())
    return None


def _requested_tenant(headers: Mapping[str, str], host: str, base_domain: str | None) -> str | None:
    tenant = headers.get("x-roost-tenant")
    if tenant is None and base_domain:
        hostname = host.split(":", 1)[0].lower()
        suffix = "." + base_domain.lower()
        if hostname.endswith(suffix):
            tenant = hostname[: -len(suffix)]
    if tenant is not None and not _TENANT.match(tenant):
        raise ValidationError(
            f"tenant {tenant[:60]!r} is not a tenant name (lower-case letters, digits, hyphens)",
            details={"field": "X-Roost-Tenant"},
        )
    return tenant
