"""From a credential to a Principal: JWT access tokens, session tokens, API keys, and the
runtime tokens of running functions (which name their caller, resolved again each time, and
act only while their run goes on: `end_runtime_token` when it ends, and a check of the run's
record whenever one is loaded)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import api_keys, function_invocations, sessions
from roost.errors import AuthenticationError
from roost.services import accounts
from roost.services.context import Platform, Principal
from roost.services.functions.tokens import PREFIX as RUNTIME_PREFIX
from roost.services.functions.tokens import (
    CallerRef,
    RuntimeTokens,
    attempt_stamp,
    canonical_spelling,
)
from roost.services.security import parse_opaque, same_hash, token_hash
from roost.services.tenants import ensure_exists

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

CredentialKind = Literal["jwt", "api_key", "session_token"]


class Credential(msgspec.Struct, frozen=True):
    kind: CredentialKind
    token: str


async def authenticate(platform: Platform, credential: Credential) -> Principal:
    """The principal behind a credential (which names its own tenant); AuthenticationError
    says why there is none. Answered from the principal cache when it can be."""
    key = cache_key(credential)
    if credential.kind == "jwt" and credential.token.startswith(RUNTIME_PREFIX):
        # one spelling per token: each would be a cache entry that the run's end leaves be
        if not canonical_spelling(credential.token):
            raise AuthenticationError("invalid runtime token", code="invalid_credentials")
        return await platform.principals.principal(
            key, lambda: _from_runtime_token(platform, credential.token)
        )
    if credential.kind == "api_key":
        return await platform.principals.principal(
            key, lambda: _from_api_key(platform, credential.token)
        )
    return await platform.principals.principal(key, lambda: _from_session(platform, credential))


def end_runtime_token(platform: Platform, *tokens: str) -> None:
    """Runs are over and their final status committed: their runtime tokens stop acting now
    here, and on the other replicas when the bus tells them (one message for all). Loads of
    one look at the run's record (`of_caller`), so a load under way, or a message lost,
    outlives this by a cache ttl at most."""
    platform.forget_principal(*(cache_key(Credential("jwt", token)) for token in tokens))


def end_runtime_token_here(platform: Platform, token: str) -> None:
    """A run is over, its record not yet committed: its runtime token stops acting here now
    (`Platform.function_records` refuses its loads meanwhile); `end_runtime_token` follows
    the commit, for every replica."""
    platform.forget_credential_here(cache_key(Credential("jwt", token)))


def cache_key(credential: Credential) -> str:
    """The principal cache's key of a credential (a hash: the cache holds no credential)."""
    return token_hash(f"{credential.kind}:{credential.token}")


async def of_user(platform: Platform, tenant: str, username: str) -> Principal:
    """A user's principal, as a session of theirs would carry it: for the CLI, which acts for
    a user from the server's own host. A disabled user gets none."""
    await ensure_exists(platform, tenant)
    async with platform.db.read(tenant) as conn:
        user = await accounts.find_by_username(conn, username)
        if not user["is_active"]:
            raise AuthenticationError(f"user {username!r} is disabled", code="token_revoked")
        roles, scopes = await accounts.roles_and_scopes(conn, user, platform.clock.now())
    return Principal(
        "user",
        tenant,
        user["id"],
        user["username"],
        (frozenset(scopes),),
        roles=tuple(roles),
        profile=accounts.policy_attributes(user),
    )


async def of_caller(platform: Platform, tenant: str, caller: CallerRef) -> Principal:
    """The principal of a function run's caller as it stands now: the user (active), and the
    session (not signed out nor expired) or API key (not revoked nor expired) they called
    with. A function's run and its runtime token act as this, never as what the caller held
    when the run began. AuthenticationError says why the caller can no longer act."""
    principal, _ = await _load_caller(platform, tenant, caller, None, None)
    return principal


async def of_queued_caller(platform: Platform, tenant: str, caller: CallerRef) -> Principal:
    """`of_caller` for the start of a queued run, from the principal cache when it can be:
    the run acts as its caller would on a request now, which the same cache answers (a
    revocation clears it, its ttl bounds it). Runs queued in a burst by one caller then cost
    one load, not one each. A process that revocations do not reach (an embedded `roost
    worker`) loads the caller every time."""
    if not platform.hears_revocations:
        return await of_caller(platform, tenant, caller)
    ref = f"caller:{tenant}\0{caller.user_id}\0{caller.session_id}\0{caller.api_key_id}"
    return await platform.principals.principal(
        token_hash(ref), lambda: _load_caller(platform, tenant, caller, None, None)
    )


async def _load_caller(
    platform: Platform,
    tenant: str,
    caller: CallerRef,
    run_id: str | None,
    attempt: int | None,
) -> tuple[Principal, float | None]:
    """`of_caller`, and when it stops holding (its session or API key expires, or its first
    role does; None: never). With `run_id`, the run (invocation) must not have ended either,
    nor, with `attempt`, have been run again since."""
    await ensure_exists(platform, tenant)
    key_scopes: frozenset[str] | None = None
    session_until = key_until = None
    now = platform.clock.now()
    async with platform.db.read(tenant) as conn:
        if run_id is not None:
            await _check_run_goes_on(conn, run_id, attempt)
        user = await _active_user(conn, caller.user_id)
        if caller.session_id is not None:
            session = await _live_session(conn, caller.session_id, now)
            if session["user_id"] != user["id"]:
                raise AuthenticationError("unknown session", code="invalid_credentials")
            session_until = session["expires_at"]
        if caller.api_key_id is not None:
            key = await _live_key(conn, caller.api_key_id, now)
            if key["user_id"] != user["id"]:
                raise AuthenticationError("unknown API key", code="invalid_credentials")
            key_scopes = frozenset(key["scopes"])
            key_until = key["expires_at"]
        held = await accounts.grants_of(conn, user, now)
    grants = (frozenset(held.scopes),) + ((key_scopes,) if key_scopes is not None else ())
    principal = Principal(
        "api_key" if caller.api_key_id is not None else "user",
        tenant,
        user["id"],
        user["username"],
        grants,
        session_id=caller.session_id,
        api_key_id=caller.api_key_id,
        roles=tuple(held.roles),
        profile=accounts.policy_attributes(user),
    )
    return principal, _earliest(_stamp(session_until), _stamp(key_until), _stamp(held.until))


async def _from_runtime_token(platform: Platform, token: str) -> tuple[Principal, float | None]:
    claims = RuntimeTokens(platform.access_tokens).read(token)
    records, run = platform.function_records, claims.execution_id
    if records.ended(run, platform.clock.time()):
        raise _run_over()  # its record is being written (after the run's answer)
    noted = records.presented(platform, run, claims.expires_at)  # before any wait
    try:
        caller, caller_until = await _load_caller(
            platform, claims.tenant, claims.caller, run, claims.attempt
        )
    except BaseException:
        records.not_loaded(run, noted)
        raise
    records.loaded(noted)
    principal = Principal(
        "function",
        claims.tenant,
        caller.user_id,
        caller.username,
        caller.grants + claims.limits,
        session_id=caller.session_id,
        api_key_id=caller.api_key_id,
        limits=claims.limits,
        function=claims.function,
        roles=caller.roles,
        profile=caller.profile,
    )
    return principal, _earliest(claims.expires_at, caller_until)


async def _from_session(
    platform: Platform, credential: Credential
) -> tuple[Principal, float | None]:
    if credential.kind == "jwt":
        claims = platform.access_tokens.read(credential.token)
        tenant, session_id, expiry = claims.tenant, claims.session_id, claims.expires_at
    else:
        opaque = parse_opaque(credential.token, "rst")
        tenant, session_id, expiry = opaque.tenant, opaque.id, None
    await ensure_exists(platform, tenant)
    now = platform.clock.now()
    async with platform.db.read(tenant) as conn:
        query = select(sessions).where(sessions.c.id == session_id)
        session = (await conn.execute(query)).mappings().first()
        if session is None or (
            credential.kind == "session_token"
            and not same_hash(session["session_token_hash"] or "", token_hash(credential.token))
        ):
            raise AuthenticationError("unknown session", code="invalid_credentials")
        _check_session(session, now)
        user = await _active_user(conn, session["user_id"])
        held = await accounts.grants_of(conn, user, now)
    principal = Principal(
        "user",
        tenant,
        user["id"],
        user["username"],
        (frozenset(held.scopes),),
        session_id=session_id,
        roles=tuple(held.roles),
        profile=accounts.policy_attributes(user),
    )
    return principal, _earliest(session["expires_at"].timestamp(), expiry, _stamp(held.until))


async def _from_api_key(platform: Platform, token: str) -> tuple[Principal, float | None]:
    opaque = parse_opaque(token, "rak")
    tenant = opaque.tenant
    await ensure_exists(platform, tenant)
    now = platform.clock.now()
    async with platform.db.read(tenant) as conn:
        key = await _find_key(conn, opaque.id)
        if key is None or not same_hash(key["key_hash"], opaque.hash):
            raise AuthenticationError("unknown API key", code="invalid_credentials")
        _check_key(key, now)
        try:
            owner = await _active_user(conn, key["user_id"])
        except AuthenticationError:
            raise AuthenticationError(
                "the owner of this API key is disabled", code="token_revoked"
            ) from None
        held = await accounts.grants_of(conn, owner, now)
    stale = key["last_used_at"] is None or now - key["last_used_at"] > timedelta(minutes=1)
    if stale:
        async with platform.db.write(tenant) as conn:
            await conn.execute(
                api_keys.update().where(api_keys.c.id == opaque.id).values(last_used_at=now)
            )
    principal = Principal(
        "api_key",
        tenant,
        owner["id"],
        owner["username"],
        (frozenset(held.scopes), frozenset(key["scopes"])),
        api_key_id=key["id"],
        roles=tuple(held.roles),
        profile=accounts.policy_attributes(owner),
    )
    return principal, _earliest(_stamp(key["expires_at"]), _stamp(held.until))


def _stamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _earliest(*expiries: float | None) -> float | None:
    """When the first of these expires (None: none does). A cached principal lives no longer
    than its credential, nor than the first of its roles to expire."""
    return min((expiry for expiry in expiries if expiry is not None), default=None)


async def check_run_goes_on(platform: Platform, token: str) -> None:
    """AuthenticationError (`token_expired`) once the run of a runtime token is over, read
    from its record, never from the principal cache: for what a token opened and holds (a
    WebSocket's subscriptions) when the run may end in another process that no bus reaches
    (an embedded `roost worker`'s)."""
    claims = RuntimeTokens(platform.access_tokens).read(token)
    if platform.function_records.ended(claims.execution_id, platform.clock.time()):
        raise _run_over()
    async with platform.db.read(claims.tenant) as conn:
        await _check_run_goes_on(conn, claims.execution_id, claims.attempt)


async def _check_run_goes_on(conn: AsyncConnection, run_id: str, attempt: int | None) -> None:
    """A run that is over has a final status (a sync run is recorded only then; an async one
    is PENDING, then STARTED, until then). An async run's attempt is over once another has
    claimed the invocation (its record's started_at is that attempt's)."""
    query = select(function_invocations.c.status, function_invocations.c.started_at).where(
        function_invocations.c.id == run_id
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return
    status, started_at = row
    if status not in ("PENDING", "STARTED"):
        raise _run_over()
    if attempt is not None and (started_at is None or attempt_stamp(started_at) != attempt):
        raise _run_over()


def _run_over() -> AuthenticationError:
    return AuthenticationError(
        "this function's run is over: its runtime token no longer acts", code="token_expired"
    )


async def _active_user(conn: AsyncConnection, user_id: str) -> RowMapping:
    user = await accounts.find_by_id(conn, user_id)
    if user is None or not user["is_active"]:
        raise AuthenticationError("this user is disabled", code="token_revoked")
    return user


async def _live_session(conn: AsyncConnection, session_id: str, now: datetime) -> RowMapping:
    query = select(sessions).where(sessions.c.id == session_id)
    session = (await conn.execute(query)).mappings().first()
    if session is None:
        raise AuthenticationError("unknown session", code="invalid_credentials")
    _check_session(session, now)
    return session


def _check_session(session: RowMapping, now: datetime) -> None:
    if session["revoked_at"] is not None:
        raise AuthenticationError("this session was signed out", code="token_revoked")
    if session["expires_at"] <= now:
        raise AuthenticationError("session expired; sign in again", code="token_expired")


async def _find_key(conn: AsyncConnection, key_id: str) -> RowMapping | None:
    query = select(api_keys).where(api_keys.c.id == key_id)
    return (await conn.execute(query)).mappings().first()


async def _live_key(conn: AsyncConnection, key_id: str, now: datetime) -> RowMapping:
    key = await _find_key(conn, key_id)
    if key is None:
        raise AuthenticationError("unknown API key", code="invalid_credentials")
    _check_key(key, now)
    return key


def _check_key(key: RowMapping, now: datetime) -> None:
    if key["revoked_at"] is not None:
        raise AuthenticationError("this API key was revoked", code="token_revoked")
    if key["expires_at"] is not None and key["expires_at"] <= now:
        raise AuthenticationError("this API key expired", code="token_expired")
