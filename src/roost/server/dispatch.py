"""The one path every call takes, whatever door it came through.

`identify` turns a request's headers into a Context (tenant + principal) once per request;
`invoke` checks access and scope, decodes the parameters, admits the call past the caller's
limits (`server/limits.py`: calls in flight and rate, per principal and per tenant) and runs
the handler; `stream` does the same for a streamed operation and yields its items (the call
counts as in flight until the stream ends). Errors are RoostErrors from here on; the doors
only turn them into responses or frames.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Mapping
from typing import Any, TypeVar

from roost.errors import (
    AuthenticationError,
    AuthorizationError,
    NotAuthenticatedError,
    NotFoundError,
    ValidationError,
)
from roost.server.limits import Limits
from roost.services.context import Context, Platform
from roost.services.principals import Credential, authenticate
from roost.services.registry import Operation, Registry, each_valid
from roost.services.tenants import DEFAULT_TENANT, ensure_exists
from roost.wire.codec import Codec

T = TypeVar("T")

_TENANT = re.compile(r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$")


class Dispatcher:
    """Runs operations of a registry for requests of a platform."""

    def __init__(self, platform: Platform, registry: Registry) -> None:
        self.platform = platform
        self.registry = registry
        self.limits = Limits(platform.settings, platform.limiter)

    def operation(self, name: str) -> Operation:
        op = self.registry.get(name)
        if op is None:
            raise NotFoundError(
                f"no operation named {name!r}; /api/v1/openapi.json lists them",
                details={"operation": name},
            )
        return op

    async def identify(
        self,
        headers: Mapping[str, str],
        *,
        host: str = "",
        client_address: str = "",
        request_id: str = "",
    ) -> Context:
        """The tenant and the principal of a request (headers with lower-case names)."""
        credential = _credential(headers)
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

    async def invoke(self, ctx: Context, op: Operation, body: bytes, codec: Codec) -> Any:
        """Check that the caller may run `op`, decode its parameters and run it."""
        require_kind(op, "unary")
        check_access(ctx, op)
        params = decode_body(body, codec, op.input_type, f"parameters for {op.name}")
        who = self.limits.enter(ctx)
        try:
            return await op.handler(ctx, params)
        finally:
            self.limits.leave(who, ctx.tenant)

    async def stream(
        self, ctx: Context, op: Operation, body: bytes, codec: Codec
    ) -> AsyncGenerator[Any, None]:
        """`invoke` for a streamed operation: its items, in order. Nothing runs until the first
        item is asked for (a refusal is raised there); closing this iterator closes the
        handler's generator."""
        require_kind(op, "stream")
        check_access(ctx, op)
        params = decode_body(body, codec, op.input_type, f"parameters for {op.name}")
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
        self, ctx: Context, op: Operation, bodies: list[bytes], codec: Codec
    ) -> list[Any]:
        """`invoke` for many calls of an operation that has a batch handler: a result or the
        RoostError of each call, in order. Access and limits are checked once, for all of them
        (a run past a limit is refused whole)."""
        batch = op.batch
        assert batch is not None
        check_access(ctx, op)
        what = f"parameters for {op.name}"
        who = self.limits.enter(ctx, len(bodies))
        try:
            return await each_valid(
                bodies,
                lambda body: decode_body(body, codec, op.input_type, what),
                lambda params: batch(ctx, params),
            )
        finally:
            self.limits.leave(who, ctx.tenant, len(bodies))


def headers_of(scope: Mapping[str, Any]) -> dict[str, str]:
    """An ASGI scope's headers as one dict (lower-case names), for O(1) lookups."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def require_scope(ctx: Context, scope: str, what: str) -> None:
    """For doors outside the registry (file streams): a principal holding `scope`."""
    if ctx.principal is None:
        raise NotAuthenticatedError(f"{what} needs a credential: sign in, or send an API key")
    if not ctx.principal.allows(scope):
        raise AuthorizationError(
            f"{what} needs the scope {scope!r}", code="missing_scope", details={"scope": scope}
        )


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


def check_access(ctx: Context, op: Operation) -> None:
    if op.access == "public":
        return
    if ctx.principal is None:
        raise NotAuthenticatedError(f"{op.name} needs a credential: sign in, or send an API key")
    if op.scope is not None and not ctx.principal.allows(op.scope):
        raise AuthorizationError(
            f"{op.name} needs the scope {op.scope!r}, which this credential does not have",
            code="missing_scope",
            details={"scope": op.scope},
        )


def decode_body(body: bytes, codec: Codec, into: type[T], what: str) -> T:
    """`body` decoded into `into`; a bad body is a ValidationError naming the field at fault."""
    return codec.decode_input(body or _empty(codec), into, what)


def _empty(codec: Codec) -> bytes:
    return b"{}" if codec.format == "json" else b"\x80"


def _credential(headers: Mapping[str, str]) -> Credential | None:
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if not token:
            raise AuthenticationError(
                "the Authorization header has no token", code="invalid_credentials"
            )
        if scheme.lower() == "bearer":
            return Credential("jwt", token)
        if scheme.lower() == "api-key":
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
