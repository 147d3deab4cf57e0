"""Managing a tenant's users and who holds which role (admins); the roles themselves are
`roles.*` (services/roles.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, func, or_, select

from roost.backends.sql.tables import roles, sessions, user_roles, users
from roost.errors import ConflictError, NotFoundError, ValidationError
from roost.services import accounts
from roost.services.auth import memberships
from roost.services.context import Context, Platform
from roost.services.registry import operation
from roost.services.roles import no_role
from roost.wire.auth import (
    CreateUserRequest,
    Invitation,
    InviteMemberRequest,
    ListUsersRequest,
    MemberRef,
    Membership,
    RoleAssignment,
    UpdateUserRequest,
    User,
    UserPage,
    UserRef,
)
from roost.wire.codec import build
from roost.wire.common import Done

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


@operation("users.create_user", scope="users:write")
async def create_user(ctx: Context, params: CreateUserRequest) -> User:
    """Create a user with the given roles (`member` when none are given; only roles whose
    scopes you hold yourself)."""
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
        await _check_grantable(ctx, conn, params.roles)
        row = await accounts.create_user(
            conn, ctx.platform.passwords, params, role_names=params.roles or ["member"], flags=flags
        )
        return await accounts.to_user(conn, row, ctx.now())


@operation("users.get_user", scope="users:read", read_only=True)
async def get_user(ctx: Context, params: UserRef) -> User:
    """One user by username or by id."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        user = await accounts.find_user(conn, params)
        return await accounts.to_user(conn, user, ctx.now())


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
        now = ctx.now()
        items = [await accounts.to_user(conn, row, now) for row in rows]
    return UserPage(items=items, total=total, page=params.page, page_size=params.page_size)


@operation("users.delete_user", scope="users:write", revokes=True)
async def delete_user(ctx: Context, params: UserRef) -> Done:
    """Delete a user with their sessions and API keys (only a user whose scopes you hold)."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        row = await accounts.find_target(ctx.require_principal(), conn, params, ctx.now())
        await conn.execute(delete(users).where(users.c.id == row["id"]))
    await memberships.forget_account(ctx.platform, ctx.tenant, row["id"])
    await ctx.platform.forget_principals()
    return Done(count=1)


@operation("users.update_user", scope="users:write", revokes=True)
async def update_user(ctx: Context, params: UpdateUserRequest) -> User:
    """Change a user's fields; what is left out stays. A new email must be verified again; a
    new password or a deactivation signs the user out everywhere. Only for a user whose
    scopes you hold yourself."""
    changes = {
        name: getattr(params, name)
        for name in ("email", "first_name", "last_name", "is_active", "is_staff")
        if getattr(params, name) is not None
    }
    if params.password is not None:
        changes["password_hash"] = await ctx.platform.passwords.hash(params.password)
    if not changes:
        raise ValidationError(
            "nothing to update: send email, first_name, last_name, is_active, is_staff or password",
            details={"field": "username"},
        )
    async with ctx.platform.db.write(ctx.tenant) as conn:
        now = ctx.now()
        row = await accounts.find_target(ctx.require_principal(), conn, params, now)
        if params.email is not None and accounts.email_key(params.email) != accounts.email_key(
            row["email"]
        ):
            accounts.check_email(params.email)
            if params.email and await accounts.email_taken(conn, params.email):
                raise ConflictError(
                    f"email {params.email!r} belongs to another user", details={"field": "email"}
                )
            changes["email_verified_at"] = None
        await conn.execute(users.update().where(users.c.id == row["id"]).values(**changes))
        if params.password is not None or params.is_active is False:
            await accounts.revoke_sessions(conn, sessions.c.user_id == row["id"], now)
        updated = await accounts.to_user(
            conn, await accounts.find_by_username(conn, row["username"]), now
        )
    if params.password is not None or params.is_active is False:
        await accounts.sign_out_member_accounts(ctx.platform, ctx.tenant, row["id"], now)
    await ctx.platform.forget_principals()
    return updated


@operation("users.assign_roles", scope="users:write", revokes=True)
async def assign_roles(ctx: Context, params: RoleAssignment) -> Done:
    """Give roles to users, until `expires_at` if given (again: the new expiry replaces the
    old). You may only give roles whose scopes you hold yourself, to users whose scopes you
    hold."""
    if params.expires_at is not None and (
        params.expires_at.tzinfo is None or params.expires_at <= ctx.now()
    ):
        raise ValidationError(
            "expires_at must be a future time with a time zone", details={"field": "expires_at"}
        )
    async with ctx.platform.db.write(ctx.tenant) as conn:
        if missing := sorted(set(params.roles) - await _check_grantable(ctx, conn, params.roles)):
            raise no_role(missing[0])
        user_ids = await _target_ids(ctx, conn, params.usernames)
        await conn.execute(
            delete(user_roles).where(
                user_roles.c.user_id.in_(user_ids), user_roles.c.role.in_(params.roles)
            )
        )
        await conn.execute(
            user_roles.insert(),
            [
                {"user_id": user_id, "role": role, "expires_at": params.expires_at}
                for user_id in user_ids
                for role in params.roles
            ],
        )
    await ctx.platform.forget_principals()
    return Done(count=len(user_ids) * len(params.roles))


@operation("users.revoke_roles", scope="users:write", revokes=True)
async def revoke_roles(ctx: Context, params: RoleAssignment) -> Done:
    """Take roles from users (only users whose scopes you hold); returns how many
    assignments there were."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        user_ids = await _target_ids(ctx, conn, params.usernames)
        result = await conn.execute(
            delete(user_roles).where(
                user_roles.c.user_id.in_(user_ids), user_roles.c.role.in_(params.roles)
            )
        )
    await ctx.platform.forget_principals()
    return Done(count=result.rowcount)


@operation("users.invite_member", scope="users:write")
async def invite_member(ctx: Context, params: InviteMemberRequest) -> Invitation:
    """Offer an account of this tenant to a person signed in at home in another tenant: the
    code (it works once, until `expires_in` seconds) is for them to accept with
    `auth.accept_invitation`; they then switch here as that account with
    `auth.switch_tenant`. Only for an account whose scopes you hold."""
    return await memberships.invite(ctx, params)


@operation("users.remove_membership", scope="users:write", revokes=True)
async def remove_membership(ctx: Context, params: MemberRef) -> Done:
    """End the memberships of an account of this tenant: its link to a person's home
    elsewhere, or (for a home account) every link it has. The member accounts are signed out.
    Only for an account whose scopes you hold; `count` is how many links there were."""
    return await memberships.remove(ctx, params)


@operation("users.memberships", read_only=True)
async def list_memberships(ctx: Context, params: MemberRef) -> list[Membership]:
    """The tenants where the person with this account works: their home and memberships,
    home first. For the account itself, or a holder of `users:read` (who sees usernames and
    roles of this tenant only)."""
    return await memberships.list_of(ctx, params)


async def _check_grantable(ctx: Context, conn: AsyncConnection, names: list[str]) -> set[str]:
    """The roles of `names` that exist, once the caller is known to hold all their scopes."""
    rows = (await conn.execute(select(roles).where(roles.c.name.in_(names)))).mappings().all()
    ctx.require_held([scope for row in rows for scope in row["scopes"]])
    return {row["name"] for row in rows}


async def _target_ids(ctx: Context, conn: AsyncConnection, usernames: list[str]) -> list[str]:
    actor, now = ctx.require_principal(), ctx.now()
    return [
        (await accounts.find_target(actor, conn, UserRef(username=name), now))["id"]
        for name in usernames
    ]


async def ensure_admin(
    platform: Platform, username: str, email: str, password: str, tenant: str = "default"
) -> bool:
    """Create a superuser unless the username exists (first start, `roost admin create-user`).

    Returns whether a user was created.
    """
    request = build(CreateUserRequest, username=username, email=email, password=password)
    # at each start with ROOST_ADMIN_PASSWORD the admin exists: a read through `run` (SQLite:
    # its sync engine) finds it without the async engine, whose import waits for first use
    taken = accounts.by_username(username)
    if await platform.db.run(tenant, lambda conn: conn.execute(taken).first() is not None):
        return False
    async with platform.db.write(tenant) as conn:
        try:
            await accounts.find_by_username(conn, username)
            return False
        except NotFoundError:
            pass
        await accounts.create_user(
            conn,
            platform.passwords,
            request,
            role_names=["admin"],
            flags={"is_staff": True, "is_superuser": True},
        )
    return True
