"""Reads that the database itself confines to a few tables of one namespace (for analytics).

A checker over SQL text cannot be the boundary (a CTE, a catalog view or a function is always
one trick away), so the database enforces it:

- SQLite: a connection of its own to the namespace's file, opened read-only (`mode=ro`,
  `query_only`), with an authorizer that allows SELECT, reads of the given tables (and of CTEs)
  and the given functions, and denies everything else: other tables (`roost_*`,
  `sqlite_master`), PRAGMA, ATTACH, writes.
- PostgreSQL: two login roles per namespace (`role_of`) with USAGE on the namespace's schema:
  the plain one has SELECT on its tables that are not secure, the secure one on all of them
  and is used only for a read that needs a secure table (given a reason, and audited). So the
  database refuses every other schema, `pg_shadow` and the like, `pg_stats` shows only those
  tables' columns, and a checker fooled into a secure read without a reason is refused. The
  read runs in a READ ONLY transaction, `search_path` pinned to the schema, under
  `statement_timeout`. The server logs in AS that role instead of `SET ROLE` to it: a query
  can undo a SET ROLE
  (`set_config('role', ...)`, then `query_to_xml(...)` runs as the server), but it cannot
  change the user its session logged in as. The role's password is derived from a key the
  replicas share, so any replica can (re)set it.

Reads take turns (`ReadLimits`): a few at a time in all, on an executor of their own (SQLite)
or over as many connections (PostgreSQL), and fewer per namespace, so one tenant's reads
cannot take the server from the others; the wait counts against the time limit. A result is
bounded in bytes while it is fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import sqlite3
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, NullPool, text
from sqlalchemy.exc import DBAPIError

from roost.backends.sql.errors import sql_outage

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from roost.backends.sql.database import Database

Rows = list[dict[str, Any]]
_ROLE_SUFFIXES = {False: "_analytics", True: "_analytics_secure"}
_PRIVILEGES_HOLD = text(
    # the plain role may read the open tables and no secure one, the secure role all wanted
    "SELECT (SELECT coalesce(bool_and(has_table_privilege(CAST(:plain AS text), "
    "format('%I.%I', CAST(:schema AS text), t), 'SELECT')), true) "
    "FROM unnest(CAST(:open AS text[])) AS t) "
    "AND (SELECT coalesce(bool_and(has_table_privilege(CAST(:guarded AS text), "
    "format('%I.%I', CAST(:schema AS text), t), 'SELECT')), true) "
    "FROM unnest(CAST(:tables AS text[])) AS t) "
    "AND NOT (SELECT coalesce(bool_or(has_table_privilege(CAST(:plain AS text), "
    "format('%I.%I', CAST(:schema AS text), t), 'SELECT')), false) "
    "FROM unnest(CAST(:closed AS text[])) AS t)"
)
_PROGRESS_STEPS = 1000  # SQLite VM steps between two looks at the deadline
_MAX_IDENTIFIER = 63  # PostgreSQL cuts longer names, and two cut names could be the same


class ReadRefused(Exception):
    """The database refused the read (a table, function or statement it does not allow)."""


class ReadTooSlow(Exception):
    """The read ran past its time limit and was stopped."""


class ReadLimits(msgspec.Struct, frozen=True):
    """How many confined reads run at once, and how large a result may grow."""

    concurrent: int = 2
    """in all (SQLite: the threads of their executor; PostgreSQL: their connections)"""
    per_namespace: int = 1
    """of one namespace; the others wait for their turn"""
    result_bytes: int = 8 * 1024 * 1024
    """of one result, counted as it is fetched"""


class ReadTooLarge(Exception):
    """The read's result grew past its byte limit and was dropped."""


class ConfinedReads:
    """Confined reads of one Database, and (PostgreSQL) the per-namespace roles they run as."""

    def __init__(self, db: Database, key: bytes, limits: ReadLimits | None = None) -> None:
        self._db = db
        self._key = hmac.new(key, b"roost analytics roles", hashlib.sha256).digest()
        self._engines: dict[str, AsyncEngine] = {}  # by role: the roles this process set up
        self.limits = limits or ReadLimits()
        self._executor = ThreadPoolExecutor(
            self.limits.concurrent, thread_name_prefix="roost-analytics"
        )
        self._all = asyncio.Semaphore(self.limits.concurrent)
        self._turns: dict[str, asyncio.Semaphore] = {}
        self.running: Counter[str] = Counter()
        """reads running now, by namespace"""
        self.most_running: Counter[str] = Counter()
        """the most reads of a namespace that ever ran at once"""

    def role_of(self, namespace: str, *, secure: bool = False) -> str:
        """PostgreSQL: the role a namespace's confined reads log in as (`secure`: the one
        that may also read its secure tables)."""
        suffix = _ROLE_SUFFIXES[secure]
        name = f"{self._db.schema_of(namespace)}{suffix}"
        if len(name) > _MAX_IDENTIFIER:
            digest = hashlib.sha256(name.encode()).hexdigest()[:12]
            name = f"{name[: _MAX_IDENTIFIER - len(suffix) - 13]}_{digest}{suffix}"
        return name

    async def read(
        self,
        namespace: str,
        sql: str,
        params: Any,
        *,
        tables: frozenset[str],
        secure_tables: frozenset[str] = frozenset(),
        secure: bool = False,
        functions: frozenset[str],
        limit: int,
        seconds: float,
    ) -> Rows:
        """The first `limit` rows of one SELECT that may read `tables` of `namespace` only,
        and of those the `secure_tables` (all of the namespace's) only when `secure` (the
        caller has checked the reason and audited the read).

        SQLite also allows only `functions` (PostgreSQL: what the role may run, which is
        confined by its privileges). Raises ReadRefused, ReadTooSlow (also when it waited
        its time limit for a turn) or ReadTooLarge.
        """
        allowed = tables if secure else tables - secure_tables
        with self._db.outages():
            if self._db.dialect == "postgresql":
                await self.prepare(namespace, tables, secure_tables)
            async with self._turn(namespace, seconds) as left:
                if self._db.dialect == "sqlite":
                    return await self._read_sqlite(
                        namespace, sql, params, allowed, functions, limit, left
                    )
                role = self.role_of(namespace, secure=secure)
                return await self._read_postgresql(namespace, role, sql, params, limit, left)

    @contextlib.asynccontextmanager
    async def _turn(self, namespace: str, seconds: float) -> AsyncIterator[float]:
        """Wait for a turn of the namespace, then one of all; yields the seconds left."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        mine = self._turns.setdefault(namespace, asyncio.Semaphore(self.limits.per_namespace))
        try:
            async with asyncio.timeout(seconds):
                async with contextlib.AsyncExitStack() as held:
                    await mine.acquire()
                    held.callback(mine.release)
                    await self._all.acquire()
                    held.callback(self._all.release)
                    releases = held.pop_all()
        except TimeoutError:
            raise ReadTooSlow(f"no turn to run within {seconds:g} s") from None
        self.running[namespace] += 1
        self.most_running[namespace] = max(self.most_running[namespace], self.running[namespace])
        try:
            yield max(seconds - (loop.time() - start), 0.001)
        finally:
            self.running[namespace] -= 1
            await releases.aclose()

    # -- PostgreSQL roles ------------------------------------------------------------------

    async def prepare(
        self, namespace: str, tables: Iterable[str] = (), secure_tables: Iterable[str] = ()
    ) -> None:
        """PostgreSQL: make sure the namespace's roles exist and log in with this server's
        password, that both may read `tables` but the plain role none of `secure_tables`
        (every secure table of the namespace: a table made secure while a role lacked
        the revoke loses it here). Cheap once this process has set the roles up: a
        privilege check, and grants only for tables changed where a role was not there."""
        if self._db.dialect != "postgresql":
            return
        wanted, closed = sorted(set(tables)), sorted(set(secure_tables))
        plain, guarded = self.role_of(namespace), self.role_of(namespace, secure=True)
        if {plain, guarded} <= self._engines.keys() and await self._privileges_hold(
            namespace, wanted, closed
        ):
            return
        schema = self._db.schema_of(namespace)
        async with self._db.write(namespace) as conn:
            for role in (plain, guarded):
                await self._set_up_role(conn, role, schema)
            for table in wanted:
                await conn.execute(text(f'GRANT SELECT ON "{schema}"."{table}" TO "{guarded}"'))
                if table not in closed:
                    await conn.execute(text(f'GRANT SELECT ON "{schema}"."{table}" TO "{plain}"'))
            for table in closed:
                # names: the schema's and checked table names (`check_identifier`)
                revoke = f'REVOKE SELECT ON "{schema}"."{table}" FROM "{plain}"'  # noqa: S608
                await conn.execute(text(revoke))
        for role in (plain, guarded):
            if role not in self._engines:
                url = self._db.url.set(username=role, password=self._password(role))
                from sqlalchemy.ext.asyncio import create_async_engine  # PostgreSQL only

                self._engines[role] = create_async_engine(url, poolclass=NullPool)

    async def _set_up_role(self, conn: AsyncConnection, role: str, schema: str) -> None:
        # one role creation at a time across replicas (CREATE ROLE has no IF NOT EXISTS)
        lock = zlib.crc32(f"roost-role:{role}".encode())
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
        verb = "ALTER" if await _role_exists(conn, role) else "CREATE"
        password = self._password(role)
        await conn.execute(text(f"{verb} ROLE \"{role}\" LOGIN NOINHERIT PASSWORD '{password}'"))
        await conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))

    def _password(self, role: str) -> str:
        return hmac.new(self._key, role.encode(), hashlib.sha256).hexdigest()

    async def grant(
        self, conn: AsyncConnection, namespace: str, table: str, *, secure: bool
    ) -> None:
        """PostgreSQL: let the namespace's roles read a table just created or made (not)
        secure, in `conn`'s transaction: the secure role always, the plain one only while
        the table is not secure. A no-op for a role that does not exist yet (`prepare`
        grants it then)."""
        if conn.dialect.name != "postgresql":
            return
        schema = self._db.schema_of(namespace)
        plain, guarded = self.role_of(namespace), self.role_of(namespace, secure=True)
        if await _role_exists(conn, guarded):
            await conn.execute(text(f'GRANT SELECT ON "{schema}"."{table}" TO "{guarded}"'))
        if await _role_exists(conn, plain):
            change = "REVOKE SELECT ON {} FROM" if secure else "GRANT SELECT ON {} TO"
            target = f'"{schema}"."{table}"'
            await conn.execute(text(f'{change.format(target)} "{plain}"'))

    async def forget(self, conn: AsyncConnection, namespace: str) -> None:
        """PostgreSQL: drop the namespace's roles (after its schema, which holds their
        grants)."""
        self._turns.pop(namespace, None)
        self.running.pop(namespace, None)
        self.most_running.pop(namespace, None)
        for secure in (False, True):
            role = self.role_of(namespace, secure=secure)
            engine = self._engines.pop(role, None)
            if engine is not None:
                await engine.dispose()
            await conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.dispose()
        self._engines.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _privileges_hold(
        self, namespace: str, tables: list[str], secure_tables: list[str]
    ) -> bool:
        if not tables and not secure_tables:
            return True
        async with self._db.read(namespace) as conn:
            holds = await conn.scalar(
                _PRIVILEGES_HOLD,
                {
                    "plain": self.role_of(namespace),
                    "guarded": self.role_of(namespace, secure=True),
                    "schema": self._db.schema_of(namespace),
                    "open": [t for t in tables if t not in secure_tables],
                    "tables": tables,
                    "closed": secure_tables,
                },
            )
        return bool(holds)

    async def _read_postgresql(
        self, namespace: str, role: str, sql: str, params: Any, limit: int, seconds: float
    ) -> Rows:
        schema = self._db.schema_of(namespace)
        max_bytes = self.limits.result_bytes

        def fetch(sync: Connection) -> Rows:
            # a server-side cursor, so that a large result is refused before it is all here
            result = sync.execution_options(stream_results=True, max_row_buffer=64)
            rows = result.exec_driver_sql(sql, params).mappings()
            return _collect((dict(row) for row in rows), limit, max_bytes)

        # untyped (see the mypy overrides in pyproject.toml); only its error root is used, and
        # imported here: a server on SQLite never loads it
        import asyncpg

        try:
            async with self._engines[role].connect() as conn:
                await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                await conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
                await conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(seconds * 1000)}")
                return await conn.run_sync(fetch)
        except (DBAPIError, asyncpg.PostgresError) as exc:
            # (a server-side cursor's fetch raises asyncpg's own errors, unwrapped)
            if sql_outage(exc):
                raise  # the database is away, not the read at fault (503, by `outages`)
            message = _first_line(exc.orig if isinstance(exc, DBAPIError) else exc)
            if "statement timeout" in message or "canceling statement" in message:
                raise ReadTooSlow(message) from None
            raise ReadRefused(message) from None

    # -- SQLite ----------------------------------------------------------------------------

    async def _read_sqlite(
        self,
        namespace: str,
        sql: str,
        params: Any,
        tables: frozenset[str],
        functions: frozenset[str],
        limit: int,
        seconds: float,
    ) -> Rows:
        uri = self._db.sqlite_path_of(namespace).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA query_only = ON")
        conn.set_authorizer(_authorizer(tables, functions))
        # no string or blob inside the query may outgrow the result
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.limits.result_bytes)
        # the statement looks at its deadline as it runs (an interrupt() that comes before
        # sqlite3_step starts is lost)
        deadline = time.monotonic() + seconds
        conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
        fetch = _fetcher(conn, sql, params, limit, self.limits.result_bytes)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fetch)
        except asyncio.CancelledError:
            _interrupt(conn)  # the thread would otherwise run on, unbounded
            raise
        except sqlite3.Error as exc:
            message = _first_line(exc)
            if "interrupted" in message:
                raise ReadTooSlow(message) from None
            if "too big" in message:
                raise ReadTooLarge(message) from None
            raise ReadRefused(message) from None


def _authorizer(
    tables: frozenset[str], functions: frozenset[str]
) -> Callable[[int, str | None, str | None, str | None, str | None], int]:
    def decide(
        action: int, arg1: str | None, arg2: str | None, database: str | None, _: str | None
    ) -> int:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ and (
            database is None  # a CTE's or subquery's own rows
            or (database == "main" and arg1 in tables)
        ):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in functions:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    return decide


def _fetcher(
    conn: sqlite3.Connection, sql: str, params: Any, limit: int, max_bytes: int
) -> Callable[[], Rows]:
    def fetch_and_close() -> Rows:
        try:
            cursor = conn.execute(sql, params)
            names = [column[0] for column in cursor.description or ()]
            rows = (dict(zip(names, row, strict=True)) for row in cursor)
            return _collect(rows, limit, max_bytes)
        finally:
            conn.close()

    return fetch_and_close


def _collect(rows: Iterator[dict[str, Any]], limit: int, max_bytes: int) -> Rows:
    """The first `limit` rows, unless they come to more than `max_bytes` (ReadTooLarge)."""
    collected: Rows = []
    size = 0
    for row in itertools.islice(rows, limit):
        size += sum(len(name) + _size(value) for name, value in row.items())
        if size > max_bytes:
            raise ReadTooLarge(f"the result came to more than {max_bytes} bytes")
        collected.append(row)
    return collected


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | bytearray | memoryview):
        return len(value)
    return 8


def _interrupt(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.ProgrammingError):  # already closed: nothing to stop
        conn.interrupt()


async def _role_exists(conn: AsyncConnection, role: str) -> bool:
    found = await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    return found is not None


def _first_line(exc: BaseException | None) -> str:
    return str(exc).strip().splitlines()[0][:300] if exc else "unknown error"
