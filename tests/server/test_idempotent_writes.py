"""Record writes with an Idempotency-Key (database.create, update, delete) keep the record of
their answer in the tenant's database, written in the write's own transaction
(server/idempotency.py): the change and its record commit together or not at all."""

from __future__ import annotations

import asyncio
import base64
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from tests.conftest import POSTGRES_URL, RunningServer, platform_of, unique
from tests.deployed import api_key, sign_in


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def a_table(http: httpx.Client, headers: dict[str, str]) -> str:
    """A new table with a unique `code` and a `name`."""
    name = unique("items")
    columns = [
        {"name": "code", "type": "varchar(20)", "constraints": ["UNIQUE"]},
        {"name": "name", "type": "text"},
    ]
    answer = http.post(
        "/api/v1/schema/add_table", json={"name": name, "columns": columns}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    return name


def a_row(http: httpx.Client, headers: dict[str, str], table: str, name: str) -> Any:
    """The id of a new row of `table` with code c1 and `name`, made without a key."""
    body = {"table": table, "rows": [{"code": "c1", "name": name}]}
    made = http.post("/api/v1/database/create", json=body, headers=headers)
    assert made.status_code == 200, made.text
    return made.json()["rows"][0]["id"]


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def rows_of(http: httpx.Client, headers: dict[str, str], table: str) -> list[dict[str, Any]]:
    answer = http.post("/api/v1/database/query", json={"table": table}, headers=headers)
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()["rows"]
    return rows


def test_requests_with_one_key_at_the_same_time_make_one_row_and_all_get_its_answer(
    http: httpx.Client, server: RunningServer
) -> None:
    admin = sign_in(http)
    table = a_table(http, admin)
    body = {"table": table, "rows": [{"code": "c1", "name": "once"}]}
    key, callers = uuid.uuid4().hex, 12
    start = threading.Barrier(callers)
    answers: list[httpx.Response] = []

    def call() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as own:
            start.wait()
            answers.append(
                own.post("/api/v1/database/create", json=body, headers=keyed(admin, key))
            )

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * callers, [a.text for a in answers]
    assert len({a.text for a in answers}) == 1  # one answer, replayed to all
    assert [r["code"] for r in rows_of(http, admin, table)] == ["c1"]


def test_a_refused_write_records_nothing_and_its_retry_runs(http: httpx.Client) -> None:
    admin = sign_in(http)
    table = a_table(http, admin)
    first_id = a_row(http, admin, table, "first")
    body = {"table": table, "rows": [{"code": "c1", "name": "second"}]}
    key = uuid.uuid4().hex
    clash = http.post("/api/v1/database/create", json=body, headers=keyed(admin, key))
    assert clash.status_code == 409, clash.text  # a conflict is not recorded: a retry runs
    gone = http.post(
        "/api/v1/database/delete", json={"table": table, "id": first_id}, headers=admin
    )
    assert gone.status_code == 200, gone.text
    retried = http.post("/api/v1/database/create", json=body, headers=keyed(admin, key))
    assert retried.status_code == 200, retried.text
    again = http.post("/api/v1/database/create", json=body, headers=keyed(admin, key))
    assert again.json() == retried.json()
    assert [r["name"] for r in rows_of(http, admin, table)] == ["second"]


def test_a_refusal_a_retry_would_repeat_is_the_keys_answer(http: httpx.Client) -> None:
    admin = sign_in(http)
    table = a_table(http, admin)
    body = {"table": table, "rows": [{"code": "c1", "colour": "red"}]}
    key = uuid.uuid4().hex
    refused = http.post("/api/v1/database/create", json=body, headers=keyed(admin, key))
    assert refused.status_code == 400, refused.text
    added = http.post(
        "/api/v1/schema/add_column",
        json={"table": table, "column": {"name": "colour", "type": "text"}},
        headers=admin,
    )
    assert added.status_code == 200, added.text
    replayed = http.post("/api/v1/database/create", json=body, headers=keyed(admin, key))
    assert (replayed.status_code, replayed.json()) == (400, refused.json())
    assert rows_of(http, admin, table) == []


def test_an_update_and_a_delete_replay_their_answers(http: httpx.Client) -> None:
    admin = sign_in(http)
    table = a_table(http, admin)
    row_id = a_row(http, admin, table, "a")
    change = {"table": table, "id": row_id, "data": {"name": "b"}}
    key = uuid.uuid4().hex
    first = http.post("/api/v1/database/update", json=change, headers=keyed(admin, key))
    assert first.status_code == 200, first.text
    again = http.post("/api/v1/database/update", json=change, headers=keyed(admin, key))
    assert again.json() == first.json()
    other = http.post(
        "/api/v1/database/update",
        json={**change, "data": {"name": "c"}},
        headers=keyed(admin, key),
    )
    assert other.status_code == 400  # the same key for another request
    key = uuid.uuid4().hex
    removal = {"table": table, "id": row_id}
    deleted = http.post("/api/v1/database/delete", json=removal, headers=keyed(admin, key))
    assert deleted.json()["count"] == 1, deleted.text
    replayed = http.post("/api/v1/database/delete", json=removal, headers=keyed(admin, key))
    assert (replayed.status_code, replayed.json()["count"]) == (200, 1)  # not a 404


def test_the_record_in_the_tenants_database_keeps_the_answer_sealed(
    http: httpx.Client, server: RunningServer
) -> None:
    admin = sign_in(http)
    table = a_table(http, admin)
    marker = f"plain-{secrets.token_hex(8)}"
    key = uuid.uuid4().hex
    made = http.post(
        "/api/v1/database/create",
        json={"table": table, "rows": [{"code": "c1", "name": marker}]},
        headers=keyed(admin, key),
    )
    assert made.status_code == 200, made.text
    stored = _records_at_rest(server)
    assert stored, "no record was written"
    for slot, request, sealed in stored:
        assert key not in slot
        assert key not in request
        assert marker.encode() not in sealed


def _records_at_rest(server: RunningServer) -> list[tuple[str, str, bytes]]:
    """The default tenant's idempotency records, read around the server."""
    db = platform_of(server).db
    query = "SELECT slot, request, sealed FROM {}roost_idempotency_answers"
    if server.backend == "sqlite":
        with sqlite3.connect(db.sqlite_path_of("default")) as conn:
            return [tuple(row) for row in conn.execute(query.format(""))]

    async def rows() -> list[tuple[str, str, bytes]]:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            found = await conn.fetch(query.format(f'"{db.schema_of("default")}".'))
            return [(row[0], row[1], bytes(row[2])) for row in found]
        finally:
            await conn.close()

    return asyncio.run(rows())


def test_another_credential_with_the_same_key_does_not_get_the_answer(
    http: httpx.Client,
) -> None:
    """A record belongs to the credential that made it: a narrower API key sending the admin's
    key runs as a request of its own (a replay would hand it the admin's answer)."""
    admin = sign_in(http)
    table = a_table(http, admin)
    narrow = api_key(http, admin, ["database:write"])
    body = {"table": table, "rows": [{"code": "c1", "name": "admin's"}]}
    key = uuid.uuid4().hex
    first = http.post("/api/v1/database/create", json=body, headers=keyed(admin, key))
    assert first.status_code == 200, first.text
    other = http.post("/api/v1/database/create", json=body, headers=keyed(narrow, key))
    assert other.status_code == 409, other.text  # ran: the unique code is taken
    assert other.json()["error"]["code"] == "unique_violation"


def test_a_replay_over_messagepack_is_the_first_answer_byte_for_byte(
    http: httpx.Client,
) -> None:
    """Binary, date, UUID and decimal values replay as they were first answered (a record
    sealed as JSON turned bytes into a base64 string)."""
    admin = sign_in(http)
    table = unique("typed")
    columns = [
        {"name": "b", "type": "bytes"},
        {"name": "d", "type": "date"},
        {"name": "u", "type": "uuid"},
        {"name": "f", "type": "decimal(10,2)"},
    ]
    made = http.post(
        "/api/v1/schema/add_table", json={"name": table, "columns": columns}, headers=admin
    )
    assert made.status_code == 200, made.text
    row = {"b": base64.b64encode(b"\x00\x01raw").decode(), "d": "2026-01-02", "f": "1.50"}
    body = msgspec.msgpack.encode({"table": table, "rows": [{**row, "u": str(uuid.uuid4())}]})
    headers = {
        **keyed(admin, uuid.uuid4().hex),
        "content-type": "application/msgpack",
        "accept": "application/msgpack",
    }
    first = http.post("/api/v1/database/create", content=body, headers=headers)
    assert first.status_code == 200, first.content
    assert msgspec.msgpack.decode(first.content)["rows"][0]["b"] == b"\x00\x01raw"
    replayed = http.post("/api/v1/database/create", content=body, headers=headers)
    assert (replayed.status_code, replayed.content) == (200, first.content)
