"""Messaging figures: KV over HTTP and WebSocket, queues, pub/sub fan-out, vs redis-py.

    python benchmarks/messaging.py [--seconds 3] [--messages 2000] [--subscribers 100]

Each server (Roost on the embedded backends, Roost on Redis, a bare Starlette endpoint) runs in
a process of its own under uvicorn (uvloop, httptools, one worker); the load runs here. Prints,
per backend:
1. KV get and set through the sync SDK over HTTP, one call after another, next to a bare
   Starlette endpoint answering the same JSON to the same kind of client (goal for get: >= 0.8x),
   measured in turns so that the machine's slow spells weigh on both alike;
2. KV get and set over the SDK's WebSocket (`client.realtime.call`), 100 calls in flight (100
   callers, each sending its next call when its last one answers), next to redis-py's own
   GET/SET against the same Redis, sequential and pipelined by 100 (the physical reference;
   goal for get: >= 0.5x of pipelined, which is measured again in turns with this get for the
   ratio), and an empty call (`auth.whoami`) the same way: what
   the door costs with no backend at all; then get in lock-step batches of 100, the pattern
   of redis-py's pipeline;
3. queue publish + consume + ack, 8 producers and 8 consumers through the async SDK, msgs/s,
   over HTTP and over the WebSocket;
4. pub/sub fan-out: one publisher, `--subscribers` subscribers on connections of their own;
   deliveries/s and the p99 latency from publish to callback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import per_second, start_process

ADMIN, PASSWORD = "admin", "benchmark-password"
REDIS_URL = os.environ.get("ROOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def bare_app() -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def endpoint(request: Request) -> Response:
        msgspec.json.decode(await request.body())
        body = msgspec.json.encode({"found": True, "value": {"n": 1}, "ttl": -1})
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/api/v1/kv/get", endpoint, methods=["POST"])])


def _bounded_protocol() -> type:
    from roost.server.serving import BoundedHttpTools

    return BoundedHttpTools


def serve(kind: str, data_dir: str, secret: str, port: int) -> None:
    import uvicorn

    if kind == "bare":
        app = bare_app()
    else:
        from roost.server import create_app
        from roost.settings import load_settings

        app = create_app(
            load_settings(
                data_dir=Path(data_dir),
                secret_key=secret,
                admin_username=ADMIN,
                admin_password=PASSWORD,
                redis_url=REDIS_URL if kind == "redis" else None,
            )
        )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        loop="uvloop",  # type: ignore[arg-type]
        # Roost runs on the protocol `roost serve` uses (bounded request heads)
        http="httptools" if kind == "bare" else _bounded_protocol(),
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        access_log=False,
    )


def start(kind: str, data_dir: str, secret: str) -> tuple[multiprocessing.Process, str]:
    def probe(url: str) -> object:
        if kind == "bare":
            return httpx.post(url + "/api/v1/kv/get", json={}, timeout=1)
        return httpx.get(url + "/api/v1/health", timeout=1)

    return start_process(serve, (kind, data_dir, secret), probe)


async def per_second_async(
    batch: Callable[[], Awaitable[object]], size: int, seconds: float
) -> float:
    """Ops/s of `batch()`, which runs `size` operations at once."""
    await batch()
    count, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        await batch()
        count += size
    return count / (time.perf_counter() - begin)


async def per_second_in_flight(
    call: Callable[[], Awaitable[object]], in_flight: int, seconds: float
) -> float:
    """Ops/s of `call()` with `in_flight` calls under way all the time: each of `in_flight`
    callers sends its next call as soon as its last one has answered."""
    await asyncio.gather(*(call() for _ in range(in_flight)))
    count, end = 0, time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal count
        while time.perf_counter() < end:
            await call()
            count += 1

    begin = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(in_flight)))
    return count / (time.perf_counter() - begin)


def interleaved(calls: dict[str, Callable[[], object]], seconds: float) -> dict[str, float]:
    """Ops/s of each call, one after another, measured in turns (a fifth of `seconds` each,
    five times) so that a slow spell of the machine weighs on all of them alike."""
    counts, spent = dict.fromkeys(calls, 0), dict.fromkeys(calls, 0.0)
    for _ in range(5):
        for name, call in calls.items():
            rate = per_second(call, seconds / 5)
            counts[name] += round(rate * seconds / 5)
            spent[name] += seconds / 5
    return {name: counts[name] / spent[name] for name in calls}


@contextlib.contextmanager
def redis_commands() -> Iterator[dict[str, Callable[[], object]]]:
    """redis-py's GET and SET of one key against the same Redis, one at a time, and
    pipelined by 100 (a call of `get_pipelined` or `set_pipelined` runs 100 commands)."""
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    key = f"bench:{secrets.token_hex(4)}"
    r.set(key, '{"n": 1}')

    def pipelined(command: str) -> Callable[[], object]:
        def run() -> object:
            pipe = r.pipeline(transaction=False)
            for _ in range(100):
                if command == "get":
                    pipe.get(key)
                else:
                    pipe.set(key, '{"n": 1}')
            return pipe.execute()

        return run

    try:
        yield {
            "get": lambda: r.get(key),
            "set": lambda: r.set(key, '{"n": 1}'),
            "get_pipelined": pipelined("get"),
            "set_pipelined": pipelined("set"),
        }
    finally:
        r.delete(key)
        r.close()


def redis_reference(seconds: float) -> dict[str, float]:
    with redis_commands() as commands:
        return {
            name: (100 if name.endswith("_pipelined") else 1) * per_second(call, seconds)
            for name, call in commands.items()
        }


def kv_http(url: str, bare_url: str, seconds: float) -> dict[str, float]:
    from roost import Client

    with Client(api_url=url) as anonymous, httpx.Client(base_url=bare_url) as raw:
        client = anonymous.auth.sign_in_with_password(ADMIN, PASSWORD)
        key = f"bench:{secrets.token_hex(4)}"
        client.kv.set(key, {"n": 1})
        body = msgspec.json.encode({"key": key})
        headers = {"content-type": "application/json"}
        return interleaved(
            {
                "get": lambda: client.kv.get(key),
                "bare": lambda: raw.post("/api/v1/kv/get", content=body, headers=headers).json(),
                "set": lambda: client.kv.set(key, {"n": 1}),
            },
            seconds,
        )


async def kv_websocket(url: str, seconds: float) -> dict[str, float]:
    from roost import AsyncClient

    async with AsyncClient(api_url=url) as anonymous:
        client = await anonymous.auth.sign_in_with_password(ADMIN, PASSWORD)
        key = f"bench:{secrets.token_hex(4)}"
        call = client.realtime.call
        await call("kv.set", {"key": key, "value": {"n": 1}})

        def batch(method: str, params: dict[str, Any]) -> Callable[[], Awaitable[object]]:
            return lambda: asyncio.gather(*(call(method, params) for _ in range(100)))

        get, set_ = {"key": key}, {"key": key, "value": {"n": 1}}
        figures = {"get": 0.0, "get_reference": 0.0}
        with redis_commands() as redis_py:
            for _ in range(5):  # in turns, so that the machine's slow spells weigh on both
                turn = await per_second_in_flight(lambda: call("kv.get", get), 100, seconds / 5)
                figures["get"] += turn / 5
                figures["get_reference"] += 20 * per_second(redis_py["get_pipelined"], seconds / 5)
        return figures | {
            "empty": await per_second_in_flight(lambda: call("auth.whoami"), 100, seconds),
            "set": await per_second_in_flight(lambda: call("kv.set", set_), 100, seconds),
            "get_batches": await per_second_async(batch("kv.get", get), 100, seconds),
        }


async def queue_throughput(url: str, messages: int, websocket: bool) -> float:
    """Msgs/s of 8 producers and 8 consumers (consume + ack), through the SDK's queue calls
    over HTTP or the same operations over its WebSocket."""
    from roost import AsyncClient

    async with AsyncClient(api_url=url, pool_size=32) as anonymous:
        client = await anonymous.auth.sign_in_with_password(ADMIN, PASSWORD)
        name = f"bench-{secrets.token_hex(4)}"
        per_worker, done = messages // 8, 0

        async def call(method: str, params: dict[str, Any]) -> Any:
            if websocket:
                return await client.realtime.call(method, params)
            return await client.call(method, params, wait=params.get("timeout", 0))

        async def produce() -> None:
            for n in range(per_worker):
                await call("queue.publish", {"queue": name, "message": {"n": n}})

        finished = 0.0

        async def consume() -> None:
            nonlocal done, finished
            while done < per_worker * 8:
                found = (await call("queue.consume", {"queue": name, "timeout": 1}))["message"]
                if found is not None:
                    await call("queue.ack", {"queue": name, "message_id": found["message_id"]})
                    done += 1
                    finished = time.perf_counter()

        begin = time.perf_counter()
        await asyncio.gather(*(produce() for _ in range(8)), *(consume() for _ in range(8)))
        # Until the last ack: the other consumers then sit out their long poll, which is not
        # work the queue does.
        return done / (finished - begin)


async def fan_out(url: str, subscribers: int, messages: int) -> tuple[float, float]:
    from roost import AsyncClient

    topic = f"bench.{secrets.token_hex(4)}"
    latencies: list[float] = []
    async with AsyncClient(api_url=url) as anonymous:
        publisher = await anonymous.auth.sign_in_with_password(ADMIN, PASSWORD)
        listeners = [
            await (AsyncClient(api_url=url)).auth.sign_in_with_password(ADMIN, PASSWORD)
            for _ in range(subscribers)
        ]

        all_in = asyncio.Event()

        def received(_: str, message: Any) -> None:
            latencies.append(time.perf_counter() - message["sent"])
            if len(latencies) >= subscribers * messages:
                all_in.set()

        for listener in listeners:
            await listener.pubsub.subscribe([topic + ".#"], received)
        begin = time.perf_counter()
        for _ in range(messages):
            result = await publisher.pubsub.publish(topic + ".x", {"sent": time.perf_counter()})
            assert result.subscribers_matched == subscribers, result
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 60)
        elapsed = time.perf_counter() - begin
        for listener in listeners:
            await listener.close()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    return len(latencies) / elapsed, p99 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description="Roost messaging figures")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=100)
    args = parser.parse_args()
    secret = secrets.token_urlsafe(40)
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
        f"{args.seconds:g} s per rate"
    )
    reference = redis_reference(args.seconds)
    print(
        f"redis-py on the same Redis: GET {reference['get']:,.0f}/s, SET {reference['set']:,.0f}/s"
        f" sequential; GET {reference['get_pipelined']:,.0f}/s, SET "
        f"{reference['set_pipelined']:,.0f}/s pipelined by 100"
    )
    bare, bare_url = start("bare", tempfile.mkdtemp(), secret)
    for backend in ("embedded", "redis"):
        process, url = start(backend, tempfile.mkdtemp(prefix="roost-bench-"), secret)
        http = kv_http(url, bare_url, args.seconds)
        ws = asyncio.run(kv_websocket(url, args.seconds))
        queue_http = asyncio.run(queue_throughput(url, args.messages, websocket=False))
        queue_ws = asyncio.run(queue_throughput(url, args.messages, websocket=True))
        fan_rate, p99 = asyncio.run(fan_out(url, args.subscribers, max(args.messages // 20, 20)))
        process.terminate()
        print(f"\n[{backend}]")
        print(
            f"1. KV over HTTP, sequential: get {http['get']:,.0f}/s, set {http['set']:,.0f}/s; "
            f"bare Starlette {http['bare']:,.0f}/s; get ratio {http['get'] / http['bare']:.2f}x "
            "(goal >= 0.8x)"
        )
        print(
            f"2. KV over WebSocket, 100 in flight: get {ws['get']:,.0f}/s, set {ws['set']:,.0f}/s;"
            f" get vs redis-py pipelined {ws['get'] / ws['get_reference']:.2f}x "
            f"(goal >= 0.5x; redis-py measured in turns with it: "
            f"{ws['get_reference']:,.0f}/s), vs sequential {ws['get'] / reference['get']:.2f}x; "
            f"an empty call (auth.whoami), the door's own ceiling: {ws['empty']:,.0f}/s "
            f"({ws['empty'] / ws['get_reference']:.2f}x). In lock-step batches of 100 "
            f"(gather 100, wait for all, again), as redis-py pipelines: get "
            f"{ws['get_batches']:,.0f}/s ({ws['get_batches'] / ws['get_reference']:.2f}x)"
        )
        print(
            f"3. queue publish + consume + ack, 8 producers + 8 consumers: {queue_http:,.0f} "
            f"msgs/s over HTTP, {queue_ws:,.0f} msgs/s over the WebSocket"
        )
        print(
            f"4. pub/sub fan-out to {args.subscribers} subscribers: {fan_rate:,.0f} deliveries/s,"
            f" p99 {p99:.1f} ms"
        )
    bare.terminate()


if __name__ == "__main__":
    main()
