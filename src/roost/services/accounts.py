"""Users, their roles and sessions in a tenant's database: the queries the auth services
share."""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import ColumnElement, Select, String, bindparam, func, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from roost.backends.sql import CONTROL
from roost.backends.sql.tables import memberships, roles, sessions, user_roles, users, utcnow
from roost.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from roost.services.context import Platform, Principal
from roost.services.security import Passwords, new_id
from roost.wire.auth import RegisterRequest, User, UserRef

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def email_key(email: str) -> str:
    """An address as accounts compare it: ASCII case folded, nothing else. `str.lower()` and
    SQL `lower()` also fold other letters (the Kelvin sign K to k, on PostgreSQL in the
    database too), so an address differing from an account's in such a letter, which is
    another mailbox, would reach that account."""
    return email.translate(_ASCII_LOWER)


def plain_email(email: str) -> bool:
    """Whether Unicode compatibility normalisation (NFKC) leaves the address as it is: else it
    holds a character that stands for another (the Kelvin sign for k, a full-width @), which
    reads as a known address but is another mailbox."""
    return unicodedata.normalize("NFKC", email) == email


def check_email(email: str, field: str = "email") -> None:
    """Refuse an address that is not `plain_email`."""
    if not plain_email(email):
        raise ValidationError(
            f"{field} holds a character that stands for another (such as the Kelvin sign "
            "for k): write the address with plain characters",
            details={"field": field},
        )


def _lowered(value: str) -> ColumnElement[str]:
    """`lower()` of a parameter, by the database: candidates fold alike on both sides, and
    `email_key` decides among them."""
    return func.lower(bindparam(None, value, type_=String))


async def find_by_login(conn: AsyncConnection, login: str) -> RowMapping | None:
    """The user whose username (any case) or email (ASCII case folded) is `login`."""
    query = select(users).where(
        or_(
            func.lower(users.c.username) == _lowered(login),
            (users.c.email != "") & (func.lower(users.c.email) == _lowered(login)),
        )
    )
    key = email_key(login)
    for row in (await conn.execute(query.limit(20))).mappings():
        if email_key(row["username"]) == key or email_key(row["email"]) == key:
            return row
    return None


def by_username(username: str) -> Select[Any]:
    """The user of a username, matched without regard to case."""
    return select(users).where(func.lower(users.c.username) == username.lower())


async def find_by_username(conn: AsyncConnection, username: str) -> RowMapping:
    row: RowMapping | None = (await conn.execute(by_username(username))).mappings().first()
    if row is None:
        raise NotFoundError(f"no user named {username!r}", details={"field": "username"})
    return row


async def find_by_id(conn: AsyncConnection, user_id: str) -> RowMapping | None:
    return (await conn.execute(select(users).where(users.c.id == user_id))).mappings().first()


async def live_user(conn: AsyncConnection, user_id: str) -> RowMapping:
    """The row of the user a credential names; one deleted since is refused as revoked."""
    user = await find_by_id(conn, user_id)
    if user is None:
        raise AuthenticationError("this user no longer exists", code="token_revoked")
    return user


def policy_attributes(user: RowMapping) -> dict[str, Any]:
    """The user as policies see the caller (`P.attr`): the profile fields an admin or the
    verification flow decides, and the names. Never preferences: a user sets those at will,
    and a policy must not grant on what the caller says about themselves."""
    return {
        "username": user["username"],
        "email": user["email"],
        "email_verified": user["email_verified_at"] is not None,
        "first_name": user["first_name"],
        "last_name": user["last_name"],
        "is_staff": user["is_staff"],
        "is_superuser": user["is_superuser"],
    }


async def roles_and_scopes(
    conn: AsyncConnection, user: RowMapping, now: datetime
) -> tuple[list[str], set[str]]:
    """The user's roles unexpired at `now` and the union of their scopes (`*` for a
    superuser)."""
    held = await grants_of(conn, user, now)
    return held.roles, held.scopes


class Grants(NamedTuple):
    roles: list[str]
    scopes: set[str]
    until: datetime | None  # when the first of these roles expires (None: none does)


async def grants_of(conn: AsyncConnection, user: RowMapping, now: datetime) -> Grants:
    """`roles_and_scopes`, and when the first role counted expires: a principal cached
    with them must not outlive it."""
    rows = (
        await conn.execute(
            select(roles.c.name, roles.c.scopes, user_roles.c.expires_at)
            .join(user_roles, user_roles.c.role == roles.c.name)
            .where(user_roles.c.user_id == user["id"])
            .where(or_(user_roles.c.expires_at.is_(None), user_roles.c.expires_at > now))
        )
    ).all()
    if user["is_anonymous"]:  # whatever roles an admin gave, only this one, and capped
        rows = [row for row in rows if row.name == ANONYMOUS_ROLE]
        scopes = {scope for row in rows for scope in row.scopes if anonymous_may_hold(scope)}
        return Grants([row.name for row in rows], scopes, _first_expiry(rows))
    scopes = {scope for row in rows for scope in row.scopes}
    if user["is_superuser"]:
        scopes.add("*")
    return Grants(sorted(row.name for row in rows), scopes, _first_expiry(rows))


def _first_expiry(rows: Sequence[Any]) -> datetime | None:
    return min((row.expires_at for row in rows if row.expires_at is not None), default=None)


ANONYMOUS_ROLE = "anonymous"
# What an anonymous user may be granted (through the `anonymous` role) at most: the app's
# data, never administration (users, roles, keys, settings, secrets, mail, logs, tenants...),
# an `admin`, `deploy` or `define` action, or a wildcard. Anyone can become an anonymous
# user, so a tenant that gave that role `*` by mistake must not hand the tenant out.
_ANONYMOUS_MODULES = frozenset(
    {"database", "kv", "storage", "queue", "stream", "pubsub", "functions", "pages", "policy"}
)
_ANONYMOUS_NEVER = frozenset({"*", "admin", "deploy", "define"})


def anonymous_may_hold(scope: str) -> bool:
    module, _, action = scope.partition(":")
    return module in _ANONYMOUS_MODULES and action not in _ANONYMOUS_NEVER


async def ensure_may_act_on(
    actor: Principal, conn: AsyncConnection, target: RowMapping, now: datetime
) -> None:
    """Refuse (AuthorizationError) to let `actor` act on `target` (change, disable, delete,
    sign out, give or take roles, mint tokens, revoke keys) when the target holds any scope
    the actor lacks: otherwise a lesser admin could take over a greater one, e.g. reset a
    superuser's password. A role counts by the scopes it carries; a superuser holds `*`, which
    only `*` covers. The same rule as granting: nobody reaches past what they hold."""
    _, scopes = await roles_and_scopes(conn, target, now)
    _refuse_if_beyond(actor, target["username"], scopes)


async def ensure_may_act_on_holders(
    actor: Principal, conn: AsyncConnection, role: str, now: datetime
) -> None:
    """Changing or deleting a role acts on every user who holds it (emptying a stronger user's
    role would leave them open to `users:write`): refuse as `ensure_may_act_on` would for
    the first holder who holds a scope the actor lacks. One query, however many holders."""
    live = or_(user_roles.c.expires_at.is_(None), user_roles.c.expires_at > now)
    holding = user_roles.alias("holding")
    holders = select(holding.c.user_id).where(
        holding.c.role == role, or_(holding.c.expires_at.is_(None), holding.c.expires_at > now)
    )
    rows = await conn.execute(
        select(users.c.username, users.c.is_superuser, roles.c.scopes)
        .select_from(
            users.outerjoin(user_roles, (user_roles.c.user_id == users.c.id) & live).outerjoin(
                roles, roles.c.name == user_roles.c.role
            )
        )
        .where(users.c.id.in_(holders))
        .order_by(users.c.username)
    )
    held: dict[str, set[str]] = {}
    for row in rows:
        scopes = held.setdefault(row.username, {"*"} if row.is_superuser else set())
        scopes.update(row.scopes or ())
    for username, scopes in held.items():
        _refuse_if_beyond(actor, username, scopes)


def _refuse_if_beyond(actor: Principal, username: str, scopes: set[str]) -> None:
    if refused := sorted(scope for scope in scopes if not actor.allows(scope)):
        raise AuthorizationError(
            f"you cannot act on user {username!r}: they hold scopes you do not "
            f"({', '.join(refused)})",
            code="missing_scope",
            details={"field": "username", "username": username, "scopes": refused},
        )


async def find_user(conn: AsyncConnection, ref: UserRef) -> RowMapping:
    """The user `ref` names by username or by id (a ValidationError unless it names exactly
    one way; NotFoundError if there is no such user)."""
    if (ref.username is None) == (ref.id is None):
        raise ValidationError(
            "name the user by username or by id, not both nor neither",
            details={"field": "username"},
        )
    if ref.username is not None:
        return await find_by_username(conn, ref.username)
    row = await find_by_id(conn, ref.id or "")
    if row is None:
        raise NotFoundError(f"no user with id {ref.id!r}", details={"field": "id"})
    return row


async def find_target(
    actor: Principal, conn: AsyncConnection, ref: UserRef, now: datetime
) -> RowMapping:
    """The user `ref` names, once `actor` is known to be allowed to act on them (with the
    roles they hold at `now`)."""
    target = await find_user(conn, ref)
    await ensure_may_act_on(actor, conn, target, now)
    return target


async def to_user(conn: AsyncConnection, user: RowMapping, now: datetime) -> User:
    """The user as the API shows them, with the roles they hold at `now`."""
    names, scopes = await roles_and_scopes(conn, user, now)
    return User(
        id=user["id"],
        username=user["username"],
        email=user["email"],
        first_name=user["first_name"],
        last_name=user["last_name"],
        is_active=user["is_active"],
        is_staff=user["is_staff"],
        is_superuser=user["is_superuser"],
        roles=names,
        scopes=sorted(scopes),
        created_at=user["created_at"],
        last_login=user["last_login"],
        email_verified=user["email_verified_at"] is not None,
        is_anonymous=bool(user["is_anonymous"]),
    )


async def create_user(
    conn: AsyncConnection,
    passwords: Passwords,
    request: RegisterRequest,
    *,
    role_names: list[str],
    flags: dict[str, bool] | None = None,
) -> RowMapping:
    """Insert a user with its roles; a taken username or email is a ConflictError."""
    await _check_new(conn, request)
    if request.email and await find_by_email(conn, request.email) is not None:
        raise ConflictError("a user with this email exists", details={"field": "email"})
    await _role_scopes(conn, role_names)
    user_id = new_id()
    values: dict[str, Any] = {
        "id": user_id,
        "username": request.username,
        "email": request.email,
        "password_hash": await passwords.hash(request.password),
        "first_name": request.first_name,
        "last_name": request.last_name,
        **(flags or {}),
    }
    try:
        await conn.execute(users.insert().values(**values))
    except IntegrityError:
        raise ConflictError(
            f"username {request.username!r} is taken", details={"field": "username"}
        ) from None
    if role_names:
        await conn.execute(
            user_roles.insert(), [{"user_id": user_id, "role": name} for name in role_names]
        )
    row = await find_by_id(conn, user_id)
    assert row is not None
    return row


async def unsaved_user(
    conn: AsyncConnection,
    passwords: Passwords,
    request: RegisterRequest,
    *,
    role_names: list[str],
) -> User:
    """The user `create_user` would answer for `request`, not stored: what a sign-up with an
    address another account has gets, so that it reads like any other. It checks the same
    fields and spends a password hash too, so it also takes as long."""
    await _check_new(conn, request)
    scopes = await _role_scopes(conn, role_names)
    await passwords.hash(request.password)
    return User(
        id=new_id(),
        username=request.username,
        email=request.email,
        first_name=request.first_name,
        last_name=request.last_name,
        is_active=True,
        is_staff=False,
        is_superuser=False,
        roles=sorted(set(role_names)),
        scopes=sorted(scopes),
        created_at=utcnow(),
    )


async def _check_new(conn: AsyncConnection, request: RegisterRequest) -> None:
    check_email(request.email)
    if request.confirm_password is not None and request.confirm_password != request.password:
        raise ValidationError(
            "confirm_password does not match password", details={"field": "confirm_password"}
        )
    if await _taken(conn, users.c.username, request.username):
        raise ConflictError(
            f"username {request.username!r} is taken", details={"field": "username"}
        )


async def _role_scopes(conn: AsyncConnection, role_names: list[str]) -> set[str]:
    """The scopes the roles carry; a role that does not exist is a ValidationError."""
    rows = (
        await conn.execute(select(roles.c.name, roles.c.scopes).where(roles.c.name.in_(role_names)))
    ).all()
    if missing := sorted(set(role_names) - {row.name for row in rows}):
        raise ValidationError(f"no role named {', '.join(missing)}", details={"field": "roles"})
    return {scope for row in rows for scope in row.scopes}


async def find_by_email(
    conn: AsyncConnection, email: str, *, active_only: bool = False
) -> RowMapping | None:
    """The user with this email (ASCII case folded: see `email_key`); None for an empty one.
    `active_only`: a disabled user's address finds nobody."""
    if not email:
        return None
    query = select(users).where(func.lower(users.c.email) == _lowered(email))
    if active_only:
        query = query.where(users.c.is_active.is_(True))
    key = email_key(email)
    for row in (await conn.execute(query.limit(20))).mappings():
        if email_key(row["email"]) == key:
            return row
    return None


async def _taken(conn: AsyncConnection, column: Any, value: str) -> bool:
    found = await conn.execute(select(column).where(func.lower(column) == value.lower()).limit(1))
    return found.first() is not None


async def revoke_sessions(conn: AsyncConnection, where: ColumnElement[bool], now: datetime) -> int:
    """Sign out the live sessions `where` selects; returns how many."""
    result = await conn.execute(
        update(sessions).where(where, sessions.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return result.rowcount


async def email_taken(conn: AsyncConnection, email: str) -> bool:
    """Whether a user has this email (ASCII case folded)."""
    return await find_by_email(conn, email) is not None


async def sign_out_member_accounts(
    platform: Platform, tenant: str, user_id: str, now: datetime
) -> int:
    """Sign out the member accounts, in other tenants, of the home account `user_id` of
    `tenant` (services/auth/memberships.py): what signs a person out at home (a new
    password, a reset, a deactivation, "sign out everywhere") signs out the sessions they
    switched to as well. Returns how many sessions ended."""
    async with platform.db.read(CONTROL) as conn:
        links = (
            await conn.execute(
                select(memberships.c.tenant, memberships.c.user_id).where(
                    memberships.c.home_tenant == tenant, memberships.c.home_user_id == user_id
                )
            )
        ).all()
    count = 0
    for link in links:
        async with platform.db.write(link.tenant) as conn:
            count += await revoke_sessions(conn, sessions.c.user_id == link.user_id, now)
    return count
