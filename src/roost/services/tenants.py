"""Tenants: the isolation units. Each has its own database (file or schema) and users.

Tenants are managed by the platform admins: users of the `default` tenant with the scope
`tenants:admin`. A tenant's admins (even superusers) cannot create or see other tenants.

Deleting a tenant leaves nothing behind. In one transaction its row goes and a purge record
(`roost_tenant_purges`) comes; then every backend drops what lives under the tenant's prefix
(KV keys, locks and idempotency records, queues, stream rooms, files) and its database, and
the record goes last. A purge that a stop or a failing backend interrupted is finished at the
next start, or by the next create of the name before anything else: a new tenant never sees
the old one's data. Create and delete of one name take a lock (in the KV store, so across
replicas) and answer 409 to each other.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from sqlalchemy import Column, delete, or_, select
from sqlalchemy.exc import IntegrityError

from roost.backends.sql import CONTROL
from roost.backends.sql.migrations import migrate
from roost.backends.sql.tables import (
    membership_invites,
    memberships,
    tenant_categories,
    tenant_kv_bounds,
    tenant_purges,
    tenants,
)
from roost.errors import AuthorizationError, ConflictError, NotFoundError, ValidationError
from roost.services.caching import TenantCache
from roost.services.context import TENANT_SETTINGS, Context, Platform
from roost.services.functions.specs import remove_code
from roost.services.registry import operation
from roost.services.tabledefs import check_identifier, check_tables
from roost.wire.auth import CreateTenantRequest, KVTtlBounds, KVTtlBoundsRequest, Tenant, TenantRef
from roost.wire.common import Done, Empty
from roost.wire.database import Category, CategorySpec

logger = logging.getLogger("roost.tenants")

DEFAULT_TENANT = "default"
_KNOWN = TenantCache[bool]("tenants.known", ttl=5.0)
_KV_TTL_BOUNDS = TenantCache[tuple[int | None, int | None]]("tenants.kv_ttl_bounds", ttl=5.0)
_LOCK = "$tenant:"  # KV lock names of tenants start with the tenant name, never with "$"
_LOCK_SECONDS = 600  # longer than any create or purge; frees the name if its holder died


async def ensure_exists(platform: Platform, name: str) -> None:
    """Raise NotFoundError unless the tenant exists (answers from memory for a few seconds)."""
    known = _KNOWN.of(platform)
    if known.get(name):
        return
    if not await _has_name(platform, tenants.c.name, name):
        known.pop(name)
        raise NotFoundError(f"tenant {name!r} does not exist", details={"field": "tenant"})
    known.put(name, True)


@asynccontextmanager
async def exclusive(platform: Platform, name: str, field: str = "name") -> AsyncIterator[None]:
    """Hold the name while a tenant is created or deleted: a create and a delete of the same
    name at once would migrate and drop one database together. ConflictError if taken."""
    token = secrets.token_hex(16)
    if not await platform.kv.acquire(_LOCK + name, token, _LOCK_SECONDS):
        raise ConflictError(
            f"tenant {name!r} is being created or deleted; try again", details={"field": field}
        )
    try:
        yield
    finally:
        await platform.kv.release(_LOCK + name, token)


async def provision(platform: Platform, name: str, display_name: str = "") -> bool:
    """Create a tenant and its tables, or bring an existing one's tables up to date; call it
    under `exclusive(name)`. A purge of an earlier tenant of that name left unfinished is
    finished first. Returns whether the tenant was new."""
    if await _purge_pending(platform, name):
        await purge(platform, name)
    await migrate(platform.db, name)
    await platform.db.confined.prepare(name)  # PostgreSQL: the role its analytics run as
    if await _has_name(platform, tenants.c.name, name):  # each start: the default tenant
        return False
    # through `run`, as `_has_name`: on SQLite the first start then needs no async engine
    # (and no import of SQLAlchemy's asyncio extension and ORM) before it answers
    insert = tenants.insert().values(name=name, display_name=display_name)
    try:
        await platform.db.run(CONTROL, lambda conn: conn.execute(insert), write=True)
    except IntegrityError:
        return False
    return True


async def migrate_all(platform: Platform) -> None:
    """At start: the control plane, unfinished purges, the default tenant, then every other."""
    await migrate(platform.db, CONTROL)
    await finish_purges(platform)
    await provision(platform, DEFAULT_TENANT, "Default")
    for name in await _names_in(platform, tenants.c.name):
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
    async with exclusive(ctx.platform, params.name):
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
    ctx.platform.forget_cached(params.name)
    await ctx.platform.bus.publish(TENANT_SETTINGS, params.name.encode())
    return KVTtlBounds(name=params.name, min_ttl=low, max_ttl=high)


async def kv_ttl_bounds(platform: Platform, tenant: str) -> tuple[int | None, int | None]:
    """The tenant's KV ttl bounds, else the server's (cached for a few seconds)."""

    async def load() -> tuple[int | None, int | None]:
        async with platform.db.read(CONTROL) as conn:
            row = (
                await conn.execute(
                    select(tenant_kv_bounds).where(tenant_kv_bounds.c.tenant == tenant)
                )
            ).first()
        settings = platform.settings
        if row is None:
            return settings.kv_min_ttl, settings.kv_max_ttl
        return row.min_ttl, row.max_ttl

    return await _KV_TTL_BOUNDS.of(platform).get_or_load(tenant, load)


@operation("tenants.delete", scope="tenants:admin", revokes=True)
async def delete_tenant(ctx: Context, params: TenantRef) -> Done:
    """Delete a tenant and everything in it. The default tenant cannot be deleted."""
    require_platform_admin(ctx)
    if params.name == DEFAULT_TENANT:
        raise ValidationError("the default tenant cannot be deleted", details={"field": "name"})
    async with exclusive(ctx.platform, params.name):
        if not await forget(ctx.platform, params.name):
            raise NotFoundError(f"tenant {params.name!r} does not exist", details={"field": "name"})
    return Done(count=1)


async def forget(platform: Platform, name: str) -> bool:
    """Remove a tenant and all its data (under `exclusive(name)`); returns whether it existed.
    Nothing is touched for a tenant that does not exist: it may be one being created."""
    async with platform.db.write(CONTROL) as conn:
        result = await conn.execute(delete(tenants).where(tenants.c.name == name))
        if not result.rowcount:
            return False
        await conn.execute(delete(tenant_kv_bounds).where(tenant_kv_bounds.c.tenant == name))
        # people's links to or from it (services/auth/memberships.py), its invitations
        await conn.execute(
            delete(memberships).where(
                or_(memberships.c.tenant == name, memberships.c.home_tenant == name)
            )
        )
        await conn.execute(delete(membership_invites).where(membership_invites.c.tenant == name))
        await conn.execute(delete(tenant_purges).where(tenant_purges.c.name == name))
        await conn.execute(tenant_purges.insert().values(name=name))
    await platform.forget_tenant(name)
    await purge(platform, name)
    return True


async def purge(platform: Platform, name: str) -> None:
    """Remove what the deleted tenant `name` owned on every backend, then its purge record.
    Every step is a no-op once done, so an interrupted purge simply runs again."""
    from roost.server.idempotency import slot_prefix  # the server names those KV keys
    from roost.services.policystore import stamp_key

    await platform.kv.delete_prefix(f"{name}:")
    await platform.kv.delete_prefix(slot_prefix(name))
    # a tenant made again under the name must not match an engine compiled for this one
    await platform.kv.delete([stamp_key(name)])
    await platform.queues.delete_prefix(f"{name}:")
    await platform.streams.delete_prefix(f"{name}:")
    await platform.blobs.delete_prefix(f"{name}/")
    await remove_code(platform.settings, name)
    await platform.db.drop_namespace(name)
    async with platform.db.write(CONTROL) as conn:
        await conn.execute(delete(tenant_purges).where(tenant_purges.c.name == name))


async def finish_purges(platform: Platform) -> None:
    """At start: finish the purges that a stop interrupted (those another replica is doing
    now hold their name's lock and are left to it)."""
    for name in await _names_in(platform, tenant_purges.c.name):
        try:
            async with exclusive(platform, name):
                if await _purge_pending(platform, name):
                    logger.info("finishing the purge of deleted tenant %r", name)
                    await purge(platform, name)
        except ConflictError:
            continue
        except Exception:  # a backend away: the record stays for the next start or create
            logger.exception("the purge of deleted tenant %r could not be finished", name)


async def _names_in(platform: Platform, column: Column[str]) -> list[str]:
    """Every name in a control-plane table's column. Through `run` (SQLite: its sync engine),
    not `read`: start-up then opens no async engine, whose import is deferred to first use."""
    return await platform.db.run(CONTROL, lambda conn: list(conn.execute(select(column)).scalars()))


async def _purge_pending(platform: Platform, name: str) -> bool:
    return await _has_name(platform, tenant_purges.c.name, name)


async def _has_name(platform: Platform, column: Column[str], name: str) -> bool:
    """Whether a control-plane table's column holds `name` (through `run`, as `_names_in`)."""
    query = select(column).where(column == name)
    return await platform.db.run(CONTROL, lambda conn: conn.execute(query).first() is not None)


@operation("tenants.create_category", scope="tenants:admin")
async def create_category(ctx: Context, params: CategorySpec) -> Category:
    """Save a template of tables (each like schema.add_table) that new tenants can start with."""
    require_platform_admin(ctx)
    name = check_identifier(params.name, "name")
    check_tables(params.tables)
    try:
        async with ctx.platform.db.write(CONTROL) as conn:
            await conn.execute(
                tenant_categories.insert().values(
                    name=name,
                    description=params.description,
                    tables=msgspec.to_builtins(params.tables),
                )
            )
    except IntegrityError:
        raise ConflictError(f"category {name!r} exists", details={"field": "name"}) from None
    return Category(
        name=name, description=params.description, tables=[t.name for t in params.tables]
    )


@operation("tenants.categories", scope="tenants:admin", read_only=True)
async def categories(ctx: Context, params: Empty) -> list[Category]:
    """Every category."""
    require_platform_admin(ctx)
    async with ctx.platform.db.read(CONTROL) as conn:
        rows = (
            (await conn.execute(select(tenant_categories).order_by(tenant_categories.c.name)))
            .mappings()
            .all()
        )
    return [
        Category(
            name=r["name"], description=r["description"], tables=[t["name"] for t in r["tables"]]
        )
        for r in rows
    ]
