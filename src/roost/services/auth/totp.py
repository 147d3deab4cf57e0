"""Two-factor sign-in with TOTP (RFC 6238, `pyotp`): enrol, confirm, disable, sign in.

- Enrolling makes a secret, sealed by the tenant's vault key (services/vault.py) and bound to
  the user, and ten recovery codes, shown once and kept as keyed hashes. The factor counts
  once confirmed with a first code.
- A code is accepted one step either side of the server's time (clock drift), and only at a
  later time step than the last accepted one: a code seen once, or an older one, is refused
  (replay). A recovery code works once.
- Every code check counts against limits per challenge (`_PER_CHALLENGE`) and per user
  (`_PER_USER` in `login_failure_window`) before it is made; a success uncounts itself from
  the user's limit.
- Disabling needs a code or the password, and is refused while the tenant requires two-factor
  sign-in for one of the user's roles.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import recovery_codes, totp_factors, users
from roost.errors import AuthenticationError, AuthorizationError, ConflictError, ValidationError
from roost.services import accounts
from roost.services.auth import challenges, events
from roost.services.auth.sessions import open_session
from roost.services.context import Context
from roost.services.registry import operation
from roost.services.security import new_id, take_or_refuse
from roost.wire.auth import TokenPair, UserRef
from roost.wire.common import Done, Empty
from roost.wire.two_factor import (
    CodeRequest,
    DisableRequest,
    EnrolRequest,
    TotpEnrolment,
    TotpStatus,
    VerifyTotpRequest,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_STEP = 30
_DRIFT = 1  # time steps accepted either side of now
_RECOVERY_CODES = 10
_PER_CHALLENGE = 5
_PER_USER = 10


@operation("auth.totp_enrol", access="public")
async def totp_enrol(ctx: Context, params: EnrolRequest) -> TotpEnrolment:
    """Start two-factor sign-in for the signed-in user (or, with a `totp_enrolment` challenge,
    for the user it names): a new secret and its otpauth:// URI, and recovery codes shown this
    once. Nothing changes at sign-in until `auth.totp_confirm` (or `auth.verify_totp` with the
    challenge) accepts a first code."""
    if params.challenge is not None:
        async with ctx.platform.db.read(ctx.tenant) as conn:
            challenge = await challenges.find(ctx, conn, params.challenge)
        if challenge.kind != "totp_enrolment":
            raise ValidationError(
                "this challenge is for signing in, not enrolling: call auth.verify_totp",
                details={"field": "challenge"},
            )
        user_id = challenge.user_id
    else:
        user_id = ctx.require_user().user_id
    async with ctx.platform.db.read(ctx.tenant) as conn:
        user = await accounts.live_user(conn, user_id)
        confirmed = await conn.scalar(
            select(totp_factors.c.confirmed_at).where(totp_factors.c.user_id == user_id)
        )
    if confirmed is not None:
        raise ConflictError(
            "two-factor sign-in is on already: disable it first to enrol another device",
            code="totp_enabled",
        )
    import pyotp  # loaded on first use: two-factor sign-in is rare, start-up is not

    secret = pyotp.random_base32()
    codes = [_new_recovery_code() for _ in range(_RECOVERY_CODES)]
    sealed = await _seal(ctx, user_id, secret)
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(delete(totp_factors).where(totp_factors.c.user_id == user_id))
        await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
        await conn.execute(
            totp_factors.insert().values(user_id=user_id, secret=sealed, created_at=ctx.now())
        )
        await conn.execute(
            recovery_codes.insert(),
            [
                {"id": new_id(), "user_id": user_id, "code_hash": _code_hash(ctx, user_id, c)}
                for c in codes
            ],
        )
    await events.record(ctx, "totp_enrolment_started", user["username"])
    uri = pyotp.TOTP(secret).provisioning_uri(name=user["username"], issuer_name=ctx.tenant)
    return TotpEnrolment(secret=secret, uri=uri, recovery_codes=codes)


@operation("auth.totp_confirm")
async def totp_confirm(ctx: Context, params: CodeRequest) -> Done:
    """Turn two-factor sign-in on with a first code from the authenticator app."""
    principal = ctx.require_user()
    await _count_attempt(ctx, principal.user_id, None)
    async with ctx.platform.db.write(ctx.tenant) as conn:
        factor = await _factor(conn, principal.user_id)
        if factor is None or factor["confirmed_at"] is not None:
            raise ConflictError(
                "no two-factor enrolment waits for a code: call auth.totp_enrol first",
                code="no_pending_totp",
            )
        await _accept_totp(ctx, conn, factor, params.code)
        await _confirm(conn, principal.user_id, ctx.now())
    await _succeeded(ctx, principal.user_id)
    await events.record(ctx, "totp_enabled", principal.username)
    return Done(count=1)


@operation("auth.totp_status", read_only=True)
async def totp_status(ctx: Context, params: Empty) -> TotpStatus:
    """Whether two-factor sign-in is on for the signed-in user, required of them, and how
    many recovery codes they have left."""
    principal = ctx.require_user()
    async with ctx.platform.db.read(ctx.tenant) as conn:
        user = await accounts.live_user(conn, principal.user_id)
        factor = await _factor(conn, principal.user_id)
        left = await conn.scalar(
            select(func.count()).where(
                recovery_codes.c.user_id == principal.user_id, recovery_codes.c.used_at.is_(None)
            )
        )
        required = await challenges.required_for(conn, user, ctx.now())
    enabled = factor is not None and factor["confirmed_at"] is not None
    return TotpStatus(
        enabled=enabled,
        pending=factor is not None and not enabled,
        required=required,
        recovery_codes_left=int(left or 0) if enabled else 0,
    )


@operation("auth.totp_disable")
async def totp_disable(ctx: Context, params: DisableRequest) -> Done:
    """Turn two-factor sign-in off (and forget the secret and recovery codes), proven with a
    code (or a recovery code) or the password. Refused while the tenant requires it of one of
    the user's roles."""
    principal = ctx.require_user()
    if (params.code is None) == (params.password is None):
        raise ValidationError(
            "give either code or password", details={"field": "code" if params.code else "password"}
        )
    await _count_attempt(ctx, principal.user_id, None)
    async with ctx.platform.db.write(ctx.tenant) as conn:
        user = await accounts.live_user(conn, principal.user_id)
        factor = await _factor(conn, principal.user_id)
        if factor is None:
            raise ConflictError("two-factor sign-in is not on", code="no_totp")
        if await challenges.required_for(conn, user, ctx.now()):
            raise AuthorizationError(
                "this tenant requires two-factor sign-in for one of your roles",
                code="two_factor_required",
            )
        if params.code is not None:
            await _accept_code(ctx, conn, factor, params.code)
        elif not await ctx.platform.passwords.verify(user["password_hash"], params.password or ""):
            raise AuthenticationError(
                "password is wrong", code="invalid_credentials", details={"field": "password"}
            )
        await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user["id"]))
        await conn.execute(delete(totp_factors).where(totp_factors.c.user_id == user["id"]))
    await _succeeded(ctx, principal.user_id)
    await events.record(ctx, "totp_disabled", principal.username, level="warn")
    return Done(count=1)


@operation("auth.reset_user_totp", scope="users:write")
async def reset_totp(ctx: Context, params: UserRef) -> Done:
    """Turn a user's two-factor sign-in off, for one who lost the device and the recovery
    codes (only a user whose scopes you hold). Done.count is 0 if it was not on."""
    principal = ctx.require_principal()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        target = await accounts.find_target(principal, conn, params, ctx.now())
        await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == target["id"]))
        removed = await conn.execute(
            delete(totp_factors).where(totp_factors.c.user_id == target["id"])
        )
    await events.record(ctx, "totp_reset", target["username"], level="warn", by=principal.username)
    return Done(count=removed.rowcount)


@operation("auth.verify_totp", access="public")
async def verify_totp(ctx: Context, params: VerifyTotpRequest) -> TokenPair:
    """Finish a sign-in that answered `second_factor_required`: the challenge and a code from
    the authenticator app (or a recovery code) answer the session. With a `totp_enrolment`
    challenge, the first code of the factor `auth.totp_enrol` made confirms it too."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        challenge = await challenges.find(ctx, conn, params.challenge)
        user = await accounts.live_user(conn, challenge.user_id)
    await _count_attempt(ctx, challenge.user_id, challenge.id)
    try:
        pair = await _second_factor(ctx, challenge, user, params)
    except AuthenticationError as exc:
        await events.record(
            ctx, "second_factor_refused", user["username"], level="warn", reason=exc.code
        )
        raise
    await _succeeded(ctx, user["id"])
    enrolled = challenge.kind == "totp_enrolment"
    await events.record(ctx, "signed_in_with_totp", user["username"], enrolled=enrolled)
    return pair


async def _second_factor(
    ctx: Context, challenge: challenges.OpenChallenge, user: RowMapping, params: VerifyTotpRequest
) -> TokenPair:
    """Check the code against the challenge's user, spend both, and open the session."""
    if not user["is_active"]:
        raise AuthenticationError("this user is disabled", code="invalid_credentials")
    now = ctx.now()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        factor = await _factor(conn, user["id"])
        enrolling = challenge.kind == "totp_enrolment"
        if factor is None or (factor["confirmed_at"] is None) != enrolling:
            raise _wrong_code("no second factor of this kind is set up: sign in again")
        if enrolling:
            await _accept_totp(ctx, conn, factor, params.code)
            await _confirm(conn, user["id"], now)
        else:
            await _accept_code(ctx, conn, factor, params.code)
        await challenges.spend(conn, challenge, now)
        await conn.execute(users.update().where(users.c.id == user["id"]).values(last_login=now))
        return await open_session(
            ctx,
            conn,
            user["id"],
            with_session_token=challenge.session_token or params.session_token,
        )


# -- codes --------------------------------------------------------------------------------


async def _accept_code(ctx: Context, conn: AsyncConnection, factor: RowMapping, code: str) -> None:
    """Accept a TOTP code or an unused recovery code of a confirmed factor, and spend it."""
    if len(code) == 6 and code.isdigit():
        await _accept_totp(ctx, conn, factor, code)
        return
    result = await conn.execute(
        recovery_codes.update()
        .where(
            recovery_codes.c.user_id == factor["user_id"],
            recovery_codes.c.code_hash == _code_hash(ctx, factor["user_id"], code),
            recovery_codes.c.used_at.is_(None),
        )
        .values(used_at=ctx.now())
    )
    if result.rowcount != 1:
        raise _wrong_code("this recovery code is wrong or was used already")


async def _accept_totp(ctx: Context, conn: AsyncConnection, factor: RowMapping, code: str) -> None:
    """Accept a code of the factor's secret at a later time step than any accepted before."""
    if not (len(code) == 6 and code.isdigit()):
        raise _wrong_code("a code from the authenticator app has six digits")
    import pyotp  # loaded on first use

    secret = await _open(ctx, factor["user_id"], bytes(factor["secret"]))
    totp = pyotp.TOTP(secret, interval=_STEP)
    now_step = _time_step(ctx.now())
    matched = [
        step
        for step in range(now_step - _DRIFT, now_step + _DRIFT + 1)
        if hmac.compare_digest(totp.generate_otp(step), code)
    ]
    if not matched:
        raise _wrong_code("this code is wrong (is the device's clock right?)")
    last = factor["last_counter"]
    step = matched[-1]
    if last is not None and step <= last:
        raise _wrong_code("this code was used already: wait for the next one", code="code_used")
    # Only if no concurrent call accepted this step (or a later one) first.
    result = await conn.execute(
        totp_factors.update()
        .where(
            totp_factors.c.user_id == factor["user_id"],
            (totp_factors.c.last_counter.is_(None)) | (totp_factors.c.last_counter < step),
        )
        .values(last_counter=step)
    )
    if result.rowcount != 1:
        raise _wrong_code("this code was used already: wait for the next one", code="code_used")


def _time_step(now: datetime) -> int:
    return int(now.timestamp()) // _STEP


def _new_recovery_code() -> str:
    raw = secrets.token_hex(5)
    return f"{raw[:5]}-{raw[5:]}"


def _code_hash(ctx: Context, user_id: str, code: str) -> str:
    """A keyed hash: a database dump alone does not let anyone try the 2^40 codes offline."""
    key = ctx.platform.access_tokens.derive("recovery-codes")
    normal = code.replace("-", "").lower()
    return hmac.new(key, f"{ctx.tenant}\0{user_id}\0{normal}".encode(), hashlib.sha256).hexdigest()


def _wrong_code(why: str, code: str = "invalid_code") -> AuthenticationError:
    return AuthenticationError(why, code=code, details={"field": "code"})


# -- the factor ---------------------------------------------------------------------------


async def _factor(conn: AsyncConnection, user_id: str) -> RowMapping | None:
    query = select(totp_factors).where(totp_factors.c.user_id == user_id)
    return (await conn.execute(query)).mappings().first()


async def _confirm(conn: AsyncConnection, user_id: str, now: datetime) -> None:
    await conn.execute(
        totp_factors.update().where(totp_factors.c.user_id == user_id).values(confirmed_at=now)
    )


def _place(tenant: str, user_id: str) -> bytes:
    """Binds a sealed secret to its user: copied onto another user's row it does not open."""
    return "\0".join(("roost-totp", tenant, user_id)).encode()


async def _seal(ctx: Context, user_id: str, secret: str) -> bytes:
    vault = ctx.platform.vault
    key = await vault.data_key(ctx.platform.db, ctx.tenant, create=True)
    assert key is not None  # made when missing
    return vault.seal(key, _place(ctx.tenant, user_id), secret)


async def _open(ctx: Context, user_id: str, sealed: bytes) -> str:
    vault = ctx.platform.vault
    key = await vault.data_key(ctx.platform.db, ctx.tenant, create=False)
    assert key is not None  # a sealed secret exists, so its key does
    return vault.open(key, _place(ctx.tenant, user_id), sealed)


# -- limits -------------------------------------------------------------------------------


async def _count_attempt(ctx: Context, user_id: str, challenge_id: str | None) -> None:
    """Count a code check before it is made; RateLimitError once a limit is reached."""
    limits = [(_user_key(ctx, user_id), _PER_USER)]
    if challenge_id is not None:
        limits.append((f"2fa:challenge:{ctx.tenant}:{challenge_id}", _PER_CHALLENGE))
    await take_or_refuse(
        ctx.platform.limiter,
        limits,
        ctx.platform.settings.login_failure_window,
        "second-factor attempts",
        new_id(),
    )


async def _succeeded(ctx: Context, user_id: str) -> None:
    """A right code clears the user's count: only failures use the limit up."""
    await ctx.platform.limiter.reset(_user_key(ctx, user_id))


def _user_key(ctx: Context, user_id: str) -> str:
    return f"2fa:user:{ctx.tenant}:{user_id}"
