"""A server answers before its function workers have started (issue 20): the first runs
wait for them, and a runtime that cannot start shows in health and refuses runs (503)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import RunningServer
from tests.deployed import deployed, error_of, execute, sign_in

ECHO = """
    def main(params, user_data):
        return params
"""


def test_the_first_run_waits_for_the_workers_started_in_the_background(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(functions_enabled=True, functions_pool_size=1)
    with httpx.Client(base_url=running.url, timeout=60) as http:
        assert http.get("/api/v1/health").status_code == 200
        admin = sign_in(http)
        answer = execute(http, admin, deployed(http, admin, ECHO), {"n": 1})
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"] == {"n": 1}
        health = http.get("/api/v1/health").json()
    assert health["status"] == "ok"
    assert health["backends"]["functions"]["status"] == "ok"


def test_a_runtime_that_cannot_start_shows_in_health_and_runs_answer_503(
    make_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    running = make_server(functions_enabled=True, functions_run_dir=blocker / "run")
    with httpx.Client(base_url=running.url, timeout=60) as http:
        admin = sign_in(http)
        name = deployed(http, admin, ECHO)
        refused = execute(http, admin, name, {"n": 1})
        assert refused.status_code == 503, refused.text
        assert error_of(refused)["code"] == "functions_unavailable"
        assert "could not start" in error_of(refused)["message"]
        health = http.get("/api/v1/health").json()
    assert health["status"] == "degraded"
    functions = health["backends"]["functions"]
    assert functions["status"] == "down"
    assert "could not start" in functions["error"]
    assert "NotADirectoryError" in functions["error"]
