"""KV on the SQL backend's control database: the embedded default, no other service needed."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, bindparam, delete, or_, select, tuple_

from roost.backends.kv import NO_EXPIRY, Entry
from roost.backends.sql import CONTROL, Database
from roost.backends.sql.fast import AnyConnection, execute
from roost.backends.sql.locking import serialize_writers
from roost.backends.sql.tables import kv_entries as kv

_KV, _LOCK = "kv", "lock"
_SMALL = 16  # keys a write may name and still run inline on SQLite (`Database.run(small=)`)
_SWEEP = 200  # expired entries a write sweeps at most (each write sweeps 1 time in 100)
T = TypeVar("T")


def _live(now: float) -> Any:
    return or_(kv.c.expires_at.is_(None), kv.c.expires_at > now)


# Built once: constructing the statement costs more than running it on SQLite.
_LIVE_ROW = select(kv.c.kind, kv.c.value, kv.c.expires_at).where(
    kv.c.space == bindparam("space"),
    kv.c.key == bindparam("key"),
    or_(kv.c.expires_at.is_(None), kv.c.expires_at > bindparam("now")),
)


_LIVE_ROWS_SQLITE = (
    "SELECT key, kind, value, expires_at FROM roost_kv "
    "WHERE space = ? AND (expires_at IS NULL OR expires_at > ?) AND key IN ({})"
)


_DELETE_ONE = delete(kv).where(kv.c.space == bindparam("space_"), kv.c.key == bindparam("key_"))
_INSERT = kv.insert()
_EXPIRED = select(kv.c.space, kv.c.key).where(kv.c.expires_at <= bindparam("now")).limit(_SWEEP)
_SWEEP_EXPIRED = delete(kv).where(tuple_(kv.c.space, kv.c.key).in_(_EXPIRED))


# `set` on SQLite: one statement, which writes or leaves the entry as the general path's
# read, delete and insert would (an expired entry counts as none)
_SET_SQLITE = (
    'INSERT INTO roost_kv (space, "key", kind, value, expires_at) VALUES (?, ?, ?, ?, ?) '
    'ON CONFLICT (space, "key") DO UPDATE SET kind = excluded.kind, value = excluded.value, '
    "expires_at = excluded.expires_at"
)
_SET_NX_SQLITE = _SET_SQLITE + " WHERE roost_kv.expires_at <= ?"
_SET_XX_SQLITE = (
    'UPDATE roost_kv SET kind = ?, value = ?, expires_at = ? WHERE space = ? AND "key" = ? '
    "AND (expires_at IS NULL OR expires_at > ?)"
)


def _set_sqlite(
    driver: sqlite3.Connection, key: str, value: str, ttl: float | None, nx: bool, xx: bool
) -> bool:
    if nx and xx:  # an entry both absent and present: never, as the general path finds
        return False
    now, expires_at = time.time(), _expiry(ttl)
    if xx:
        found = driver.execute(_SET_XX_SQLITE, ("string", value, expires_at, _KV, key, now))
    elif nx:
        found = driver.execute(_SET_NX_SQLITE, (_KV, key, "string", value, expires_at, now))
    else:
        found = driver.execute(_SET_SQLITE, (_KV, key, "string", value, expires_at))
    if random.random() < 0.01:  # as `_put` does
        execute(driver, _SWEEP_EXPIRED, {"now": now})
    return bool(found.rowcount)


def _row(conn: AnyConnection, space: str, key: str, now: float) -> Any:
    return execute(conn, _LIVE_ROW, {"space": space, "key": key, "now": now}).first()


def _put(
    conn: AnyConnection, space: str, key: str, kind: str, value: str, expires_at: float | None
) -> None:
    execute(conn, _DELETE_ONE, {"space_": space, "key_": key})
    execute(
        conn,
        _INSERT,
        {"space": space, "key": key, "kind": kind, "value": value, "expires_at": expires_at},
    )
    if random.random() < 0.01:  # sweep what has expired now and then, a bounded batch
        execute(conn, _SWEEP_EXPIRED, {"now": time.time()})


def _expiry(ttl: float | None) -> float | None:
    return None if ttl is None else time.time() + ttl


def _entry(row: Any, now: float) -> Entry | ValueError | None:
    """A (kind, value, expires_at) row as what `get` answers; a hash's row is an error."""
    if row is None:
        return None
    kind, value, expires_at = row
    if kind != "string":
        return ValueError(f"the key holds a {kind}, not a string")
    return Entry(value, NO_EXPIRY if expires_at is None else max(int(expires_at - now + 0.999), 0))


def _kind(row: Any, wanted: str) -> None:
    if row is not None and row.kind != wanted:
        raise ValueError(f"the key holds a {row.kind}, not a {wanted}")


class SqlKVStore:
    kind = "sql"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _small_write(self, work: Callable[[AnyConnection], T]) -> T:
        """A write of one key whose statements are all prebuilt (`fast.execute`): on SQLite
        straight on the driver's connection, without SQLAlchemy's transaction."""
        if self._db.dialect == "sqlite":
            return await self._db.run_on_driver(CONTROL, work, small=True)
        return await self._db.run(CONTROL, work, write=True, small=True)

    async def set(
        self, key: str, value: str, *, ttl: float | None = None, nx: bool = False, xx: bool = False
    ) -> bool:
        if self._db.dialect == "sqlite":  # the Idempotency-Key's two writes, among others
            return await self._db.run_on_driver(
                CONTROL, lambda driver: _set_sqlite(driver, key, value, ttl, nx, xx), small=True
            )

        def work(conn: AnyConnection) -> bool:
            serialize_writers(conn, _KV, key)
            exists = _row(conn, _KV, key, time.time()) is not None
            if (nx and exists) or (xx and not exists):
                return False
            _put(conn, _KV, key, "string", value, _expiry(ttl))
            return True

        return await self._small_write(work)

    async def get(self, key: str) -> Entry | None:
        now = time.time()  # the hottest read: a primary-key lookup, inline on SQLite
        row = await self._db.first_row(CONTROL, _LIVE_ROW, {"space": _KV, "key": key, "now": now})
        entry = _entry(row, now)
        if isinstance(entry, ValueError):
            raise entry
        return entry

    async def get_many(self, keys: list[str]) -> list[Entry | ValueError | None]:
        def work(conn: Connection) -> list[Any]:
            query = select(kv.c.key, kv.c.kind, kv.c.value, kv.c.expires_at).where(
                kv.c.space == _KV, kv.c.key.in_(wanted), _live(now)
            )
            return list(conn.execute(query).all())

        wanted, now = list(dict.fromkeys(keys)), time.time()
        if self._db.dialect == "sqlite":
            sql = _LIVE_ROWS_SQLITE.format(",".join("?" * len(wanted)))
            rows = self._db.lookup_rows(CONTROL, sql, (_KV, now, *wanted))
        else:
            rows = await self._db.run(CONTROL, work)
        found = {row[0]: tuple(row[1:]) for row in rows}
        return [_entry(found.get(key), now) for key in keys]

    async def delete(self, keys: list[str]) -> int:
        def work(conn: Connection) -> int:
            serialize_writers(conn, _KV, *keys)
            where = and_(kv.c.space == _KV, kv.c.key.in_(keys))
            live = conn.execute(select(kv.c.key).where(where, _live(time.time()))).all()
            conn.execute(delete(kv).where(where))
            return len(live)

        if not keys:
            return 0
        return await self._db.run(CONTROL, work, write=True, small=len(keys) <= _SMALL)

    async def incr(self, key: str, amount: int) -> int:
        def work(conn: AnyConnection) -> int:
            serialize_writers(conn, _KV, key)
            row = _row(conn, _KV, key, time.time())
            _kind(row, "string")
            current = 0 if row is None else json.loads(row.value)
            if isinstance(current, bool) or not isinstance(current, int):
                raise ValueError("the value is not an integer")
            result = current + amount
            if not -(2**63) <= result < 2**63:
                raise ValueError("the result is out of the 64-bit range")
            _put(conn, _KV, key, "string", str(result), None if row is None else row.expires_at)
            return result

        return await self._small_write(work)

    async def scan(
        self, prefix: str, cursor: str | None, count: int
    ) -> tuple[list[str], str | None]:
        def work(conn: Connection) -> tuple[list[str], str | None]:
            query = (
                select(kv.c.key)
                .where(
                    kv.c.space == _KV,
                    _live(time.time()),
                    kv.c.key.startswith(prefix, autoescape=True),
                )
                .order_by(kv.c.key)
                .limit(count)
            )
            if cursor:
                query = query.where(kv.c.key > cursor)
            keys = [row.key for row in conn.execute(query)]
            return keys, (keys[-1] if len(keys) == count else None)

        return await self._db.run(CONTROL, work)

    async def expire(self, key: str, ttl: float) -> bool:
        def work(conn: Connection) -> bool:
            serialize_writers(conn, _KV, key)
            if _row(conn, _KV, key, time.time()) is None:
                return False
            conn.execute(
                kv.update()
                .where(kv.c.space == _KV, kv.c.key == key)
                .values(expires_at=_expiry(ttl))
            )
            return True

        return await self._db.run(CONTROL, work, write=True)

    async def hset(self, key: str, fields: dict[str, str], ttl: float | None = None) -> int:
        def work(conn: Connection) -> int:
            serialize_writers(conn, _KV, key)
            row = _row(conn, _KV, key, time.time())
            _kind(row, "hash")
            current = {} if row is None else json.loads(row.value)
            added = len(set(fields) - set(current))
            expires = _expiry(ttl) if ttl is not None else (None if row is None else row.expires_at)
            _put(conn, _KV, key, "hash", json.dumps({**current, **fields}), expires)
            return added

        return await self._db.run(CONTROL, work, write=True)

    async def hget(self, key: str, field: str) -> str | None:
        return (await self.hgetall(key)).get(field)

    async def hgetall(self, key: str) -> dict[str, str]:
        def work(conn: Connection) -> dict[str, str]:
            row = _row(conn, _KV, key, time.time())
            _kind(row, "hash")
            return {} if row is None else dict(json.loads(row.value))

        return await self._db.run(CONTROL, work)

    async def hdel(self, key: str, fields: list[str]) -> int:
        def work(conn: Connection) -> int:
            serialize_writers(conn, _KV, key)
            row = _row(conn, _KV, key, time.time())
            _kind(row, "hash")
            if row is None:
                return 0
            current = json.loads(row.value)
            removed = [f for f in fields if f in current]
            remaining = {k: v for k, v in current.items() if k not in fields}
            if remaining:
                _put(conn, _KV, key, "hash", json.dumps(remaining), row.expires_at)
            else:  # an empty hash does not exist, as in Redis
                conn.execute(delete(kv).where(kv.c.space == _KV, kv.c.key == key))
            return len(removed)

        return await self._db.run(CONTROL, work, write=True)

    async def acquire(self, name: str, token: str, ttl: float) -> bool:
        def work(conn: AnyConnection) -> bool:
            serialize_writers(conn, _LOCK, name)
            if _row(conn, _LOCK, name, time.time()) is not None:
                return False
            _put(conn, _LOCK, name, "lock", token, _expiry(ttl))
            return True

        return await self._small_write(work)

    async def release(self, name: str, token: str) -> bool:
        def work(conn: Connection) -> bool:
            result = conn.execute(
                delete(kv).where(
                    kv.c.space == _LOCK, kv.c.key == name, kv.c.value == token, _live(time.time())
                )
            )
            return bool(result.rowcount)

        return await self._db.run(CONTROL, work, write=True, small=True)

    async def delete_prefix(self, prefix: str) -> int:
        def work(conn: Connection) -> int:
            doomed = kv.c.key.startswith(prefix, autoescape=True)  # keys and locks alike
            return int(conn.execute(delete(kv).where(doomed)).rowcount)

        return await self._db.run(CONTROL, work, write=True)

    async def close(self) -> None:
        return None
