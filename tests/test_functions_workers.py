"""Async invocations across real processes: a server killed mid-run and started again,
`roost worker` beside an embedded server, and two replicas with two workers on PostgreSQL
and Redis. Every invocation runs at least once and its result reads the same everywhere."""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    ADMIN_PASSWORD,
    drop_pg_schemas,
    require_postgres,
    require_redis,
    unique,
)
from tests.deployed import (
    GATED,
    GATED_OPTIONS,
    KEEPS_A_SUBSCRIPTION,
    another_user,
    deployed,
    execute,
    open_gate,
    publish,
    result_of,
    runs_of,
    sign_in,
    wait_running,
    wait_status,
)
from tests.replicas import Cluster, Replica, serve, start_worker

ECHO = "def main(params, user_data):\n    return params\n"

LEASE = "2"  # seconds before an invocation whose runner died is taken again


@pytest.fixture
def processes() -> Iterator[list[Replica]]:
    """Processes a test starts, stopped at its end whatever happened."""
    started: list[Replica] = []
    yield started
    for process in started:
        process.stop()


def embedded(tmp_path: Path, **env: str) -> dict[str, str]:
    """The environment of processes sharing one embedded deployment (SQLite, files)."""
    return {
        "ROOST_DATA_DIR": str(tmp_path / "data"),
        "ROOST_SECRET_KEY": secrets.token_urlsafe(40),
        "ROOST_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ROOST_FUNCTIONS_POOL_SIZE": "1",
        "ROOST_FUNCTIONS_ASYNC_LEASE_SECONDS": LEASE,
        "ROOST_FUNCTIONS_QUEUE": unique("q"),
        **env,
    }


def running_functions(replica: Replica) -> Replica:
    """`replica`, once checked that its function runtime started (else its log says why)."""
    health = httpx.get(replica.url + "/api/v1/health").json()["backends"]["functions"]
    assert health["status"] == "ok", replica.log.read_text()
    return replica


def queue_async(http: httpx.Client, headers: dict[str, str], name: str, params: Any) -> str:
    answer = execute(http, headers, name, params, is_async=True)
    assert answer.status_code == 200, answer.text
    invocation: str = answer.json()["invocation"]["id"]
    return invocation


def test_a_server_killed_mid_run_runs_it_again_after_a_restart(
    tmp_path: Path, processes: list[Replica]
) -> None:
    env = embedded(tmp_path)
    first = running_functions(serve(tmp_path, "first", env))
    processes.append(first)
    gate = unique("gate")
    with httpx.Client(base_url=first.url, timeout=60) as http:
        admin = sign_in(http)
        name = deployed(http, admin, GATED, **GATED_OPTIONS)
        held = queue_async(http, admin, name, {"gate": gate})
        wait_running(http, admin, held)
        # one worker, so one async run at a time: these wait their turn in the queue
        waiting = [queue_async(http, admin, name, {"n": n}) for n in range(2)]
        assert [result_of(http, admin, id_)["status"] for id_ in waiting] == ["PENDING"] * 2
    first.kill()
    second = running_functions(serve(tmp_path, "second", env))
    processes.append(second)
    with httpx.Client(base_url=second.url, timeout=60) as http:
        admin = sign_in(http)
        open_gate(http, admin, gate)
        for id_ in (held, *waiting):
            assert wait_status(http, admin, id_)["status"] == "SUCCESS"
        assert runs_of(http, admin, held) == 2  # started by each server: at least once
        assert result_of(http, admin, held)["result"] == {"runs": 2}
        assert [runs_of(http, admin, id_) for id_ in waiting] == [1, 1]


KEEPS_ITS_FIRST_TOKEN = """
    import os
    import time

    from roost import Client

    def main(params, user_data):
        with Client() as client:
            runs = client.kv.incr("runs:" + os.environ["ROOST_EXECUTION_ID"])
            if runs == 1:  # the first attempt's token, where the function's author reads it
                client.kv.set(params["leak"], os.environ["ROOST_TOKEN"])
            while not client.kv.get(params["gate"]).found:
                time.sleep(0.05)
        return {"runs": runs}
"""


def test_the_token_of_an_attempt_cut_short_ends_when_the_run_starts_again(
    tmp_path: Path, processes: list[Replica]
) -> None:
    """A queued run cut short (its server killed) is run again under the same invocation id,
    whose record stays STARTED: the first attempt's token, sent out by the function, went on
    acting as the caller until the function's timeout plus 30 s, beside the second attempt's.
    Fix (tokens.RuntimeClaims.attempt): a queued run's token names its attempt (the record's
    started_at), and acts only while that attempt holds the invocation."""
    env = embedded(tmp_path)
    first = running_functions(serve(tmp_path, "first", env))
    processes.append(first)
    gate, leak = unique("gate"), unique("leak")
    options = {"scopes": ["kv:read", "kv:write"], "timeout": 300}
    with httpx.Client(base_url=first.url, timeout=60) as http:
        admin = sign_in(http)
        name = deployed(http, admin, KEEPS_ITS_FIRST_TOKEN, **options)
        held = queue_async(http, admin, name, {"gate": gate, "leak": leak})
        wait_running(http, admin, held)
        leaked = http.post("/api/v1/kv/get", json={"key": leak}, headers=admin).json()["value"]
    first.kill()
    second = running_functions(serve(tmp_path, "second", env))
    processes.append(second)
    with httpx.Client(base_url=second.url, timeout=60) as http:
        admin = sign_in(http)
        deadline = time.monotonic() + 60  # the second attempt, once the lease has run out
        while runs_of(http, admin, held) < 2:
            assert time.monotonic() < deadline, result_of(http, admin, held)
            time.sleep(0.05)
        bearer = {"authorization": f"Bearer {leaked}"}
        after = http.post("/api/v1/auth/whoami", headers=bearer)
        assert after.status_code == 401, after.text
        open_gate(http, admin, gate)
        assert wait_status(http, admin, held)["status"] == "SUCCESS"
        assert result_of(http, admin, held)["result"] == {"runs": 2}


def test_roost_worker_runs_what_an_embedded_server_queued(
    tmp_path: Path, processes: list[Replica]
) -> None:
    env = embedded(tmp_path, ROOST_FUNCTIONS_ASYNC_CONCURRENCY="0")
    server = serve(tmp_path, "server", env)
    processes.append(server)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        admin = sign_in(http)
        before = usage(http, admin)
        name = deployed(http, admin, GATED, **GATED_OPTIONS)
        queued = [queue_async(http, admin, name, {"n": n}) for n in range(3)]
        assert {result_of(http, admin, id_)["status"] for id_ in queued} == {"PENDING"}
        worker = start_worker(tmp_path, "worker", env, server.url)
        processes.append(worker)
        for id_ in queued:
            assert wait_status(http, admin, id_)["status"] == "SUCCESS"
            assert runs_of(http, admin, id_) == 1
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=30) == 0
        assert "worker stopped" in worker.log.read_text()
        # the worker metered its runs (its meter adds to the tenant's usage as it stops)
        assert usage(http, admin) >= before + 3


def test_a_worker_does_not_run_for_a_caller_signed_out_on_the_server(
    tmp_path: Path, processes: list[Replica]
) -> None:
    """A queued run acts as its caller when it starts. A server's runners keep callers in its
    principal cache, which a sign-out clears; an embedded `roost worker` beside it hears no
    sign-out (no bus between them) and kept the caller of its last run: a run queued before
    the sign-out and started after it ran, with the caller's secrets."""
    env = embedded(tmp_path, ROOST_FUNCTIONS_ASYNC_CONCURRENCY="0")
    server = serve(tmp_path, "server", env)
    processes.append(server)
    # one runner place: the second run waits for the first
    worker_env = {**env, "ROOST_FUNCTIONS_ASYNC_CONCURRENCY": "1"}
    processes.append(start_worker(tmp_path, "worker", worker_env, server.url))
    with httpx.Client(base_url=server.url, timeout=60) as http:
        admin = sign_in(http)
        gated, echo = deployed(http, admin, GATED, **GATED_OPTIONS), deployed(http, admin, ECHO)
        caller = sign_in(http)  # a session of its own, signed out below
        first = queue_async(http, caller, gated, {"gate": unique("gate")})  # never opened
        wait_running(http, caller, first)  # the worker loaded the caller
        second = queue_async(http, caller, echo, {"x": 1})  # it never calls back
        http.post("/api/v1/auth/logout", headers=caller).raise_for_status()
        # the first run's token died with the session: its place frees, the second starts
        ended = wait_status(http, admin, second)
        assert (ended["status"], ended["result"]) == ("FAILURE", None), ended
        assert "signed out" in ended["error"], ended


def test_a_subscription_of_a_run_a_worker_ran_ends_with_the_run(
    tmp_path: Path, processes: list[Replica]
) -> None:
    """A server closes a runtime token's WebSocket when the run ends there; a run of an
    embedded `roost worker` ends in that process, which no bus reaches, and a subscription
    kept in the worker's globals went on receiving the first caller's messages until the
    credential check (`ws_credential_watch_seconds`, here a minute). The server now checks the
    run's record each second while such a connection holds subscriptions."""
    env = embedded(
        tmp_path, ROOST_FUNCTIONS_ASYNC_CONCURRENCY="0", ROOST_WS_CREDENTIAL_WATCH_SECONDS="60"
    )
    server = serve(tmp_path, "server", env)
    processes.append(server)
    processes.append(start_worker(tmp_path, "worker", env, server.url))
    with httpx.Client(base_url=server.url, timeout=60) as http:
        admin = sign_in(http)
        name = deployed(http, admin, KEEPS_A_SUBSCRIPTION, timeout=30, scopes=["pubsub:read"])
        topic = unique("private")
        first = queue_async(http, admin, name, {"step": "subscribe", "topic": topic})
        assert wait_status(http, admin, first)["status"] == "SUCCESS"
        time.sleep(2)  # the server's check of the run's record, each second
        publish(http, admin, topic, "for the first caller only")
        other = another_user(http, admin, ["functions:execute"])
        second = queue_async(http, other, name, {"step": "look"})
        looked = wait_status(http, other, second)
        assert looked["status"] == "SUCCESS", looked
        assert looked["result"] == [], looked


def usage(http: httpx.Client, headers: dict[str, str]) -> int:
    report = http.post("/api/v1/usage/get", json={}, headers=headers)
    assert report.status_code == 200, report.text
    return int(report.json()["totals"]["function_invocations"])


def test_two_replicas_and_two_workers_run_every_async_invocation(tmp_path: Path) -> None:
    require_postgres()
    require_redis()
    cluster = Cluster(tmp_path)
    # the API replicas run sync calls only; async ones are the workers'
    api = {
        "ROOST_FUNCTIONS_ENABLED": "true",
        "ROOST_FUNCTIONS_POOL_SIZE": "1",
        "ROOST_FUNCTIONS_ASYNC_CONCURRENCY": "0",
    }
    # one tenant's two held runs share one worker process: its whole pool is theirs
    lease = {
        "ROOST_FUNCTIONS_ASYNC_LEASE_SECONDS": LEASE,
        "ROOST_FUNCTIONS_MAX_RUNS_PER_TENANT": "2",
    }
    try:
        one, two = cluster.start(**api), cluster.start(**api)
        first_worker = cluster.start_worker(one.url, **lease)
        second_worker = cluster.start_worker(two.url, **lease)
        with (
            httpx.Client(base_url=one.url, timeout=60) as a,
            httpx.Client(base_url=two.url, timeout=60) as b,
        ):
            doors = [(a, sign_in(a)), (b, sign_in(b))]
            name = deployed(*doors[0], GATED, **GATED_OPTIONS)
            queued = [queue_async(*doors[n % 2], name, {"n": n}) for n in range(12)]
            for id_ in queued:
                for http, headers in doors:
                    data = wait_status(http, headers, id_)
                    assert (data["status"], data["result"]) == ("SUCCESS", {"runs": 1})
            for http, headers in doors:
                listed = http.post(
                    "/api/v1/functions/invocations",
                    json={"name": name, "status": "SUCCESS"},
                    headers=headers,
                ).json()
                assert listed["count"] == 12

            # a worker killed mid-run: another worker runs its invocations again
            second_worker.stop()
            gate = unique("gate")
            held = [queue_async(*doors[0], name, {"gate": gate}) for _ in range(2)]
            for id_ in held:
                wait_running(*doors[0], id_)
            first_worker.kill()
            cluster.start_worker(two.url, **lease)
            open_gate(*doors[1], gate)
            for id_ in held:
                assert wait_status(*doors[1], id_)["status"] == "SUCCESS"
                assert runs_of(*doors[0], id_) == 2
    finally:
        cluster.stop()
        drop_pg_schemas(cluster.prefix)
