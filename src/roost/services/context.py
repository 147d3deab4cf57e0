"""What every operation receives: the platform's backends, the tenant and the caller."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import msgspec

from roost.backends.blob import BlobStore
from roost.backends.bus import Bus
from roost.backends.kv import KVStore
from roost.backends.mail import Mailer
from roost.backends.queue import QueueStore
from roost.backends.ratelimit import RateLimiter
from roost.backends.sql import Database
from roost.backends.stream import StreamStore
from roost.clock import Clock
from roost.errors import AuthorizationError, NotAuthenticatedError, RoostError
from roost.services.caching import TTLCache
from roost.services.functions.records import InvocationRecords
from roost.services.functions.runtime import FunctionRuntime
from roost.services.metering import Meter
from roost.services.security import AccessTokens, Passwords, scope_allows
from roost.services.vault import Vault
from roost.settings import Settings

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy import Connection

logger = logging.getLogger("roost.auth")


T = TypeVar("T")


class Principal(msgspec.Struct, frozen=True):
    """Who calls. An API key acts for its owner, within both its own and the owner's scopes;
    a running function acts for its caller, within the caller's scopes and the declared
    scopes of every function in the chain of calls (`limits`, the last grants)."""

    kind: Literal["user", "api_key", "function"]
    tenant: str
    user_id: str
    username: str
    grants: tuple[frozenset[str], ...]
    session_id: str | None = None
    api_key_id: str | None = None
    limits: tuple[frozenset[str], ...] = ()
    function: str | None = None  # the running function's name, for a runtime token
    roles: tuple[str, ...] = ()
    """the user's roles when the credential was resolved (an API key: its owner's)"""
    profile: Mapping[str, Any] = msgspec.field(default_factory=dict)
    """what policies see as the principal's `attr` (`accounts.policy_attributes`)"""

    def allows(self, scope: str) -> bool:
        # asked once per call: the common answers (`*`, the scope itself) without a call
        for granted in self.grants:
            if "*" not in granted and scope not in granted and not scope_allows(granted, scope):
                return False
        return True

    @property
    def scopes(self) -> list[str]:
        """The owner's scopes (for display; `allows` is what decides)."""
        return sorted(self.grants[0])


class PrincipalCache(TTLCache[tuple[Principal, float | None]]):
    """Recently resolved credentials, so that a request costs no database round trip: each
    key's principal with its credential's expiry (wall time, or None).

    An entry lives `ttl` seconds at most and never past the credential's own expiry.
    Revocations clear the cache of this process at once, and of other replicas when the bus
    brings them the news (`Platform.forget_principals`); `ttl` bounds it if the bus is down.
    A load under way when its key is popped or the cache cleared is neither kept nor joined
    by later callers: they load afresh (`TTLCache`).
    """

    def __init__(
        self, ttl: float, max_entries: int = 50_000, *, clock: Callable[[], float] = time.time
    ) -> None:
        """`clock`: wall time, as credentials give their expiry (`Platform.clock.time`)."""
        super().__init__(ttl, clock=clock, max_entries=max_entries, until=_credential_expiry)

    async def principal(
        self, key: str, load: Callable[[], Awaitable[tuple[Principal, float | None]]]
    ) -> Principal:
        """The principal kept for `key`, else the one `load()` (shared by every concurrent
        caller) finds, kept until the earlier of the cache's ttl and the expiry it gives."""
        kept = self.get(key)  # every request asks: no second coroutine when it is kept
        principal, _ = kept if kept is not None else await self.get_or_load(key, load)
        return principal


def _credential_expiry(entry: tuple[Principal, float | None]) -> float | None:
    return entry[1]


class Platform(msgspec.Struct):
    """The backends and settings of one running server, shared by every request."""

    settings: Settings
    db: Database
    limiter: RateLimiter
    access_tokens: AccessTokens
    passwords: Passwords
    blobs: BlobStore
    kv: KVStore
    queues: QueueStore
    streams: StreamStore
    bus: Bus
    principals: PrincipalCache
    vault: Vault
    mailer: Mailer
    meter: Meter
    clock: Clock = msgspec.field(default_factory=Clock)
    """what every expiry and age the services decide is measured on (`roost.clock`)"""
    functions: FunctionRuntime | None = None
    """the function runtime's workers (None: this server runs no functions)"""
    function_records: InvocationRecords = msgspec.field(default_factory=InvocationRecords)
    """the records of sync runs, written just after their answer"""
    caches: dict[str, TTLCache[Any]] = msgspec.field(default_factory=dict)
    """the services' caches by tenant (`services/caching.TenantCache`), kept here so that a
    tenant can be forgotten in all of them at once"""

    background: set[asyncio.Task[None]] = msgspec.field(default_factory=set)  # kept until done
    on_tenant_deleted: list[Callable[[str], None]] = msgspec.field(default_factory=list)
    """what else lets go of a deleted tenant on this replica when the bus says so (the
    WebSocket door closes the tenant's connections)"""
    serves_api: bool = True
    """False in a `roost worker`, which runs async invocations and serves no API"""
    on_credential_forgotten: list[Callable[[str], None]] = msgspec.field(default_factory=list)
    """what else lets go of a credential forgotten on this replica (by its principal cache key:
    a runtime token whose run ended; the WebSocket door closes the connections it opened)"""

    @property
    def hears_revocations(self) -> bool:
        """Whether every revocation (a sign-out, a key revoked, a user disabled, a role
        changed) clears this process' principal cache: with Redis, through the bus; without,
        only in the server that serves the API, where they are made. An embedded `roost
        worker` beside it (`serves_api` False) hears none: what it caches, it must not trust."""
        return self.settings.redis_url is not None or self.serves_api

    @property
    def sole_server(self) -> bool:
        """Whether this process is the only server on its data. Without Redis it is: several
        servers (`roost serve --workers`, replicas) need ROOST_REDIS_URL to reach each other.
        Then what this process changed is all that changed. An embedded `roost worker` may
        share its data dir without Redis, but serves no API: what it runs calls this server
        (its runs' tokens are presented here, and end here with their records or expiry)."""
        return self.settings.redis_url is None

    async def forget_tenant(self, name: str) -> None:
        """After a tenant's deletion: drop what this replica remembers of it at once, and every
        other replica as soon as the bus reaches it (`listen_for_revocations`)."""
        self._drop_tenant_caches(name)
        await self.forget_principals()
        await self.bus.publish(TENANT_DELETED, name.encode())

    def forget_cached(self, name: str) -> None:
        """Drop what every service cached of tenant `name` in this process."""
        for cache in self.caches.values():
            cache.pop(name)

    def _drop_tenant_caches(self, name: str) -> None:
        self.forget_cached(name)
        self.meter.forget(name)

    def _on_tenant_deleted(self, payload: bytes) -> None:
        name = payload.decode()
        self._drop_tenant_caches(name)
        for hook in self.on_tenant_deleted:
            hook(name)
        # SQLite connections of another process would go on reading the deleted file, and a
        # tenant made again under the name must open the new one.
        self.spawn(self.db.close_namespace(name))

    def forget_principal(self, *keys: str) -> None:
        """Drop cached credentials (`PrincipalCache` keys): here at once, and on every other
        replica as soon as the bus reaches it, all in one message. For runtime tokens whose
        runs ended; a refusal of the bus is logged, as nobody awaits it (`principals`
        re-checks the run's status whenever it loads a runtime token, so the cache's ttl
        bounds a lost message)."""
        for key in keys:
            self.forget_credential_here(key)
        for start in range(0, len(keys), _FORGOTTEN_PER_MESSAGE):
            # keys are hashes: no line breaks of their own
            message = "\n".join(keys[start : start + _FORGOTTEN_PER_MESSAGE])
            self.spawn(self._tell(PRINCIPAL_FORGOTTEN, message))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in a task of its own that nobody awaits, held in `background` until it
        ends (the loop holds tasks weakly)."""
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def forget_credential_here(self, key: str) -> None:
        """Drop a cached credential (a `PrincipalCache` key) on this replica, and what was
        opened with it (`on_credential_forgotten`)."""
        self.principals.pop(key)
        for hook in self.on_credential_forgotten:
            try:
                hook(key)
            except Exception:  # the other keys, and the bus message, must not depend on it
                logger.exception("a hook failed to let go of a forgotten credential")

    def _on_principals_forgotten(self, payload: bytes) -> None:
        for key in payload.decode().split("\n"):
            self.forget_credential_here(key)

    async def _tell(self, channel: str, payload: str) -> None:
        try:
            await self.bus.publish(channel, payload.encode())
        except Exception:
            logger.exception("the bus did not take a message on %s", channel)

    async def forget_principals(self) -> None:
        """After a revocation: drop cached credentials here at once, and on every other
        replica as soon as the bus reaches it (`listen_for_revocations`)."""
        self.principals.clear()
        await self.bus.publish(REVOCATIONS, b"")

    def listen_for_revocations(self) -> None:
        self.bus.listen(REVOCATIONS, lambda _: self.principals.clear())
        self.bus.listen(PRINCIPAL_FORGOTTEN, self._on_principals_forgotten)
        self.bus.listen(TENANT_SETTINGS, lambda payload: self.forget_cached(payload.decode()))
        self.bus.listen(TENANT_DELETED, self._on_tenant_deleted)


REVOCATIONS = "principals:revoked"
PRINCIPAL_FORGOTTEN = "principals:forgotten"
_FORGOTTEN_PER_MESSAGE = 256  # credential keys in one bus message at most (16 KiB or so)
TENANT_SETTINGS = "tenants:settings"
TENANT_DELETED = "tenants:deleted"


class PendingAnswer(Protocol):
    """An Idempotency-Key record waiting for the answer of its call (`server/idempotency.py`):
    the write that answers the call takes it into its own transaction, so that the change and
    the record of its answer commit together or not at all. `claim` comes first, and raises
    if a request with the same key answered already (the write then rolls back, having
    changed nothing); `answer` seals the answer in, once the write has its rows. Both take
    SQLAlchemy's connection or, on SQLite's hot paths, the driver's."""

    def claim(self, conn: Connection | sqlite3.Connection) -> None: ...

    def answer(self, conn: Connection | sqlite3.Connection, status: int, body: Any) -> None: ...


class Context(msgspec.Struct):
    """One call of one operation."""

    platform: Platform
    tenant: str
    principal: Principal | None
    request_id: str = ""
    client_address: str = ""
    user_agent: str = ""
    limits_key: str | None = None
    """whom the per-principal limits count this caller as (`server/limits.principal_of`),
    worked out on first use"""
    pending_answer: PendingAnswer | None = None
    """the Idempotency-Key record of this call, for the write that answers it
    (`database/changes.write_with_changes`) to take into its transaction"""

    def now(self) -> datetime:
        """The platform's time (`roost.clock`), which expiries are decided on."""
        return self.platform.clock.now()

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise NotAuthenticatedError("this operation needs a credential; sign in first")
        return self.principal

    def require_held(self, scopes: list[str]) -> None:
        """Refuse to hand on (through a role, a user, a key or a token) any scope the caller
        does not hold: no escalation through administration."""
        principal = self.require_principal()
        if refused := sorted({scope for scope in scopes if not principal.allows(scope)}):
            raise AuthorizationError(
                f"you cannot grant scopes you do not hold: {', '.join(refused)}",
                code="missing_scope",
                details={"scopes": refused},
            )

    def require_user(self) -> Principal:
        """The calling user; API keys are refused for operations that act on the login itself."""
        principal = self.require_principal()
        if principal.kind != "user":
            raise AuthorizationError(
                "this operation needs a signed-in user, not an API key", code="permission_denied"
            )
        return principal


async def to_its_end(work: Awaitable[T]) -> T:
    """Await `work`, run in a task of its own that goes on to its end if this call is
    cancelled (which then gets its cancellation at once): for a commit and what must follow
    it. The task is held until it ends. Its failure goes to the caller; once the caller has
    gone, nobody else would see an unexpected one (a sign-out whose commit failed after its
    client left revoked nothing), so that is logged then. A refusal (a RoostError under 500:
    an unknown refresh token) is an answer for the caller alone: logging it would let anyone
    fill the log with call-and-cancel pairs."""
    task = asyncio.ensure_future(work)
    _RUNNING_TO_THEIR_END.add(task)
    task.add_done_callback(_ended)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        # a task that ended in this same turn still runs it (soon): its outcome is unseen too
        task.add_done_callback(_log_unseen_failure)
        raise


def _ended(task: asyncio.Future[Any]) -> None:
    _RUNNING_TO_THEIR_END.discard(task)
    if not task.cancelled():
        task.exception()  # taken: the caller, or `_log_unseen_failure`, says what it was


def _log_unseen_failure(task: asyncio.Future[Any]) -> None:
    error = None if task.cancelled() else task.exception()
    refused = isinstance(error, RoostError) and (error.status_code or 500) < 500
    if error is not None and not refused:
        logger.error(
            "a step that had to finish failed after its caller went away: %s",
            error,
            exc_info=error,
        )


_RUNNING_TO_THEIR_END: set[asyncio.Future[Any]] = set()  # the loop holds tasks weakly
