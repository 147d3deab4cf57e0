"""Functions figures: warm calls over HTTP and the WebSocket next to kv.get, cold starts,
32 concurrent callers, async invocations end to end.

    python benchmarks/functions.py [--seconds 2] [--async-invocations 200] [--port-base N]
                                   [--pin]

Each server (Roost on the embedded backends, then Roost with Redis: its queue carries the
async invocations) runs in a process of its own under uvicorn with its function runtime
(4 warm sandboxed workers); the load runs here. Prints, per backend:
1. a warm trivial function (`return params`) through `functions.execute`, one call after
   another, over HTTP (sync SDK) and over the WebSocket (`client.realtime.call`), each next
   to a plain `kv.get` over the same door, measured in turns so that the machine's slow
   spells weigh on both alike: calls/s, p50 and p99, and the ratio (goal >= 0.5x);
2. cold start: the first call of a newly deployed version (a worker binds to it: copies and
   imports its code), median of 5, next to a warm call;
3. 32 concurrent callers over the WebSocket (the pool runs 4 at once; the rest wait their
   turn): calls/s, p50 and p99;
4. async invocations end to end: `--async-invocations` queued at once with `is_async=True`,
   until the last is recorded SUCCESS (taken from the queue and run by the server's runner).

`--pin` (two cores or more) keeps the server and its function workers on core 0 and the load on
the others, as `vs_pocketbase.py` pins its servers: a warm call then wakes its worker on the
server's own core. Unpinned, the kernel places them as it likes; on a virtual machine a
wake-up on another, idle, core costs tens of microseconds each way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import start_process

ADMIN, PASSWORD = "admin", "benchmark-password"
REDIS_URL = os.environ.get("ROOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TRIVIAL = "def main(params, user_data):\n    return params\n"
POOL_SIZE = 4
CONCURRENT = 32


def serve(kind: str, data_dir: str, secret: str, pinned: bool, port: int) -> None:
    import uvicorn

    if pinned:  # the function workers it starts inherit the core
        os.sched_setaffinity(0, {0})

    from roost.server import create_app
    from roost.server.serving import BoundedHttpTools
    from roost.settings import load_settings

    settings = load_settings(
        data_dir=Path(data_dir),
        secret_key=secret,
        admin_username=ADMIN,
        admin_password=PASSWORD,
        redis_url=REDIS_URL if kind == "redis" else None,
        functions_api_url=f"http://127.0.0.1:{port}",
        functions_pool_size=POOL_SIZE,
        # the 32 concurrent callers wait their turn (past the default share, half the pool,
        # a tenant's sync calls are refused with 429)
        functions_max_runs_per_tenant=CONCURRENT,
        functions_queue=f"bench{secrets.token_hex(4)}",
        functions_uid_base=4_000_000 + secrets.randbelow(100_000) * 16,
    )
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="error",
        loop="uvloop",
        http=BoundedHttpTools,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        access_log=False,
    )


def start(kind: str, port: int | None, pinned: bool = False) -> tuple[Any, str]:
    data_dir = tempfile.mkdtemp(prefix="roost-bench-")
    args = (kind, data_dir, secrets.token_urlsafe(40), pinned)
    return start_process(serve, args, lambda url: httpx.get(url + "/api/v1/health"), port)


class Timings:
    """Latencies of calls, and the time they took together."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.spent = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.spent

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000

    def line(self) -> str:
        p50, p99 = self.percentile(0.5), self.percentile(0.99)
        return f"{self.rate:,.0f}/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms"


def sequential(call: Callable[[], object], seconds: float, into: Timings) -> None:
    begin = end = time.perf_counter()
    while end - begin < seconds:
        call()
        now = time.perf_counter()
        into.latencies.append(now - end)
        end = now
    into.spent += end - begin


async def sequential_async(
    call: Callable[[], Awaitable[object]], seconds: float, into: Timings
) -> None:
    begin = end = time.perf_counter()
    while end - begin < seconds:
        await call()
        now = time.perf_counter()
        into.latencies.append(now - end)
        end = now
    into.spent += end - begin


def in_turns(calls: dict[str, Callable[[], object]], seconds: float) -> dict[str, Timings]:
    """Each call one after another, in five turns of a fifth of `seconds` each."""
    timings = {name: Timings() for name in calls}
    for call in calls.values():
        for _ in range(20):  # warm up
            call()
    for _ in range(5):
        for name, call in calls.items():
            sequential(call, seconds / 5, timings[name])
    return timings


def http_figures(url: str, name: str, seconds: float) -> dict[str, Timings]:
    from roost import Client

    with Client(api_url=url) as anonymous:
        client = anonymous.auth.sign_in_with_password(ADMIN, PASSWORD)
        key = f"bench:{secrets.token_hex(4)}"
        client.kv.set(key, {"n": 1})
        return in_turns(
            {
                "function": lambda: client.functions.execute(name, {"n": 1}),
                "kv.get": lambda: client.kv.get(key),
            },
            seconds,
        )


async def websocket_figures(url: str, name: str, seconds: float) -> dict[str, Timings]:
    from roost import AsyncClient

    async with AsyncClient(api_url=url) as anonymous:
        client = await anonymous.auth.sign_in_with_password(ADMIN, PASSWORD)
        key = f"bench:{secrets.token_hex(4)}"
        call = client.realtime.call
        await call("kv.set", {"key": key, "value": {"n": 1}})
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "function": lambda: call("functions.execute", {"name": name, "params": {"n": 1}}),
            "kv.get": lambda: call("kv.get", {"key": key}),
        }
        timings = {method: Timings() for method in calls}
        for run in calls.values():
            for _ in range(20):
                await run()
        for _ in range(5):
            for method, run in calls.items():
                await sequential_async(run, seconds / 5, timings[method])
        timings["concurrent"] = await concurrent(calls["function"], CONCURRENT, seconds)
        return timings


async def concurrent(
    call: Callable[[], Awaitable[object]], callers: int, seconds: float
) -> Timings:
    """`callers` callers, each sending its next call when its last one answers."""
    timings = Timings()
    end = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < end:
            sent = time.perf_counter()
            await call()
            timings.latencies.append(time.perf_counter() - sent)

    begin = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    timings.spent = time.perf_counter() - begin
    return timings


def cold_starts(url: str, rounds: int = 5) -> tuple[float, float]:
    """Median ms of the first call of a new version, and of a warm call after it."""
    from roost import Client

    cold: list[float] = []
    warm: list[float] = []
    with Client(api_url=url) as anonymous:
        client = anonymous.auth.sign_in_with_password(ADMIN, PASSWORD)
        name = f"cold{secrets.token_hex(4)}"
        for n in range(rounds):
            client.functions.deploy(name, f"VERSION = {n}\n{TRIVIAL}")
            for into in (cold, warm):
                begin = time.perf_counter()
                client.functions.execute(name, {"n": n})
                into.append((time.perf_counter() - begin) * 1000)
    return statistics.median(cold), statistics.median(warm)


async def async_throughput(url: str, name: str, count: int) -> float:
    """Invocations/s from queueing `count` at once to the last one recorded SUCCESS."""
    from roost import AsyncClient

    async with AsyncClient(api_url=url) as anonymous:
        client = await anonymous.auth.sign_in_with_password(ADMIN, PASSWORD)
        call = client.realtime.call
        before = (await client.functions.invocations(name, status="SUCCESS", limit=1))["count"]
        begin = time.perf_counter()
        await asyncio.gather(
            *(
                call("functions.execute", {"name": name, "params": {"n": n}, "is_async": True})
                for n in range(count)
            )
        )
        while True:
            done = await client.functions.invocations(name, status="SUCCESS", limit=1)
            if done["count"] - before >= count:
                return count / (time.perf_counter() - begin)
            await asyncio.sleep(0.1)


def deploy_trivial(url: str) -> str:
    from roost import Client

    name = f"trivial{secrets.token_hex(4)}"
    with Client(api_url=url) as anonymous:
        client = anonymous.auth.sign_in_with_password(ADMIN, PASSWORD)
        client.functions.deploy(name, TRIVIAL)
        client.functions.execute(name, {"n": 0})  # a worker warm for it
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description="Roost functions figures")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--async-invocations", type=int, default=200)
    parser.add_argument("--port-base", type=int, default=None, help="ports from here on")
    parser.add_argument("--pin", action="store_true", help="server and workers on core 0")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    pinned = args.pin and cores >= 2 and hasattr(os, "sched_setaffinity")  # Linux
    if pinned:
        os.sched_setaffinity(0, set(range(1, cores)))
    print(
        f"machine: {cores} cores, Python {sys.version.split()[0]}; "
        f"{args.seconds:g} s per rate; {POOL_SIZE} sandboxed workers per server; "
        + ("server and workers pinned to core 0, load on the others" if pinned else "unpinned")
    )
    for n, backend in enumerate(("embedded", "redis")):
        port = args.port_base + n if args.port_base else None
        process, url = start(backend, port, pinned)
        try:
            health = httpx.get(url + "/api/v1/health").json()["backends"]["functions"]
            name = deploy_trivial(url)
            http = http_figures(url, name, args.seconds)
            ws = asyncio.run(websocket_figures(url, name, args.seconds))
            # a function of its own: the count of its SUCCESS rows stays small to poll
            queued = deploy_trivial(url)
            rate = asyncio.run(async_throughput(url, queued, args.async_invocations))
            cold, warm = cold_starts(url)
        finally:
            process.terminate()
            process.join(30)
        print(f"\n[{backend}] isolation: {health['backend']}")
        for door, figures in (("HTTP", http), ("WebSocket", ws)):
            function, kv = figures["function"], figures["kv.get"]
            print(
                f"1. warm function over {door}, one at a time: {function.line()}; kv.get "
                f"{kv.line()}; ratio {function.rate / kv.rate:.2f}x (goal >= 0.5x; of the "
                f"p50s, which a busy machine's slow spells move less: "
                f"{kv.percentile(0.5) / function.percentile(0.5):.2f}x)"
            )
        print(
            f"2. cold start of a new version: {cold:.1f} ms (a warm call after it: {warm:.1f} ms)"
        )
        print(f"3. {CONCURRENT} concurrent callers over the WebSocket: {ws['concurrent'].line()}")
        print(
            f"4. async invocations end to end ({args.async_invocations} queued at once, "
            f"queue on {'Redis' if backend == 'redis' else 'SQLite'}): {rate:,.0f}/s"
        )


if __name__ == "__main__":
    main()
