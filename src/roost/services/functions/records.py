"""The records of sync and streamed runs, written just after their answer (write-behind).

A sync run's record is one insert (plus its output lines as log entries); awaited before the
answer it cost a thread hop and a commit per call, more than the warm run itself. So the
answer goes first and `InvocationRecords` writes the records a moment later
(`GATHER_SECONDS`), all that arrived meanwhile in one transaction per tenant (rows bound
straight to SQLite's driver, `fast.insert_rows`), by one writer task per server; the tokens of
a batch are forgotten on the other replicas in one bus message.

What still holds:
- **The run's token ends with the run.** `add` marks the run ended before its caller is
  answered, and loading a runtime token (`principals`) asks `ended(...)` before it reads
  the record; once the record is committed, the token is forgotten on every replica (as a
  record written on the answer path did: another replica refuses it once it sees the
  record or the bus message). A sole server forgets at the run's end what it cached of a
  token, if it was ever presented (`presented`): most runs never call back, and hashing
  their tokens to forget nothing cost ~5% of a warm call's server time.
- **Reads see the runs they follow.** `functions.get_result` and `functions.invocations`
  call `flush(tenant)` first, so a caller finds the run it was just answered for; another
  replica finds it once the batch is committed (tens of milliseconds).
- **Metering is exact**: the run is counted in memory when it ends, as before.
- **Bounded**: past `MAX_PENDING` records not yet written, `add` waits for the writer (the
  database is slower than the calls), so memory stays bounded; `close` (at shutdown) writes
  what is left. A crash between an answer and its batch loses that batch's records (the
  meter's counts of the last seconds are lost alike). Kept so on purpose: the caller already
  holds what a record would tell it (result and invocation id), and a commit per call before
  the answer costs more than the warm run; a record lost to a crash is at most the last
  `GATHER_SECONDS` of sync runs of one server, which an orderly stop (`close`) never loses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection

from roost.backends.sql.fast import insert_rows
from roost.backends.sql.tables import function_invocations, logs

if TYPE_CHECKING:
    from roost.services.context import Platform

logger = logging.getLogger("roost.functions")

MAX_PENDING = 10_000  # records waiting to be written, past which runs wait for the writer
# how long the writer lets records gather before it writes them: one transaction (and one
# hop to the database's thread) for all the calls of these milliseconds, not one per call
# (50 ms: a sequential caller's records go five times fewer to a transaction than at 10 ms,
# and the transaction, its thread hop and its bus message cost more than the rows)
GATHER_SECONDS = 0.05


Rows = tuple[dict[str, Any], list[dict[str, Any]]]  # an invocation's row, its log entries


class PendingRecord(msgspec.Struct, frozen=True):
    """One run's record, to be written, and its token to forget once it is."""

    tenant: str
    id: str  # the invocation's
    rows: Callable[[], Rows]
    """its row and its log entries, built by the writer: off the path of the run's answer"""
    token: str | None
    token_expires_at: float


class InvocationRecords:
    """Write-behind of invocation records, one per server (`Platform.function_records`)."""

    def __init__(self) -> None:
        self._platform: Platform | None = None
        self._pending: list[PendingRecord] = []
        self._writer: asyncio.Task[None] | None = None
        # runs that ended and whose record is not committed: id -> when its token expires
        # (kept until then if the write failed, so the token cannot act again meanwhile)
        self._ended: dict[str, float] = {}
        # on a sole server: the runs whose runtime token was presented here while they went on
        # (only those can be in the principal cache when they end: `end_runtime_token_here`),
        # each with when its token expires and whether a load of it succeeded
        self._presented: dict[str, _Presented] = {}
        self._prune_presented_at = MAX_PENDING  # grows with what is still live (amortized)
        self._added = 0  # records added since the start
        self._done = 0  # of those, the ones written (or whose write failed), in order
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._soon: asyncio.TimerHandle | None = None  # the writer's start, once records gather

    def ended(self, invocation_id: str, now: float) -> bool:
        """Whether this run ended here and its record is not written yet (`now`: the
        platform's clock, which token expiries are measured on)."""
        expires = self._ended.get(invocation_id)
        if expires is None:
            return False
        if expires <= now:
            del self._ended[invocation_id]
            return False
        return True

    def presented(
        self, platform: Platform, invocation_id: str, expires_at: float
    ) -> _Presented | None:
        """A load of this run's runtime token (valid until `expires_at`, on the platform's
        clock) begins here (`principals`), before it may be cached: the run's end must forget
        it (`take_presented`). Kept on a sole server only: with replicas every end forgets.
        A run that ends in another process (an embedded `roost worker`'s) is never taken
        again: its entry goes once its token has expired, as the principal cache's does."""
        if not platform.sole_server:
            return None
        noted = self._presented.get(invocation_id)
        if noted is None:
            if len(self._presented) >= self._prune_presented_at:
                now = platform.clock.time()
                self._presented = {
                    key: noted for key, noted in self._presented.items() if noted.until > now
                }
                self._prune_presented_at = max(MAX_PENDING, 2 * len(self._presented))
            noted = self._presented[invocation_id] = _Presented(expires_at)
        noted.loading += 1
        return noted

    def loaded(self, noted: _Presented | None) -> None:
        """The load that `presented` noted succeeded: the cache may hold the token until the
        run ends."""
        if noted is not None:
            noted.loading -= 1
            noted.cached = True

    def not_loaded(self, invocation_id: str, noted: _Presented | None) -> None:
        """The load that `presented` noted was refused or cancelled: it forgets the run
        unless another load of the token succeeded before or is still under way (a
        revocation detaches a load from the cache, so a second load of the token can run
        beside it). The count is kept on the entry itself: one taken at the run's end meanwhile
        is not confused with a later one."""
        if noted is None:
            return
        noted.loading -= 1
        if not noted.cached and noted.loading <= 0 and self._presented.get(invocation_id) is noted:
            del self._presented[invocation_id]

    def take_presented(self, platform: Platform, invocation_id: str) -> bool:
        """At a run's end: whether its runtime token may be in the principal cache (always,
        where other replicas share the data: their loads are not seen here)."""
        if not platform.sole_server:
            return True
        return self._presented.pop(invocation_id, None) is not None

    async def add(self, platform: Platform, record: PendingRecord) -> None:
        """Keep a run's record, to be written soon (waits only if too many are pending)."""
        self._ended[record.id] = record.token_expires_at
        self._pending.append(record)
        self._added += 1
        self._platform = platform
        if self._soon is None and (self._writer is None or self._writer.done()):
            self._soon = asyncio.get_running_loop().call_later(GATHER_SECONDS, self._start)
        if len(self._pending) > MAX_PENDING:
            await self.flush()

    async def flush(self) -> None:
        """Return once every record added so far is written (or its write failed, which is
        logged); at once if none is pending."""
        if self._done >= self._added:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((self._added, waiter))
        self._start()  # a writer cancelled half way (a loop stopping) left some behind
        await waiter

    async def close(self) -> None:
        """Write what is pending (at shutdown, before the database closes)."""
        await self.flush()

    def _start(self) -> None:
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        if self._platform is not None and (self._writer is None or self._writer.done()):
            self._writer = asyncio.get_running_loop().create_task(self._write_all(self._platform))

    async def _write_all(self, platform: Platform) -> None:
        if len(self._ended) > MAX_PENDING:  # drop the expired entries of failed writes
            now = platform.clock.time()
            self._ended = {key: until for key, until in self._ended.items() if until > now}
        while self._pending:
            batch, self._pending = self._pending, []
            by_tenant: dict[str, list[PendingRecord]] = {}
            for record in batch:
                by_tenant.setdefault(record.tenant, []).append(record)
            try:
                for tenant, records in by_tenant.items():
                    await self._write(platform, tenant, records)
            finally:  # cancelled (the server stops) or not, nobody waits for them forever
                self._done += len(batch)
                self._wake()
            if not self._waiters and len(self._pending) <= MAX_PENDING:
                break  # nobody waits for those that came meanwhile: they gather a while more
        if self._pending and self._soon is None:
            self._soon = asyncio.get_running_loop().call_later(GATHER_SECONDS, self._start)

    def _wake(self) -> None:
        waiting = []
        for target, waiter in self._waiters:
            if target <= self._done:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                waiting.append((target, waiter))
        self._waiters = waiting

    async def _write(self, platform: Platform, tenant: str, records: list[PendingRecord]) -> None:
        """One transaction for the batch; if it fails, one per record, so that a record that
        cannot be kept (its function deleted meanwhile: the foreign key refuses it) costs
        only itself."""
        # imported here: principals needs the context, which needs this module
        from roost.services import principals

        try:
            await platform.db.run(tenant, _writer_of(records), write=True)
        except Exception:
            if len(records) == 1:
                logger.exception(
                    "the record of invocation %s (tenant %s) could not be written",
                    records[0].id,
                    tenant,
                )
                return  # its token stays ended here (`ended`) until it expires
            for record in records:
                await self._write(platform, tenant, [record])
            return
        for record in records:
            self._ended.pop(record.id, None)
        if platform.sole_server:  # what was cached of the tokens was forgotten at the runs' end
            return
        # committed: every replica lets the tokens go (one bus message for the batch)
        principals.end_runtime_token(
            platform, *(record.token for record in records if record.token is not None)
        )


class _Presented(msgspec.Struct):
    """A run whose runtime token was presented to this server."""

    until: float  # when the token expires
    cached: bool = False  # a load of it succeeded
    loading: int = 0  # loads of it under way


def _writer_of(records: list[PendingRecord]) -> Callable[[Connection], None]:
    def write(conn: Connection) -> None:
        built = [record.rows() for record in records]
        insert_rows(conn, function_invocations, [row for row, _ in built])
        insert_rows(conn, logs, [entry for _, entries in built for entry in entries])

    return write
