"""Sign-in, tokens and the signed-in user's own account.

A login opens a session. The session owns a family of rotating refresh tokens, the short
access JWTs that name it, and optionally one opaque session token. Signing out, changing the
password or presenting a used refresh token again revokes sessions; revoked sessions refuse
every token that names them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import refresh_tokens, sessions, users
from roost.errors import (
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    ServiceUnavailableError,
)
from roost.services import accounts
from roost.services.auth import challenges, recovery
from roost.services.context import Context
from roost.services.mail import send_template
from roost.services.principals import Credential, authenticate
from roost.services.registry import operation
from roost.services.security import (
    make_opaque,
    new_id,
    parse_opaque,
    take_or_refuse,
)
from roost.wire.auth import (
    ChangePasswordRequest,
    LoginRequest,
    MintedToken,
    MintRequest,
    RefreshRequest,
    RegisterRequest,
    Session,
    SessionRef,
    TokenPair,
    User,
    VerifyRequest,
    VerifyResult,
    Whoami,
)
from roost.wire.common import Done, Empty

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

logger = logging.getLogger("roost.auth")

_BAD_LOGIN = "invalid username or password"


@operation("auth.login", access="public")
async def login(ctx: Context, params: LoginRequest) -> TokenPair:
    """Exchange a username (or email) and password for an access and a refresh token; for a
    user who signs in with a second factor, SecondFactorRequired and its challenge."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        user = await accounts.find_by_login(conn, params.username)
    limits = _LoginLimits(ctx, user["id"] if user is not None else None, params.username)
    await limits.attempt()
    password_hash = user["password_hash"] if user is not None else None
    passwords = ctx.platform.passwords
    if not await passwords.verify(password_hash, params.password) or user is None:
        raise AuthenticationError(_BAD_LOGIN, code="invalid_credentials")
    if not user["is_active"]:
        raise AuthenticationError("this user is disabled", code="invalid_credentials")
    await limits.succeeded()
    await challenges.pass_gate(ctx, user, session_token=params.session_token, via="password")
    rehash = passwords.needs_rehash(user["password_hash"])  # the cost setting changed
    new_hash = await passwords.hash(params.password) if rehash else None
    async with ctx.platform.db.write(ctx.tenant) as conn:
        values: dict[str, object] = {"last_login": ctx.now()}
        if new_hash:
            values["password_hash"] = new_hash
        await conn.execute(users.update().where(users.c.id == user["id"]).values(**values))
        return await _open_session(ctx, conn, user["id"], with_session_token=params.session_token)


@operation("auth.refresh", access="public", revokes=True)
async def refresh(ctx: Context, params: RefreshRequest) -> TokenPair:
    """Trade a refresh token for a new pair; each refresh token works once."""
    opaque = parse_opaque(params.refresh, "rrt")
    if opaque.tenant != ctx.tenant:
        raise AuthenticationError(
            f"this refresh token belongs to tenant {opaque.tenant!r}", code="wrong_tenant"
        )
    now = ctx.now()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        row = (
            await conn.execute(
                select(refresh_tokens.c.session_id, refresh_tokens.c.used_at).where(
                    refresh_tokens.c.token_hash == opaque.hash
                )
            )
        ).first()
        if row is None or row.session_id != opaque.id:
            raise AuthenticationError("unknown refresh token", code="invalid_credentials")
        session = (
            (await conn.execute(select(sessions).where(sessions.c.id == row.session_id)))
            .mappings()
            .one()
        )
        if row.used_at is not None:
            await accounts.revoke_sessions(conn, sessions.c.id == session["id"], now)
            reused = True
        else:
            reused = False
            _check_live(session["revoked_at"], session["expires_at"], now)
            await conn.execute(
                refresh_tokens.update()
                .where(refresh_tokens.c.token_hash == opaque.hash)
                .values(used_at=now)
            )
            return await _issue(ctx, conn, session["id"], session["user_id"])
    if reused:
        await ctx.platform.forget_principals()
    raise AuthenticationError(
        "this refresh token was already used, so it may be stolen: its session is now revoked; "
        "sign in again",
        code="token_revoked",
    )


@operation("auth.verify", access="public", read_only=True)
async def verify(ctx: Context, params: VerifyRequest) -> VerifyResult:
    """Whether a token is valid now, and whose it is. Never raises for a bad token."""
    expires_at = None
    try:
        principal = await authenticate(ctx.platform, Credential(params.token_type, params.token))
        if params.token_type == "jwt":
            expires = ctx.platform.access_tokens.read(params.token).expires_at
            expires_at = datetime.fromtimestamp(expires, tz=UTC)
    except (AuthenticationError, NotFoundError) as exc:
        return VerifyResult(valid=False, reason=exc.code)
    if principal.tenant != ctx.tenant:
        return VerifyResult(valid=False, tenant=principal.tenant, reason="wrong_tenant")
    return VerifyResult(
        valid=True, user_id=principal.user_id, tenant=principal.tenant, expires_at=expires_at
    )


@operation("auth.logout", revokes=True)
async def logout(ctx: Context, params: Empty) -> Done:
    """Revoke the session the caller signed in with. With an API key, nothing to do."""
    principal = ctx.require_principal()
    if principal.session_id is None:
        return Done(count=0)
    async with ctx.platform.db.write(ctx.tenant) as conn:
        count = await accounts.revoke_sessions(
            conn, sessions.c.id == principal.session_id, ctx.now()
        )
    await ctx.platform.forget_principals()
    return Done(count=count)


@operation("auth.me", read_only=True)
async def me(ctx: Context, params: Empty) -> User:
    """The signed-in user (for an API key: its owner)."""
    principal = ctx.require_principal()
    async with ctx.platform.db.read(ctx.tenant) as conn:
        user = await accounts.live_user(conn, principal.user_id)
        return await accounts.to_user(conn, user, ctx.now())


@operation("auth.whoami", read_only=True)
async def whoami(ctx: Context, params: Empty) -> Whoami:
    """Who this credential is (kind, tenant, user, scopes), answered without a database read."""
    principal = ctx.require_principal()
    # The credential's own scopes: a user's, or an API key's (which its owner's also bound).
    return Whoami(
        kind=principal.kind,
        tenant=principal.tenant,
        user_id=principal.user_id,
        username=principal.username,
        scopes=sorted(principal.grants[-1]),
        session_id=principal.session_id,
        api_key_id=principal.api_key_id,
    )


@operation("auth.register", access="public")
async def register(ctx: Context, params: RegisterRequest) -> User:
    """Create an account with the `member` role, when the server allows sign-up. With an
    email, a verification link is mailed to it.

    An email another account has gets the same answer, for an account that is not created,
    and its owner a notice by mail: sign-up tells nobody which addresses have accounts. A
    taken username is still a 409: usernames are public handles one must be able to pick.
    """
    if not ctx.platform.settings.allow_signup:
        raise AuthorizationError("sign-up is disabled on this server; ask an admin for an account")
    new_user: RowMapping | None = None
    async with ctx.platform.db.write(ctx.tenant) as conn:
        owner = await accounts.find_by_email(conn, params.email)
        if owner is None:
            new_user = await accounts.create_user(
                conn, ctx.platform.passwords, params, role_names=["member"]
            )
            answer = await accounts.to_user(conn, new_user, ctx.now())
        else:
            answer = await accounts.unsaved_user(
                conn, ctx.platform.passwords, params, role_names=["member"]
            )
    if new_user is not None:
        await recovery.send_verification(ctx, new_user)
    elif owner is not None:
        await _tell_owner(ctx, owner)
    return answer


async def _tell_owner(ctx: Context, owner: RowMapping) -> None:
    """Mail the owner of an address someone tried to sign up with; within the mail limits, so
    that sign-ups cannot flood a mailbox, and never a failure for the sign-up."""
    if not await recovery.may_mail(ctx, "account_exists", owner["email"]):
        return
    model = {"name": owner["first_name"] or owner["username"], "username": owner["username"]}
    try:
        await send_template(ctx, "account_exists", [owner["email"]], model)
    except ServiceUnavailableError as exc:  # kept as failed in the outbox; not for the caller
        logger.warning("account_exists mail for user %s not delivered: %s", owner["id"], exc)


@operation("auth.change_password", revokes=True)
async def change_password(ctx: Context, params: ChangePasswordRequest) -> Done:
    """Change the caller's password; every other session of the user is signed out."""
    principal = ctx.require_user()
    limits = _LoginLimits(ctx, principal.user_id, principal.username)
    await limits.attempt()
    async with ctx.platform.db.read(ctx.tenant) as conn:
        user = await accounts.find_by_id(conn, principal.user_id)
    passwords = ctx.platform.passwords
    if user is None or not await passwords.verify(user["password_hash"], params.old_password):
        raise AuthenticationError(
            "old_password is wrong", code="invalid_credentials", details={"field": "old_password"}
        )
    await limits.succeeded()
    new_hash = await passwords.hash(params.new_password)
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(
            users.update().where(users.c.id == principal.user_id).values(password_hash=new_hash)
        )
        count = await accounts.revoke_sessions(
            conn,
            (sessions.c.user_id == principal.user_id) & (sessions.c.id != principal.session_id),
            ctx.now(),
        )
    count += await accounts.sign_out_member_accounts(
        ctx.platform, ctx.tenant, principal.user_id, ctx.now()
    )
    await ctx.platform.forget_principals()
    return Done(count=count)


@operation("auth.list_sessions", read_only=True)
async def list_sessions(ctx: Context, params: Empty) -> list[Session]:
    """The caller's live sessions (signed in and not signed out), newest first."""
    principal = ctx.require_principal()
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (
            (
                await conn.execute(
                    select(sessions)
                    .where(
                        sessions.c.user_id == principal.user_id,
                        sessions.c.revoked_at.is_(None),
                        sessions.c.expires_at > ctx.now(),
                    )
                    .order_by(sessions.c.created_at.desc())
                )
            )
            .mappings()
            .all()
        )
    return [
        Session(
            id=r["id"],
            created_at=r["created_at"],
            expires_at=r["expires_at"],
            user_agent=r["user_agent"],
            address=r["address"],
            current=r["id"] == principal.session_id,
        )
        for r in rows
    ]


@operation("auth.revoke_session", revokes=True)
async def revoke_session(ctx: Context, params: SessionRef) -> Done:
    """Sign out one of the caller's sessions (its tokens stop working at once)."""
    principal = ctx.require_principal()
    where = (sessions.c.id == params.id) & (sessions.c.user_id == principal.user_id)
    async with ctx.platform.db.write(ctx.tenant) as conn:
        count = await accounts.revoke_sessions(conn, where, ctx.now())
    if count == 0:
        raise NotFoundError(f"no live session with id {params.id!r}", details={"field": "id"})
    await ctx.platform.forget_principals()
    return Done(count=count)


@operation("auth.revoke_all_sessions", revokes=True)
async def revoke_all_sessions(ctx: Context, params: Empty) -> Done:
    """Sign out every session of the caller, this one included."""
    principal = ctx.require_principal()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        count = await accounts.revoke_sessions(
            conn, sessions.c.user_id == principal.user_id, ctx.now()
        )
    count += await accounts.sign_out_member_accounts(
        ctx.platform, ctx.tenant, principal.user_id, ctx.now()
    )
    await ctx.platform.forget_principals()
    return Done(count=count)


# -- sessions and tokens ------------------------------------------------------------------


async def _open_session(
    ctx: Context, conn: AsyncConnection, user_id: str, *, with_session_token: bool
) -> TokenPair:
    session_id = new_id()
    session_token = make_opaque("rst", ctx.tenant, session_id) if with_session_token else None
    await conn.execute(
        sessions.insert().values(
            id=session_id,
            user_id=user_id,
            session_token_hash=session_token.hash if session_token else None,
            expires_at=ctx.now() + timedelta(seconds=ctx.platform.settings.refresh_token_ttl),
            user_agent=ctx.user_agent[:400],
            address=ctx.client_address[:64],
        )
    )
    pair = await _issue(ctx, conn, session_id, user_id)
    if session_token is not None:
        pair.session_token = session_token.token
    return pair


open_session = _open_session  # for the other first and second factors (totp, passwordless)


async def _issue(ctx: Context, conn: AsyncConnection, session_id: str, user_id: str) -> TokenPair:
    refresh_token = make_opaque("rrt", ctx.tenant, session_id)
    await conn.execute(
        refresh_tokens.insert().values(token_hash=refresh_token.hash, session_id=session_id)
    )
    access, _ = ctx.platform.access_tokens.issue(user_id, ctx.tenant, session_id)
    return TokenPair(
        access=access,
        refresh=refresh_token.token,
        expires_in=ctx.platform.access_tokens.ttl,
        session_id=session_id,
    )


@operation("auth.mint_jwt", scope="auth:mint")
async def mint_jwt(ctx: Context, params: MintRequest) -> MintedToken:
    """An access token for another user (a service acting for them), in a session of its own
    that ends with the token; no refresh token. You may only mint for a user whose scopes you
    hold yourself."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        now = ctx.now()
        user = await accounts.find_target(ctx.require_principal(), conn, params, now)
        if not user["is_active"]:
            raise AuthorizationError(
                f"user {user['username']!r} is disabled", details={"field": "username"}
            )
        session_id = new_id()
        await conn.execute(
            sessions.insert().values(
                id=session_id,
                user_id=user["id"],
                expires_at=now + timedelta(seconds=params.expires_in),
                user_agent=f"minted by {ctx.require_principal().username}"[:400],
                address=ctx.client_address[:64],
            )
        )
    access, _ = ctx.platform.access_tokens.issue(
        user["id"], ctx.tenant, session_id, ttl=params.expires_in
    )
    return MintedToken(
        access=access, expires_in=params.expires_in, session_id=session_id, user_id=user["id"]
    )


def _check_live(revoked_at: datetime | None, expires_at: datetime, now: datetime) -> None:
    if revoked_at is not None:
        raise AuthenticationError("this session was signed out", code="token_revoked")
    if expires_at <= now:
        raise AuthenticationError("session expired; sign in again", code="token_expired")


class _LoginLimits:
    """Password attempts, each counted before the password is checked (so concurrent tries
    cannot all pass the check), refused with 429 once a limit is reached:

    - per account and client address (`login_failures_per_account`): stops a guesser;
    - per account from every address (`login_failures_per_account_global`, larger): stops a
      spread-out guesser without letting anyone lock the owner out at the low limit;
    - per client address (`login_failures_per_address`): stops one address trying many
      accounts.

    The account is the user id, so its username and email count as one. A success clears
    its account-and-address count and uncounts itself from the others, so only failures
    use up a limit.
    """

    def __init__(self, ctx: Context, user_id: str | None, login_name: str) -> None:
        settings = ctx.platform.settings
        self._limiter = ctx.platform.limiter
        self._window = settings.login_failure_window
        self._event = new_id()
        # an unknown name is limited like an account, so it answers like one
        account = f"login:{ctx.tenant}:" + (
            f"user:{user_id}" if user_id is not None else f"name:{login_name.lower()}"
        )
        self._pair = f"{account}:from:{ctx.client_address}"
        self._limits = (
            (self._pair, settings.login_failures_per_account),
            (account, settings.login_failures_per_account_global),
            (f"login-from:{ctx.client_address}", settings.login_failures_per_address),
        )

    async def attempt(self) -> None:
        """Count this attempt, or raise RateLimitError if a limit is reached."""
        await take_or_refuse(
            self._limiter, self._limits, self._window, "failed sign-ins", self._event
        )

    async def succeeded(self) -> None:
        await self._limiter.reset(self._pair)
        for key, _ in self._limits[1:]:
            await self._limiter.release(key, self._event)
