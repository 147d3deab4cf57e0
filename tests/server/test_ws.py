"""The WebSocket door, spoken to frame by frame with a plain WebSocket client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from roost import AsyncClient
from roost.backends.sql import Database
from roost.backends.stream.sql import SqlStreamStore
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    REDIS_URL,
    RunningServer,
    platform_of,
    require_redis,
    unique,
)

pytestmark = pytest.mark.anyio


async def api_key(server: RunningServer, scopes: list[str]) -> str:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        created = await admin.api_keys.create(unique("ws"), scopes)
        return str(created["key"])


@asynccontextmanager
async def socket(server: RunningServer, key: str | None) -> AsyncIterator[ClientConnection]:
    url = server.url.replace("http://", "ws://") + "/api/v1/ws"
    headers = {"Authorization": f"Api-Key {key}"} if key else {}
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        yield ws


async def call(ws: ClientConnection, frame_id: int, method: str, **params: Any) -> Any:
    await ws.send(json.dumps({"id": frame_id, "method": method, "params": params}))
    return json.loads(await ws.recv())


async def test_calls_answer_by_id_with_many_in_flight(server: RunningServer) -> None:
    key, prefix = await api_key(server, ["kv:*"]), unique("ws")
    async with socket(server, key) as ws:
        for n in range(100):
            await ws.send(
                json.dumps(
                    {"id": n, "method": "kv.set", "params": {"key": f"{prefix}{n}", "value": n}}
                )
            )
        answers = [json.loads(await ws.recv()) for _ in range(100)]
        assert sorted(a["id"] for a in answers) == list(range(100))
        assert all(a["result"] == {"success": True} for a in answers)
        got = await call(ws, 500, "kv.get", key=f"{prefix}7")
        assert got == {"id": 500, "result": {"found": True, "value": 7, "ttl": -1}}


async def answers_to(ws: ClientConnection, frames: list[dict[str, Any]]) -> dict[Any, Any]:
    """Send `frames` as one array frame; every answer, by id (they may come in arrays)."""
    await ws.send(json.dumps(frames))
    answers: dict[Any, Any] = {}
    while len(answers) < len(frames):
        received = json.loads(await ws.recv())
        for answer in received if isinstance(received, list) else [received]:
            answers[answer["id"]] = answer
    return answers


async def check_a_run_of_gets(server: RunningServer) -> None:
    key, prefix = await api_key(server, ["kv:*"]), unique("run")
    async with socket(server, key) as ws:
        await call(ws, 1, "kv.set", key=f"{prefix}a", value={"n": 1})
        await call(ws, 2, "kv.hset", key=f"{prefix}h", field="f", value=1)

        def get(frame_id: int, key: Any) -> dict[str, Any]:
            return {"id": frame_id, "method": "kv.get", "params": {"key": key}}

        answers = await answers_to(
            ws,
            [
                get(10, f"{prefix}a"),
                get(11, f"{prefix}missing"),
                get(12, ""),
                get(13, f"{prefix}h"),
                get(14, f"{prefix}\x07bell"),
                get(15, 42),
                {"id": 16, "method": "kv.hget", "params": {"key": f"{prefix}h", "field": "f"}},
                get(17, f"{prefix}a"),
            ],
        )
    assert answers[10]["result"] == {"found": True, "value": {"n": 1}, "ttl": -1}
    assert answers[11]["result"] == {"found": False, "value": None, "ttl": None}
    for bad in (12, 14, 15):
        assert answers[bad]["error"]["code"] == "validation_error"
        assert answers[bad]["error"]["details"]["field"] == "key"
    assert answers[13]["error"]["code"] == "wrong_type"
    assert answers[16]["result"]["value"] == 1  # another operation ends the run
    assert answers[17]["result"]["value"] == {"n": 1}


async def test_a_run_of_gets_in_one_frame_is_answered_call_by_call(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = platform_of(server).kv
    reads: list[int] = []
    get_many = store.get_many

    async def counted(keys: list[str]) -> Any:
        reads.append(len(keys))
        return await get_many(keys)

    monkeypatch.setattr(store, "get_many", counted)
    await check_a_run_of_gets(server)
    assert reads == [3]  # one trip to the store for the run, the invalid keys left out


async def test_a_run_of_gets_on_redis(make_server: Callable[..., RunningServer]) -> None:
    require_redis()
    await check_a_run_of_gets(make_server(redis_url=REDIS_URL))


async def test_a_run_of_calls_is_refused_call_by_call(server: RunningServer) -> None:
    key = await api_key(server, ["queue:*"])
    async with socket(server, key) as ws:
        frames = [{"id": n, "method": "kv.get", "params": {"key": "k"}} for n in range(3)]
        answers = await answers_to(ws, frames)
    assert {answers[n]["error"]["code"] for n in range(3)} == {"missing_scope"}


async def test_msgpack_frames_get_msgpack_answers(server: RunningServer) -> None:
    key = await api_key(server, ["kv:*"])
    async with socket(server, key) as ws:
        frame = {"id": "a", "method": "kv.incr", "params": {"key": unique("n"), "amount": 3}}
        await ws.send(msgspec.msgpack.encode(frame))
        answer = await ws.recv()
        assert isinstance(answer, bytes)
        assert msgspec.msgpack.decode(answer) == {"id": "a", "result": {"value": 3}}


async def test_bad_frames_are_answered_and_the_connection_survives(server: RunningServer) -> None:
    key = await api_key(server, ["kv:*"])
    async with socket(server, key) as ws:
        await ws.send("this is not json")
        error = json.loads(await ws.recv())
        assert error["id"] is None
        assert error["error"]["code"] == "invalid_frame"
        await ws.send(b"\xc1")  # never valid MessagePack
        assert (
            msgspec.msgpack.decode(await ws.recv(decode=False))["error"]["code"] == "invalid_frame"
        )
        assert (await call(ws, 1, "no.such_method"))["error"]["code"] == "not_found"
        assert (await call(ws, 2, "kv.get", key=""))["error"]["details"]["field"] == "key"
        await ws.send(json.dumps({"id": 3}))
        missing = json.loads(await ws.recv())
        assert missing["error"]["details"]["field"] == "method"
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}


async def test_credentials_are_checked_like_http(server: RunningServer) -> None:
    async with socket(server, "not-a-key") as ws:
        error = json.loads(await ws.recv())
        assert error["error"]["code"] in ("invalid_credentials", "authentication_failed")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4401
    async with socket(server, None) as anonymous:
        answer = await call(anonymous, 1, "kv.get", key="x")
        assert answer["error"]["code"] == "not_authenticated"
    reader = await api_key(server, ["kv:read"])
    async with socket(server, reader) as ws:
        assert (await call(ws, 1, "kv.set", key="x", value=1))["error"]["code"] == "missing_scope"
        refused = await call(ws, 2, "stream.subscribe", room="r")
        assert refused["error"]["code"] == "missing_scope"


async def test_stream_and_pubsub_subscriptions_push_events(server: RunningServer) -> None:
    key, room = await api_key(server, ["stream:*", "pubsub:*"]), unique("room")
    async with socket(server, key) as ws, socket(server, key) as publisher:
        for n in range(3):
            await call(publisher, n, "stream.publish", room=room, event_type="old", data=n)
        sub = (await call(ws, 1, "stream.subscribe", room=room, from_offset=1))["result"]["sub"]
        replayed = [json.loads(await ws.recv()) for _ in range(2)]
        assert [(f["sub"], f["event"]["offset"]) for f in replayed] == [(sub, 1), (sub, 2)]
        sent = await call(
            publisher, 9, "stream.publish", room=room, event_type="new", data={"x": 1}
        )
        assert sent["result"]["offset"] == 3
        assert sent["result"]["subscribers_notified"] == 1
        live = json.loads(await ws.recv())
        assert live["event"]["event_type"] == "new"
        assert live["event"]["data"] == {"x": 1}
        assert (await call(ws, 2, "unsubscribe", sub=sub))["result"] == {"success": True}
        assert (await call(ws, 3, "unsubscribe", sub=sub))["error"][
            "code"
        ] == "subscription_not_found"

        topic = unique("orders")
        ps = await call(ws, 4, "pubsub.subscribe", patterns=[f"{topic}.*.created", f"{topic}.#.eu"])
        assert "sub" in ps["result"]
        sent = await call(publisher, 10, "pubsub.publish", topic=f"{topic}.a.b.eu", message="eu")
        assert sent["result"]["subscribers_matched"] == 1
        missed = await call(publisher, 11, "pubsub.publish", topic=f"{topic}.a.b.us", message="us")
        assert missed["result"]["subscribers_matched"] == 0
        await call(publisher, 12, "pubsub.publish", topic=f"{topic}.x.created", message="new")
        pushed = [json.loads(await ws.recv())["event"] for _ in range(2)]
        assert [(p["topic"], p["message"]) for p in pushed] == [
            (f"{topic}.a.b.eu", "eu"),
            (f"{topic}.x.created", "new"),
        ]
        bad = await call(ws, 5, "pubsub.subscribe", patterns=["a..b"])
        assert bad["error"]["details"]["field"] == "patterns[0]"


async def test_in_flight_calls_are_limited_per_connection(
    make_server: Callable[..., RunningServer],
) -> None:
    limited = make_server(ws_max_in_flight=2)
    key = await api_key(limited, ["queue:*"])
    async with socket(limited, key) as ws, socket(limited, key) as other:
        for n in range(5):
            params = {"queue": "idle", "timeout": 60}  # held until a message comes
            await ws.send(json.dumps({"id": n, "method": "queue.consume", "params": params}))
        refused = [json.loads(await ws.recv()) for _ in range(3)]
        assert {a["error"]["code"] for a in refused} == {"too_many_in_flight"}
        for n in range(2):  # another connection's calls count apart: one message each
            assert "result" in await call(other, n, "queue.publish", queue="idle", message=n)
        served = [json.loads(await ws.recv()) for _ in range(2)]
        assert sorted(a["result"]["message"]["message"] for a in served) == [0, 1]


async def test_a_client_that_does_not_read_is_dropped(
    make_server: Callable[..., RunningServer],
) -> None:
    limited = make_server(ws_max_outbound_bytes=256 * 1024)
    key, room = await api_key(limited, ["stream:*"]), unique("flood")
    async with socket(limited, key) as reader, socket(limited, key) as publisher:
        await call(reader, 1, "stream.subscribe", room=room)
        payload = "x" * 100_000
        for n in range(300):  # 30 MB, far more than the socket buffers hold
            await publisher.send(
                json.dumps(
                    {
                        "id": n,
                        "method": "stream.publish",
                        "params": {"room": room, "event_type": "big", "data": payload},
                    }
                )
            )
        # Every event was announced before its publish was answered. The reader's feed pushes
        # what it holds without waiting between events, far more than the outbox takes: the
        # server drops the reader before reading can make room, if it has not already.
        for _ in range(300):
            await publisher.recv()

        async def read_until_closed() -> None:
            async with asyncio.timeout(30):  # without the limit it would read all 30 MB, then wait
                while True:
                    await reader.recv()

        with pytest.raises(ConnectionClosed) as closed:
            await read_until_closed()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4008


async def test_table_changes_are_logged_only_while_someone_listens(
    server: RunningServer,
) -> None:
    table = unique("quiet")
    key = await api_key(server, ["*"])
    settings = server.settings
    db = Database(
        settings.resolved_database_url,
        data_dir=settings.data_dir,
        pg_schema_prefix=settings.pg_schema_prefix,
    )
    log = SqlStreamStore(db)  # the server's own change log, read beside it

    async def logged() -> list[int]:
        page = await log.read(f"default:$db:{table}", 0, None, 100)
        return [e.offset for e in page.events]

    async with socket(server, key) as ws:
        columns = [{"name": "n", "type": "integer"}]
        assert "result" in await call(ws, 1, "schema.add_table", name=table, columns=columns)
        await call(ws, 2, "database.create", table=table, rows=[{"n": 1}])
        assert await logged() == []  # nobody follows the table: its writes cost nothing more
        sub = await call(ws, 3, "database.subscribe", table=table, events=["insert"])
        assert "sub" in sub["result"]
        await ws.send(
            json.dumps(
                {
                    "id": 4,
                    "method": "database.create",
                    "params": {"table": table, "rows": [{"n": 2}]},
                }
            )
        )
        frames = [json.loads(await ws.recv()) for _ in range(2)]  # the answer and the change
        pushed = next(f for f in frames if "sub" in f)
        assert pushed["event"]["data"]["record"]["n"] == 2
        assert await logged() == [0]
    await db.close()


async def test_every_subscriber_of_a_table_gets_each_change_under_its_own_sub(
    server: RunningServer,
) -> None:
    # the event is encoded once for all of them (server/pushed.py); each frame is still the
    # subscriber's own, in the format it speaks
    table, key = unique("fan"), await api_key(server, ["*"])
    async with socket(server, key) as writer, socket(server, key) as a, socket(server, key) as b:
        columns = [{"name": "n", "type": "integer"}]
        assert "result" in await call(writer, 1, "schema.add_table", name=table, columns=columns)
        sub_a = (await call(a, 1, "database.subscribe", table=table, events=["insert"]))["result"]
        frame = {"id": 1, "method": "database.subscribe"}
        await b.send(msgspec.msgpack.encode({**frame, "params": {"table": table}}))
        sub_b = msgspec.msgpack.decode(await b.recv(decode=False))["result"]
        assert sub_a["sub"] != sub_b["sub"]
        await call(writer, 2, "database.create", table=table, rows=[{"n": 5}, {"n": 6}])
        got_a = [json.loads(await a.recv()) for _ in range(2)]
        got_b = [msgspec.msgpack.decode(await b.recv(decode=False)) for _ in range(2)]
        for got, sub in ((got_a, sub_a["sub"]), (got_b, sub_b["sub"])):
            assert [f["sub"] for f in got] == [sub, sub]
            assert [f["event"]["data"]["record"]["n"] for f in got] == [5, 6]
        assert [f["event"] for f in got_a] == [f["event"] for f in got_b]
