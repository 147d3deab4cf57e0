"""Trigger figures: from a record insert to the webhook or function firing, and events/s.

    python benchmarks/triggers.py [--latency 100] [--events 1000] [--no-functions]

Each server (Roost embedded on SQLite, Roost on Redis for queues and the bus) runs in a
process of its own under uvicorn; the load and a webhook receiver (http.server on loopback,
a thread per request) run here. Prints, per backend:
1. webhook latency: one insert at a time through the sync SDK, the next once the receiver
   has the event; from just before the insert is sent to the receiver reading the POST
   (wall clock, one machine), p50 and p99;
2. webhook throughput: `--events` rows inserted in batches of 100 (one event each), events/s
   from the first insert to the last event received;
3. function latency (unless --no-functions): a trivial function as the target; from the row's
   `created_at` to its delivery's `updated_at` (both the server's clock: the function has
   run and its run is recorded), p50 and p99, with one insert at a time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import start_process

ADMIN, PASSWORD = "admin", "benchmark-password"
REDIS_URL = os.environ.get("ROOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def serve(kind: str, data_dir: str, functions: bool, port: int) -> None:
    import uvicorn

    from roost.server import create_app
    from roost.settings import load_settings

    settings = load_settings(
        data_dir=Path(data_dir),
        secret_key=secrets.token_urlsafe(40),
        admin_username=ADMIN,
        admin_password=PASSWORD,
        redis_url=REDIS_URL if kind == "redis" else None,
        functions_queue=f"bench{secrets.token_hex(4)}",
        webhook_allow="127.0.0.0/8",
        triggers_concurrency=32,
        functions_enabled=functions,
        functions_uid_base=2_000_000 + secrets.randbelow(1_000_000) * 16,
        functions_api_url=f"http://127.0.0.1:{port}",
    )
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="error")


class Receiver:
    """Keeps the wall time each event arrived, by the inserted row's id."""

    def __init__(self) -> None:
        self.arrived: dict[Any, float] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                row = msgspec.json.decode(body)["data"]["new"]
                with receiver.changed:
                    receiver.arrived[row["id"]] = at
                    receiver.changed.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        ThreadingHTTPServer.request_queue_size = 256  # the deliverer posts many at once
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 120) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.arrived) >= count, timeout):
                raise RuntimeError(f"only {len(self.arrived)} of {count} events arrived")


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   (n={len(ordered)})"


def run(kind: str, args: argparse.Namespace) -> None:
    from roost import Client

    with tempfile.TemporaryDirectory() as data:
        process, url = start_process(
            serve,
            (kind, data, args.functions),
            lambda u: httpx.get(u + "/api/v1/health", timeout=1),
        )
        receiver = Receiver()
        try:
            with Client(api_url=url, timeout=120) as client:
                admin = client.auth.sign_in_with_password(ADMIN, PASSWORD)
                webhook_figures(admin, receiver, kind, args)
                if args.functions:
                    function_figures(admin, kind, args)
        finally:
            receiver.server.shutdown()
            process.terminate()
            process.join(10)


def webhook_figures(admin: Any, receiver: Receiver, kind: str, args: argparse.Namespace) -> None:
    table = f"hook_{secrets.token_hex(3)}"
    admin.schema.add_table(table, [{"name": "n", "type": "integer"}])
    admin.triggers.create(
        "bench-hook",
        {"kind": "database", "table": table, "events": ["insert"]},
        {"kind": "url", "url": receiver.url},
    )
    for n in range(10):  # warm up: connections, caches
        admin.database.create(table, {"n": n})
    receiver.wait_for(10)
    latencies = []
    for n in range(args.latency):
        expected = len(receiver.arrived) + 1
        sent = time.time()
        row = admin.database.create(table, {"n": n})
        receiver.wait_for(expected)
        latencies.append(receiver.arrived[row["id"]] - sent)
    print(f"{kind:6} webhook   insert -> POST received   {percentiles(latencies)}")
    before = len(receiver.arrived)
    begin = time.time()
    for start in range(0, args.events, 100):
        admin.database.create(
            table, [{"n": n} for n in range(start, min(args.events, start + 100))]
        )
    receiver.wait_for(before + args.events)
    spent = max(receiver.arrived.values()) - begin
    print(
        f"{kind:6} webhook   {args.events} events delivered   {args.events / spent:8.0f} events/s"
    )


def function_figures(admin: Any, kind: str, args: argparse.Namespace) -> None:
    table = f"fn_{secrets.token_hex(3)}"
    admin.schema.add_table(table, [{"name": "n", "type": "integer"}])
    admin.functions.deploy("bench-noop", "def main(params, user_data):\n    return None\n")
    admin.triggers.create(
        "bench-fn",
        {"kind": "database", "table": table, "events": ["insert"]},
        {"kind": "function", "name": "bench-noop"},
    )
    latencies = []
    for n in range(10 + args.latency):
        row = admin.database.create(table, {"n": n})
        deadline = time.monotonic() + 60
        while True:
            found = admin.triggers.deliveries("bench-fn", status="delivered", limit=1)
            if found["count"] > n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the function did not fire")
            time.sleep(0.002)
        if n >= 10:  # after the warm-up (the first run binds a worker)
            fired = datetime.fromisoformat(found["results"][0]["updated_at"])
            latencies.append((fired - datetime.fromisoformat(row["created_at"])).total_seconds())
    print(f"{kind:6} function  insert -> function ran    {percentiles(latencies)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=int, default=100, help="inserts timed one by one")
    parser.add_argument("--events", type=int, default=1000, help="events for the throughput")
    parser.add_argument("--no-functions", dest="functions", action="store_false")
    parser.add_argument("--backends", default="sqlite,redis")
    args = parser.parse_args()
    multiprocessing.set_start_method("spawn")
    for kind in args.backends.split(","):
        run(kind, args)


if __name__ == "__main__":
    main()
