"""Async invocations over real HTTP: queued on the queue backend (SQL tables or Redis), kept
across a restart, run by the server's runner, metered; the functions queue out of tenants'
reach. Real server processes killed mid-run: tests/test_functions_workers.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_URL, RunningServer, require_redis, unique
from tests.deployed import (
    GATED,
    GATED_OPTIONS,
    deployed,
    error_of,
    execute,
    open_gate,
    result_of,
    runs_of,
    sign_in,
    wait_running,
    wait_status,
)


@pytest.fixture(scope="module")
def http(functions_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=functions_server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def admin(http: httpx.Client) -> dict[str, str]:
    return sign_in(http)


def invocations(
    http: httpx.Client, headers: dict[str, str], name: str, status: str
) -> dict[str, Any]:
    response = http.post(
        "/api/v1/functions/invocations", json={"name": name, "status": status}, headers=headers
    )
    assert response.status_code == 200, response.text
    listed: dict[str, Any] = response.json()
    return listed


def test_an_async_invocation_is_started_then_succeeds(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name, gate = deployed(http, admin, GATED, **GATED_OPTIONS), unique("gate")
    answer = execute(http, admin, name, {"gate": gate}, is_async=True)
    assert answer.status_code == 200, answer.text
    invocation = answer.json()["invocation"]
    assert invocation["status"] == "PENDING"
    started = wait_status(http, admin, invocation["id"], ("STARTED",))
    assert started["started_at"] is not None
    assert started["finished_at"] is None
    assert invocations(http, admin, name, "STARTED")["count"] == 1
    open_gate(http, admin, gate)
    done = wait_status(http, admin, invocation["id"])
    assert (done["status"], done["result"], done["mode"]) == ("SUCCESS", {"runs": 1}, "async")
    assert invocations(http, admin, name, "SUCCESS")["count"] == 1
    assert invocations(http, admin, name, "STARTED")["count"] == 0


@pytest.mark.parametrize("queues", ["sql", "redis"])
def test_queued_invocations_wait_for_a_runner_across_a_restart(
    make_server: Callable[..., RunningServer], tmp_path: Any, queues: str
) -> None:
    """A server told to run no async invocations keeps them queued (PENDING); the next
    server on the same data and queue backend runs them."""
    settings: dict[str, Any] = {
        "data_dir": tmp_path / "shared",
        "secret_key": "k" * 40,
        "functions_enabled": True,
        "functions_pool_size": 1,
        "functions_queue": unique("q"),
    }
    if queues == "redis":
        require_redis()
        settings["redis_url"] = REDIS_URL
    first = make_server(functions_async_concurrency=0, **settings)
    with httpx.Client(base_url=first.url, timeout=60) as http:
        admin = sign_in(http)
        name = deployed(http, admin, GATED, **GATED_OPTIONS)
        queued = [
            execute(http, admin, name, {"n": n}, is_async=True).json()["invocation"]["id"]
            for n in range(3)
        ]
        assert execute(http, admin, name).json()["data"] == {"runs": 1}  # sync runs here
        assert {result_of(http, admin, id_)["status"] for id_ in queued} == {"PENDING"}
        listed = invocations(http, admin, name, "PENDING")
        assert sorted(item["id"] for item in listed["results"]) == sorted(queued)
    first.stop()
    second = make_server(**settings)
    with httpx.Client(base_url=second.url, timeout=60) as http:
        admin = sign_in(http)
        for id_ in queued:
            assert wait_status(http, admin, id_)["status"] == "SUCCESS"
            assert runs_of(http, admin, id_) == 1


def test_tenants_cannot_reach_the_functions_queue(
    http: httpx.Client, admin: dict[str, str], functions_server: RunningServer
) -> None:
    platform_queue = f"$functions:{functions_server.settings.functions_queue}"
    for operation, body in (
        ("consume", {"queue": platform_queue}),
        ("publish", {"queue": platform_queue, "message": {"tenant": "default", "id": "x"}}),
        ("stats", {"queue": platform_queue}),
        ("purge", {"queue": platform_queue}),
    ):
        refused = http.post(f"/api/v1/queue/{operation}", json=body, headers=admin)
        assert refused.status_code == 400, (operation, refused.text)
        assert error_of(refused)["details"]["field"] == "queue"
    # an invocation waiting in the queue is in none of the names a tenant may use
    name, gate = deployed(http, admin, GATED, **GATED_OPTIONS), unique("gate")
    held = execute(http, admin, name, {"gate": gate}, is_async=True).json()["invocation"]["id"]
    wait_status(http, admin, held, ("STARTED",))
    for guess in ("functions", f"functions:{functions_server.settings.functions_queue}"):
        stats = http.post("/api/v1/queue/stats", json={"queue": guess}, headers=admin).json()
        assert stats["ready"] == stats["in_flight"] == 0
        taken = http.post("/api/v1/queue/consume", json={"queue": guess}, headers=admin)
        assert taken.json()["message"] is None
    open_gate(http, admin, gate)
    assert wait_status(http, admin, held)["status"] == "SUCCESS"


def test_usage_counts_async_invocations_and_seconds(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    def totals() -> dict[str, Any]:
        report: dict[str, Any] = http.post("/api/v1/usage/get", json={}, headers=admin).json()
        return dict(report["totals"])

    before = totals()
    name = deployed(http, admin, "import time\ndef main(p, u):\n    time.sleep(0.05)\n")
    queued = [
        execute(http, admin, name, is_async=True).json()["invocation"]["id"] for _ in range(2)
    ]
    for id_ in queued:
        assert wait_status(http, admin, id_)["status"] == "SUCCESS"
    after = totals()
    assert after["function_invocations"] >= before["function_invocations"] + 2
    assert after["function_seconds"] - before["function_seconds"] >= 0.099  # 2 x 50 ms


def test_a_server_that_stops_gives_its_runs_back_to_the_queue(
    make_server: Callable[..., RunningServer], tmp_path: Any
) -> None:
    """Stopping cancels the runs under way and gives their messages back at once: the next
    server runs them again without waiting for the lease (an hour here) to run out."""
    settings: dict[str, Any] = {
        "data_dir": tmp_path / "shared",
        "secret_key": "k" * 40,
        "functions_enabled": True,
        "functions_pool_size": 1,
        "functions_queue": unique("q"),
        "functions_async_lease_seconds": 3600,
    }
    first = make_server(**settings)
    gate = unique("gate")
    with httpx.Client(base_url=first.url, timeout=60) as http:
        admin = sign_in(http)
        name = deployed(http, admin, GATED, **GATED_OPTIONS)
        held = execute(http, admin, name, {"gate": gate}, is_async=True).json()["invocation"]["id"]
        wait_running(http, admin, held)
    first.stop()
    second = make_server(**settings)
    with httpx.Client(base_url=second.url, timeout=60) as http:
        admin = sign_in(http)
        open_gate(http, admin, gate)
        assert wait_status(http, admin, held)["result"] == {"runs": 2}
