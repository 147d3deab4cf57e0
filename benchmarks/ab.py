"""A/B of two Roost trees: the server's CPU per call, and calls/s, of the same calls.

    python benchmarks/ab.py --before /path/to/other/tree [--after .] [--turns 7]
                            [--seconds 1] [--backends embedded,redis]

Each tree serves from a process of its own (its own `.venv`, under uvicorn as `roost serve`
runs it: uvloop, the bounded httptools protocol, websockets-sansio), set up with its own SDK
(a signed-in admin, a KV key, a one-row table). The load is the same raw frames and requests
for both, sent from this process: over the WebSocket, one connection with `--in-flight` calls
under way (each answer sends the next call); over HTTP, `--connections` keep-alive connections
each sending its next request when the last one answers. Per turn, every call runs on each tree
for `--seconds`, the trees taking turns (which goes first alternates), so that the machine's
slow spells weigh on both alike. A figure is the median of the turns of: the server process'
CPU (user + system, every thread, from /proc/<pid>/stat) per call, and calls/s.

The CPU per call is the figure to compare on a shared machine: calls/s moves with whatever
else the machine runs, the CPU a call costs the server much less.

Both servers run with the same PYTHONHASHSEED (`--hash-seed`, drawn for the run unless given):
string hashing lays out every dict, and two servers of one tree, each with a seed of its own,
differed by up to 5% in CPU per call (HTTP whoami at 32 connections, 48.8 against 51.2 us, the
turns alternating). A difference of a few percent between trees holds only if it holds over
runs with different seeds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import cpu_seconds

ADMIN, PASSWORD = "admin", "benchmark-password"
REDIS_URL = os.environ.get("ROOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# (name, operation, params); "{key}" and "{row}" are filled in from the tree's setup
CALLS = [
    ("kv.get", "kv.get", {"key": "{key}"}),
    ("whoami", "auth.whoami", {}),
    ("database.get", "database.get", {"table": "ab_items", "id": "{row}"}),
    ("database.create", "database.create", {"table": "ab_items", "rows": [{"name": "new"}]}),
    (
        "database.update",
        "database.update",
        {"table": "ab_items", "id": "{row}", "data": {"name": "up"}},
    ),
]
KEYED = {"database.create"}
"""Calls whose HTTP requests carry a fresh Idempotency-Key each, as the SDK sends them."""


# -- run by each tree's own interpreter ------------------------------------------------------


def serve(kind: str, data_dir: str, secret: str, port: str, http: str) -> None:
    import uvicorn

    from roost.server import create_app
    from roost.settings import load_settings

    protocol: object = "httptools"
    if http == "shipped":  # what `roost serve` runs, in a tree that has it
        try:
            from roost.server.serving import BoundedHttpTools
        except ImportError:
            pass
        else:
            protocol = BoundedHttpTools

    app = create_app(
        load_settings(
            data_dir=Path(data_dir),
            secret_key=secret,
            admin_username=ADMIN,
            admin_password=PASSWORD,
            redis_url=REDIS_URL if kind == "redis" else None,
        )
    )
    # start-up's objects in the permanent generation, as `roost serve` leaves them
    # (`roost._startup`): without it every full collection walks them again, a cost that
    # `roost serve` does not pay and that grows with the tree's size
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(port),
        log_level="error",
        loop="uvloop",
        http=protocol,  # type: ignore[arg-type]
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        access_log=False,
    )


def setup(url: str) -> None:
    """Sign in, set a key and make a one-row table with this tree's SDK; print what the load
    needs as JSON."""
    from roost import Client

    with Client(api_url=url) as anonymous:
        admin = anonymous.auth.sign_in_with_password(ADMIN, PASSWORD)
        key = f"ab:{secrets.token_hex(4)}"
        admin.kv.set(key, {"n": 1})
        admin.schema.add_table("ab_items", [{"name": "name", "type": "text"}])
        row = admin.database.create("ab_items", {"name": "one"})
        token = admin._session.access  # type: ignore[union-attr]
    print(json.dumps({"token": token, "key": key, "row": row["id"]}))


# -- the driver ------------------------------------------------------------------------------


@dataclass
class Server:
    tree: str
    process: subprocess.Popen[bytes]
    port: int
    token: str
    fill: dict[str, object]
    figures: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)


def _python(tree: str) -> str:
    return str(Path(tree) / ".venv" / "bin" / "python")


def start(tree: str, kind: str, http: str, hash_seed: int) -> Server:
    from benchmarks.common import free_port

    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="roost-ab-")
    secret = secrets.token_urlsafe(40)
    # a uid range of its own for the function pool: other servers may run on this host
    uids = str(random.randrange(2_000_000, 2**30, 4096))
    process = subprocess.Popen(  # noqa: S603 - our own script, with the trees we were given
        [_python(tree), __file__, "serve", kind, data_dir, secret, str(port), http],
        cwd=tree,
        env={**os.environ, "ROOST_FUNCTIONS_UID_BASE": uids, "PYTHONHASHSEED": str(hash_seed)},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            done = subprocess.run(  # noqa: S603 - as above
                [_python(tree), __file__, "setup", url],
                cwd=tree,
                capture_output=True,
                check=True,
                text=True,
            )
            break
        except subprocess.CalledProcessError as exc:
            if process.poll() is not None:
                raise RuntimeError(f"the server of {tree} ended: {exc.stderr}") from exc
            time.sleep(0.2)
    else:
        raise RuntimeError(f"the server of {tree} did not start")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return Server(tree, process, port, found.pop("token"), found)


def _params(server: Server, params: Mapping[str, object]) -> dict[str, object]:
    return {
        k: server.fill[v[1:-1]] if isinstance(v, str) and v[:1] == "{" else v
        for k, v in params.items()
    }


async def ws_load(
    server: Server, method: str, params: dict[str, object], seconds: float, in_flight: int
) -> int:
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{server.port}/api/v1/ws"
    headers = {"Authorization": f"Bearer {server.token}"}
    async with connect(url, additional_headers=headers, compression=None, max_size=None) as ws:
        frames = [
            json.dumps({"id": n, "method": method, "params": params}) for n in range(in_flight)
        ]
        for frame in frames:  # warm up, and check that the call answers
            await ws.send(frame)
        for _ in frames:
            answer = json.loads(await ws.recv())
            if "result" not in answer:
                raise RuntimeError(f"{method}: {answer}")
        deadline, count = time.perf_counter() + seconds, 0
        for frame in frames:
            await ws.send(frame)
        pending = in_flight
        while pending:
            await ws.recv()
            count += 1
            pending -= 1
            if time.perf_counter() < deadline:
                await ws.send(frames[0])
                pending += 1
        return count


async def http_load(
    server: Server, method: str, params: dict[str, object], seconds: float, connections: int
) -> int:
    body = json.dumps(params).encode()
    head = [
        f"POST /api/v1/{method.replace('.', '/')} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"Authorization: Bearer {server.token}",
    ]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    keyed = method in KEYED
    deadline, counts = time.perf_counter() + seconds, [0]

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        while time.perf_counter() < deadline:
            if keyed:
                key = f"Idempotency-Key: {secrets.token_hex(16)}\r\n".encode()
                writer.write(request.replace(b"\r\n\r\n", b"\r\n" + key + b"\r\n", 1))
            else:
                writer.write(request)
            answer = await reader.readuntil(b"\r\n\r\n")
            if not answer.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{method}: {answer.decode(errors='replace')}")
            length = 0
            for line in answer.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            counts[0] += 1
        writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return counts[0]


def measure(
    server: Server,
    door: str,
    name: str,
    method: str,
    params: Mapping[str, object],
    args: argparse.Namespace,
) -> None:
    filled = _params(server, params)
    cpu, begin = server.cpu_seconds(), time.perf_counter()
    if door == "ws":
        calls = asyncio.run(ws_load(server, method, filled, args.seconds, args.in_flight))
    else:
        calls = asyncio.run(http_load(server, method, filled, args.seconds, args.connections))
    cpu, wall = server.cpu_seconds() - cpu, time.perf_counter() - begin
    server.figures.setdefault(f"{door} {name}", []).append((cpu / calls * 1e6, calls / wall))


def main() -> None:
    parser = argparse.ArgumentParser(description="A/B of two Roost trees")
    parser.add_argument("--before", required=True, help="the other tree (with its .venv)")
    parser.add_argument("--after", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--turns", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.0, help="per call, tree and turn")
    parser.add_argument("--backends", default="embedded,redis")
    parser.add_argument("--doors", default="ws,http")
    parser.add_argument("--calls", default=",".join(name for name, _, _ in CALLS))
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--http",
        choices=("shipped", "httptools"),
        default="shipped",
        help="the HTTP protocol: what `roost serve` runs in each tree, or plain httptools",
    )
    parser.add_argument(
        "--hash-seed",
        type=int,
        default=random.randrange(2**32),
        help="PYTHONHASHSEED of both servers (default: one drawn for the run)",
    )
    args = parser.parse_args()
    calls = [c for c in CALLS if c[0] in args.calls.split(",")]
    print(
        f"machine: {os.cpu_count()} cores; {args.turns} turns of {args.seconds:g} s per "
        f"figure; WS {args.in_flight} in flight, HTTP {args.connections} connections; "
        f"PYTHONHASHSEED {args.hash_seed}"
    )
    print("figure: median over turns of server CPU us per call (calls/s)")
    for kind in args.backends.split(","):
        servers = [
            start(args.before, kind, args.http, args.hash_seed),
            start(args.after, kind, args.http, args.hash_seed),
        ]
        try:
            for turn in range(args.turns):
                for server in servers if turn % 2 == 0 else servers[::-1]:
                    for door in args.doors.split(","):
                        for name, method, params in calls:
                            measure(server, door, name, method, params, args)
        finally:
            for server in servers:
                server.process.terminate()
                server.process.wait()
        before, after = servers
        print(f"\n[{kind}]  {'':<18}{'before':>20}{'after':>20}{'cpu after/before':>18}")
        for figure, turns in before.figures.items():
            b_cpu = statistics.median(t[0] for t in turns)
            b_rate = statistics.median(t[1] for t in turns)
            a_cpu = statistics.median(t[0] for t in after.figures[figure])
            a_rate = statistics.median(t[1] for t in after.figures[figure])
            print(
                f"  {figure:<22}{b_cpu:>8.1f} us ({b_rate:>6,.0f}/s)"
                f"{a_cpu:>8.1f} us ({a_rate:>6,.0f}/s){a_cpu / b_cpu:>12.2f}x"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("serve", "setup"):
        {"serve": serve, "setup": setup}[sys.argv[1]](*sys.argv[2:])  # type: ignore[operator]
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        main()
