"""SQL access per namespace (a tenant, or the control plane), on SQLite or PostgreSQL.

SQLite: one database file per namespace in the data dir, WAL, and one writer per file: writes
take an in-process lock and `BEGIN IMMEDIATE` (which also orders writers in other processes,
with `busy_timeout`); the hot-path writes (`run(write=True)`) that queue behind one another
share one transaction (group commit). PostgreSQL: one engine, one schema per namespace,
chosen per connection by SQLAlchemy's `schema_translate_map`, so every table is defined once
without a schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from sqlalchemy import Connection, Engine, Select, create_engine, event, text
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.sql.expression import Executable

from roost.backends.errors import map_errors
from roost.backends.sql.confined import ConfinedReads, ReadLimits
from roost.backends.sql.errors import sql_outage
from roost.backends.sql.fast import TypedSelect, execute, sqlite_text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

CONTROL = "_control"
"""The namespace of the control plane (the tenant list). Never a valid tenant name."""

Dialect = Literal["sqlite", "postgresql"]
_UNCONFIRMED = "the server stopped before this write's commit was confirmed"
_MAX_TYPED = 1000
_BUSY = object()  # `_write_inline`: not written, go through the group commit
_BUSY_TIMEOUT_MS = 10000
_DROP_TRIES = 5  # a schema drop chosen as a deadlock's victim is run again up to this often
_DEADLOCK_DETECTED = "40P01"  # PostgreSQL's SQLSTATE
_CHECKPOINT_EVERY = 200  # about what SQLite's own 1000 pages come to for small writes
T = TypeVar("T")


def _always() -> bool:
    return True


INLINE_STEPS = 100_000
"""`Database.read_inline`: the most VM steps a read runs on the event loop (about a ms)."""
_TICK_STEPS = 1000  # SQLite calls the progress handler every _TICK_STEPS steps
_INLINE_TICKS = INLINE_STEPS // _TICK_STEPS


class Database:
    """Connections to the SQL backend, one namespace at a time."""

    def __init__(
        self,
        url: str,
        *,
        data_dir: Path,
        pg_schema_prefix: str = "roost",
        role_key: bytes | None = None,
        read_limits: ReadLimits | None = None,
    ) -> None:
        """`role_key`: the key the passwords of the per-namespace PostgreSQL roles of
        `confined` derive from; replicas must share one (default: random, one process).
        `read_limits`: how many confined reads run at once and how large their results."""
        self.url = make_url(url)
        self.dialect: Dialect = (
            "sqlite" if self.url.get_backend_name() == "sqlite" else "postgresql"
        )
        self._data_dir = data_dir
        self._prefix = pg_schema_prefix
        self._engines: dict[str, AsyncEngine] = {}
        self._write_locks: dict[str, asyncio.Lock] = {}
        self._serial_locks: dict[str, asyncio.Lock] = {}  # PostgreSQL: `write(serial=...)`
        self._sync_engines: dict[str, Engine] = {}
        self._inline: dict[str, sqlite3.Connection] = {}
        self._writers: dict[str, Connection] = {}  # SQLite: the group commits' connections
        self._writer_locks: dict[str, threading.Lock] = {}  # held while one is in use
        self._commits: dict[str, int] = {}  # on each writer connection, for checkpoints
        self.quiet: Callable[[], bool] = _always
        """Whether the process is quiet enough for a small write to run inline (the server
        sets it: at most one call under way). Writers that arrive together share a group
        commit, which costs each of them less than a commit of its own."""
        self._checkpoints: set[asyncio.Future[None]] = set()
        # `first_record`'s statements, by id, each with the statement (which keeps its id its
        # own) and the parameter names it was compiled for
        self._typed: dict[int, tuple[Select[Any], frozenset[str], TypedSelect]] = {}
        self._sqlite_dialect = sqlite_dialect.dialect()
        self._queued_writes: dict[
            str, list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]]
        ] = {}
        self._committers: dict[str, asyncio.Task[None]] = {}  # group commits under way
        self.confined = ConfinedReads(self, role_key or secrets.token_bytes(32), read_limits)
        """Reads the database confines to a namespace's own tables (analytics)."""

    # -- naming ---------------------------------------------------------------------------

    def schema_of(self, namespace: str) -> str:
        """The PostgreSQL schema holding a namespace."""
        return self._prefix if namespace == CONTROL else f"{self._prefix}_{namespace}"

    def sqlite_path_of(self, namespace: str) -> Path:
        """The SQLite file holding a namespace."""
        if namespace == CONTROL:
            return Path(self.url.database or "roost.db")
        return Path(self.url.database or "roost.db").parent / "tenants" / f"{namespace}.db"

    # -- connections ----------------------------------------------------------------------

    def outages(self) -> contextlib.AbstractContextManager[None]:
        """Around any use of the database: an outage raises ServiceUnavailableError (503);
        every other error passes unchanged. `read`, `write`, `run` and the lookups apply it."""
        return map_errors("SQLite" if self.dialect == "sqlite" else "PostgreSQL", sql_outage)

    @asynccontextmanager
    async def read(self, namespace: str) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; whatever it changes is rolled back."""
        with self.outages():
            async with self._engine(namespace).connect() as conn:
                yield await self._scoped(conn, namespace)

    @asynccontextmanager
    async def write(
        self, namespace: str, *, serial: str | None = None
    ) -> AsyncIterator[AsyncConnection]:
        """A transaction: committed when the block ends, rolled back if it raises.

        Writes that give the same `serial` key run one at a time, in the order they came (on
        SQLite every write of a namespace does): for work inside the transaction that must
        follow commit order. On PostgreSQL it also bounds how many of them wait, each holding
        a pooled connection, for a second one (a change feed's append)."""
        with self.outages():
            async with self._transaction(namespace, serial) as conn:
                yield conn

    @asynccontextmanager
    async def _transaction(
        self, namespace: str, serial: str | None
    ) -> AsyncIterator[AsyncConnection]:
        if self.dialect == "sqlite":
            lock = self._write_locks.setdefault(namespace, asyncio.Lock())
            async with lock, self._engine(namespace).connect() as conn:
                conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
                async with conn.begin():
                    yield conn
        else:
            turn = self._serial_locks.setdefault(serial, asyncio.Lock()) if serial else None
            async with (
                turn or contextlib.nullcontext(),
                self._engine(namespace).connect() as conn,
                conn.begin(),
            ):
                yield await self._scoped(conn, namespace)

    async def run(
        self,
        namespace: str,
        work: Callable[[Connection], T],
        *,
        write: bool = False,
        small: bool = False,
    ) -> T:
        """`work(connection)` in one transaction, for hot paths written as plain functions.

        On SQLite the whole of `work` runs in a worker thread on a synchronous engine: one
        thread hop per call instead of aiosqlite's one per statement (measured: 514 µs vs
        189 µs for an indexed page query). On PostgreSQL it runs through `run_sync`.

        `small`: a write of a row or two found by key (a KV entry), microseconds of SQLite's
        time. On SQLite it runs right here on the event loop when the process is `quiet`, no
        other write of the namespace is under way or waiting, and the database lets it write
        at once (another process writing sends it to the group commit instead): a thread hop
        costs more than such a write.
        """
        if self.dialect == "postgresql":
            context = self.write(namespace) if write else self.read(namespace)
            async with context as conn:
                return await conn.run_sync(work)
        with self.outages():
            if not write:
                return await asyncio.to_thread(self._run_sqlite, namespace, work, "DEFERRED")
            if small:
                done = self._write_inline(namespace, work)
                if done is not _BUSY:
                    return cast(T, done)
            return await self._group_write(namespace, work)

    async def run_on_driver(
        self, namespace: str, work: Callable[[sqlite3.Connection], T], *, small: bool = False
    ) -> T:
        """SQLite only: `work(driver connection)` in one write transaction, for hot paths
        whose statements are all prebuilt for the driver (`fast.TypedWrite`, `sqlite_text`).
        `small` as for `run`: inline when it can, where SQLAlchemy's transaction (its BEGIN
        and COMMIT cost more than a small write) is left out too; else in a group commit."""
        with self.outages():
            if small:
                done = self._write_inline(namespace, work, on_driver=True)
                if done is not _BUSY:
                    return cast(T, done)
            return await self._group_write(namespace, lambda conn: work(_driver_of(conn)))

    def _write_inline(
        self, namespace: str, work: Callable[[Any], T], *, on_driver: bool = False
    ) -> T | object:
        """SQLite: `work` in a transaction of its own on the namespace's writer connection,
        on the calling thread; `_BUSY` (nothing done) if another write holds or waits for
        the namespace, or the database would make it wait. `on_driver`: `work` takes the
        driver's connection, and the transaction is begun and ended on it."""
        lock = self._write_locks.get(namespace)
        if namespace in self._committers or (lock is not None and lock.locked()):
            return _BUSY
        if not self.quiet():
            return _BUSY
        in_use = self._writer_locks.setdefault(namespace, threading.Lock())
        if not in_use.acquire(blocking=False):
            return _BUSY
        conn: Connection | None = None
        try:
            conn = self._writer(namespace)  # its busy_timeout is 0: never waits on the loop
            if on_driver:
                result = _in_driver_transaction(_driver_of(conn), work)
            else:
                result = _in_transaction(conn, work)
        except BaseException as exc:
            # `work` failed and was rolled back: the connection serves on; else it is in
            # doubt and not used again
            if conn is not None and not (isinstance(exc, Exception) and _rolled_back(conn)):
                self._discard_writer(namespace, conn)
            raise
        finally:
            in_use.release()
        if result is not _BUSY:
            self._committed(namespace)
        return result

    def _committed(self, namespace: str) -> None:
        """Count a commit of the writer connection, which leaves checkpoints to this: every
        `_CHECKPOINT_EVERY` commits, the WAL is copied back into the database in a thread
        (PASSIVE: no reader or writer waits for it), never on the event loop."""
        count = self._commits[namespace] = self._commits.get(namespace, 0) + 1
        if count % _CHECKPOINT_EVERY == 0:
            task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(self._checkpoint, namespace)
            )
            self._checkpoints.add(task)
            task.add_done_callback(self._checkpoints.discard)

    def _checkpoint(self, namespace: str) -> None:
        # on the writer connection, between its transactions; none if the namespace was
        # closed meanwhile (a new connection would make a dropped namespace's file again)
        with self._writer_locks.setdefault(namespace, threading.Lock()):
            conn = self._writers.get(namespace)
            driver = conn.connection.dbapi_connection if conn is not None else None
            if driver is not None:
                driver.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def _group_write(self, namespace: str, work: Callable[[Connection], T]) -> T:
        """SQLite: a write in the next group commit of its namespace. The writes that arrive
        while one transaction runs go together in the next, one thread hop and one commit for
        all, each in a savepoint of its own: one that fails is undone alone and raises to its
        caller only. A hundred concurrent writers cost about what three did one by one."""
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued_writes.setdefault(namespace, []).append((work, answer))
        if namespace not in self._committers:
            self._committers[namespace] = asyncio.create_task(self._commit_groups(namespace))
        result: T = await answer
        return result

    async def _commit_groups(self, namespace: str) -> None:
        group: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]] = []
        try:
            while group := self._queued_writes.pop(namespace, []):
                async with self._write_locks.setdefault(namespace, asyncio.Lock()):
                    works = [work for work, _ in group]
                    try:
                        outcomes = await asyncio.to_thread(self._run_group, namespace, works)
                    except Exception as exc:  # BEGIN or COMMIT failed: nothing was written
                        outcomes = [(False, exc)] * len(group)
                    else:
                        self._committed(namespace)
                for (_, answer), (ok, value) in zip(group, outcomes, strict=True):
                    if not answer.done():
                        if ok:
                            answer.set_result(value)
                        else:
                            answer.set_exception(value)
        except BaseException:  # cancelled (the loop is closing): no writer may wait forever
            for _, answer in group + self._queued_writes.pop(namespace, []):
                if not answer.done():
                    answer.set_exception(RuntimeError(_UNCONFIRMED))
            raise
        finally:
            del self._committers[namespace]

    def _run_group(
        self, namespace: str, works: list[Callable[[Connection], Any]]
    ) -> list[tuple[bool, Any]]:
        with self._writer_locks.setdefault(namespace, threading.Lock()):
            conn = self._writer(namespace)
            driver = _driver_of(conn)
            driver.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")  # in a thread: it waits
            try:
                return self._run_group_on(conn, namespace, works)
            finally:
                if self._writers.get(namespace) is conn:
                    driver.execute("PRAGMA busy_timeout=0")

    def _run_group_on(
        self, conn: Connection, namespace: str, works: list[Callable[[Connection], Any]]
    ) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with conn.begin():
                if len(works) == 1:  # alone: its own transaction, no savepoint needed
                    return [(True, works[0](conn))]
                # Savepoints straight on the driver's connection: through SQLAlchemy each
                # costs more than a small write does.
                driver = conn.connection.dbapi_connection
                assert driver is not None
                for work in works:
                    driver.execute("SAVEPOINT roost_group")
                    try:
                        outcomes.append((True, work(conn)))
                    except Exception as exc:
                        driver.execute("ROLLBACK TO roost_group")
                        outcomes.append((False, exc))
                    driver.execute("RELEASE roost_group")
        except BaseException:
            self._discard_writer(namespace, conn)  # in doubt: not used again
            raise
        return outcomes

    def _writer(self, namespace: str) -> Connection:
        """SQLite: the connection the group commits of a namespace run on, kept open between
        them (they take turns under the namespace's write lock): a checkout from the pool and
        its reset cost more than a small write."""
        conn = self._writers.get(namespace)
        if conn is None:
            connected = self._sync_engine(namespace).connect()
            driver = connected.connection.dbapi_connection
            assert driver is not None
            driver.execute("PRAGMA wal_autocheckpoint=0")  # `_committed` checkpoints instead
            # small writes run inline and must never wait; a group commit, in a thread, sets
            # the server's timeout for its run (a PRAGMA per inline write costs as much as it)
            driver.execute("PRAGMA busy_timeout=0")
            conn = self._writers[namespace] = connected.execution_options(sqlite_begin="IMMEDIATE")
        return conn

    def _discard_writer(self, namespace: str, conn: Connection) -> None:
        """Set a writer connection aside for good: closed, never back in the pool (its
        PRAGMAs are the writer's own)."""
        if self._writers.get(namespace) is conn:
            del self._writers[namespace]
        with contextlib.suppress(Exception):
            conn.invalidate()
            conn.close()

    def _close_writer(self, namespace: str) -> None:
        """Close a namespace's group-commit connection, once no transaction is on it (a
        thread may still finish one that a cancelled write left behind)."""
        with self._writer_locks.setdefault(namespace, threading.Lock()):
            conn = self._writers.get(namespace)
            if conn is not None:
                self._discard_writer(namespace, conn)

    async def first_row(
        self, namespace: str, statement: Executable, params: Mapping[str, Any]
    ) -> Any:
        """The first row (a tuple) of a read that takes microseconds, such as a primary-key
        lookup; `statement` is built once, as `fast.execute` wants. On SQLite it runs right
        here on the event loop: a thread hop costs ~60 µs and SQLAlchemy's connection and
        transaction ~90 µs more, both far above such a read, and in WAL mode a reader never
        waits for the writer. Never for scans."""
        if self.dialect == "sqlite":
            sql, values = sqlite_text(statement, params)
            with self.outages():
                return self._inline_connection(namespace).execute(sql, values).fetchone()
        return await self.run(namespace, lambda conn: execute(conn, statement, params).first())

    async def first_record(
        self, namespace: str, statement: Select[Any], params: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """`first_row` as a dict of the selected columns, with their types applied as
        SQLAlchemy applies them (JSON, dates, booleans, UUIDs). For a primary-key lookup whose
        `statement` is built once (see `first_row`)."""
        if self.dialect == "sqlite":
            typed = self._typed.get(id(statement))
            if typed is None or typed[0] is not statement or typed[1] != params.keys():
                reader = TypedSelect(statement, frozenset(params), self._sqlite_dialect)
                typed = self._typed[id(statement)] = (statement, frozenset(params), reader)
                if len(self._typed) > _MAX_TYPED:  # statements are meant to be built once
                    self._typed.clear()
            reader = typed[2]
            with self.outages():
                conn = self._inline_connection(namespace)
                found = conn.execute(reader.sql, reader.values(params)).fetchone()
            return None if found is None else reader.record(found)

        def work(conn: Connection) -> dict[str, Any] | None:
            found = conn.execute(statement, dict(params)).mappings().first()
            return None if found is None else dict(found)

        return await self.run(namespace, work)

    def lookup_rows(self, namespace: str, sql: str, params: tuple[Any, ...]) -> list[Any]:
        """SQLite only: every row of a few primary-key lookups in one statement (SQL text, for
        an IN of a list), inline like `first_row`."""
        with self.outages():
            return self._inline_connection(namespace).execute(sql, params).fetchall()

    def read_inline(
        self, namespace: str, reads: Sequence[tuple[TypedSelect, tuple[Any, ...]]]
    ) -> list[list[dict[str, Any]]] | None:
        """SQLite only: the rows of a few short reads (a page of a query and its count), typed
        as SQLAlchemy types them, in one read transaction right here on the event loop, like
        `first_row`. None, having read nothing, when one of them proves long (more than
        `INLINE_STEPS` of SQLite's VM steps in all: a scan): run them in a thread instead."""
        with self.outages():
            conn = self._inline_connection(namespace)
            # SQLite counts a statement's steps over all its runs (the driver keeps it
            # prepared): counting ticks here measures this run's alone
            ticks = itertools.count(1)
            conn.set_progress_handler(lambda: int(next(ticks) >= _INLINE_TICKS), _TICK_STEPS)
            try:
                if len(reads) > 1:
                    conn.execute("BEGIN")  # one snapshot for all of them
                return [
                    [reader.record(row) for row in conn.execute(reader.sql, values).fetchall()]
                    for reader, values in reads
                ]
            except sqlite3.OperationalError as exc:
                if str(exc) != "interrupted":
                    raise
                return None
            finally:
                conn.set_progress_handler(None, 0)
                if conn.in_transaction:  # read only: nothing to keep
                    conn.execute("ROLLBACK")

    def _inline_connection(self, namespace: str) -> sqlite3.Connection:
        conn = self._inline.get(namespace)
        if conn is None:
            conn = sqlite3.connect(
                self.sqlite_path_of(namespace), check_same_thread=False, isolation_level=None
            )
            conn.execute("PRAGMA query_only=ON")
            self._inline[namespace] = conn
        return conn

    def _run_sqlite(self, namespace: str, work: Callable[[Connection], T], mode: str) -> T:
        with self._sync_engine(namespace).connect() as conn:
            conn = conn.execution_options(sqlite_begin=mode)
            with conn.begin():
                return work(conn)

    def _sync_engine(self, namespace: str) -> Engine:
        engine = self._sync_engines.get(namespace)
        if engine is None:
            path = self.sqlite_path_of(namespace)
            path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(f"sqlite+pysqlite:///{path}", pool_size=8, max_overflow=8)
            _configure_sqlite(engine)
            self._sync_engines[namespace] = engine
        return engine

    def engines_of(self, namespace: str) -> list[Engine]:
        """Every engine serving a namespace (for instrumentation: event listeners, tests)."""
        engines = [self._engine(namespace).sync_engine]
        if self.dialect == "sqlite":
            engines.append(self._sync_engine(namespace))
        return engines

    async def ping(self) -> float:
        """Round trip to the control database in milliseconds."""
        start = time.perf_counter()
        if self.dialect == "sqlite":  # on the sync engine: health opens no async engine
            await self.run(CONTROL, lambda conn: conn.execute(text("SELECT 1")))
        else:
            async with self.read(CONTROL) as conn:
                await conn.execute(text("SELECT 1"))
        return (time.perf_counter() - start) * 1000

    async def connects_as_superuser(self) -> bool:
        """PostgreSQL: whether the server's own role is a superuser (SQLite: False)."""
        if self.dialect != "postgresql":
            return False
        async with self.read(CONTROL) as conn:
            found = await conn.scalar(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            )
        return bool(found)

    async def drop_namespace(self, namespace: str) -> None:
        """Delete a namespace and all its data. Dropping one that does not exist is a no-op."""
        if self.dialect == "postgresql":
            await self._drop_schema(namespace)
            return
        # Under the namespace's write lock, so that no write of this process is under way
        # in a file that disappears beneath it (SQLite answers that with "disk I/O error").
        async with self._write_locks.setdefault(namespace, asyncio.Lock()):
            await self._close_sqlite(namespace)
            await asyncio.to_thread(_remove_sqlite_files, self.sqlite_path_of(namespace))

    async def _drop_schema(self, namespace: str) -> None:
        for attempt in itertools.count(1):
            try:
                async with self._engine(namespace).begin() as conn:
                    await conn.execute(
                        text(f'DROP SCHEMA IF EXISTS "{self.schema_of(namespace)}" CASCADE')
                    )
                    await self.confined.forget(conn, namespace)
                return
            except DBAPIError as exc:
                # A write still under way in the schema (a batch of invocation records, a
                # group commit) locks its tables in another order than the drop: when
                # PostgreSQL picks the drop to break the deadlock, it rolled back whole and
                # is simply run again.
                deadlock = getattr(exc.orig, "sqlstate", None) == _DEADLOCK_DETECTED
                if not deadlock or attempt == _DROP_TRIES:
                    raise
                await asyncio.sleep(0.05 * attempt)

    async def close_namespace(self, namespace: str) -> None:
        """Close this process' connections to a namespace that another process dropped: on
        SQLite they would go on reading the deleted file, and a namespace made again under
        the same name must be opened afresh. Harmless on PostgreSQL (one engine for all)."""
        if self.dialect == "sqlite":
            async with self._write_locks.setdefault(namespace, asyncio.Lock()):
                await self._close_sqlite(namespace)

    async def _close_sqlite(self, namespace: str) -> None:
        self._close_writer(namespace)  # no group commit runs: the caller holds the write lock
        engine = self._engines.pop(namespace, None)
        if engine is not None:
            await engine.dispose()
        sync_engine = self._sync_engines.pop(namespace, None)
        if sync_engine is not None:
            sync_engine.dispose()
        inline = self._inline.pop(namespace, None)
        if inline is not None:
            inline.close()

    async def close(self) -> None:
        await asyncio.gather(*self._checkpoints, return_exceptions=True)
        await self.confined.close()
        for inline in self._inline.values():
            inline.close()
        self._inline.clear()
        for namespace in list(self._writers):
            self._close_writer(namespace)
        for engine in self._engines.values():
            await engine.dispose()
        self._engines.clear()
        for sync_engine in self._sync_engines.values():
            sync_engine.dispose()
        self._sync_engines.clear()

    # -- engines --------------------------------------------------------------------------

    async def _scoped(self, conn: AsyncConnection, namespace: str) -> AsyncConnection:
        if self.dialect == "postgresql":
            schema = self.schema_of(namespace)
            conn = await conn.execution_options(schema_translate_map={None: schema})
            # Tables get their schema from the map; raw SQL text from the search path.
            await conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
        return conn

    def _engine(self, namespace: str) -> AsyncEngine:
        key = namespace if self.dialect == "sqlite" else CONTROL
        engine = self._engines.get(key)
        if engine is None:
            engine = self._engines[key] = self._create_engine(namespace)
        return engine

    def _create_engine(self, namespace: str) -> AsyncEngine:
        # imported on the first async engine: `sqlalchemy.ext.asyncio` brings in the ORM
        # (~0.1 s of start-up), and SQLite's start-up and hot paths use the sync engines
        from sqlalchemy.ext.asyncio import create_async_engine

        if self.dialect == "postgresql":
            return create_async_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        path = self.sqlite_path_of(namespace)
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(self.url.set(database=str(path)), pool_size=8, max_overflow=8)
        _configure_sqlite(engine.sync_engine)
        return engine


def _driver_of(conn: Connection) -> sqlite3.Connection:
    driver = conn.connection.dbapi_connection
    assert driver is not None
    return cast(sqlite3.Connection, driver)


def _rolled_back(conn: Connection) -> bool:
    """Whether a connection is out of any transaction, as it is after a clean rollback."""
    try:
        return not conn.in_transaction() and not _driver_of(conn).in_transaction
    except Exception:  # closed meanwhile
        return False


def _in_transaction(conn: Connection, work: Callable[[Connection], T]) -> T | object:
    """`work` in a SQLAlchemy transaction; `_BUSY` if SQLite would make it wait."""
    try:
        transaction = conn.begin()
    except OperationalError as exc:
        if "locked" not in str(exc.orig) and "busy" not in str(exc.orig):
            raise
        conn.rollback()
        return _BUSY  # another process writes: the group commit waits for it
    with transaction:
        return work(conn)


def _in_driver_transaction(
    driver: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]
) -> T | object:
    """`work` in a transaction begun and ended on the driver; `_BUSY` if SQLite would make
    it wait. A failure of `work` rolls back and raises; one of ROLLBACK itself raises too
    (the caller sets the connection aside)."""
    try:
        driver.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
        return _BUSY  # another process writes: the group commit waits for it
    try:
        result = work(driver)
    except BaseException:
        if driver.in_transaction:
            driver.execute("ROLLBACK")
        raise
    driver.execute("COMMIT")
    return result


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks transactional DDL; we emit
    # BEGIN ourselves (SQLAlchemy's documented recipe), IMMEDIATE for writers.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            f"busy_timeout={_BUSY_TIMEOUT_MS}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
