"""Streamed operations: items in order, cancellation, an error after some items, a slow reader.

`database.export` is the product's streamed operation (SQLite and PostgreSQL). The handler's
own behaviour under cancellation and back-pressure is watched through `test.count`
(`tests/counting.py`), an operation added to a real server's registry: it records how many
items it has produced and how its generator ended.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from roost import AsyncClient
from roost.errors import ValidationError
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.counting import RUNS, registry_with_count
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio


async def admin_key(server: RunningServer, scopes: tuple[str, ...] = ("*",)) -> str:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        created = await admin.api_keys.create(unique("streams"), list(scopes))
        return str(created["key"])


@asynccontextmanager
async def signed_in(server: RunningServer, key: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(api_url=server.url) as client:
        yield await client.auth.sign_in_with_token(key, "api_key")


def ws_url(server: RunningServer) -> str:
    return server.url.replace("http://", "ws://") + "/api/v1/ws"


async def frames_of(ws: ClientConnection, frame_id: int) -> AsyncIterator[dict[str, Any]]:
    """The frames for one call, up to its end or error frame."""
    while True:
        received = json.loads(await ws.recv())
        for frame in received if isinstance(received, list) else [received]:
            if frame.get("id") != frame_id:
                continue
            yield frame
            if "chunk" not in frame:
                return


@pytest.fixture
def counting(make_server: Callable[..., RunningServer]) -> Callable[..., RunningServer]:
    def make(**settings: Any) -> RunningServer:
        return make_server(registry=registry_with_count(), **settings)

    return make


# -- the product's streamed operation, on both SQL backends ---------------------------------


async def exported_table(server: RunningServer, rows: int) -> tuple[str, str]:
    key, table = await admin_key(server), unique("export")
    async with signed_in(server, key) as client:
        await client.schema.add_table(table, [{"name": "n", "type": "integer"}])
        await client.database.bulk_insert(table, [{"n": n} for n in range(rows)])
    return key, table


async def test_export_streams_every_row_in_order_over_websocket_and_ndjson(
    server: RunningServer,
) -> None:
    key, table = await exported_table(server, 250)
    params = {"table": table, "page_size": 40, "filters": [["n", "gte", 10]]}
    async with connect(
        ws_url(server), additional_headers={"Authorization": f"Api-Key {key}"}
    ) as ws:
        await ws.send(json.dumps({"id": 1, "method": "database.export", "params": params}))
        frames = [frame async for frame in frames_of(ws, 1)]
    assert frames[-1] == {"id": 1, "end": True}
    assert [frame["chunk"]["n"] for frame in frames[:-1]] == list(range(10, 250))

    headers = {"Authorization": f"Api-Key {key}"}
    async with (
        httpx.AsyncClient(base_url=server.url, headers=headers) as http,
        http.stream("POST", "/api/v1/database/export", json=params) as answer,
    ):
        assert answer.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) async for line in answer.aiter_lines() if line]
    assert lines[-1] == {"end": True}
    assert [line["chunk"]["n"] for line in lines[:-1]] == list(range(10, 250))

    async with signed_in(server, key) as client:
        rows = [row async for row in client.realtime.stream("database.export", params)]
    assert [row["n"] for row in rows] == list(range(10, 250))


async def test_export_is_scope_checked_and_refuses_bad_input_with_4xx(
    server: RunningServer,
) -> None:
    key, table = await exported_table(server, 3)
    reader = await admin_key(server, ("kv:read",))
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.post(
            "/api/v1/database/export",
            json={"table": table},
            headers={"Authorization": f"Api-Key {reader}"},
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "missing_scope"
        bad = await http.post(
            "/api/v1/database/export",
            json={"table": table, "page_size": 0},
            headers={"Authorization": f"Api-Key {key}"},
        )
        assert bad.status_code == 400
        assert "page_size" in bad.json()["error"]["message"]
        missing = await http.post(
            "/api/v1/database/export",
            json={"table": unique("nosuch")},
            headers={"Authorization": f"Api-Key {key}"},
        )
        assert missing.status_code == 404
        # a stream is not a unary call: in a batch it is refused, not run
        batch = await http.post(
            "/api/v1/batch",
            json={"operations": [{"command": "database.export", "payload": {"table": table}}]},
            headers={"Authorization": f"Api-Key {key}"},
        )
        assert batch.json()["results"][0]["error"]["code"] == "wrong_operation_kind"


# -- cancellation, errors and back-pressure, watched from the handler ------------------------


async def test_a_cancel_frame_closes_the_handlers_generator(
    counting: Callable[..., RunningServer],
) -> None:
    server = counting()
    key, run = await admin_key(server), unique("cancel")
    headers = {"Authorization": f"Api-Key {key}"}
    async with connect(ws_url(server), additional_headers=headers) as ws:
        params = {"run": run, "n": 10_000_000}
        await ws.send(json.dumps({"id": 7, "method": "test.count", "params": params}))
        seen = []
        async for frame in frames_of(ws, 7):
            seen.append(frame["chunk"]["n"])
            if len(seen) == 3:
                break
        await ws.send(json.dumps({"type": "cancel", "id": 7}))
        await wait_until(lambda: RUNS[run].ended is not None)
        assert RUNS[run].ended in ("GeneratorExit", "cancelled")
        assert seen == [0, 1, 2]
        # the connection goes on serving calls
        await ws.send(json.dumps({"id": 8, "method": "health.check"}))
        answers = [f async for f in frames_of(ws, 8)]
        assert "result" in answers[-1] or "error" in answers[-1]


async def test_a_client_that_goes_away_closes_the_generator_on_both_doors(
    counting: Callable[..., RunningServer],
) -> None:
    server = counting()
    key = await admin_key(server)
    headers = {"Authorization": f"Api-Key {key}"}
    on_ws, on_http = unique("ws"), unique("http")
    async with connect(ws_url(server), additional_headers=headers, close_timeout=1) as ws:
        params = {"run": on_ws, "n": 10_000_000}
        await ws.send(json.dumps({"id": 1, "method": "test.count", "params": params}))
        await ws.recv()
        # The client says goodbye (a Close frame) and reads nothing more: the generator ends
        # on that frame, not when the connection drops (the client's own close waits for the
        # server's reply behind the items it left unread, up to its close_timeout).
        ws.protocol.send_close(1000)
        ws.send_data()
        await wait_until(lambda: on_ws in RUNS and RUNS[on_ws].ended is not None)
    assert RUNS[on_ws].ended in ("GeneratorExit", "cancelled")

    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        body = {"run": on_http, "n": 10_000_000}
        async with http.stream("POST", "/api/v1/test/count", json=body) as answer:
            lines = answer.aiter_lines()
            assert json.loads(await anext(lines)) == {"chunk": {"n": 0, "pad": ""}}
    await wait_until(lambda: RUNS[on_http].ended is not None)
    assert RUNS[on_http].ended in ("GeneratorExit", "cancelled")


async def test_an_error_after_some_items_ends_the_stream_with_the_error(
    counting: Callable[..., RunningServer],
) -> None:
    server = counting()
    key = await admin_key(server)
    headers = {"Authorization": f"Api-Key {key}"}
    params = {"run": unique("fail"), "n": 10, "fail_after": 3}
    async with connect(ws_url(server), additional_headers=headers) as ws:
        await ws.send(json.dumps({"id": 2, "method": "test.count", "params": params}))
        frames = [frame async for frame in frames_of(ws, 2)]
    assert [frame["chunk"]["n"] for frame in frames[:-1]] == [0, 1, 2]
    assert frames[-1]["error"]["code"] == "validation_error"
    assert frames[-1]["error"]["details"] == {"field": "n"}

    params["run"] = unique("fail")
    async with (
        httpx.AsyncClient(base_url=server.url, headers=headers) as http,
        http.stream("POST", "/api/v1/test/count", json=params) as answer,
    ):
        assert answer.status_code == 200
        lines = [json.loads(line) async for line in answer.aiter_lines() if line]
    assert [line["chunk"]["n"] for line in lines[:-1]] == [0, 1, 2]
    assert lines[-1]["error"]["code"] == "validation_error"

    async with signed_in(server, key) as client:
        got: list[int] = []
        params["run"] = unique("fail")
        with pytest.raises(ValidationError, match="on purpose"):
            await read_into(got, client.realtime.stream("test.count", params))
        assert got == [0, 1, 2]


async def test_a_slow_reader_holds_the_producer_back(
    counting: Callable[..., RunningServer],
) -> None:
    # Items of 64 KiB with a 1 MiB outbound bound: a server that ran ahead of its reader
    # would hold the 1,500 items (about 100 MB) or drop the connection as a slow consumer.
    server = counting(ws_max_outbound_bytes=1024 * 1024)
    key, run, total = await admin_key(server), unique("slow"), 1500
    headers = {"Authorization": f"Api-Key {key}"}
    async with connect(ws_url(server), additional_headers=headers, max_size=None) as ws:
        params = {"run": run, "n": total, "pad": 64 * 1024}
        await ws.send(json.dumps({"id": 3, "method": "test.count", "params": params}))
        frames = frames_of(ws, 3)
        received = [(await anext(frames))["chunk"]["n"] for _ in range(5)]
        await stalled(lambda: RUNS[run].produced)
        # what the socket buffers, the server's outbox and the client's queue hold together
        assert RUNS[run].produced - len(received) < 400
        try:
            received += [frame["chunk"]["n"] async for frame in frames if "chunk" in frame]
        except ConnectionClosed:
            pytest.fail("the server dropped a reader it should have waited for")
    assert received == list(range(total))
    assert RUNS[run].ended == "done"


async def read_into(got: list[int], items: AsyncIterator[Any]) -> None:
    async for item in items:
        got.append(item["n"])


async def stalled(produced: Callable[[], int]) -> None:
    """Wait until the producer has stopped moving (for a while) or finished."""
    last, still = -1, 0
    for _ in range(300):
        now = produced()
        still = still + 1 if now == last else 0
        if still >= 10:
            return
        last = now
        await asyncio.sleep(0.05)


def test_the_sync_client_reads_a_stream_and_cancels_when_left(
    counting: Callable[..., RunningServer],
) -> None:
    from roost import Client

    server = counting()
    key = asyncio.run(admin_key(server))
    run = unique("sync")
    with Client(api_url=server.url) as anonymous:
        client = anonymous.auth.sign_in_with_token(key, "api_key")
        got = []
        for item in client.realtime.stream("test.count", {"run": run, "n": 10_000_000}):
            got.append(item["n"])
            if len(got) == 4:
                break
        assert got == [0, 1, 2, 3]
        for _ in range(300):
            if RUNS[run].ended is not None:
                break
            threading.Event().wait(0.02)
        assert RUNS[run].ended in ("GeneratorExit", "cancelled")
        short = list(client.realtime.stream("test.count", {"run": unique("s"), "n": 3}))
        assert [item["n"] for item in short] == [0, 1, 2]
