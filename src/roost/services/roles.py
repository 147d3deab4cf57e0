"""A tenant's roles: named sets of scopes (admins). Who holds which role is `users.*`
(services/users.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from roost.backends.sql.tables import roles, user_roles
from roost.errors import AuthorizationError, ConflictError, NotFoundError
from roost.services import accounts
from roost.services.context import Context
from roost.services.registry import operation
from roost.wire.auth import CreateRoleRequest, Role, RoleRef, UpdateRoleRequest
from roost.wire.common import Done, Empty

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


@operation("roles.create", scope="roles:write")
async def create_role(ctx: Context, params: CreateRoleRequest) -> Role:
    """Create a role that carries scopes (only scopes you hold yourself)."""
    ctx.require_held(params.scopes)
    async with ctx.platform.db.write(ctx.tenant) as conn:
        try:
            await conn.execute(
                roles.insert().values(
                    name=params.name,
                    scopes=sorted(set(params.scopes)),
                    description=params.description,
                    builtin=False,
                )
            )
        except IntegrityError:
            raise ConflictError(f"role {params.name!r} exists", details={"field": "name"}) from None
    return Role(
        name=params.name,
        scopes=sorted(set(params.scopes)),
        description=params.description,
        builtin=False,
    )


@operation("roles.list", scope="roles:read", read_only=True)
async def list_roles(ctx: Context, params: Empty) -> list[Role]:
    """Every role of the tenant."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(select(roles).order_by(roles.c.name))).mappings().all()
    return [_role(row) for row in rows]


@operation("roles.update", scope="roles:write", revokes=True)
async def update_role(ctx: Context, params: UpdateRoleRequest) -> Role:
    """Change a role's scopes or description; its users have the new scopes at once. The
    built-in `admin` role cannot change, and the scopes of a role change only if none of its
    holders holds a scope you lack (changing their role acts on them)."""
    if params.name == "admin":
        raise AuthorizationError("the built-in admin role cannot change", details={"field": "name"})
    if params.scopes is not None:
        ctx.require_held(params.scopes)
    changes = {
        name: getattr(params, name)
        for name in ("scopes", "description")
        if getattr(params, name) is not None
    }
    if "scopes" in changes:
        changes["scopes"] = sorted(set(changes["scopes"]))
    async with ctx.platform.db.write(ctx.tenant) as conn:
        if "scopes" in changes:
            await accounts.ensure_may_act_on_holders(
                ctx.require_principal(), conn, params.name, ctx.now()
            )
        if changes:
            await conn.execute(roles.update().where(roles.c.name == params.name).values(**changes))
        row = await _find_role(conn, params.name)
    if row is None:
        raise no_role(params.name)
    await ctx.platform.forget_principals()
    return _role(row)


@operation("roles.delete", scope="roles:write", revokes=True)
async def delete_role(ctx: Context, params: RoleRef) -> Done:
    """Delete a role; its users lose it. Built-in roles cannot be deleted, nor a role one of
    whose holders holds a scope you lack (deleting it acts on them)."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        row = await _find_role(conn, params.name)
        if row is None:
            raise no_role(params.name)
        if row["builtin"]:
            raise AuthorizationError(
                f"the built-in role {params.name!r} cannot be deleted", details={"field": "name"}
            )
        await accounts.ensure_may_act_on_holders(
            ctx.require_principal(), conn, params.name, ctx.now()
        )
        await conn.execute(delete(user_roles).where(user_roles.c.role == params.name))
        await conn.execute(delete(roles).where(roles.c.name == params.name))
    await ctx.platform.forget_principals()
    return Done(count=1)


async def _find_role(conn: AsyncConnection, name: str) -> RowMapping | None:
    return (await conn.execute(select(roles).where(roles.c.name == name))).mappings().first()


def no_role(name: str) -> NotFoundError:
    """The error for a role that does not exist."""
    return NotFoundError(f"no role {name!r}", details={"field": "roles", "role": name})


def _role(row: RowMapping) -> Role:
    return Role(
        name=row["name"],
        scopes=row["scopes"],
        description=row["description"],
        builtin=row["builtin"],
    )
