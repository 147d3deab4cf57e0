"""The server's own cost per call, with no socket: the ASGI app driven directly.

    python benchmarks/inproc.py [--calls 20000] [--rounds 5]

Builds the app of the tree whose `roost` this interpreter imports (to compare two trees, run it
with each tree's own `.venv/bin/python`, the trees taking turns), signs in the admin, and feeds the
WebSocket door 100 calls in flight on one connection (each answer sends the next call), and the
REST door one request after another, for `kv.get` and `auth.whoami`; prints the process CPU per
call (median of `--rounds`) as JSON. Without uvicorn, the websockets protocol and the kernel's
sockets, what is left is Roost's own work per call, and on a busy machine it moves far less than a
figure taken over loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

ADMIN, PASSWORD = "admin", "benchmark-password"


async def http_call(app: Any, method: str, params: dict[str, Any], token: str | None) -> Any:
    body = json.dumps(params).encode()
    headers = [(b"content-type", b"application/json"), (b"host", b"127.0.0.1")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = _http_scope(method, headers)
    sent: list[bytes] = []
    status = [0]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        elif message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    await app(scope, receive, send)
    if status[0] != 200:
        raise RuntimeError(f"{method}: {status[0]} {b''.join(sent)!r}")
    return json.loads(b"".join(sent))


def _http_scope(method: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/api/v1/{method.replace('.', '/')}",
        "raw_path": f"/api/v1/{method.replace('.', '/')}".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


async def http_load(app: Any, method: str, params: dict[str, Any], token: str, calls: int) -> None:
    body = json.dumps(params).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    scope = _http_scope(method, headers)
    request = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"{method}: {message['status']}")

    for _ in range(calls):
        await app(dict(scope), receive, send)


async def ws_load(
    app: Any, method: str, params: dict[str, Any], token: str, calls: int, in_flight: int = 100
) -> None:
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/api/v1/ws",
        "raw_path": b"/api/v1/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 40001),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
    }
    frame = json.dumps({"id": 1, "method": method, "params": params})
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})
    for _ in range(in_flight):
        inbox.put_nowait({"type": "websocket.receive", "text": frame})
    left, answered = calls - in_flight, [0]
    done = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        nonlocal left
        if message["type"] == "websocket.send":
            if answered[0] == 0 and '"result"' not in (message.get("text") or ""):
                raise RuntimeError(f"{method}: {message}")
            answered[0] += 1
            if left > 0:
                left -= 1
                inbox.put_nowait({"type": "websocket.receive", "text": frame})
            elif answered[0] >= calls:
                done.set()
        elif message["type"] == "websocket.close":
            raise RuntimeError(f"closed: {message}")

    task = asyncio.create_task(app(scope, inbox.get, send))
    await done.wait()
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await task


async def main(args: argparse.Namespace) -> dict[str, float]:
    from roost.server import create_app
    from roost.settings import load_settings

    app = create_app(
        load_settings(
            data_dir=Path(tempfile.mkdtemp(prefix="roost-inproc-")),
            secret_key=secrets.token_urlsafe(40),
            admin_username=ADMIN,
            admin_password=PASSWORD,
            redis_url=args.redis_url,
        )
    )
    lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def lifespan_send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()
        elif message["type"].endswith("failed"):
            raise RuntimeError(message)

    lifespan.put_nowait({"type": "lifespan.startup"})
    running = asyncio.create_task(app({"type": "lifespan"}, lifespan.get, lifespan_send))
    await started.wait()
    token = (await http_call(app, "auth.login", {"username": ADMIN, "password": PASSWORD}, None))[
        "access"
    ]
    key = f"inproc:{secrets.token_hex(4)}"
    await http_call(app, "kv.set", {"key": key, "value": {"n": 1}}, token)
    loads: dict[str, Callable[[int], Awaitable[object]]] = {
        "ws kv.get": lambda n: ws_load(app, "kv.get", {"key": key}, token, n),
        "ws whoami": lambda n: ws_load(app, "auth.whoami", {}, token, n),
        "http kv.get": lambda n: http_load(app, "kv.get", {"key": key}, token, n // 4),
        "http whoami": lambda n: http_load(app, "auth.whoami", {}, token, n // 4),
    }
    figures: dict[str, list[float]] = {name: [] for name in loads}
    if args.freeze:  # what `--freeze` asks: the objects of the start-up out of the collector's way
        gc.collect()
        gc.freeze()
    if args.no_gc:
        gc.disable()
    for load in loads.values():
        await load(2000)  # warm up
    for _ in range(args.rounds):
        for name, load in loads.items():
            calls = args.calls // 4 if name.startswith("http") else args.calls
            begin = time.process_time()
            await load(args.calls)
            figures[name].append((time.process_time() - begin) / calls * 1e6)
    lifespan.put_nowait({"type": "lifespan.shutdown"})
    await running
    return {name: statistics.median(turns) for name, turns in figures.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Roost's own cost per call, in process")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() after the start-up")
    parser.add_argument("--no-gc", action="store_true", help="gc.disable() after the start-up")
    import uvloop

    print(json.dumps(uvloop.run(main(parser.parse_args()))))
    sys.exit(0)
