"""Anonymous users: a session for someone who has not signed up yet (a guest's cart, a trial),
later upgraded to a full account that keeps the same user id, and so its data.

- Off unless the tenant's site setting `auth_anonymous_sign_in` is `true` (as Supabase: an
  open door that makes a user per call should be opened on purpose). Each client address may
  make `anonymous_sign_ins_per_client` an hour.
- An anonymous user has a random username, no email, a password nobody knows, and the
  built-in role `anonymous` (no scopes until the tenant gives it some). Whatever roles they
  are given, only that one counts, and only for the app's data: never administration, an
  admin action or a wildcard (`accounts.anonymous_may_hold`). They register no passkey and
  make no API key (the `api_keys` scopes are out of their reach).
- `auth.upgrade_anonymous` sets an email and a password (and a username if given): the user
  loses the flag and the `anonymous` role, gains `member`, and gets a verification mail. An
  email another account has is refused (409): the upgrade is a sign-up, and this one cannot
  answer as for a new address, since the caller goes on using the account.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, func, select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import user_roles, users
from roost.errors import AuthorizationError, ConflictError
from roost.services import accounts
from roost.services.auth import challenges, events, recovery
from roost.services.auth.sessions import open_session
from roost.services.context import Context
from roost.services.registry import operation
from roost.services.security import new_id, take_or_refuse
from roost.wire.auth import (
    AnonymousSignIn,
    RegisterRequest,
    TokenPair,
    UpgradeAnonymousRequest,
    User,
)

SETTING = "auth_anonymous_sign_in"
_HOUR = 3600


@operation("auth.sign_in_anonymously", access="public")
async def sign_in_anonymously(ctx: Context, params: AnonymousSignIn) -> TokenPair:
    """A session for a new anonymous user, where the tenant allows it (site setting
    `auth_anonymous_sign_in`); upgrade it later with `auth.upgrade_anonymous`."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        allowed = await challenges.site_setting(conn, SETTING)
    if allowed is not True:
        raise AuthorizationError(
            "anonymous sign-in is off in this tenant (site setting auth_anonymous_sign_in)",
            code="anonymous_sign_in_disabled",
        )
    await take_or_refuse(
        ctx.platform.limiter,
        [
            (
                f"anonymous-from:{ctx.tenant}:{ctx.client_address}",
                ctx.platform.settings.anonymous_sign_ins_per_client,
            )
        ],
        _HOUR,
        "anonymous sign-ins",
        new_id(),
    )
    request = RegisterRequest(
        username=f"anon-{secrets.token_hex(8)}",
        password=secrets.token_urlsafe(32),  # nobody knows it: the session is the way in
    )
    async with ctx.platform.db.write(ctx.tenant) as conn:
        user = await accounts.create_user(
            conn,
            ctx.platform.passwords,
            request,
            role_names=[accounts.ANONYMOUS_ROLE],
            flags={"is_anonymous": True},
        )
        await conn.execute(
            users.update().where(users.c.id == user["id"]).values(last_login=ctx.now())
        )
        pair = await open_session(ctx, conn, user["id"], with_session_token=params.session_token)
    await events.record(ctx, "signed_in_anonymously", user["username"])
    return pair


@operation("auth.upgrade_anonymous", revokes=True)
async def upgrade_anonymous(ctx: Context, params: UpgradeAnonymousRequest) -> User:
    """Make the signed-in anonymous user a full account with an email and a password (and a
    new username if given), keeping its id and data; a verification link is mailed."""
    principal = ctx.require_user()
    accounts.check_email(params.email)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        _refuse_full(await accounts.live_user(conn, principal.user_id))
    new_hash = await ctx.platform.passwords.hash(params.password)  # slow: outside the write
    async with ctx.platform.db.write(ctx.tenant) as conn:
        user = await accounts.live_user(conn, principal.user_id)
        _refuse_full(user)  # upgraded by a concurrent call meanwhile
        owner = await accounts.find_by_email(conn, params.email)
        if owner is not None and owner["id"] != user["id"]:
            raise ConflictError("that email belongs to another user", details={"field": "email"})
        changes: dict[str, object] = {
            "email": params.email,
            "email_verified_at": None,
            "password_hash": new_hash,
            "is_anonymous": False,
        }
        if params.username is not None and params.username.lower() != user["username"].lower():
            taken = await conn.scalar(
                select(users.c.id).where(func.lower(users.c.username) == params.username.lower())
            )
            if taken is not None:
                raise ConflictError(
                    f"username {params.username!r} is taken", details={"field": "username"}
                )
            changes["username"] = params.username
        await conn.execute(users.update().where(users.c.id == user["id"]).values(**changes))
        await conn.execute(
            delete(user_roles).where(
                user_roles.c.user_id == user["id"], user_roles.c.role == accounts.ANONYMOUS_ROLE
            )
        )
        await conn.execute(user_roles.insert().values(user_id=user["id"], role="member"))
        user = await accounts.live_user(conn, user["id"])
        answer = await accounts.to_user(conn, user, ctx.now())
    await ctx.platform.forget_principals()  # the cached principal still has the old roles
    await recovery.send_verification(ctx, user)
    await events.record(ctx, "anonymous_user_upgraded", user["username"], was=principal.username)
    return answer


def _refuse_full(user: RowMapping) -> None:
    if not user["is_anonymous"]:
        raise ConflictError("this user is not anonymous", code="not_anonymous")
