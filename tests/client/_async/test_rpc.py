"""`client.rpc`: calls and streams by name over the pool of WebSockets (DotDo's RPC)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    ConnectionError,
    NotFoundError,
    TimeoutError,
    ValidationError,
)
from tests.background import AsyncBackground
from tests.client._async.calls import wait_until
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    RunningServer,
    calls_in_flight,
    dispatcher_of,
    unique,
)
from tests.counting import RUNS, registry_with_count, stopped_early
from tests.proxy import FlakyProxy


def consume(queue: str, seconds: float = 30) -> dict[str, Any]:
    """The parameters of a long poll that holds its call until a message comes."""
    return {"queue": queue, "timeout": seconds}


async def drain(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


async def read_into(got: list[int], items: AsyncIterator[Any]) -> None:
    """Read `items` into `got` (what was read stays there when the stream raises)."""
    async for item in items:
        got.append(item["n"])


@pytest.mark.anyio
async def test_call_runs_any_operation_by_name(server: RunningServer, admin_token: str) -> None:
    key = unique("rpc")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        assert await admin.rpc.call("kv.set", {"key": key, "value": [1, "x"]}, timeout=5) == {
            "success": True
        }
        assert (await admin.rpc.call("kv.get", {"key": key}))["value"] == [1, "x"]
        assert (await admin.rpc.call("auth.whoami"))["username"] == ADMIN_USERNAME
        # DotDo's spelling over HTTP takes a timeout too
        assert (await admin.call("kv.get", {"key": key}, timeout=5))["value"] == [1, "x"]

        with pytest.raises(ValidationError) as refused:
            await admin.rpc.call("kv.get", {"key": ""})
        assert "key" in str(refused.value)
        with pytest.raises(NotFoundError, match="no operation named"):
            await admin.rpc.call("kv.nosuch", {})
        # a code the SDK has no class for is classed by its status, as over HTTP
        with pytest.raises(NotFoundError) as not_in_flight:
            await admin.rpc.call("queue.ack", {"queue": key, "message_id": "m" * 10})
        assert not_in_flight.value.code == "message_not_found"
        assert not_in_flight.value.status_code == 404
        # a name the door cannot read would make it refuse the calls sent alongside: it
        # never leaves the client
        with pytest.raises(ValidationError) as bad_name:
            await admin.rpc.call("x" * 101)
        assert bad_name.value.details == {"field": "method"}
        with pytest.raises(ValueError, match="timeout"):
            await admin.rpc.call("kv.get", {"key": key}, timeout=0)
        with pytest.raises(AuthenticationError):  # the anonymous client has a pool of its own
            await client.rpc.call("kv.get", {"key": key})
        stats = admin.rpc.stats()
        assert (stats.connections, stats.in_flight, stats.opened) == (1, 0, 1)


@pytest.mark.anyio
async def test_dotdos_call_over_http_takes_a_timeout_of_its_own(silent_port: int) -> None:
    async with AsyncClient(
        api_url=f"http://127.0.0.1:{silent_port}", timeout=60, max_retries=0
    ) as client:
        with pytest.raises(TimeoutError, match=r"within 0\.3 s"):
            await client.call("health.check", timeout=0.3)


@pytest.mark.anyio
async def test_concurrent_calls_fill_a_connection_before_opening_the_next(
    make_server: Callable[..., RunningServer],
) -> None:
    # The server refuses a third WebSocket of the admin: a pool that opened more would fail.
    running = make_server(max_connections_per_principal=2)
    queue = unique("held")
    async with AsyncClient(
        api_url=running.url, pool_size=2, calls_per_connection=3, pool_timeout=60
    ) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        async with AsyncBackground() as background:
            for _ in range(3):
                background.start(lambda: admin.rpc.call("queue.consume", consume(queue)))
            await wait_until(lambda: admin.rpc.stats().in_flight == 3)
            assert dispatcher_of(running).limits.connections() == 1  # the server counts 1
            for _ in range(4):  # three fill a second connection, one waits for room
                background.start(lambda: admin.rpc.call("queue.consume", consume(queue)))
            await wait_until(
                lambda: (admin.rpc.stats().in_flight, admin.rpc.stats().waiting) == (6, 1)
            )
            stats = admin.rpc.stats()
            assert (stats.connections, stats.in_flight, stats.opened) == (2, 6, 2)
            assert dispatcher_of(running).limits.connections() == 2  # the server counts 2
            for n in range(7):  # each answer makes room for the caller that waits
                await admin.queue.publish(queue, {"n": n})
            results = await background.results()
        assert sorted(r["message"]["message"]["n"] for r in results) == list(range(7))
        stats = admin.rpc.stats()
        assert (stats.connections, stats.in_flight, stats.waiting, stats.opened) == (2, 0, 0, 2)


@pytest.mark.anyio
async def test_a_caller_finding_the_pool_busy_gets_pool_timeout(
    server: RunningServer, admin_token: str
) -> None:
    queue, key = unique("busy"), unique("k")
    async with AsyncClient(
        api_url=server.url, pool_size=1, calls_per_connection=1, pool_timeout=0.3
    ) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        async with AsyncBackground() as background:
            background.start(lambda: admin.rpc.call("queue.consume", consume(queue)))
            await wait_until(lambda: admin.rpc.stats().in_flight == 1)
            with pytest.raises(TimeoutError) as caught:
                await admin.rpc.call("kv.get", {"key": key})
            assert caught.value.code == "pool_timeout"
            assert "pool_timeout" in caught.value.message
            with pytest.raises(TimeoutError, match="pool_timeout"):  # a stream waits alike
                await drain(admin.rpc.stream("database.export", {"table": "nosuch"}))
            await admin.queue.publish(queue, "go")
            assert (await background.results())[0]["message"]["message"] == "go"
        assert (await admin.rpc.call("kv.get", {"key": key}))["found"] is False


@pytest.mark.anyio
async def test_a_server_that_never_answers_the_handshake_times_out_and_close_ends_the_wait(
    silent_port: int,
) -> None:
    silent = f"http://127.0.0.1:{silent_port}"
    async with AsyncClient(api_url=silent, pool_timeout=0.3) as client:
        with pytest.raises(TimeoutError, match="no connection could be opened") as caught:
            await client.rpc.call("health.check")
        assert caught.value.code == "pool_timeout"

    waiting = AsyncClient(api_url=silent, pool_timeout=60)
    rpc = waiting.rpc
    async with AsyncBackground() as background:
        background.start(lambda: rpc.call("health.check"))
        await wait_until(lambda: rpc.stats().waiting == 1)
        await waiting.close()  # the caller waiting for the connection to open is let go
        with pytest.raises(ConnectionError, match="closed"):
            await background.results()


@pytest.mark.anyio
async def test_a_call_past_its_timeout_raises_and_the_server_cancels_it(
    make_server: Callable[..., RunningServer],
) -> None:
    server, queue = make_server(), unique("late")  # a server of its own counts only these calls
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        with pytest.raises(TimeoutError) as caught:
            await admin.rpc.call("queue.consume", consume(queue), timeout=0.3)
        assert caught.value.code == "timeout"
        assert "queue.consume" in caught.value.message
        assert admin.rpc.stats().in_flight == 0
        await wait_until(lambda: calls_in_flight(server) == 0)  # it would hold on for 30 s
        # The server's consumer is gone: the message goes to the next one.
        await admin.queue.publish(queue, "for the next consumer")
        got = await admin.rpc.call("queue.consume", consume(queue, 0))
        assert got["message"]["message"] == "for the next consumer"


@pytest.mark.anyio
async def test_streams_arrive_in_order_and_leaving_early_cancels_on_the_server(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(registry=registry_with_count())
    async with AsyncClient(api_url=running.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        everything = unique("all")
        items = await drain(admin.rpc.stream("test.count", {"run": everything, "n": 300}))
        assert [item["n"] for item in items] == list(range(300))
        assert RUNS[everything].ended == "done"

        left = unique("break")  # break: the iterator is dropped, which cancels it
        async for item in admin.rpc.stream("test.count", {"run": left, "n": 10_000_000}):
            if item["n"] == 2:
                break
        await wait_until(lambda: stopped_early(left))

        closed = unique("closed")  # DotDo's spelling, closed explicitly
        counted = admin.stream("test.count", {"run": closed, "n": 10_000_000})
        async for item in counted:
            assert item["n"] == 0
            break
        await counted.aclose()
        await wait_until(lambda: stopped_early(closed))
        await wait_until(lambda: admin.rpc.stats().in_flight == 0)

        got: list[int] = []
        failing = {"run": unique("fail"), "n": 10, "fail_after": 3}
        with pytest.raises(ValidationError, match="on purpose") as caught:
            await read_into(got, admin.rpc.stream("test.count", failing))
        assert got == [0, 1, 2]  # the items before the error, then the error
        assert caught.value.details == {"field": "n"}

        held, got = unique("held"), []
        holding = admin.rpc.stream(
            "test.count", {"run": held, "n": 10, "hold_after": 2}, timeout=0.3
        )
        with pytest.raises(TimeoutError, match="sent no next item") as late:
            await read_into(got, holding)
        assert (got, late.value.code) == ([0, 1], "timeout")
        await wait_until(lambda: stopped_early(held))  # the server was told to cancel it
        assert admin.rpc.stats().connections == 1  # every stream shared one connection


@pytest.mark.anyio
async def test_a_dropped_connection_fails_its_calls_clearly_and_is_replaced(
    server: RunningServer, admin_token: str, flaky_proxy: Callable[[str], FlakyProxy]
) -> None:
    proxy, queue, key = flaky_proxy(server.url), unique("cut"), unique("k")
    async with AsyncClient(api_url=proxy.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.rpc.call("kv.set", {"key": key, "value": 1})
        async with AsyncBackground() as background:
            background.start(lambda: admin.rpc.call("queue.consume", consume(queue)))
            await wait_until(lambda: admin.rpc.stats().in_flight == 1)
            proxy.cut_all()
            with pytest.raises(ConnectionError, match=r"queue\.consume was in flight"):
                await background.results()
        await wait_until(lambda: admin.rpc.stats().connections == 0)
        assert (await admin.rpc.call("kv.get", {"key": key}))["value"] == 1  # a new connection
        assert admin.rpc.stats().opened == 2

        proxy.close()  # the server is unreachable now
        proxy.cut_all()
        await wait_until(lambda: admin.rpc.stats().connections == 0)
        with pytest.raises(ConnectionError, match="cannot open a WebSocket"):
            await admin.rpc.call("kv.get", {"key": key})


@pytest.mark.anyio
async def test_a_connection_whose_token_expired_is_replaced_with_a_fresh_one(
    make_server: Callable[..., RunningServer],
) -> None:
    # a token lives from ttl - 1 to ttl seconds (its expiry is a whole second): the fresh one
    # must outlive a new connection's opening on a busy machine (at ttl 2 it did not, once)
    running = make_server(access_token_ttl=4, ws_reidentify_seconds=0.1)
    async with AsyncClient(api_url=running.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        assert (await admin.rpc.call("auth.whoami"))["username"] == ADMIN_USERNAME
        await asyncio.sleep(4.5)  # the token the connection was opened with expires
        assert (await admin.rpc.call("auth.whoami"))["username"] == ADMIN_USERNAME
        assert admin.rpc.stats().opened == 2
        await wait_until(lambda: dispatcher_of(running).limits.connections() == 1)
