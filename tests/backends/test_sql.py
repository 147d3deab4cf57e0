"""The SQL backend on SQLite and PostgreSQL: migrations, transactions, namespaces."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, bindparam, event, func, select, text, update

from roost.backends.sql import CONTROL, Database
from roost.backends.sql.fast import execute
from roost.backends.sql.migrations import CONTROL_MIGRATIONS, TENANT_MIGRATIONS, migrate
from roost.backends.sql.tables import kv_entries, roles
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
