"""Metering: how many calls and bytes each tenant's users and API keys cost, by hour, and
how many function invocations and milliseconds of function time.

The doors count every call in memory (`Meter.count`, a dict update), the functions service
every run (`Meter.count_function`); every few seconds, at
shutdown, and before answering `usage.get`, each server adds what it counted to the tenant's
`roost_usage` rows (one per hour and API key) with an upsert, so replicas add up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from roost.backends.sql import Database
from roost.backends.sql.tables import usage

logger = logging.getLogger("roost.usage")

FLUSH_SECONDS = 5.0


class Meter:
    """Calls, bytes, function runs and function milliseconds counted in memory per (tenant,
    API key, hour), until flushed."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], list[int]] = {}
        self._hour = 0  # the hour being counted (epoch seconds), worked out again once past
        self._hour_ends = 0.0
        self._flushing = asyncio.Lock()

    def count(
        self, tenant: str, api_key_id: str | None, bytes_in: int, bytes_out: int, calls: int = 1
    ) -> None:
        # every call of every door comes here: `_of` written out, with no call of its own
        now = time.time()
        if now >= self._hour_ends or now < self._hour:
            self._next_hour(now)
        key = (tenant, api_key_id or "", self._hour)
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = [0, 0, 0, 0, 0]
        counts[0] += calls
        counts[1] += bytes_in
        counts[2] += bytes_out

    def count_function(self, tenant: str, api_key_id: str | None, duration_ms: int) -> None:
        """One run of a function, and how long it ran."""
        counts = self._of(tenant, api_key_id)
        counts[3] += 1
        counts[4] += max(duration_ms, 0)

    def _of(self, tenant: str, api_key_id: str | None) -> list[int]:
        now = time.time()
        if now >= self._hour_ends or now < self._hour:
            self._next_hour(now)
        key = (tenant, api_key_id or "", self._hour)
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = [0, 0, 0, 0, 0]
        return counts

    def _next_hour(self, now: float) -> None:
        """The hour `now` falls in (also when the clock was set back)."""
        self._hour = int(now) // 3600 * 3600
        self._hour_ends = self._hour + 3600.0

    def forget(self, tenant: str) -> None:
        """Drop what was counted for a deleted tenant (its database is gone)."""
        for key in [k for k in self._counts if k[0] == tenant]:
            del self._counts[key]

    async def flush(self, db: Database, tenant: str | None = None) -> None:
        """Add what was counted (for one tenant, or all) to the database. Flushes run one at
        a time: one that returns has seen every earlier one written (`usage.get` flushes, then
        reads, and must not miss counts a timed flush has taken and not written yet)."""
        async with self._flushing:
            await self._flush(db, tenant)

    async def _flush(self, db: Database, tenant: str | None) -> None:
        taken = {k: v for k, v in self._counts.items() if tenant is None or k[0] == tenant}
        for key in taken:
            del self._counts[key]
        by_tenant: dict[str, list[tuple[str, int, list[int]]]] = {}
        for (name, api_key_id, hour), counts in taken.items():
            by_tenant.setdefault(name, []).append((api_key_id, hour, counts))
        for name, rows in by_tenant.items():
            try:
                await _add(db, name, rows)
            except Exception:  # a tenant deleted meanwhile, a database away: keep the rest going
                logger.exception("usage of tenant %s could not be written", name)

    async def run(self, db: Database) -> None:
        """Flush every few seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                await self.flush(db)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush(db))


async def _add(db: Database, tenant: str, rows: list[tuple[str, int, list[int]]]) -> None:
    async with db.write(tenant) as conn:
        insert: Callable[..., Any] = sqlite_insert
        if conn.dialect.name == "postgresql":
            # imported here: on SQLite the PostgreSQL dialect is never loaded
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            insert = pg_insert
        for api_key_id, hour, (requests, bytes_in, bytes_out, runs, function_ms) in rows:
            statement = insert(usage).values(
                hour=datetime.fromtimestamp(hour, tz=UTC),
                api_key_id=api_key_id,
                requests=requests,
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                function_invocations=runs,
                function_ms=function_ms,
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[usage.c.hour, usage.c.api_key_id],
                    set_={
                        "requests": usage.c.requests + statement.excluded.requests,
                        "bytes_in": usage.c.bytes_in + statement.excluded.bytes_in,
                        "bytes_out": usage.c.bytes_out + statement.excluded.bytes_out,
                        # NULL in rows written before functions were counted
                        "function_invocations": func.coalesce(usage.c.function_invocations, 0)
                        + statement.excluded.function_invocations,
                        "function_ms": func.coalesce(usage.c.function_ms, 0)
                        + statement.excluded.function_ms,
                    },
                )
            )
