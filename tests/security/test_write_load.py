"""Record writes under load: many clients creating at once (issue 11, "under load").

On SQLite the writes that queue behind the one writer share a transaction (group commit), each
in a savepoint of its own. These tests pin what must hold however the writes are grouped: every
create lands exactly once, one that breaks a constraint fails alone (a 409 naming it), change
feeds carry every event in commit order, and secure tables audit every write. They run on
SQLite and PostgreSQL; the figures are in `benchmarks/database.py`, not here.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import event

from roost import AsyncClient, ConflictError, NotFoundError
from roost.client._core.results import TableChange
from roost.services.tenants import DEFAULT_TENANT
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    REDIS_URL,
    RunningServer,
    platform_of,
    require_redis,
    unique,
)
from tests.waiting import wait_until

# calls at once: several times what any pool or group commit of the server holds (more only
# costs the suite CPU: 200 found nothing 100 does not)
CLIENTS = 100
COLUMNS: list[dict[str, Any]] = [
    {"name": "code", "type": "varchar(40)", "constraints": ["UNIQUE"]},
    {"name": "client", "type": "integer"},
    {"name": "tags", "type": "json"},
]


@asynccontextmanager
async def _admin(server: RunningServer) -> AsyncIterator[AsyncClient]:
    """The admin, on a client that can hold every concurrent call open at once."""
    async with AsyncClient(api_url=server.url, pool_size=CLIENTS, timeout=120) as client:
        yield await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)


async def _all_rows(admin: AsyncClient, table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await admin.database.query(table).page_size(1000).get()
    return rows


async def _outcomes(calls: Sequence[Awaitable[Any]]) -> list[Any]:
    """Every call at once; each one's answer or the error it raised."""
    return await asyncio.gather(*calls, return_exceptions=True)


@pytest.mark.anyio
async def test_concurrent_creates_all_land_exactly_once(server: RunningServer) -> None:
    async with _admin(server) as admin:
        table = unique("load_")
        await admin.schema.add_table(table, COLUMNS)
        answers = await _outcomes(
            [
                admin.database.create(table, {"code": f"c{n}", "client": n, "tags": {"n": n}})
                for n in range(CLIENTS)
            ]
        )
        assert [a for a in answers if isinstance(a, BaseException)] == []
        assert [a["client"] for a in answers] == list(range(CLIENTS))  # each its own row
        assert all(
            a["code"] == f"c{a['client']}" and a["tags"] == {"n": a["client"]} for a in answers
        )
        assert len({a["id"] for a in answers}) == CLIENTS
        stored = await _all_rows(admin, table)
        assert sorted(r["client"] for r in stored) == list(range(CLIENTS))
        by_id = {r["id"]: r for r in stored}
        assert all(by_id[a["id"]] == a for a in answers)  # the answer is the row as stored


@pytest.mark.anyio
async def test_a_unique_violation_among_concurrent_creates_fails_alone(
    server: RunningServer,
) -> None:
    async with _admin(server) as admin:
        table = unique("load_")
        await admin.schema.add_table(table, COLUMNS)
        await admin.database.create(table, {"code": "taken", "client": -1})
        clashing = set(range(0, CLIENTS, 20))  # these reuse the code that is taken
        bulk_clashing = set(range(5, CLIENTS, 50))  # these insert two rows, the second clashing

        def rows_of(n: int) -> list[dict[str, Any]]:
            if n in clashing:
                return [{"code": "taken", "client": n}]
            if n in bulk_clashing:
                return [{"code": f"b{n}", "client": n}, {"code": "taken", "client": n}]
            return [{"code": f"c{n}", "client": n}]

        answers = await _outcomes(
            [admin.database.create(table, rows_of(n)) for n in range(CLIENTS)]
        )
        for n, answer in enumerate(answers):
            if n in clashing | bulk_clashing:
                assert isinstance(answer, ConflictError), (n, answer)
                assert answer.status_code == 409
                assert answer.code == "unique_violation"
            else:
                assert isinstance(answer, list), (n, answer)
                assert answer[0]["client"] == n
        stored = await _all_rows(admin, table)
        landed = Counter(r["client"] for r in stored)
        expected = set(range(CLIENTS)) - clashing - bulk_clashing
        assert landed == Counter({n: 1 for n in expected | {-1}})  # no half of a bulk create


@pytest.mark.anyio
async def test_concurrent_updates_and_deletes_fail_alone(server: RunningServer) -> None:
    async with _admin(server) as admin:
        table = unique("load_")
        await admin.schema.add_table(table, COLUMNS)
        created = await admin.database.create(
            table, [{"code": f"c{n}", "client": n} for n in range(CLIENTS)]
        )
        ids = [row["id"] for row in created]
        missing = max(ids) + 1000

        def change(n: int) -> Any:
            if n % 4 == 0:
                return admin.database.delete(table, record_id=ids[n])
            if n % 4 == 1:  # two rows by id, the second missing: nothing may change
                rows = [{"id": ids[n], "client": -n}, {"id": missing, "client": 0}]
                return admin.database.update(table, rows)
            if n % 4 == 2:  # takes a code another row holds
                return admin.database.update(table, {"code": "c1"}, record_id=ids[n])
            return admin.database.update(table, {"client": n * 10}, record_id=ids[n])

        answers = await _outcomes([change(n) for n in range(CLIENTS)])
        for n, answer in enumerate(answers):
            expected_error = {1: NotFoundError, 2: ConflictError}.get(n % 4)
            if expected_error is not None:
                assert isinstance(answer, expected_error), (n, answer)
            else:
                assert not isinstance(answer, BaseException), (n, answer)
        stored = {r["code"]: r["client"] for r in await _all_rows(admin, table)}
        assert stored == {
            f"c{n}": (n * 10 if n % 4 == 3 else n) for n in range(CLIENTS) if n % 4 != 0
        }


@pytest.mark.anyio
async def test_change_feed_has_every_event_of_concurrent_writes_in_commit_order(
    server: RunningServer,
) -> None:
    await _check_change_feed(server)


@pytest.mark.anyio
async def test_change_feed_on_redis_has_every_event_of_concurrent_writes(
    make_server: Callable[..., RunningServer],
) -> None:
    require_redis()
    await _check_change_feed(make_server(redis_url=REDIS_URL))


async def _check_change_feed(server: RunningServer) -> None:
    async with _admin(server) as admin:
        table = unique("load_")
        await admin.schema.add_table(table, COLUMNS)
        changes: list[TableChange] = []
        await admin.database.subscribe(table, changes.append)
        created = await _outcomes(
            [admin.database.create(table, {"code": f"c{n}", "client": n}) for n in range(CLIENTS)]
        )
        target = created[0]["id"]
        await _outcomes(
            [admin.database.update(table, {"client": n}, record_id=target) for n in range(1, 51)]
        )
        await wait_until(lambda: len(changes) == CLIENTS + 50)
        inserts = [c for c in changes if c.type == "insert"]
        assert sorted(c.record["client"] for c in inserts) == list(range(CLIENTS))
        assert [c.offset for c in changes] == sorted(c.offset for c in changes)
        final = await admin.database.get(table, target)
        last_update = [c for c in changes if c.type == "update"][-1]
        assert last_update.record == final  # the feed's last word is what the table holds


@pytest.mark.anyio
async def test_concurrent_creates_in_a_secure_table_are_each_audited(
    server: RunningServer,
) -> None:
    async with _admin(server) as admin:
        table = unique("load_")
        await admin.schema.add_table(table, COLUMNS, secure=True)
        answers = await _outcomes(
            [
                admin.database.create(
                    table, {"code": f"c{n}", "client": n}, reason="intake", actor=f"nurse{n}"
                )
                for n in range(50)
            ]
        )
        entries = await admin.audit.query(table, operation="create", limit=1000)
        assert sorted((e["actor"], e["record_ids"][0]) for e in entries) == sorted(
            (f"nurse{a['client']}", a["id"]) for a in answers
        )


@pytest.mark.anyio
async def test_concurrent_creates_share_commits_on_sqlite(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server()
    async with _admin(running) as admin:
        table = unique("load_")
        await admin.schema.add_table(table, COLUMNS)
        commits: list[int] = []
        engines = platform_of(running).db.engines_of(DEFAULT_TENANT)
        for engine in engines:
            event.listen(engine, "commit", lambda _conn: commits.append(1))
        answers = await _outcomes(
            [admin.database.create(table, {"code": f"c{n}", "client": n}) for n in range(CLIENTS)]
        )
        assert [a for a in answers if isinstance(a, BaseException)] == []
        assert len(await _all_rows(admin, table)) == CLIENTS
        # Before, each create was a transaction of its own: CLIENTS commits.
        assert 0 < len(commits) < CLIENTS


@pytest.mark.anyio
async def test_concurrent_document_writes_all_land(server: RunningServer) -> None:
    async with _admin(server) as admin:
        collection = admin.collection(unique("docs_"))
        await _outcomes([collection.set(f"d{n}", {"n": n}) for n in range(100)])
        answers = await _outcomes(
            [collection.update(f"d{n}", {"m": n * 2}) for n in range(100)]
            + [collection.update("nobody", {"m": 1})]
        )
        assert isinstance(answers[-1], NotFoundError)
        assert answers[:-1] == [{"id": f"d{n}", "n": n, "m": n * 2} for n in range(100)]
        deleted = await _outcomes([collection.delete(f"d{n}") for n in range(0, 100, 2)])
        assert all(not isinstance(d, BaseException) for d in deleted)
        left = await collection.query().limit(1000).execute()
        assert sorted(d["n"] for d in left) == list(range(1, 100, 2))
