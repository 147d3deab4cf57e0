"""Managing a tenant's users and roles (admins)."""

from __future__ import annotations

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from roost.backends.sql.tables import roles, users
from roost.errors import ConflictError, NotFoundError, ValidationError
from roost.services import accounts
from roost.services.context import Context, Platform
from roost.services.registry import operation
from roost.wire.auth import (
    CreateRoleRequest,
    CreateUserRequest,
    Done,
    ListUsersRequest,
    Role,
    User,
    UserPage,
    UserRef,
)
from roost.wire.codec import build
from roost.wire.common import Empty


@operation("users.create_user", scope="users:write")
async def create_user(ctx: Context, params: CreateUserRequest) -> User:
    """Create a user with the given roles (`member` when none are given)."""
    flags = {
        "is_active": params.is_active,
        "is_staff": params.is_staff,
        "is_superuser": params.is_superuser,
    }
    if params.is_superuser and not ctx.require_principal().allows("*"):
        raise ValidationError(
            "only a superuser may create a superuser", details={"field": "is_superuser"}
        )
    async with ctx.platform.db.write(ctx.tenant) as conn:
        row = await accounts.create_user(
            conn, params, role_names=params.roles or ["member"], flags=flags
        )
        return await accounts.to_user(conn, row)


@operation("users.get_user", scope="users:read", read_only=True)
async def get_user(ctx: Context, params: UserRef) -> User:
    """One user by username."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        return await accounts.to_user(conn, await accounts.find_by_username(conn, params.username))


@operation("users.list_users", scope="users:read", read_only=True)
async def list_users(ctx: Context, params: ListUsersRequest) -> UserPage:
    """Users by username, filtered by a search text and the active flag, a page at a time."""
    where = []
    if params.search:
        pattern = f"%{params.search.lower()}%"
        where.append(
            or_(func.lower(users.c.username).like(pattern), func.lower(users.c.email).like(pattern))
        )
    if params.is_active is not None:
        where.append(users.c.is_active == params.is_active)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        total = (
            await conn.execute(select(func.count()).select_from(users).where(*where))
        ).scalar_one()
        rows = (
            (
                await conn.execute(
                    select(users)
                    .where(*where)
                    .order_by(users.c.username)
                    .limit(params.page_size)
                    .offset((params.page - 1) * params.page_size)
                )
            )
            .mappings()
            .all()
        )
        items = [await accounts.to_user(conn, row) for row in rows]
    return UserPage(items=items, total=total, page=params.page, page_size=params.page_size)


@operation("users.delete_user", scope="users:write")
async def delete_user(ctx: Context, params: UserRef) -> Done:
    """Delete a user with their sessions and API keys."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        row = await accounts.find_by_username(conn, params.username)
        await conn.execute(delete(users).where(users.c.id == row["id"]))
    await ctx.platform.forget_principals()
    return Done(count=1)


@operation("roles.create", scope="roles:write")
async def create_role(ctx: Context, params: CreateRoleRequest) -> Role:
    """Create a role that carries scopes."""
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
    return [
        Role(name=r["name"], scopes=r["scopes"], description=r["description"], builtin=r["builtin"])
        for r in rows
    ]


async def ensure_admin(
    platform: Platform, username: str, email: str, password: str, tenant: str = "default"
) -> bool:
    """Create a superuser unless the username exists (first start, `roost admin create-user`).

    Returns whether a user was created.
    """
    request = build(CreateUserRequest, username=username, email=email, password=password)
    async with platform.db.write(tenant) as conn:
        try:
            await accounts.find_by_username(conn, username)
            return False
        except NotFoundError:
            pass
        await accounts.create_user(
            conn, request, role_names=["admin"], flags={"is_staff": True, "is_superuser": True}
        )
    return True
