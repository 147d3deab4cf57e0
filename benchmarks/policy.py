"""Policy checks: Roost's engine in process, Roost's `policy.check` over HTTP, and the Cerbos
binary over HTTP, on the same requests.

    python benchmarks/policy.py [--seconds 2] [--rounds 3] [--batch 1]

All three answer the same CheckResources requests (the hand-written feature policies of the
tests: derived roles, variables, scopes, a principal policy, a role policy), in alternating
turns so that none gets a quieter machine. The two servers run in processes of their own
(Roost: one uvicorn worker as `roost serve` runs it, embedded SQLite; Cerbos: its own
threads), each asked by one keep-alive httpx client, one request after another. Prints
resource checks per second and the ratios (goals: in process >= 10x the binary; Roost over
HTTP >= the binary over HTTP), and the CPU each check costs the process that answers it
(this one in process; each server's, read from /proc, over HTTP): on a loaded machine the
rates follow the scheduler more than the work, the CPU figures much less. Needs the binary
(`scripts/ensure-cerbos`). Servers take ports from `ROOST_TEST_PORTS` (default 47700-47799).

Then pages of a table bound to policies: a user asks `database.query` for a 20-row page of
a table of `--rows` rows owned by 10 users, bound to an owners-only policy (the plan,
compiled to SQL, filters the rows), and the same page of an unbound copy; the ratio of the
rates is the cost of the policies (goal: the filtered page at least 0.5x the unfiltered).
Runs without the binary too.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from benchmarks.common import cpu_seconds  # noqa: E402
from roost.policy import Engine  # noqa: E402
from tests.policy.cerbos import Cerbos, find_binary, free_port  # noqa: E402
from tests.policy.test_features import ACTIONS, GLOBALS, POLICIES, PRINCIPALS, RESOURCES  # noqa: E402

ADMIN, PASSWORD = "admin", "benchmark-password"


def rate(
    call: Callable[[], object],
    seconds: float,
    per_call: int,
    cpu: Callable[[], float] = time.process_time,
) -> tuple[float, float]:
    """Resource checks per second of `call()` run back to back for `seconds`, and the CPU
    seconds per check that `cpu()` (a clock of the process doing the work) counted."""
    for _ in range(20):
        call()
    count, begin, used = 0, time.perf_counter(), cpu()
    while time.perf_counter() - begin < seconds:
        call()
        count += 1
    elapsed, used = time.perf_counter() - begin, cpu() - used
    return count * per_call / elapsed, used / (count * per_call)


def process_cpu(pid: int) -> Callable[[], float]:
    """A clock of another process's CPU seconds (all its threads), from /proc (Linux); a
    clock that stands still elsewhere (the figure then reads 0)."""

    def clock() -> float:
        try:
            return cpu_seconds(pid)
        except OSError:
            return 0.0

    return clock


def serve_roost(data_dir: str, port: int) -> None:
    import uvicorn

    from roost.server import create_app
    from roost.server.serving import BoundedHttpTools
    from roost.settings import load_settings

    settings = load_settings(
        data_dir=Path(data_dir),
        secret_key="b" * 48,
        admin_username=ADMIN,
        admin_password=PASSWORD,
        policy_globals=GLOBALS,
    )
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="error",
        loop="uvloop",
        http=BoundedHttpTools,  # the protocol `roost serve` runs
        access_log=False,
    )


class Roost:
    """A Roost server in a process of its own, holding the policies, and a client of it."""

    def __init__(self, data_dir: str) -> None:
        port = free_port()
        self.process = multiprocessing.Process(
            target=serve_roost, args=(data_dir, port), daemon=True
        )
        self.process.start()
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=30)
        for _ in range(300):
            try:
                self.http.get("/api/v1/health")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        tokens = self.http.post(
            "/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}
        ).json()
        self.http.headers["authorization"] = f"Bearer {tokens['access']}"
        put = self.http.post("/api/v1/policies/put", json={"policies": [POLICIES]})
        put.raise_for_status()

    def check(self, principal: dict[str, Any], resources: list[dict[str, Any]]) -> Any:
        response = self.http.post(
            "/api/v1/policy/check", json={"principal": principal, "resources": resources}
        )
        response.raise_for_status()
        return response.json()

    def pages(self, rows: int) -> tuple[httpx.Client, str, str]:
        """A user's client, a table bound to an owners-only policy, and an unbound copy of
        it, both of `rows` rows owned by 10 users (the user owns a tenth)."""
        role, kind = "bench_reader", "bench_note"
        post = self.http.post
        post("/api/v1/roles/create", json={"name": role, "scopes": ["database:read"]})
        ids = []
        for n in range(10):
            made = post(
                "/api/v1/users/create_user",
                json={"username": f"owner{n}", "password": PASSWORD, "roles": [role]},
            )
            made.raise_for_status()
            ids.append(str(made.json()["id"]))
        columns = [{"name": "owner", "type": "text"}, {"name": "title", "type": "text"}]
        data = [{"owner": ids[i % 10], "title": f"note {i}"} for i in range(rows)]
        for table in ("bound_notes", "free_notes"):
            post("/api/v1/schema/add_table", json={"name": table, "columns": columns})
            post("/api/v1/schema/add_index", json={"table": table, "columns": ["owner"]})
            for start in range(0, rows, 1000):
                chunk = data[start : start + 1000]
                post("/api/v1/database/create", json={"table": table, "rows": chunk})
        rule = {
            "actions": ["read"],
            "effect": "EFFECT_ALLOW",
            "roles": [role],
            "condition": {"match": {"expr": "R.attr.owner == P.id"}},
        }
        policy = {
            "apiVersion": "api.cerbos.dev/v1",
            "resourcePolicy": {"resource": kind, "version": "default", "rules": [rule]},
        }
        post("/api/v1/policies/put", json={"policies": [policy]}).raise_for_status()
        bind = {"target": "table", "name": "bound_notes", "resource_kind": kind}
        post("/api/v1/policies/bind", json=bind).raise_for_status()
        user = httpx.Client(base_url=self.url, timeout=30)
        tokens = user.post(
            "/api/v1/auth/login", json={"username": "owner3", "password": PASSWORD}
        ).json()
        user.headers["authorization"] = f"Bearer {tokens['access']}"
        return user, "bound_notes", "free_notes"

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description="Roost policy checks vs the Cerbos binary")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1, help="resources per request")
    parser.add_argument("--rows", type=int, default=10_000, help="rows of the paged tables")
    args = parser.parse_args()
    binary = find_binary()
    if binary is None:
        print("no Cerbos binary (scripts/ensure-cerbos): the checks are skipped, pages run")
        data_dir = tempfile.mkdtemp(prefix="roost-bench-policy-")
        roost = Roost(data_dir)
        try:
            pages(roost, args.seconds, args.rounds, args.rows)
        finally:
            roost.stop()
        return
    engine = Engine.from_policies(POLICIES, GLOBALS)
    cerbos = Cerbos(binary, list(yaml.safe_load_all(POLICIES)), GLOBALS)
    data_dir = tempfile.mkdtemp(prefix="roost-bench-policy-")
    roost = Roost(data_dir)
    requests = [
        (
            principal,
            [
                {"resource": RESOURCES[(i + j) % len(RESOURCES)], "actions": ACTIONS[:3]}
                for j in range(args.batch)
            ],
        )
        for i, principal in enumerate(PRINCIPALS)
    ]
    turn = {"n": 0}

    def next_request() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        turn["n"] += 1
        return requests[turn["n"] % len(requests)]

    def in_process() -> None:
        engine.check(*next_request())

    def roost_http() -> None:
        roost.check(*next_request())

    def binary_http() -> None:
        cerbos.check(*next_request())

    # the same answers from all three, before timing anything
    for principal, entries in requests:
        ours = roost.check(principal, entries)["results"]
        local = [r.actions for r in engine.check(principal, entries).results]
        theirs = cerbos.check(principal, entries)["results"]
        assert [r["actions"] for r in ours] == local == [r["actions"] for r in theirs]
    try:
        # the CPU each check costs the process that answers it (this one in process, the
        # server's over HTTP): the figure a loaded machine moves least
        clocks = {
            "in": time.process_time,
            "http": process_cpu(roost.process.pid or 0),
            "cerbos": process_cpu(cerbos.process.pid),
        }
        calls = {"in": in_process, "http": roost_http, "cerbos": binary_http}
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, call in calls.items():
                figures[name].append(rate(call, args.seconds, args.batch, clocks[name]))
        best = {name: max(rate for rate, _ in values) for name, values in figures.items()}
        cpu = {name: min(used for _, used in values) * 1e6 for name, values in figures.items()}
        print(f"resources per request: {args.batch}, actions per resource: 3")
        for name, label in (
            ("in", "roost in process"),
            ("http", "roost over HTTP "),
            ("cerbos", "cerbos over HTTP"),
        ):
            print(
                f"{label} : {best[name]:10.0f} checks/s  ({1e6 / best[name]:7.1f} us each, "
                f"{cpu[name]:7.1f} us CPU of the answering process)"
            )
        print(f"in process / cerbos      : {best['in'] / best['cerbos']:6.1f}x  (goal >= 10x)")
        print(f"roost HTTP / cerbos HTTP : {best['http'] / best['cerbos']:6.2f}x  (goal >= 1x)")
        if cpu["in"] and cpu["http"]:
            print(
                f"CPU per check, cerbos server / roost in process: "
                f"{cpu['cerbos'] / cpu['in']:6.1f}x; / roost server: "
                f"{cpu['cerbos'] / cpu['http']:6.2f}x"
            )
        pages(roost, args.seconds, args.rounds, args.rows)
    finally:
        cerbos.stop()
        roost.stop()


def pages(roost: Roost, seconds: float, rounds: int, rows: int) -> None:
    """20-row pages of a bound table (plan-filtered) and of an unbound one, as one user."""
    user, bound, free = roost.pages(rows)
    turn = {"n": 0}

    def page_of(table: str) -> Callable[[], object]:
        def ask() -> object:
            turn["n"] += 1
            body = {"table": table, "page_size": 20, "page": turn["n"] % 40 + 1}
            response = user.post("/api/v1/database/query", json=body)
            response.raise_for_status()
            return response

        return ask

    mine = user.post("/api/v1/database/query", json={"table": bound, "count": "only"})
    assert mine.json()["total"] == rows // 10, mine.text  # only the user's rows
    figures: dict[str, list[tuple[float, float]]] = {"bound": [], "free": []}
    server = process_cpu(roost.process.pid or 0)
    try:
        for _ in range(rounds):
            figures["bound"].append(rate(page_of(bound), seconds, 1, server))
            figures["free"].append(rate(page_of(free), seconds, 1, server))
    finally:
        user.close()
    best = {name: max(rate for rate, _ in values) for name, values in figures.items()}
    cpu = {name: min(used for _, used in values) * 1e6 for name, values in figures.items()}
    print(f"20-row pages of a {rows}-row table, over HTTP, as a user owning a tenth:")
    for name, label in (("bound", "plan-filtered (bound)  "), ("free", "unfiltered (not bound) ")):
        print(f"{label} : {best[name]:10.0f} pages/s  ({cpu[name]:7.0f} us server CPU each)")
    print(f"filtered / unfiltered   : {best['bound'] / best['free']:6.2f}x  (goal >= 0.5x)")


if __name__ == "__main__":
    main()
