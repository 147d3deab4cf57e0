"""The WebSocket protocol without a socket: an `RpcSession` fed frames by hand, on a real
Dispatcher and Platform (SQLite in a temporary data dir).

The test plays the door's part (`server/ws.py`): it hands the session each frame and reads
what the session queues with `take`, as the door's writer does. Two operations of this module,
added to the platform's registry, let it hold a call (`test.wait`, behind a gate) and watch a
stream's generator (`test.count`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from msgspec import Struct

from roost.server.dispatch import Dispatcher
from roost.server.eager import Starter
from roost.server.platform import open_platform
from roost.server.rpc import SLOW_CONSUMER, RpcSession
from roost.services import build_registry
from roost.services.context import Context
from roost.services.registry import Registry, operation, streamed
from roost.settings import load_settings
from roost.wire.codec import JSON, MSGPACK, Codec
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, FAST_PASSWORD_HASH
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio


# -- operations of the tests -----------------------------------------------------------------


class Gate:
    """Holds the `test.wait` calls that name it until it opens."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.waiting = 0
        self.cancelled = 0


class Run:
    """What a `test.count` stream did: items produced, and how its generator ended."""

    def __init__(self) -> None:
        self.produced = 0
        self.ended: str | None = None


GATES: dict[str, Gate] = {}
RUNS: dict[str, Run] = {}


class WaitRequest(Struct, forbid_unknown_fields=True):
    gate: str


class Waited(Struct):
    gate: str


class CountRequest(Struct, forbid_unknown_fields=True):
    run: str
    n: int
    pad: int = 0


class Counted(Struct):
    n: int
    pad: str = ""


@operation("test.wait", read_only=True)
async def wait(ctx: Context, params: WaitRequest) -> Waited:
    """Answers once its gate opens."""
    gate = GATES[params.gate]
    gate.waiting += 1
    try:
        await gate.opened.wait()
    except asyncio.CancelledError:
        gate.cancelled += 1
        raise
    finally:
        gate.waiting -= 1
    return Waited(gate=params.gate)


@streamed("test.count", read_only=True)
async def count(ctx: Context, params: CountRequest) -> AsyncIterator[Counted]:
    """0, 1, ... n-1, each padded with `pad` characters."""
    run = RUNS[params.run]
    try:
        for n in range(params.n):
            await asyncio.sleep(0)  # a real handler awaits its backend between items
            run.produced += 1
            yield Counted(n=n, pad="x" * params.pad)
        run.ended = "done"
    except GeneratorExit:
        run.ended = "closed"
        raise


def new_gate() -> str:
    name = secrets.token_hex(4)
    GATES[name] = Gate()
    return name


def new_run() -> str:
    name = secrets.token_hex(4)
    RUNS[name] = Run()
    return name


# -- playing the door ------------------------------------------------------------------------


class Peer:
    """A session and what the door would do with it: frames in, frames out, close requests."""

    def __init__(self, dispatcher: Dispatcher, authorization: str | None) -> None:
        headers = {"authorization": authorization} if authorization else {}
        scope = {"type": "websocket", "path": "/api/v1/ws", "client": ("127.0.0.1", 40000)}
        self.closes: list[tuple[int, str]] = []  # what the session asked the door to close with
        self.codecs: list[Codec] = []  # the format of each frame sent
        self.session = RpcSession(dispatcher, Starter(), scope, headers, self._close)

    def _close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))

    def send(self, frame: Any, codec: Codec = JSON) -> None:
        self.session.receive(codec.encode(frame), codec)

    def sent(self) -> list[Any]:
        """The frames the session has queued so far, as the door would send them (an array
        of answers stays an array), without waiting."""
        frames = []
        while (taken := self.session.take()) is not None:
            data, codec = taken
            self.codecs.append(codec)
            decoder = msgspec.json if codec is JSON else msgspec.msgpack
            frames.append(decoder.decode(data))
        return frames

    async def receive(self, count: int) -> list[dict[str, Any]]:
        """The next `count` frames the session sends (arrays unpacked), waiting for them as
        the door's writer does."""
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(30):  # a guard against a hang, not a timing assertion
            while True:
                for frame in self.sent():
                    received.extend(frame if isinstance(frame, list) else [frame])
                if len(received) >= count:
                    return received
                self.session.wake.clear()
                await self.session.wake.wait()

    async def call(self, frame_id: Any, method: str, **params: Any) -> dict[str, Any]:
        self.send({"id": frame_id, "method": method, "params": params})
        (answer,) = await self.receive(1)
        return answer


class Rig:
    """A real platform and dispatcher, and the sessions opened on it."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.peers: list[Peer] = []

    def connect(self, authorization: str | None = None) -> Peer:
        peer = Peer(self.dispatcher, authorization)
        self.peers.append(peer)
        return peer

    async def admin(self) -> Peer:
        """A session signed in as the admin, through `auth.login` on an anonymous one."""
        login = self.connect()
        answer = await login.call(1, "auth.login", username=ADMIN_USERNAME, password=ADMIN_PASSWORD)
        return self.connect(f"Bearer {answer['result']['access']}")

    async def wind_down(self) -> None:
        for peer in self.peers:
            peer.session.stop()
            await peer.session.wind_down()


def registry_with_test_ops() -> Registry:
    registry = build_registry()
    registry.add_module(sys.modules[__name__])
    return registry


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    """`await serve(**settings)`: a Rig on a fresh SQLite data dir."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> Rig:
            settings = load_settings(
                data_dir=tmp_path / secrets.token_hex(4),
                secret_key=secrets.token_urlsafe(40),
                admin_username=ADMIN_USERNAME,
                admin_password=ADMIN_PASSWORD,
                **FAST_PASSWORD_HASH,
                **{"functions_enabled": False, **overrides},  # no warm workers to start
            )
            platform = await stack.enter_async_context(open_platform(settings))
            rig = Rig(Dispatcher(platform, registry_with_test_ops()))
            stack.push_async_callback(rig.wind_down)  # before the platform closes
            return rig

        yield make


# -- calls -----------------------------------------------------------------------------------


async def test_a_call_is_answered_by_its_id_in_the_format_it_came_in(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    peer = await (await serve()).admin()
    answer = await peer.call(1, "kv.set", key="k", value={"n": 1})
    assert answer == {"id": 1, "result": {"success": True}}
    assert peer.codecs[-1] is JSON
    peer.send({"id": "b", "method": "kv.get", "params": {"key": "k"}}, MSGPACK)
    got = await peer.receive(1)
    assert got == [{"id": "b", "result": {"found": True, "value": {"n": 1}, "ttl": -1}}]
    assert peer.codecs[-1] is MSGPACK
    peer.send({"type": "ping"})
    assert await peer.receive(1) == [{"type": "pong"}]
    await wait_until(lambda: peer.session.in_flight == 0)  # a call's task ends after it answers
    assert (peer.session.by_id, peer.session.calls) == ({}, {})


async def test_errors_are_answered_with_a_request_id_and_the_session_goes_on(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await serve()
    peer = await rig.admin()
    bad_key = await peer.call(1, "kv.get", key="")
    assert bad_key["error"]["code"] == "validation_error"
    assert bad_key["error"]["details"]["field"] == "key"
    assert bad_key["request_id"]
    assert (await peer.call(2, "no.such_method"))["error"]["code"] == "not_found"
    peer.session.receive(b"this is not json", JSON)
    peer.session.receive(b"\xc1", MSGPACK)  # never valid MessagePack
    unreadable = await peer.receive(2)
    assert [(f["id"], f["error"]["code"]) for f in unreadable] == [(None, "invalid_frame")] * 2
    peer.send({"id": 3})
    (no_method,) = await peer.receive(1)
    assert no_method["error"]["code"] == "invalid_frame"
    assert no_method["error"]["details"]["field"] == "method"
    anonymous = rig.connect()
    assert (await anonymous.call(4, "kv.get", key="k"))["error"]["code"] == "not_authenticated"
    assert (await peer.call(5, "kv.set", key="k", value=1))["result"] == {"success": True}
    assert peer.closes == anonymous.closes == []


async def test_a_cancel_frame_ends_the_running_call_and_nothing_is_sent_for_it(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    peer = await (await serve()).admin()
    gate = new_gate()
    peer.send({"id": 7, "method": "test.wait", "params": {"gate": gate}})
    assert peer.session.in_flight == 1
    assert 7 in peer.session.by_id
    await wait_until(lambda: GATES[gate].waiting == 1)
    peer.send({"type": "cancel", "id": 7})
    await wait_until(lambda: GATES[gate].cancelled == 1)
    await wait_until(lambda: peer.session.in_flight == 0)
    assert peer.session.by_id == {}
    peer.send({"type": "cancel", "id": 7})  # answered already, or unknown: not an error
    peer.send({"type": "ping"})
    assert await peer.receive(1) == [{"type": "pong"}]  # and no answer to call 7


async def test_calls_past_the_in_flight_limit_are_refused_until_others_answer(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    peer = await (await serve(ws_max_in_flight=2)).admin()
    gate = new_gate()
    for n in range(3):
        peer.send({"id": n, "method": "test.wait", "params": {"gate": gate}})
    (refused,) = await peer.receive(1)
    assert refused["id"] == 2
    assert refused["error"]["code"] == "too_many_in_flight"
    assert peer.session.in_flight == 2
    GATES[gate].opened.set()
    answered = await peer.receive(2)
    assert sorted(a["id"] for a in answered) == [0, 1]
    assert all(a["result"] == {"gate": gate} for a in answered)
    await wait_until(lambda: peer.session.in_flight == 0)
    assert (await peer.call(3, "test.wait", gate=gate))["result"] == {"gate": gate}


async def test_a_run_of_gets_in_one_array_goes_to_the_store_once_and_is_answered_call_by_call(
    serve: Callable[..., Awaitable[Rig]], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = await serve()
    peer = await rig.admin()
    await peer.call(1, "kv.set", key="a", value={"n": 1})
    store = rig.dispatcher.platform.kv
    reads: list[int] = []
    get_many = store.get_many

    async def counted(keys: list[str]) -> Any:
        reads.append(len(keys))
        return await get_many(keys)

    monkeypatch.setattr(store, "get_many", counted)

    def get(frame_id: int, key: Any) -> dict[str, Any]:
        return {"id": frame_id, "method": "kv.get", "params": {"key": key}}

    frames = [get(10, "a"), get(11, "missing"), get(12, ""), get(13, "a"), {"type": "ping"}]
    peer.send(frames)
    received = await peer.receive(5)
    answers = {frame.get("id"): frame for frame in received}
    assert reads == [3]  # one trip to the store for the run, the invalid key left out
    assert (
        answers[10]["result"]
        == answers[13]["result"]
        == {"found": True, "value": {"n": 1}, "ttl": -1}
    )
    assert answers[11]["result"] == {"found": False, "value": None, "ttl": None}
    assert answers[12]["error"]["details"]["field"] == "key"
    assert answers[None] == {"type": "pong"}
    await wait_until(lambda: peer.session.in_flight == 0)


async def test_answers_to_a_client_that_sends_arrays_leave_together(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    peer = await (await serve()).admin()
    peer.send([{"type": "ping"}, {"id": 1, "method": "auth.whoami"}, {"type": "ping"}])
    await wait_until(lambda: peer.session.queued > 0 and peer.session.in_flight == 0)
    (together,) = peer.sent()  # one array frame: what was ready when the door came to send
    assert isinstance(together, list)
    assert sorted(str(frame.get("type") or frame["id"]) for frame in together) == [
        "1",
        "pong",
        "pong",
    ]


# -- streamed operations ---------------------------------------------------------------------


async def test_a_stream_sends_its_chunks_then_an_end_frame(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    peer = await (await serve()).admin()
    run = new_run()
    peer.send({"id": 1, "method": "test.count", "params": {"run": run, "n": 5}})
    frames = await peer.receive(6)
    assert frames == [{"id": 1, "chunk": {"n": n, "pad": ""}} for n in range(5)] + [
        {"id": 1, "end": True}
    ]
    assert RUNS[run].ended == "done"
    await wait_until(lambda: peer.session.in_flight == 0)


async def test_a_stream_asks_for_the_next_item_only_while_the_outbox_has_room(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    peer = await (await serve(ws_max_outbound_bytes=4096)).admin()  # room: 1024 bytes
    run = new_run()
    peer.send({"id": 1, "method": "test.count", "params": {"run": run, "n": 20, "pad": 400}})
    await wait_until(lambda: not peer.session.drained.is_set())  # nobody reads: it waits
    assert RUNS[run].produced == 3  # 3 chunks of ~430 bytes pass the room, no more are made
    frames = await peer.receive(21)  # reading makes room again, up to the end
    assert [f["chunk"]["n"] for f in frames[:-1]] == list(range(20))
    assert frames[-1] == {"id": 1, "end": True}
    assert peer.closes == []


async def test_a_cancel_frame_mid_stream_closes_its_generator(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    peer = await (await serve(ws_max_outbound_bytes=4096)).admin()
    run = new_run()
    peer.send({"id": 1, "method": "test.count", "params": {"run": run, "n": 1000, "pad": 400}})
    await wait_until(lambda: not peer.session.drained.is_set())
    peer.send({"type": "cancel", "id": 1})
    await wait_until(lambda: RUNS[run].ended is not None)
    assert RUNS[run].ended == "closed"
    assert RUNS[run].produced == 3
    await wait_until(lambda: peer.session.in_flight == 0)
    frames = [frame for frame in peer.sent()]
    assert [f["chunk"]["n"] for f in frames] == [0, 1, 2]  # what was queued; no end, no error


# -- the outbox's bound ----------------------------------------------------------------------


async def test_an_outbox_past_its_bound_stops_the_session_and_asks_for_4008(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    peer = await (await serve(ws_max_outbound_bytes=1024)).admin()
    for _ in range(100):  # 15-byte pongs nobody reads: past 1024 bytes at the 69th
        peer.send({"type": "ping"})
    assert len(peer.closes) == 1
    code, reason = peer.closes[0]
    assert code == SLOW_CONSUMER
    assert "1024 bytes" in reason
    assert peer.session.closing
    assert peer.session.take() is None  # nothing more leaves
    peer.send({"id": 1, "method": "auth.whoami"})
    assert not peer.session.outbox
    assert len(peer.closes) == 1  # asked once


async def test_a_dropped_session_closes_its_streams_and_its_calls_end_on_wind_down(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    peer = await (await serve(ws_max_outbound_bytes=4096)).admin()
    run, gate = new_run(), new_gate()
    peer.send({"id": 1, "method": "test.count", "params": {"run": run, "n": 1000, "pad": 400}})
    peer.send({"id": 2, "method": "test.wait", "params": {"gate": gate}})
    await wait_until(lambda: not peer.session.drained.is_set() and GATES[gate].waiting == 1)
    for _ in range(300):
        peer.send({"type": "ping"})
    assert [code for code, _ in peer.closes] == [SLOW_CONSUMER]
    await wait_until(lambda: RUNS[run].ended is not None)
    assert (RUNS[run].ended, RUNS[run].produced) == ("closed", 3)  # not run on into the void
    assert GATES[gate].cancelled == 0  # calls end when the door winds the session down
    await peer.session.wind_down()
    assert GATES[gate].cancelled == 1
    assert (peer.session.in_flight, peer.session.calls, peer.session.by_id) == (0, {}, {})


# -- subscriptions ---------------------------------------------------------------------------


async def test_subscriptions_are_held_counted_and_closed_by_the_session(
    serve: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await serve(max_subscriptions_per_connection=1)
    peer, publisher = await rig.admin(), await rig.admin()
    subscribed = await peer.call(1, "pubsub.subscribe", patterns=["orders.*"])
    sub = subscribed["result"]["sub"]
    assert list(peer.session.feeds) == [sub]
    refused = await peer.call(2, "pubsub.subscribe", patterns=["other.#"])
    assert refused["error"]["code"] == "too_many_subscriptions"
    sent = await publisher.call(3, "pubsub.publish", topic="orders.new", message="hi")
    assert sent["result"]["subscribers_matched"] == 1
    (pushed,) = await peer.receive(1)
    assert pushed["sub"] == sub
    assert pushed["event"]["message"] == "hi"
    assert (await peer.call(4, "unsubscribe", sub=sub))["result"] == {"success": True}
    again = await peer.call(5, "unsubscribe", sub=sub)
    assert again["error"]["code"] == "subscription_not_found"
    assert peer.session.feeds == {}
    await peer.call(6, "pubsub.subscribe", patterns=["orders.#"])
    await peer.session.wind_down()
    assert peer.session.feeds == {}
    after = await publisher.call(7, "pubsub.publish", topic="orders.new", message="gone")
    assert after["result"]["subscribers_matched"] == 0
