"""Noisy neighbours: one principal or tenant cannot take the server from the others.

Each test performs the attack against a real server over loopback: many subscriptions,
connections, calls in flight or calls per second from one tenant (or one principal), while
another tenant's calls must keep succeeding; and subscriptions of connections that close
must all be released, on the embedded backends and on Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from roost import AsyncClient
from roost.backends.bus import MemoryBus
from roost.backends.bus.redis import RedisBus
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    REDIS_URL,
    RunningServer,
    calls_in_flight,
    dispatcher_of,
    platform_of,
    require_redis,
    unique,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio

SCOPES = ["kv:*", "stream:*", "pubsub:*", "queue:*"]


async def tenant_key(server: RunningServer, tenant: str | None = None) -> str:
    """An API key of the default tenant's admin, or of a new tenant's first user."""
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        if tenant is None:
            return str((await admin.api_keys.create(unique("lim"), SCOPES))["key"])
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
    async with AsyncClient(api_url=server.url, tenant=tenant) as client:
        root = await client.auth.sign_in_with_password("root", "root-password")
        return str((await root.api_keys.create(unique("lim"), SCOPES))["key"])


@asynccontextmanager
async def socket(server: RunningServer, key: str) -> AsyncIterator[ClientConnection]:
    url = server.url.replace("http://", "ws://") + "/api/v1/ws"
    headers = {"Authorization": f"Api-Key {key}"}
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        yield ws


async def call(ws: ClientConnection, frame_id: int, method: str, **params: Any) -> Any:
    """One call and its answer (pushed events that arrive meanwhile are skipped)."""
    await ws.send(json.dumps({"id": frame_id, "method": method, "params": params}))
    while True:
        answer = json.loads(await ws.recv())
        if isinstance(answer, dict) and answer.get("id") == frame_id:
            return answer


async def answers_to(ws: ClientConnection, frames: list[dict[str, Any]]) -> dict[Any, Any]:
    """Send `frames` as one array frame; every answer by id (pushed events are skipped)."""
    await ws.send(json.dumps(frames))
    answers: dict[Any, Any] = {}
    while len(answers) < len(frames):
        received = json.loads(await ws.recv())
        for answer in received if isinstance(received, list) else [received]:
            if "id" in answer:
                answers[answer["id"]] = answer
    return answers


def subscribe_frames(start: int, count: int, room: str, topic: str) -> list[dict[str, Any]]:
    """`count` subscriptions, stream and pub/sub in turn."""
    frames = []
    for n in range(start, start + count):
        if n % 2:
            frames.append({"id": n, "method": "stream.subscribe", "params": {"room": room}})
        else:
            params = {"patterns": [f"{topic}.{n}.#"]}
            frames.append({"id": n, "method": "pubsub.subscribe", "params": params})
    return frames


def rest(server: RunningServer, api_key: str, method: str, /, **params: Any) -> httpx.Response:
    module, name = method.split(".", 1)
    return httpx.post(
        f"{server.url}/api/v1/{module}/{name}",
        json=params,
        headers={"Authorization": f"Api-Key {api_key}"},
    )


def held(server: RunningServer) -> dict[str, int]:
    """What the server still holds for subscriptions: bus listeners, interest counts (but
    the table change feeds', which linger on purpose) and the limits' own count."""
    bus = platform_of(server).bus
    assert isinstance(bus, MemoryBus | RedisBus)
    local = bus._local
    interest = {k: n for k, n in local.interest.items() if not k.startswith("changes:")}
    return {
        "listeners": sum(len(listeners) for listeners in local._listeners.values()),
        "interest": sum(interest.values()),
        "counted": dispatcher_of(server).limits.subscriptions(),
    }


async def until_released(server: RunningServer, baseline: dict[str, int]) -> dict[str, int]:
    """What the server holds once closing connections have been dealt with (or after 20 s)."""
    with contextlib.suppress(AssertionError):
        await wait_until(lambda: held(server) == baseline, 20)
    return held(server)


# -- subscriptions of connections that close are released ------------------------------------


async def check_cycles_release_everything(server: RunningServer) -> None:
    key, room, topic = await tenant_key(server), unique("room"), unique("t")
    baseline = held(server)
    for cycle in range(12):
        async with socket(server, key) as ws:
            frames = subscribe_frames(0, 50, room, topic)
            if cycle % 3 == 0:  # answered, then the connection closes
                answers = await answers_to(ws, frames)
                assert all("result" in a for a in answers.values()), answers
            elif cycle % 3 == 1:  # closes while the subscriptions are being opened
                await ws.send(json.dumps(frames))
            else:  # closes as soon as the first is answered
                await ws.send(json.dumps(frames))
                await ws.recv()
    assert await until_released(server, baseline) == baseline


async def test_subscriptions_of_closed_connections_are_released(server: RunningServer) -> None:
    await check_cycles_release_everything(server)


async def test_subscriptions_of_closed_connections_are_released_on_redis(
    make_server: Callable[..., RunningServer],
) -> None:
    require_redis()
    running = make_server(redis_url=REDIS_URL)
    await check_cycles_release_everything(running)
    bus = platform_of(running).bus
    assert isinstance(bus, RedisBus)
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        mirrored = await redis.hgetall(f"roost:bus:interest:{bus._replica}")
    finally:
        await redis.aclose()
    # decoded (redis-py types a hash's keys `bytes | str` whatever the client decodes)
    assert {k: v for k, v in mirrored.items() if not str(k).startswith("changes:")} == {}


# -- subscription limits -----------------------------------------------------------------------


async def check_tenant_subscription_limit(running: RunningServer) -> None:
    noisy, quiet = await tenant_key(running, unique("noisy")), await tenant_key(running)
    room, topic = unique("room"), unique("t")
    async with socket(running, noisy) as a1, socket(running, noisy) as a2:
        first = await answers_to(a1, subscribe_frames(0, 15, room, topic))
        second = await answers_to(a2, subscribe_frames(100, 15, room, topic))
        outcomes = [*first.values(), *second.values()]
        assert sum("result" in a for a in outcomes) == 20
        refused = [a["error"] for a in outcomes if "error" in a]
        assert len(refused) == 10
        assert {e["code"] for e in refused} == {"too_many_subscriptions"}
        assert all(e["details"]["limit"] == 20 for e in refused)
        assert (await call(a1, 500, "kv.get", key="k"))["result"]["found"] is False  # kept
        async with socket(running, quiet) as b:
            sub = await call(b, 1, "pubsub.subscribe", patterns=[f"{topic}.#"])
            assert "sub" in sub["result"]
            sent = await call(b, 2, "pubsub.publish", topic=f"{topic}.x", message="hi")
            assert sent["result"]["subscribers_matched"] == 1
            assert (await call(b, 3, "kv.set", key="k", value=1))["result"]["success"]
            assert (await call(b, 4, "kv.get", key="k"))["result"]["value"] == 1
        # an unsubscribe makes room again
        done = next(a["result"]["sub"] for a in first.values() if "result" in a)
        assert (await call(a1, 501, "unsubscribe", sub=done))["result"] == {"success": True}
        again = await call(a1, 502, "stream.subscribe", room=room)
        assert "sub" in again["result"]


async def test_a_tenant_at_its_subscription_limit_leaves_others_alone(
    make_server: Callable[..., RunningServer],
) -> None:
    await check_tenant_subscription_limit(make_server(max_subscriptions_per_tenant=20))


async def test_a_tenant_at_its_subscription_limit_leaves_others_alone_on_postgresql(
    make_server: Callable[..., RunningServer],
) -> None:
    await check_tenant_subscription_limit(
        make_server("postgresql", max_subscriptions_per_tenant=20)
    )


async def test_a_tenant_at_its_subscription_limit_leaves_others_alone_on_redis(
    make_server: Callable[..., RunningServer],
) -> None:
    require_redis()
    await check_tenant_subscription_limit(
        make_server(redis_url=REDIS_URL, max_subscriptions_per_tenant=20)
    )


async def test_subscriptions_are_limited_per_principal_and_per_connection(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(max_subscriptions_per_principal=8, max_subscriptions_per_connection=5)
    key, other = await tenant_key(running), await tenant_key(running)
    room, topic = unique("room"), unique("t")
    async with socket(running, key) as ws, socket(running, key) as ws2:
        answers = await answers_to(ws, subscribe_frames(0, 7, room, topic))
        refused = [a["error"] for a in answers.values() if "error" in a]
        assert len(refused) == 2
        assert {e["details"]["per"] for e in refused} == {"connection"}
        answers = await answers_to(ws2, subscribe_frames(10, 5, room, topic))
        refused = [a["error"] for a in answers.values() if "error" in a]
        assert len(refused) == 2
        assert {e["details"]["per"] for e in refused} == {"principal"}
        assert {e["code"] for e in refused} == {"too_many_subscriptions"}
    # the same user through another API key is the same principal: the first connections
    # are closed, so everything was released and both keys have room again
    async with socket(running, other) as ws:
        answers = await answers_to(ws, subscribe_frames(0, 5, room, topic))
        assert all("result" in a for a in answers.values())


async def test_a_burst_of_subscriptions_leaves_the_redis_pool_to_others(
    make_server: Callable[..., RunningServer],
) -> None:
    require_redis()
    running = make_server(
        redis_url=REDIS_URL,
        max_subscriptions_per_connection=2000,
        max_subscriptions_per_principal=2000,
        max_subscriptions_per_tenant=2000,
        ws_max_in_flight=2000,
    )
    noisy, quiet = await tenant_key(running, unique("noisy")), await tenant_key(running)
    room, topic = unique("room"), unique("t")
    async with socket(running, noisy) as a, socket(running, quiet) as b:
        await call(b, 0, "kv.set", key="k", value="v")
        for start in range(0, 2000, 500):  # a frame carries 1000 calls at most
            await a.send(json.dumps(subscribe_frames(start, 500, room, topic)))
        quiet_calls = []
        for n in range(1, 41):
            if n % 2:
                quiet_calls.append(await call(b, n, "kv.get", key="k"))
            else:
                quiet_calls.append(
                    await call(b, n, "pubsub.publish", topic=f"{topic}.q", message=n)
                )
        answers: dict[Any, Any] = {}
        while len(answers) < 2000:
            received = json.loads(await a.recv())
            for answer in received if isinstance(received, list) else [received]:
                answers[answer["id"]] = answer
    assert [a for a in quiet_calls if "error" in a] == []
    assert [a for a in answers.values() if "error" in a] == []


# -- connections ---------------------------------------------------------------------------


async def refused_connection(running: RunningServer, key: str) -> tuple[dict[str, Any], int]:
    """The error frame and the close code a connection past a limit gets."""
    async with socket(running, key) as ws:
        error = json.loads(await ws.recv())["error"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    return error, closed.value.rcvd.code


async def test_connections_are_limited_per_principal_and_per_tenant(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(max_connections_per_principal=2, max_connections_per_tenant=3)
    tenant = unique("conn")
    key = await tenant_key(running, tenant)
    async with AsyncClient(api_url=running.url, tenant=tenant) as client:
        root = await client.auth.sign_in_with_password("root", "root-password")
        await root.users.create_user("second", "second-password", roles=["admin"])
    async with AsyncClient(api_url=running.url, tenant=tenant) as client:
        second = await client.auth.sign_in_with_password("second", "second-password")
        second_key = str((await second.api_keys.create(unique("k"), SCOPES))["key"])
    quiet = await tenant_key(running)
    async with socket(running, key) as c1, socket(running, key) as c2:
        error, code = await refused_connection(running, key)
        assert error["code"] == "too_many_connections"
        assert (error["details"]["per"], code) == ("principal", 4429)
        async with socket(running, second_key) as c3:
            error, code = await refused_connection(running, second_key)
            assert (error["details"]["per"], code) == ("tenant", 4429)
            for ws in (c1, c2, c3):  # the connections held are kept
                assert (await call(ws, 1, "kv.get", key="k"))["result"]["found"] is False
            async with socket(running, quiet) as other:  # another tenant is not affected
                assert (await call(other, 1, "kv.get", key="k"))["result"]["found"] is False
    async with socket(running, key) as ws:  # closing released them
        assert (await call(ws, 1, "kv.get", key="k"))["result"]["found"] is False


# -- calls in flight -------------------------------------------------------------------------


async def test_calls_in_flight_are_limited_per_principal_across_doors(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(max_in_flight_per_principal=3, max_in_flight_per_tenant=100)
    key, quiet = await tenant_key(running), await tenant_key(running, unique("quiet"))
    async with socket(running, key) as ws, socket(running, key) as ws2:
        for n in range(3):  # long polls: held in flight for a while
            params = {"queue": unique("idle"), "timeout": 10}
            await ws.send(json.dumps({"id": n, "method": "queue.consume", "params": params}))
        await wait_until(lambda: calls_in_flight(running) == 3, 10)
        refused = await call(ws2, 9, "kv.get", key="k")
        assert refused["error"]["code"] == "too_many_in_flight"
        assert refused["error"]["details"]["per"] == "principal"
        answer = await asyncio.to_thread(rest, running, key, "kv.get", key="k")
        assert answer.status_code == 429
        assert answer.json()["error"]["code"] == "too_many_in_flight"
        assert int(answer.headers["Retry-After"]) >= 1
        other = await asyncio.to_thread(rest, running, quiet, "kv.get", key="k")
        assert other.status_code == 200


async def test_calls_in_flight_are_limited_per_tenant(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(max_in_flight_per_tenant=2)
    tenant = unique("busy")
    key = await tenant_key(running, tenant)
    quiet = await tenant_key(running)
    async with socket(running, key) as ws:
        for n in range(2):
            params = {"queue": unique("idle"), "timeout": 10}
            await ws.send(json.dumps({"id": n, "method": "queue.consume", "params": params}))
        answers = []

        def refused() -> bool:  # the long polls may not have started yet
            answers.append(rest(running, key, "kv.get", key="k"))
            return answers[-1].status_code == 429

        await wait_until(refused, 10)
        answer = answers[-1]
        assert answer.json()["error"]["details"]["per"] == "tenant"
        other = await asyncio.to_thread(rest, running, quiet, "kv.get", key="k")
        assert other.status_code == 200


# -- request rate ------------------------------------------------------------------------------


def fresh_window(window: float) -> None:
    """Wait for the next window: the calls that set a test up are not counted in it, and
    the test's calls (a fraction of a second) all fall in it."""
    time.sleep(window - time.time() % window + 0.01)


async def test_request_rate_is_limited_per_principal_with_retry_after(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(rate_per_principal=10, rate_window=5)
    key, quiet = await tenant_key(running), await tenant_key(running, unique("quiet"))
    fresh_window(5)
    answers = [await asyncio.to_thread(rest, running, key, "kv.get", key="k") for _ in range(15)]
    assert [a.status_code for a in answers] == [200] * 10 + [429] * 5
    error = answers[-1].json()["error"]
    assert (error["code"], error["details"]["per"]) == ("rate_limited", "principal")
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 5
    async with socket(running, key) as ws:  # the WebSocket door refuses with a frame
        refused = await call(ws, 1, "kv.get", key="k")
        assert refused["error"]["code"] == "rate_limited"
        assert refused["error"]["details"]["retry_after"] > 0
        assert (await call(ws, 2, "kv.get", key="k"))["error"]["code"] == "rate_limited"
    other = await asyncio.to_thread(rest, running, quiet, "kv.get", key="k")
    assert other.status_code == 200


async def test_request_rate_is_limited_per_tenant(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(rate_per_tenant=10, rate_window=5)
    tenant = unique("rate")
    key = await tenant_key(running, tenant)
    quiet = await tenant_key(running)
    fresh_window(5)
    async with socket(running, key) as ws:
        frames = [{"id": n, "method": "kv.get", "params": {"key": "k"}} for n in range(15)]
        answers = await answers_to(ws, frames)
        assert sum("result" in a for a in answers.values()) <= 10
        refused = [a["error"] for a in answers.values() if "error" in a]
        assert refused
        assert {(e["code"], e["details"]["per"]) for e in refused} == {("rate_limited", "tenant")}
    other = await asyncio.to_thread(rest, running, quiet, "kv.get", key="k")
    assert other.status_code == 200


async def test_request_rate_holds_across_replicas_on_redis(
    make_server: Callable[..., RunningServer],
) -> None:
    require_redis()
    shared = {"redis_url": REDIS_URL, "rate_per_principal": 20, "rate_window": 10}
    first = make_server("postgresql", **shared)
    second = make_server(
        "postgresql",
        **shared,
        secret_key=first.settings.secret_key,
        pg_schema_prefix=first.settings.pg_schema_prefix,
    )
    key = await tenant_key(first)
    fresh_window(10)
    succeeded = 0
    while (await asyncio.to_thread(rest, first, key, "kv.get", key="k")).status_code == 200:
        succeeded += 1
    assert succeeded == 20
    # the second replica learns what the first counted: it refuses long before 20 more
    for _ in range(20):
        answer = await asyncio.to_thread(rest, second, key, "kv.get", key="k")
        if answer.status_code == 429:
            break
        succeeded += 1
        await asyncio.sleep(0.05)
    assert answer.status_code == 429
    assert succeeded < 30
