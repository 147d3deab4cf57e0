"""The scopes a tenant can hand out: the platform's own (each one an operation checks) and
those the tenant defines for its own app (pages, its functions' checks, ...)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from roost.backends.sql.tables import custom_scopes, utcnow
from roost.errors import ConflictError, NotFoundError
from roost.services import platform_registry
from roost.services.context import Context
from roost.services.registry import operation
from roost.wire.auth import ScopeInfo, ScopeRef, ScopeSpec
from roost.wire.common import Done, Empty

METRICS_SCOPE = "metrics:read"
"""Reading `/metrics` (server/metrics.py), a route rather than an operation: a platform scope
all the same, so that no tenant can define a scope of that name for its own use."""


def builtin_scopes() -> set[str]:
    """Every scope some operation of the platform checks (unary, streamed or subscription),
    and those of its routes."""
    return platform_registry().scopes() | {METRICS_SCOPE}


@operation("scopes.list", scope="roles:read", read_only=True)
async def list_scopes(ctx: Context, params: Empty) -> list[ScopeInfo]:
    """Every scope there is to give: the platform's and the tenant's own, by name."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(select(custom_scopes))).mappings().all()
    found = {name: ScopeInfo(name=name, description="", builtin=True) for name in builtin_scopes()}
    for row in rows:
        found[row["name"]] = ScopeInfo(
            name=row["name"], description=row["description"], builtin=False
        )
    return [found[name] for name in sorted(found)]


@operation("scopes.create", scope="roles:write")
async def create_scope(ctx: Context, params: ScopeSpec) -> ScopeInfo:
    """Define a scope for your app (the platform's own exist already)."""
    if params.name in builtin_scopes():
        raise ConflictError(f"{params.name!r} is a platform scope", details={"field": "name"})
    try:
        async with ctx.platform.db.write(ctx.tenant) as conn:
            await conn.execute(
                custom_scopes.insert().values(
                    name=params.name, description=params.description, created_at=utcnow()
                )
            )
    except IntegrityError:
        raise ConflictError(f"scope {params.name!r} exists", details={"field": "name"}) from None
    return ScopeInfo(name=params.name, description=params.description, builtin=False)


@operation("scopes.delete", scope="roles:write")
async def delete_scope(ctx: Context, params: ScopeRef) -> Done:
    """Delete a scope the tenant defined (roles that name it keep the name, which then grants
    nothing new)."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        result = await conn.execute(
            delete(custom_scopes).where(custom_scopes.c.name == params.name)
        )
    if result.rowcount == 0:
        raise NotFoundError(
            f"no scope {params.name!r} defined by this tenant (platform scopes stay)",
            details={"field": "name"},
        )
    return Done(count=1)
