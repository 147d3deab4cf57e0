"""One person across tenants: a home account and member accounts in other tenants.

A person signs in with their **home** account, in one tenant. A **membership** links an
account of another tenant to that home (`roost_memberships`, in the control plane), with
that account's own roles there. `auth.switch_tenant` trades a session of the home account
for a session of the member account, without a password: the person works in the other
tenant as that tenant's account, within its roles.

Who decides:
- A tenant's admin offers one of its accounts (`users.invite_member`: scope `users:write`,
  on an account whose scopes they hold); only the tenant itself can let anyone in.
- The person takes the offer signed in at home (`auth.accept_invitation`): nobody can attach
  an account to someone else's home. The code works once, and is kept hashed.
- Switching starts from the home account only. A member account's session (which that
  tenant's admins could obtain by resetting its password) cannot switch anywhere, so one
  tenant's admins never reach another tenant through a person's memberships. What a
  membership does trust is the home tenant: whoever can sign in as the home account enters
  every tenant that accepted it.
- Either side can end it: the member tenant's admin or the home's (`users.remove_membership`),
  or the person (`auth.leave_tenant`). The member account is then signed out everywhere.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from roost.backends.sql import CONTROL
from roost.backends.sql.tables import membership_invites, memberships, sessions, tenants, users
from roost.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from roost.services import accounts
from roost.services.auth import challenges, events
from roost.services.auth.sessions import open_session
from roost.services.context import Context, Platform
from roost.services.registry import operation
from roost.services.security import OpaqueToken, make_opaque, new_id, parse_opaque, same_hash
from roost.wire.auth import (
    AcceptInvitationRequest,
    Invitation,
    InviteMemberRequest,
    LeaveTenantRequest,
    MemberRef,
    Membership,
    SwitchTenantRequest,
    TokenPair,
    UserRef,
)
from roost.wire.common import Done

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_NOT_A_MEMBER = "not_a_member"


@operation("auth.switch_tenant", revokes=True)
async def switch_tenant(ctx: Context, params: SwitchTenantRequest) -> TokenPair:
    """A session in another tenant for the caller's member account there, without signing in
    again. Only the home account switches; a member account whose tenant requires a second
    factor (or which has one) gets SecondFactorRequired with a challenge of that tenant."""
    principal = ctx.require_user()
    if params.tenant == ctx.tenant:
        raise ValidationError(
            f"you are in tenant {params.tenant!r} already", details={"field": "tenant"}
        )
    async with ctx.platform.db.read(CONTROL) as conn:
        link = (
            await conn.execute(
                select(memberships.c.user_id).where(
                    memberships.c.home_tenant == ctx.tenant,
                    memberships.c.home_user_id == principal.user_id,
                    memberships.c.tenant == params.tenant,
                )
            )
        ).first()
    if link is None:
        raise _no_membership(params.tenant)
    there = msgspec.structs.replace(
        ctx,
        tenant=params.tenant,
        principal=None,
        user_agent=f"{ctx.user_agent[:300]} (switched from tenant {ctx.tenant})",
    )
    async with ctx.platform.db.read(params.tenant) as conn:
        user = await accounts.find_by_id(conn, link.user_id)
    if user is None or not user["is_active"]:
        raise AuthorizationError(
            f"your account in tenant {params.tenant!r} is disabled",
            code=_NOT_A_MEMBER,
            details={"field": "tenant"},
        )
    await challenges.pass_gate(there, user, session_token=params.session_token, via="switch_tenant")
    async with ctx.platform.db.write(params.tenant) as conn:
        await conn.execute(
            users.update().where(users.c.id == user["id"]).values(last_login=ctx.now())
        )
        pair = await open_session(there, conn, user["id"], with_session_token=params.session_token)
    # A removal that ran between the link's read above and this session's commit signed the
    # account out before the session existed: read the link again now that it is committed,
    # and if it went, sign the account out as the removal meant to (the removal's own sign-out
    # comes after its delete, so a link still here means that sign-out will see this session).
    async with ctx.platform.db.read(CONTROL) as conn:
        still = await conn.scalar(
            select(memberships.c.user_id).where(
                memberships.c.tenant == params.tenant,
                memberships.c.user_id == user["id"],
                memberships.c.home_tenant == ctx.tenant,
                memberships.c.home_user_id == principal.user_id,
            )
        )
    if still is None:
        async with ctx.platform.db.write(params.tenant) as conn:
            await accounts.revoke_sessions(conn, sessions.c.user_id == user["id"], ctx.now())
        await ctx.platform.forget_principals()
        raise _no_membership(params.tenant)
    await events.record(there, "tenant_switched_in", user["username"], home=ctx.tenant)
    return pair


@operation("auth.accept_invitation")
async def accept_invitation(ctx: Context, params: AcceptInvitationRequest) -> Membership:
    """Take an invitation of another tenant's admin, signed in with your home account: that
    tenant's account becomes yours to switch to. The code works once."""
    principal = ctx.require_user()
    code = _parse_code(params.code)
    if code.tenant == ctx.tenant:
        raise ValidationError(
            "this invitation is for an account of your own tenant; sign in with it instead",
            code="invalid_invitation",
            details={"field": "code"},
        )
    now = ctx.now()
    try:
        async with ctx.platform.db.write(CONTROL) as conn:
            invite = await _live_invite(conn, code.id, code.hash, code.tenant, now)
            await _check_free_home(conn, ctx.tenant, principal.user_id, invite["tenant"])
            await _check_free_account(conn, invite["tenant"], invite["user_id"])
            spent = await conn.execute(
                delete(membership_invites).where(membership_invites.c.id == invite["id"])
            )
            if spent.rowcount != 1:  # a concurrent accept took it first
                raise _invalid_invitation("this invitation was used already")
            await conn.execute(
                memberships.insert().values(
                    tenant=invite["tenant"],
                    user_id=invite["user_id"],
                    home_tenant=ctx.tenant,
                    home_user_id=principal.user_id,
                )
            )
    except IntegrityError:
        raise ConflictError(
            "that account, or your account in that tenant, is linked already",
            details={"field": "code"},
        ) from None
    await _undo_if_chained(ctx, principal.user_id, invite["tenant"], invite["user_id"])
    there = msgspec.structs.replace(ctx, tenant=invite["tenant"], principal=None)
    async with ctx.platform.db.read(invite["tenant"]) as conn:
        member = await accounts.find_by_id(conn, invite["user_id"])
        roles = (await accounts.roles_and_scopes(conn, member, now))[0] if member else []
    username = member["username"] if member is not None else ""
    await events.record(there, "membership_accepted", username, home=ctx.tenant)
    return Membership(
        tenant=invite["tenant"],
        display_name=await _display_name(ctx.platform, invite["tenant"]),
        home=False,
        username=username,
        roles=roles,
    )


@operation("auth.leave_tenant", revokes=True)
async def leave_tenant(ctx: Context, params: LeaveTenantRequest) -> Done:
    """Give up your membership in another tenant (from your home account); its account there
    is signed out everywhere."""
    principal = ctx.require_user()
    where = (
        (memberships.c.home_tenant == ctx.tenant)
        & (memberships.c.home_user_id == principal.user_id)
        & (memberships.c.tenant == params.tenant)
    )
    if not await unlink(ctx.platform, where, ctx.now()):
        raise NotFoundError(
            f"you have no membership in tenant {params.tenant!r}", details={"field": "tenant"}
        )
    return Done(count=1)


# -- what users.* calls (services/users.py) -----------------------------------------------------


async def invite(ctx: Context, params: InviteMemberRequest) -> Invitation:
    """An invitation code for the account `params.username` of the caller's tenant (checked
    by the caller: scope `users:write`)."""
    now = ctx.now()
    async with ctx.platform.db.read(ctx.tenant) as conn:
        target = await accounts.find_target(
            ctx.require_principal(), conn, UserRef(username=params.username), now
        )
    row_id = new_id()
    code = make_opaque("rmi", ctx.tenant, row_id)
    expires_at = now + timedelta(seconds=params.expires_in)
    async with ctx.platform.db.write(CONTROL) as conn:
        await _check_free_account(conn, ctx.tenant, target["id"])
        await conn.execute(  # housekeeping: the tenant's invitations nobody took in time
            delete(membership_invites).where(
                membership_invites.c.tenant == ctx.tenant, membership_invites.c.expires_at <= now
            )
        )
        await conn.execute(
            membership_invites.insert().values(
                id=row_id,
                token_hash=code.hash,
                tenant=ctx.tenant,
                user_id=target["id"],
                created_by=ctx.require_principal().username[:150],
                expires_at=expires_at,
            )
        )
    await events.record(
        ctx, "membership_offered", target["username"], by=ctx.require_principal().username
    )
    return Invitation(
        code=code.token, tenant=ctx.tenant, username=target["username"], expires_at=expires_at
    )


async def remove(ctx: Context, params: MemberRef) -> Done:
    """End the memberships of the account `params.username` (checked by the caller: scope
    `users:write`): as a member account, its link to its home; as a home, every link it has.
    Its open invitations go too. Returns how many links there were."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        target = await accounts.find_target(
            ctx.require_principal(), conn, UserRef(username=params.username), ctx.now()
        )
    count = await unlink(ctx.platform, _links_of(ctx.tenant, target["id"]), ctx.now())
    async with ctx.platform.db.write(CONTROL) as conn:
        await conn.execute(
            delete(membership_invites).where(
                membership_invites.c.tenant == ctx.tenant,
                membership_invites.c.user_id == target["id"],
            )
        )
    return Done(count=count)


async def list_of(ctx: Context, params: MemberRef) -> list[Membership]:
    """The tenants of the person whose account in the caller's tenant is `params.username`,
    home first. The caller is that account, or holds `users:read`. Usernames and roles show
    for the caller's own tenant, and for every tenant to the home account itself."""
    principal = ctx.require_principal()
    is_self = principal.kind == "user" and principal.username.lower() == params.username.lower()
    if not is_self and not principal.allows("users:read"):
        raise AuthorizationError(
            "only the person themself, or a holder of users:read, lists their tenants",
            code="missing_scope",
            details={"field": "username", "scopes": ["users:read"]},
        )
    now = ctx.now()
    async with ctx.platform.db.read(ctx.tenant) as conn:
        account = await accounts.find_by_username(conn, params.username)
    async with ctx.platform.db.read(CONTROL) as conn:
        as_member = (
            await conn.execute(
                select(memberships).where(
                    memberships.c.tenant == ctx.tenant, memberships.c.user_id == account["id"]
                )
            )
        ).first()
        home = (
            (as_member.home_tenant, as_member.home_user_id)
            if as_member is not None
            else (ctx.tenant, account["id"])
        )
        links = (
            await conn.execute(
                select(memberships.c.tenant, memberships.c.user_id)
                .where(memberships.c.home_tenant == home[0], memberships.c.home_user_id == home[1])
                .order_by(memberships.c.tenant)
            )
        ).all()
        names: dict[str, str] = {
            name: display
            for name, display in await conn.execute(select(tenants.c.name, tenants.c.display_name))
        }
    at_home = is_self and as_member is None
    found = []
    for tenant, user_id in [home, *((link.tenant, link.user_id) for link in links)]:
        entry = Membership(
            tenant=tenant, display_name=names.get(tenant, ""), home=home[0] == tenant
        )
        if at_home or tenant == ctx.tenant:
            async with ctx.platform.db.read(tenant) as conn:
                user = await accounts.find_by_id(conn, user_id)
                if user is None:  # deleted while we read: not a membership any more
                    continue
                entry.username = user["username"]
                entry.roles = (await accounts.roles_and_scopes(conn, user, now))[0]
        found.append(entry)
    return found


async def forget_account(platform: Platform, tenant: str, user_id: str) -> None:
    """An account was deleted: its links and invitations go (its sessions went with it)."""
    await unlink(platform, _links_of(tenant, user_id), platform.clock.now())
    async with platform.db.write(CONTROL) as conn:
        await conn.execute(
            delete(membership_invites).where(
                membership_invites.c.tenant == tenant, membership_invites.c.user_id == user_id
            )
        )


async def unlink(platform: Platform, where: ColumnElement[bool], now: datetime) -> int:
    """Delete the links `where` selects and sign their member accounts out; how many."""
    async with platform.db.write(CONTROL) as conn:
        gone = (
            await conn.execute(
                delete(memberships)
                .where(where)
                .returning(memberships.c.tenant, memberships.c.user_id)
            )
        ).all()
    for link in gone:
        try:
            async with platform.db.write(link.tenant) as conn:
                await accounts.revoke_sessions(conn, sessions.c.user_id == link.user_id, now)
        except NotFoundError:  # the tenant is being deleted
            continue
    if gone:
        await platform.forget_principals()
    return len(gone)


def _links_of(tenant: str, user_id: str) -> ColumnElement[bool]:
    """The links of an account: as a member account, and as a home."""
    return or_(
        (memberships.c.tenant == tenant) & (memberships.c.user_id == user_id),
        (memberships.c.home_tenant == tenant) & (memberships.c.home_user_id == user_id),
    )


async def _live_invite(
    conn: AsyncConnection, row_id: str, token_hash: str, tenant: str, now: datetime
) -> RowMapping:
    invite = (
        (
            await conn.execute(
                select(
                    membership_invites.c.id,
                    membership_invites.c.tenant,
                    membership_invites.c.user_id,
                    membership_invites.c.token_hash,
                    membership_invites.c.expires_at,
                ).where(membership_invites.c.id == row_id)
            )
        )
        .mappings()
        .first()
    )
    if (
        invite is None
        or invite["tenant"] != tenant
        or not same_hash(invite["token_hash"], token_hash)
    ):
        raise _invalid_invitation("this invitation is not valid (or was used already)")
    if invite["expires_at"] <= now:
        raise _invalid_invitation("this invitation has expired; ask for a new one")
    return invite


async def _check_free_home(
    conn: AsyncConnection, tenant: str, user_id: str, other_tenant: str
) -> None:
    """The caller's account must be a home (not some other home's member account) without an
    account in `other_tenant` yet."""
    as_member = await conn.scalar(
        select(memberships.c.home_tenant).where(
            memberships.c.tenant == tenant, memberships.c.user_id == user_id
        )
    )
    if as_member is not None:
        raise ConflictError(
            f"this account is a membership of a person whose home is tenant {as_member!r}; "
            "accept the invitation signed in there",
            details={"field": "code"},
        )
    found = await conn.scalar(
        select(memberships.c.user_id).where(
            memberships.c.home_tenant == tenant,
            memberships.c.home_user_id == user_id,
            memberships.c.tenant == other_tenant,
        )
    )
    if found is not None:
        raise ConflictError(
            f"you have an account in tenant {other_tenant!r} already", details={"field": "code"}
        )


async def _undo_if_chained(ctx: Context, home_user_id: str, tenant: str, user_id: str) -> None:
    """After the link (`ctx.tenant`, `home_user_id`) -> (`tenant`, `user_id`) is committed:
    undo it (ConflictError) if a concurrent acceptance made the home a member account, or the
    member account a home. The checks before the insert cannot see a concurrent transaction's
    uncommitted link (PostgreSQL's read committed), and the two together chain tenants: the
    member account's session, which its tenant's admins can obtain, would switch onwards.
    Of two such acceptances the later to commit sees the other's link here, so at least one
    is undone (possibly both: each person asks for a new invitation)."""
    async with ctx.platform.db.write(CONTROL) as conn:
        home_is_member = await conn.scalar(
            select(memberships.c.home_tenant).where(
                memberships.c.tenant == ctx.tenant, memberships.c.user_id == home_user_id
            )
        )
        member_is_home = await conn.scalar(
            select(memberships.c.tenant)
            .where(memberships.c.home_tenant == tenant, memberships.c.home_user_id == user_id)
            .limit(1)
        )
        if home_is_member is None and member_is_home is None:
            return
        await conn.execute(
            delete(memberships).where(
                memberships.c.tenant == tenant,
                memberships.c.user_id == user_id,
                memberships.c.home_tenant == ctx.tenant,
                memberships.c.home_user_id == home_user_id,
            )
        )
    raise ConflictError(
        "this account, or the one invited, was linked to another person at the same moment; "
        "ask for a new invitation",
        details={"field": "code"},
    )


async def _check_free_account(conn: AsyncConnection, tenant: str, user_id: str) -> None:
    """An account can be linked once: not while it is a member account or a home."""
    linked = await conn.scalar(
        select(memberships.c.tenant).where(_links_of(tenant, user_id)).limit(1)
    )
    if linked is not None:
        raise ConflictError(
            "this account is linked to a person already; remove that membership first",
            details={"field": "username"},
        )


async def _display_name(platform: Platform, tenant: str) -> str:
    async with platform.db.read(CONTROL) as conn:
        name = await conn.scalar(select(tenants.c.display_name).where(tenants.c.name == tenant))
    return str(name or "")


def _parse_code(code: str) -> OpaqueToken:
    try:
        return parse_opaque(code, "rmi")
    except AuthenticationError:  # not a 401: the caller's own credential is fine
        raise _invalid_invitation("this invitation is not valid") from None


def _invalid_invitation(why: str) -> ValidationError:
    return ValidationError(why, code="invalid_invitation", details={"field": "code"})


def _no_membership(tenant: str) -> AuthorizationError:
    return AuthorizationError(
        f"you have no membership in tenant {tenant!r} (only your home account switches)",
        code=_NOT_A_MEMBER,
        details={"field": "tenant"},
    )
