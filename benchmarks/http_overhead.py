"""What the platform path costs over HTTP, and what the SDK costs over raw httpx.

    python benchmarks/http_overhead.py [--seconds 5] [--connections 32] [--rounds 3]

Prints, from one run on this machine (server figures are the best of --rounds rounds each, since
on a 2-core machine the load generator and the server compete for the cores):
1. requests/s of an authenticated Roost operation (`auth.whoami`, Bearer JWT: tenant, credential,
   scope, decode, encode) vs a bare Starlette endpoint decoding and encoding the same JSON with
   msgspec, both served by uvicorn (uvloop + httptools, one worker) in a process of its own and
   loaded by a keep-alive HTTP/1.1 generator in another process (goal: >= 0.7x);
2. sequential SDK sync calls/s vs raw `httpx.Client` posts to the same operation (goal: >= 0.85x);
3. SDK sync calls/s vs `asyncio.run` around an AsyncClient call, per call (expect >= 10x).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import per_second, start_process

ADMIN, PASSWORD = "admin", "benchmark-password"


def bare_app() -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def endpoint(request: Request) -> Response:
        msgspec.json.decode(await request.body())
        body = msgspec.json.encode(
            {
                "kind": "user",
                "tenant": "default",
                "user_id": "x" * 24,
                "username": ADMIN,
                "scopes": ["*"],
            }
        )
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/api/v1/auth/whoami", endpoint, methods=["POST"])])


def roost_app(data_dir: str, secret: str) -> object:
    from roost.server import create_app
    from roost.settings import load_settings

    return create_app(
        load_settings(
            data_dir=Path(data_dir),
            secret_key=secret,
            admin_username=ADMIN,
            admin_password=PASSWORD,
        )
    )


def _bounded_protocol() -> type:
    from roost.server.serving import BoundedHttpTools

    return BoundedHttpTools


def serve(kind: str, data_dir: str, secret: str, port: int) -> None:
    import uvicorn

    app = bare_app() if kind == "bare" else roost_app(data_dir, secret)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        loop="uvloop",  # type: ignore[arg-type]
        # Roost runs on the protocol `roost serve` uses (bounded request heads)
        http="httptools" if kind == "bare" else _bounded_protocol(),
        access_log=False,
    )


def start(kind: str, data_dir: str, secret: str) -> tuple[multiprocessing.Process, str]:
    return start_process(
        serve,
        (kind, data_dir, secret),
        lambda url: httpx.post(f"{url}/api/v1/auth/whoami", json={}, timeout=1),
    )


# -- a keep-alive HTTP/1.1 load generator (runs in its own process) --------------------------


async def _connection(port: int, request: bytes, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.perf_counter() < deadline:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        counts[0] += 1
    writer.close()


def _load(
    port: int, request: bytes, seconds: float, connections: int, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    import uvloop

    async def run() -> None:
        counts = [0]
        deadline = time.perf_counter() + seconds
        await asyncio.gather(
            *(_connection(port, request, deadline, counts) for _ in range(connections))
        )
        out.put(counts[0] / seconds)

    uvloop.run(run())


def requests_per_second(
    url: str, headers: dict[str, str], seconds: float, connections: int
) -> float:
    port = int(url.rsplit(":", 1)[1])
    body = b"{}"
    lines = [
        b"POST /api/v1/auth/whoami HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
    ]
    lines += [f"{k}: {v}".encode() for k, v in headers.items()]
    request = b"\r\n".join(lines) + b"\r\n\r\n" + body
    _load(port, request, 0.5, connections, queue := multiprocessing.Queue())  # warm up
    queue.get()
    worker = multiprocessing.Process(
        target=_load, args=(port, request, seconds, connections, queue)
    )
    worker.start()
    rate: float = queue.get()
    worker.join()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description="Roost HTTP overhead")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from roost import AsyncClient, Client

    data_dir, secret = tempfile.mkdtemp(prefix="roost-bench-"), secrets.token_urlsafe(40)
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
        f"{args.seconds:g} s per figure, {args.connections} connections"
    )

    bare, bare_url = start("bare", data_dir, secret)
    roost, url = start("roost", data_dir, secret)
    with Client(api_url=url) as client:
        admin = client.auth.sign_in_with_password(ADMIN, PASSWORD)
        token = admin._session.access  # type: ignore[union-attr]
    auth = {"Authorization": f"Bearer {token}"}
    bare_rate = roost_rate = 0.0
    for _ in range(args.rounds):  # interleaved, so that a busy moment hurts both sides
        bare_rate = max(
            bare_rate, requests_per_second(bare_url, {}, args.seconds, args.connections)
        )
        roost_rate = max(roost_rate, requests_per_second(url, auth, args.seconds, args.connections))
    bare.terminate()
    print(
        f"1. authenticated auth.whoami: {roost_rate:,.0f} req/s; bare Starlette: "
        f"{bare_rate:,.0f} req/s; ratio {roost_rate / bare_rate:.2f}x (goal >= 0.7x)"
    )

    with Client(api_url=url, token=token) as sdk, httpx.Client(base_url=url) as raw:
        sdk_rate = per_second(lambda: sdk.auth.whoami(), args.seconds)
        raw_rate = per_second(
            lambda: raw.post(
                "/api/v1/auth/whoami",
                content=b"{}",
                headers={**auth, "content-type": "application/json"},
            ).json(),
            args.seconds,
        )
    print(
        f"2. SDK sync: {sdk_rate:,.0f} calls/s; raw httpx.Client: {raw_rate:,.0f} calls/s; "
        f"ratio {sdk_rate / raw_rate:.2f}x (goal >= 0.85x)"
    )

    async def one_async_call() -> object:
        async with AsyncClient(api_url=url, token=token) as aclient:
            return await aclient.auth.whoami()

    per_call_rate = per_second(lambda: asyncio.run(one_async_call()), min(args.seconds, 3))
    print(
        f"3. SDK sync: {sdk_rate:,.0f} calls/s; asyncio.run per call: {per_call_rate:,.0f} "
        f"calls/s; ratio {sdk_rate / per_call_rate:.1f}x (expect >= 10x)"
    )
    roost.terminate()


if __name__ == "__main__":
    main()
