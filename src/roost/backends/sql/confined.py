"""Reads that the database itself confines to a few tables of one namespace (for analytics).

A checker over SQL text cannot be the boundary (a CTE, a catalog view or a function is always
one trick away), so the database enforces it:

- SQLite: a connection of its own to the namespace's file, opened read-only (`mode=ro`,
  `query_only`), with an authorizer that allows SELECT, reads of the given tables (and of CTEs)
  and the given functions, and denies everything else: other tables (`roost_*`,
  `sqlite_master`), PRAGMA, ATTACH, writes.
- PostgreSQL: a login role per namespace (`role_of`) with USAGE on the namespace's schema and
  SELECT on its declared tables only, so the database refuses every other schema, `pg_shadow`
  and the like, and `pg_stats` shows only those tables' columns. The read runs in a READ ONLY
  transaction, `search_path` pinned to the schema, under `statement_timeout`. The server logs
  in AS that role instead of `SET ROLE` to it: a query can undo a SET ROLE
  (`set_config('role', ...)`, then `query_to_xml(...)` runs as the server), but it cannot
  change the user its session logged in as. The role's password is derived from a key the
  replicas share, so any replica can (re)set it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import NullPool, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from roost.backends.sql.errors import sql_outage

if TYPE_CHECKING:
    from roost.backends.sql.database import Database

Rows = list[dict[str, Any]]
_ROLE_SUFFIX = "_analytics"
_MAX_IDENTIFIER = 63  # PostgreSQL cuts longer names, and two cut names could be the same


class ReadRefused(Exception):
    """The database refused the read (a table, function or statement it does not allow)."""


class ReadTooSlow(Exception):
    """The read ran past its time limit and was stopped."""


class ConfinedReads:
    """Confined reads of one Database, and (PostgreSQL) the per-namespace roles they run as."""

    def __init__(self, db: Database, key: bytes) -> None:
        self._db = db
        self._key = hmac.new(key, b"roost analytics roles", hashlib.sha256).digest()
        self._engines: dict[str, AsyncEngine] = {}  # namespaces whose role this process set up

    def role_of(self, namespace: str) -> str:
        """PostgreSQL: the role a namespace's confined reads log in as."""
        name = f"{self._db.schema_of(namespace)}{_ROLE_SUFFIX}"
        if len(name) > _MAX_IDENTIFIER:
            digest = hashlib.sha256(name.encode()).hexdigest()[:12]
            name = f"{name[: _MAX_IDENTIFIER - len(_ROLE_SUFFIX) - 13]}_{digest}{_ROLE_SUFFIX}"
        return name

    async def read(
        self,
        namespace: str,
        sql: str,
        params: Any,
        *,
        tables: frozenset[str],
        functions: frozenset[str],
        limit: int,
        seconds: float,
    ) -> Rows:
        """The first `limit` rows of one SELECT that may read `tables` of `namespace` only.

        SQLite also allows only `functions` (PostgreSQL: what the role may run, which is
        confined by its privileges). Raises ReadRefused or ReadTooSlow.
        """
        with self._db.outages():
            if self._db.dialect == "sqlite":
                return await self._read_sqlite(
                    namespace, sql, params, tables, functions, limit, seconds
                )
            await self.prepare(namespace, tables)
            return await self._read_postgresql(namespace, sql, params, limit, seconds)

    # -- PostgreSQL roles ------------------------------------------------------------------

    async def prepare(self, namespace: str, tables: Iterable[str] = ()) -> None:
        """PostgreSQL: make sure the namespace's role exists, logs in with this server's
        password and may read `tables`. Cheap once this process has set the role up: a
        privilege check, and grants only for tables created where the role was not there."""
        if self._db.dialect != "postgresql":
            return
        wanted = sorted(set(tables))
        if namespace in self._engines and await self._may_read(namespace, wanted):
            return
        role, schema = self.role_of(namespace), self._db.schema_of(namespace)
        password = hmac.new(self._key, role.encode(), hashlib.sha256).hexdigest()
        async with self._db.write(namespace) as conn:
            # one role creation at a time across replicas (CREATE ROLE has no IF NOT EXISTS)
            lock = zlib.crc32(f"roost-role:{role}".encode())
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
            verb = "ALTER" if await _role_exists(conn, role) else "CREATE"
            await conn.execute(
                text(f"{verb} ROLE \"{role}\" LOGIN NOINHERIT PASSWORD '{password}'")
            )
            await conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
            for table in wanted:
                await conn.execute(text(f'GRANT SELECT ON "{schema}"."{table}" TO "{role}"'))
        if namespace not in self._engines:
            url = self._db.url.set(username=role, password=password)
            self._engines[namespace] = create_async_engine(url, poolclass=NullPool)

    async def grant(self, conn: AsyncConnection, namespace: str, table: str) -> None:
        """PostgreSQL: let the namespace's role read a table just created (in `conn`'s
        transaction); a no-op while the role does not exist (`prepare` grants it then)."""
        if conn.dialect.name != "postgresql":
            return
        role = self.role_of(namespace)
        if await _role_exists(conn, role):
            schema = self._db.schema_of(namespace)
            await conn.execute(text(f'GRANT SELECT ON "{schema}"."{table}" TO "{role}"'))

    async def forget(self, conn: AsyncConnection, namespace: str) -> None:
        """PostgreSQL: drop the namespace's role (after its schema, which holds its grants)."""
        engine = self._engines.pop(namespace, None)
        if engine is not None:
            await engine.dispose()
        await conn.execute(text(f'DROP ROLE IF EXISTS "{self.role_of(namespace)}"'))

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.dispose()
        self._engines.clear()

    async def _may_read(self, namespace: str, tables: Sequence[str]) -> bool:
        if not tables:
            return True
        async with self._db.read(namespace) as conn:
            allowed = await conn.scalar(
                text(
                    "SELECT bool_and(has_table_privilege(:role, "
                    "format('%I.%I', CAST(:schema AS text), t), 'SELECT')) "
                    "FROM unnest(CAST(:tables AS text[])) AS t"
                ),
                {
                    "role": self.role_of(namespace),
                    "schema": self._db.schema_of(namespace),
                    "tables": list(tables),
                },
            )
        return bool(allowed)

    async def _read_postgresql(
        self, namespace: str, sql: str, params: Any, limit: int, seconds: float
    ) -> Rows:
        schema = self._db.schema_of(namespace)
        try:
            async with self._engines[namespace].connect() as conn:
                await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                await conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
                await conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(seconds * 1000)}")
                result = await conn.exec_driver_sql(sql, params)
                return [dict(row) for row in result.mappings().fetchmany(limit)]
        except DBAPIError as exc:
            if sql_outage(exc):
                raise  # the database is away, not the read at fault (503, by `outages`)
            message = _first_line(exc.orig)
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
        # interrupt() is thread-safe and stops the statement where it runs
        timer = asyncio.get_running_loop().call_later(seconds, _interrupt, conn)
        try:
            return await asyncio.to_thread(_fetch_and_close, conn, sql, params, limit)
        except asyncio.CancelledError:
            _interrupt(conn)  # the thread would otherwise run on, unbounded
            raise
        except sqlite3.Error as exc:
            message = _first_line(exc)
            if "interrupted" in message:
                raise ReadTooSlow(message) from None
            raise ReadRefused(message) from None
        finally:
            timer.cancel()


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


def _fetch_and_close(conn: sqlite3.Connection, sql: str, params: Any, limit: int) -> Rows:
    try:
        cursor = conn.execute(sql, params)
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchmany(limit)]
    finally:
        conn.close()


def _interrupt(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.ProgrammingError):  # already closed: nothing to stop
        conn.interrupt()


async def _role_exists(conn: AsyncConnection, role: str) -> bool:
    found = await conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    return found is not None


def _first_line(exc: BaseException | None) -> str:
    return str(exc).strip().splitlines()[0][:300] if exc else "unknown error"
