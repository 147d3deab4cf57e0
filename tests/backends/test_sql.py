"""The SQL backend on SQLite and PostgreSQL: migrations, transactions, namespaces."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, MetaData, bindparam, event, func, select, text, update
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError, StatementError

from roost.backends.sql import CONTROL, Database
from roost.backends.sql.fast import SQLITE, TypedSelect, TypedWrite, execute, insert_rows
from roost.backends.sql.migrations import CONTROL_MIGRATIONS, TENANT_MIGRATIONS, migrate
from roost.backends.sql.tables import kv_entries, logs, roles, utcnow
from roost.services.tabledefs import TableDef, build_table, parse_column, with_platform_columns
from tests.backends.databases import sql_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with sql_database(request.param, tmp_path, migrated=False) as database:
        yield database


@pytest.mark.anyio
async def test_migrations_apply_once(db: Database) -> None:
    assert await migrate(db, CONTROL) == [m.version for m in CONTROL_MIGRATIONS]
    assert await migrate(db, "acme") == [m.version for m in TENANT_MIGRATIONS]
    assert await migrate(db, "acme") == []
    async with db.read("acme") as conn:
        names = set((await conn.execute(select(roles.c.name))).scalars())
    assert names == {"admin", "member", "anonymous"}


@pytest.mark.anyio
async def test_a_failed_write_leaves_nothing(db: Database) -> None:
    await migrate(db, "acme")

    async def insert_then_fail() -> None:
        async with db.write("acme") as conn:
            await conn.execute(roles.insert().values(name="temp", scopes=[], builtin=False))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    async with db.read("acme") as conn:
        found = (await conn.execute(select(roles).where(roles.c.name == "temp"))).first()
    assert found is None


@pytest.mark.anyio
async def test_ddl_is_transactional(db: Database) -> None:
    await migrate(db, "acme")

    async def create_then_fail() -> None:
        async with db.write("acme") as conn:
            await conn.execute(text("CREATE TABLE scratch (id INTEGER)"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await create_then_fail()
    async with db.write("acme") as conn:
        await conn.execute(text("CREATE TABLE scratch (id INTEGER)"))
    # raw SQL lands in the namespace too, so another namespace can have its own table
    await migrate(db, "other")
    async with db.write("other") as conn:
        await conn.execute(text("CREATE TABLE scratch (id INTEGER)"))


@pytest.mark.anyio
async def test_namespaces_are_isolated_and_droppable(db: Database) -> None:
    await migrate(db, "one")
    await migrate(db, "two")
    async with db.write("one") as conn:
        await conn.execute(roles.insert().values(name="only-in-one", scopes=[], builtin=False))
    async with db.read("two") as conn:
        assert (
            await conn.execute(select(roles).where(roles.c.name == "only-in-one"))
        ).first() is None
    await db.drop_namespace("one")
    assert await migrate(db, "one") == [m.version for m in TENANT_MIGRATIONS]


@pytest.mark.anyio
async def test_concurrent_writes_commit_together_and_fail_alone(db: Database) -> None:
    await migrate(db, "acme")
    commits: list[int] = []
    for engine in db.engines_of("acme"):
        event.listen(engine, "commit", lambda _conn: commits.append(1))

    def insert(name: str, fail: bool = False) -> Callable[[Connection], str]:
        def work(conn: Connection) -> str:
            conn.execute(roles.insert().values(name=name, scopes=[], builtin=False))
            if fail:
                raise LookupError(f"{name} fails after its insert")
            return name

        return work

    names = [f"r{n}" for n in range(20)]
    outcomes = await asyncio.gather(
        *(db.run("acme", insert(name, fail=name == "r7"), write=True) for name in names),
        return_exceptions=True,
    )
    assert isinstance(outcomes[7], LookupError)
    assert [o for n, o in enumerate(outcomes) if n != 7] == [n for n in names if n != "r7"]
    async with db.read("acme") as conn:
        stored = set((await conn.execute(select(roles.c.name))).scalars())
    assert stored >= set(names) - {"r7"}
    assert "r7" not in stored  # undone alone
    if db.dialect == "sqlite":
        assert len(commits) == 1  # twenty writers, one commit


_KV_ROW = select(kv_entries).where(
    kv_entries.c.space == "kv", kv_entries.c.key == bindparam("key_")
)
_KV_COUNT = select(func.count()).select_from(kv_entries).where(kv_entries.c.space == "kv")
_KV_TOUCH = update(kv_entries).where(kv_entries.c.key == bindparam("key_")).values(kind="hash")
_KV_IN = select(kv_entries).where(kv_entries.c.key.in_(["a", "b"]))


@pytest.mark.anyio
async def test_fast_statements_answer_like_sqlalchemy(db: Database) -> None:
    await migrate(db, CONTROL)

    def work(conn: Connection) -> None:
        for key in ("a", "b"):
            row = {"space": "kv", "key": key, "kind": "string", "value": key, "expires_at": None}
            execute(conn, kv_entries.insert(), row)
        found = execute(conn, _KV_ROW, {"key_": "a"}).first()
        assert (found.key, found.kind, found.value, found.expires_at) == ("a", "string", "a", None)
        assert execute(conn, _KV_ROW, {"key_": "zz"}).first() is None
        assert execute(conn, _KV_COUNT).scalar_one() == 2
        assert execute(conn, _KV_TOUCH, {"key_": "b"}).rowcount == 1
        assert [r.kind for r in execute(conn, _KV_ROW, {"key_": "b"}).all()] == ["hash"]

    await db.run(CONTROL, work, write=True)


@pytest.mark.anyio
async def test_fast_inserts_store_what_sqlalchemy_stores(db: Database) -> None:
    """Rows of dates (UTC, another zone, whole seconds) and JSON (None included) read back,
    and are stored, as SQLAlchemy's own insert of the same rows leaves them; a naive date is
    refused as SQLAlchemy refuses it."""
    await migrate(db, "acme")
    at = utcnow()
    elsewhere = datetime(2026, 3, 1, 2, 30, tzinfo=timezone(timedelta(hours=3)))
    dates = {20: at, 30: elsewhere, 40: at.replace(microsecond=0)}

    def rows(category: str) -> list[dict[str, object]]:
        return [
            {
                "at": dates[level],
                "level_no": level,
                "category": category,
                "message": f"line {level}",
                "data": data,
                "exception": None,
                "source": None,
                "username": "ada",
            }
            for level, data in ((20, {"n": 1, "s": "é"}), (30, None), (40, [1, "x"]))
        ]

    def work(conn: Connection) -> None:
        conn.execute(logs.insert(), rows("theirs"))
        insert_rows(conn, logs, rows("ours"))
        insert_rows(conn, logs, [])
        naive = [{**rows("naive")[0], "at": datetime(2026, 1, 1)}]
        with pytest.raises((ValueError, StatementError), match="naive datetime"):
            insert_rows(conn, logs, naive)

    await db.run("acme", work, write=True)
    columns = [c for c in logs.c if c.key not in ("id", "category")]
    async with db.read("acme") as conn:
        read = {
            category: [
                tuple(row)
                for row in await conn.execute(
                    select(*columns).where(logs.c.category == category).order_by(logs.c.id)
                )
            ]
            for category in ("theirs", "ours")
        }
        stored = {
            category: (
                await conn.execute(
                    text("SELECT at, data, source FROM roost_logs WHERE category = :c ORDER BY id"),
                    {"c": category},
                )
            ).all()
            for category in ("theirs", "ours")
        }
    assert read["ours"] == read["theirs"]
    assert len(read["ours"]) == 3
    assert read["ours"][0][0] == at
    assert read["ours"][1][0] == elsewhere
    assert read["ours"][0][3] == {"n": 1, "s": "é"}
    assert stored["ours"] == stored["theirs"]


@pytest.mark.anyio
async def test_fast_statements_refuse_a_list_in_an_in(tmp_path: Path) -> None:
    async with sql_database("sqlite", tmp_path) as sqlite_db:

        def work(conn: Connection) -> None:
            execute(conn, _KV_IN)

        with pytest.raises(ValueError, match="IN"):
            await sqlite_db.run(CONTROL, work)


@pytest.mark.anyio
async def test_a_writer_is_told_when_its_group_commit_is_stopped(tmp_path: Path) -> None:
    async with sql_database("sqlite", tmp_path) as sqlite_db:
        started = threading.Event()

        def slow(conn: Connection) -> None:
            started.set()
            time.sleep(0.2)

        write = asyncio.create_task(sqlite_db.run(CONTROL, slow, write=True))
        await asyncio.to_thread(started.wait, 5)
        for committer in list(sqlite_db._committers.values()):
            committer.cancel()
        with pytest.raises(RuntimeError, match="commit was confirmed"):
            await write  # told, rather than left waiting for ever


def _kv_put(key: str, fail: bool = False) -> Callable[[Connection], str]:
    def work(conn: Connection) -> str:
        row = {"space": "kv", "key": key, "kind": "string", "value": key, "expires_at": None}
        execute(conn, kv_entries.insert(), row)
        if fail:
            raise LookupError(f"{key} fails after its insert")
        return key

    return work


async def _kv_keys(db: Database) -> set[str]:
    async with db.read(CONTROL) as conn:
        return set((await conn.execute(select(kv_entries.c.key))).scalars())


@pytest.mark.anyio
async def test_a_small_write_commits_alone_and_a_failed_one_leaves_nothing(
    db: Database,
) -> None:
    await migrate(db, CONTROL)
    assert await db.run(CONTROL, _kv_put("a"), write=True, small=True) == "a"
    with pytest.raises(LookupError):
        await db.run(CONTROL, _kv_put("b", fail=True), write=True, small=True)
    assert await db.run(CONTROL, _kv_put("c"), write=True, small=True) == "c"
    assert await _kv_keys(db) == {"a", "c"}


@pytest.mark.anyio
async def test_a_small_write_waits_for_another_process_without_stopping_the_loop(
    tmp_path: Path,
) -> None:
    """SQLite: while another connection (another process) holds the write lock, a small write
    does not wait on the event loop: it queues for the group commit, which writes it once the
    lock is free."""
    async with sql_database("sqlite", tmp_path) as sqlite_db:
        await sqlite_db.run(CONTROL, _kv_put("first"), write=True, small=True)  # opens the file
        other = sqlite3.connect(sqlite_db.sqlite_path_of(CONTROL), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(
            sqlite_db.run(CONTROL, _kv_put("second"), write=True, small=True)
        )
        await asyncio.sleep(0.2)
        assert not write.done()
        assert CONTROL in sqlite_db._committers  # queued for the group commit, not inline
        other.execute("COMMIT")
        other.close()
        assert await asyncio.wait_for(write, 30) == "second"
        assert await _kv_keys(sqlite_db) == {"first", "second"}


@pytest.mark.anyio
async def test_a_small_write_queues_behind_a_write_under_way(tmp_path: Path) -> None:
    """A small write that arrives while a group commit runs goes after it, never beside it on
    the same connection."""
    async with sql_database("sqlite", tmp_path) as sqlite_db:
        started, order = threading.Event(), []

        def slow(conn: Connection) -> str:
            started.set()
            time.sleep(0.2)
            order.append("slow")
            return _kv_put("slow")(conn)

        first = asyncio.create_task(sqlite_db.run(CONTROL, slow, write=True))
        await asyncio.to_thread(started.wait, 5)
        second = await sqlite_db.run(CONTROL, _kv_put("small"), write=True, small=True)
        order.append(second)
        assert await first == "slow"
        assert order == ["slow", "small"]
        assert await _kv_keys(sqlite_db) == {"slow", "small"}


@pytest.mark.anyio
async def test_small_writes_keep_the_wal_checkpointed(tmp_path: Path) -> None:
    """The writer connection leaves checkpoints to the server, which runs them in a thread:
    the WAL of a namespace written only by small writes stays bounded."""
    async with sql_database("sqlite", tmp_path) as sqlite_db:
        for n in range(2000):
            await sqlite_db.run(CONTROL, _kv_put(f"{n:04d}" + "v" * 2000), write=True, small=True)
            if n % 100 == 0:  # let the checkpoints begun meanwhile end (a loaded machine
                await asyncio.gather(*sqlite_db._checkpoints)  # may not run their thread soon)
        await asyncio.gather(*sqlite_db._checkpoints)
        wal = Path(f"{sqlite_db.sqlite_path_of(CONTROL)}-wal")
        # 2,000 commits of four pages: 34 MB of WAL unless it is checkpointed
        assert (await asyncio.to_thread(wal.stat)).st_size < 8_000_000


_KV_SPACE = (
    select(kv_entries.c.key, kv_entries.c.expires_at)
    .where(kv_entries.c.space == bindparam("space"))
    .order_by(kv_entries.c.key)
)
_KV_SCAN = select(func.count()).where(kv_entries.c.value.contains("9"))
_KV_BELOW = select(func.count().label("count")).where(  # by the key's index: ~67k steps for 'k3'
    kv_entries.c.space == "lock", kv_entries.c.key < bindparam("upto")
)


@pytest.mark.anyio
async def test_an_inline_read_gives_up_on_a_scan_having_read_nothing(tmp_path: Path) -> None:
    async with sql_database("sqlite", tmp_path) as sqlite_db:

        def fill(conn: Connection) -> None:
            for key in ("a", "b"):
                row = {"space": "kv", "key": key, "kind": "string", "value": key}
                conn.execute(
                    kv_entries.insert().values(**row, expires_at=1.5 if key == "b" else None)
                )
            conn.execute(
                text(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                    "WHERE i < 60000) INSERT INTO roost_kv (space, key, kind, value) "
                    "SELECT 'lock', 'k' || i, 'lock', 'v' || i FROM n"
                )
            )

        await sqlite_db.run(CONTROL, fill, write=True)
        dialect = sqlite_dialect.dialect()
        space = TypedSelect(_KV_SPACE, frozenset({"space"}), dialect)
        scan = TypedSelect(_KV_SCAN, frozenset(), dialect)
        short = [(space, space.values({"space": "kv"}))]
        expected = [{"key": "a", "expires_at": None}, {"key": "b", "expires_at": 1.5}]
        assert sqlite_db.read_inline(CONTROL, short) == [expected]
        assert sqlite_db.read_inline(CONTROL, [*short, (scan, scan.values({}))]) is None
        assert sqlite_db.read_inline(CONTROL, short * 2) == [expected, expected]  # usable still
        below = TypedSelect(_KV_BELOW, frozenset({"upto"}), dialect)
        for _ in range(10):  # each run is measured alone, not with the runs before it
            read = [(below, below.values({"upto": "k3"}))]
            assert sqlite_db.read_inline(CONTROL, read) == [[{"count": 22222}]]
        counted = await sqlite_db.run(CONTROL, lambda conn: conn.execute(_KV_SCAN).scalar_one())
        assert counted > 0  # the scan itself runs in a thread


_EVERY_TYPE: list[dict[str, Any]] = [
    {"name": "code", "type": "varchar(8)", "constraints": ["UNIQUE"]},
    {"name": "note", "type": "text", "default": "'none yet'"},
    {"name": "count", "type": "integer"},
    {"name": "big", "type": "bigint"},
    {"name": "flag", "type": "boolean"},
    {"name": "at", "type": "timestamp"},
    {"name": "at_tz", "type": "timestamptz"},
    {"name": "day", "type": "date"},
    {"name": "ref", "type": "uuid", "default": "uuid()"},
    {"name": "doc", "type": "json"},
    {"name": "blob", "type": "bytes"},
    {"name": "price", "type": "decimal(10,2)"},
]
_ROWS = [
    {
        "code": "a",
        "count": 3,
        "big": 2**40,
        "flag": True,
        "at": datetime(2024, 5, 6, 7, 8, 9, 123456),
        "at_tz": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        "day": date(2024, 5, 6),
        "ref": uuid.UUID(int=7),
        "doc": {"a": [1, None, "x"], "b": {"c": 1.5}},
        "blob": b"\0\1\2",
        "price": Decimal("12.34"),
    },
    {"code": "b", "doc": None, "flag": False, "note": None},
    {"code": "c", "doc": [], "price": None},
]


@pytest.mark.anyio
async def test_prebuilt_writes_answer_like_sqlalchemy(tmp_path: Path) -> None:
    """SQLite: an insert and an update by key as `TypedWrite` run them on the driver store and
    return the rows that SQLAlchemy's own statements do, defaults filled in, and refuse a
    duplicate with SQLAlchemy's IntegrityError and message."""
    specs = [parse_column(spec, "c") for spec in _EVERY_TYPE]
    columns = with_platform_columns(specs, timestamps=True)
    metadata = MetaData()
    general = build_table(TableDef("general", columns), metadata, "sqlite")
    fast = build_table(TableDef("fast", columns), metadata, "sqlite")
    kept = {"created_at", "updated_at", "ref"}  # defaults of each call: compared by type

    def comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: type(v) if k in kept else (type(v), v) for k, v in row.items()} for row in rows]

    def work(conn: Connection) -> None:
        metadata.create_all(conn)
        driver = conn.connection.dbapi_connection
        assert isinstance(driver, sqlite3.Connection)
        for row in _ROWS:
            names = frozenset(row)
            expected = conn.execute(general.insert().returning(*general.c), [row]).mappings()
            insert = TypedWrite(fast.insert().returning(*fast.c), names, list(fast.c), SQLITE)
            assert comparable(insert.run(driver, row)) == comparable([dict(expected.one())])
            with pytest.raises(IntegrityError) as refused:
                insert.run(driver, row)
            with pytest.raises(IntegrityError) as expected_refusal:
                conn.execute(general.insert(), [row])
            assert str(refused.value.orig).replace("fast", "general") == str(
                expected_refusal.value.orig
            )
            change = {**row, "code": row["code"] + "2", "count": 9, "doc": {"n": None}}
            pk = bindparam("PK")
            update_general = update(general).where(general.c.id == pk).returning(*general.c)
            update_fast = update(fast).where(fast.c.id == pk).returning(*fast.c)
            key = conn.execute(select(func.max(general.c.id))).scalar_one()
            params = {**change, "PK": key}
            updated = TypedWrite(update_fast, frozenset(params), list(fast.c), SQLITE)
            expected = conn.execute(update_general, params).mappings()
            assert comparable(updated.run(driver, params)) == comparable([dict(expected.one())])
            assert updated.run(driver, {**params, "PK": -1}) == []
        stored = [
            [dict(r) for r in conn.execute(select(t).order_by(t.c.id)).mappings()]
            for t in (general, fast)
        ]
        assert comparable(stored[0]) == comparable(stored[1])

    async with sql_database("sqlite", tmp_path) as sqlite_db:
        await sqlite_db.run(CONTROL, work, write=True)
