"""Tenants: the isolation units. Each has its own database (file or schema) and users.

Tenants are managed by the platform admins: users of the `default` tenant with the scope
`tenants:admin`. A tenant's admins (even superusers) cannot create or see other tenants.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from roost.backends.sql import CONTROL
from roost.backends.sql.migrations import migrate
from roost.backends.sql.tables import tenant_kv_bounds, tenants
from roost.errors import AuthorizationError, ConflictError, NotFoundError, ValidationError
from roost.services.context import TENANT_SETTINGS, Context, Platform
from roost.services.registry import operation
from roost.wire.auth import (
    CreateTenantRequest,
    Done,
    KVTtlBounds,
    KVTtlBoundsRequest,
    Tenant,
    TenantRef,
)
from roost.wire.common import Empty

DEFAULT_TENANT = "default"
_KNOWN_FOR_SECONDS = 5.0
_BOUNDS_CACHE_SECONDS = 5.0


async def ensure_exists(platform: Platform, name: str) -> None:
    """Raise NotFoundError unless the tenant exists (answers from memory for a few seconds)."""
    seen = platform.known_tenants.get(name)
    if seen is not None and time.monotonic() - seen < _KNOWN_FOR_SECONDS:
        return
    async with platform.db.read(CONTROL) as conn:
        found = (await conn.execute(select(tenants.c.name).where(tenants.c.name == name))).first()
    if found is None:
        platform.known_tenants.pop(name, None)
        raise NotFoundError(f"tenant {name!r} does not exist", details={"field": "tenant"})
    platform.known_tenants[name] = time.monotonic()


async def provision(platform: Platform, name: str, display_name: str = "") -> bool:
    """Create a tenant and its tables, or bring an existing one's tables up to date.

    Returns whether the tenant was new.
    """
    await migrate(platform.db, name)
    await platform.db.confined.prepare(name)  # PostgreSQL: the role its analytics run as
    try:
        async with platform.db.write(CONTROL) as conn:
            await conn.execute(tenants.insert().values(name=name, display_name=display_name))
    except IntegrityError:
        return False
    return True


async def migrate_all(platform: Platform) -> None:
    """At start: the control plane, the default tenant, then every other tenant."""
    await migrate(platform.db, CONTROL)
    await provision(platform, DEFAULT_TENANT, "Default")
    async with platform.db.read(CONTROL) as conn:
        names = list((await conn.execute(select(tenants.c.name))).scalars())
    for name in names:
        await migrate(platform.db, name)


def require_platform_admin(ctx: Context) -> None:
    if ctx.tenant != DEFAULT_TENANT:
        raise AuthorizationError(
            "tenants are managed from the default tenant", code="permission_denied"
        )


@operation("tenants.create", scope="tenants:admin")
async def create(ctx: Context, params: CreateTenantRequest) -> Tenant:
    """Create a tenant with its own database; with `admin_username` and `admin_password`, also
    its first superuser."""
    require_platform_admin(ctx)
    if params.name == DEFAULT_TENANT:
        raise ConflictError("tenant 'default' exists", details={"field": "name"})
    if (params.admin_username is None) != (params.admin_password is None):
        raise ValidationError(
            "give admin_username and admin_password together", details={"field": "admin_password"}
        )
    if not await provision(ctx.platform, params.name, params.display_name):
        raise ConflictError(f"tenant {params.name!r} exists", details={"field": "name"})
    if params.admin_username and params.admin_password:
        from roost.services.users import ensure_admin

        await ensure_admin(
            ctx.platform,
            params.admin_username,
            params.admin_email,
            params.admin_password,
            tenant=params.name,
        )
    return await get(ctx, TenantRef(name=params.name))


@operation("tenants.get", scope="tenants:admin", read_only=True)
async def get(ctx: Context, params: TenantRef) -> Tenant:
    """One tenant."""
    require_platform_admin(ctx)
    async with ctx.platform.db.read(CONTROL) as conn:
        row = (
            (await conn.execute(select(tenants).where(tenants.c.name == params.name)))
            .mappings()
            .first()
        )
    if row is None:
        raise NotFoundError(f"tenant {params.name!r} does not exist", details={"field": "name"})
    return Tenant(name=row["name"], display_name=row["display_name"], created_at=row["created_at"])


@operation("tenants.list", scope="tenants:admin", read_only=True)
async def list_tenants(ctx: Context, params: Empty) -> list[Tenant]:
    """Every tenant, by name."""
    require_platform_admin(ctx)
    async with ctx.platform.db.read(CONTROL) as conn:
        rows = (await conn.execute(select(tenants).order_by(tenants.c.name))).mappings().all()
    return [
        Tenant(name=r["name"], display_name=r["display_name"], created_at=r["created_at"])
        for r in rows
    ]


@operation("tenants.set_kv_ttl_bounds", scope="tenants:admin")
async def set_kv_ttl_bounds(ctx: Context, params: KVTtlBoundsRequest) -> KVTtlBounds:
    """Bound the ttl of the tenant's KV keys (None: the server's own bounds apply)."""
    require_platform_admin(ctx)
    low, high = params.min_ttl, params.max_ttl
    if low is not None and high is not None and low > high:
        raise ValidationError("min_ttl is above max_ttl", details={"field": "min_ttl"})
    await get(ctx, TenantRef(name=params.name))  # NotFoundError for an unknown tenant
    async with ctx.platform.db.write(CONTROL) as conn:
        await conn.execute(delete(tenant_kv_bounds).where(tenant_kv_bounds.c.tenant == params.name))
        if low is not None or high is not None:
            await conn.execute(
                tenant_kv_bounds.insert().values(tenant=params.name, min_ttl=low, max_ttl=high)
            )
    ctx.platform.kv_ttl_bounds.clear()
    await ctx.platform.bus.publish(TENANT_SETTINGS, b"")
    return KVTtlBounds(name=params.name, min_ttl=low, max_ttl=high)


async def kv_ttl_bounds(platform: Platform, tenant: str) -> tuple[int | None, int | None]:
    """The tenant's KV ttl bounds, else the server's (cached for a few seconds)."""
    cached = platform.kv_ttl_bounds.get(tenant)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    async with platform.db.read(CONTROL) as conn:
        row = (
            await conn.execute(select(tenant_kv_bounds).where(tenant_kv_bounds.c.tenant == tenant))
        ).first()
    settings = platform.settings
    bounds = (
        (settings.kv_min_ttl, settings.kv_max_ttl) if row is None else (row.min_ttl, row.max_ttl)
    )
    platform.kv_ttl_bounds[tenant] = (time.monotonic() + _BOUNDS_CACHE_SECONDS, bounds)
    return bounds


@operation("tenants.delete", scope="tenants:admin")
async def delete_tenant(ctx: Context, params: TenantRef) -> Done:
    """Delete a tenant and everything in it. The default tenant cannot be deleted."""
    require_platform_admin(ctx)
    if params.name == DEFAULT_TENANT:
        raise ValidationError("the default tenant cannot be deleted", details={"field": "name"})
    if not await forget(ctx.platform, params.name):
        raise NotFoundError(f"tenant {params.name!r} does not exist", details={"field": "name"})
    return Done(count=1)


async def forget(platform: Platform, name: str) -> bool:
    """Remove a tenant and all its data; returns whether it existed."""
    async with platform.db.write(CONTROL) as conn:
        result = await conn.execute(delete(tenants).where(tenants.c.name == name))
    platform.known_tenants.pop(name, None)
    platform.schemas.pop(name, None)
    await platform.forget_principals()
    await platform.db.drop_namespace(name)
    return bool(result.rowcount)
