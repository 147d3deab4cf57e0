"""Functions over real HTTP on a server that runs them (SQLite and PostgreSQL): deploys and
versions, sync, async and streamed runs, results and logs, `fn.<name>`, metering, health."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import RunningServer, platform_of, unique
from tests.deployed import (
    deploy,
    deploy_bundle,
    deployed,
    error_of,
    execute,
    sign_in,
    zip_of,
)

ECHO = """
    import logging

    def main(params, user_data):
        print("printed", params)
        logging.getLogger("app").warning("logged %s", params)
        return {"params": params, "user": user_data}
"""
COUNTER = """
    def main(params, user_data):
        for n in range(params["n"]):
            yield {"n": n}
"""


@pytest.fixture(scope="module")
def http(functions_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=functions_server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def admin(http: httpx.Client) -> dict[str, str]:
    return sign_in(http)


def result_of(http: httpx.Client, admin: dict[str, str], invocation: str) -> dict[str, Any]:
    response = http.post("/api/v1/functions/get_result", json={"id": invocation}, headers=admin)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def finished(http: httpx.Client, admin: dict[str, str], invocation: str) -> dict[str, Any]:
    """The result of an invocation once it has ended."""
    for _ in range(1500):
        data = result_of(http, admin, invocation)
        if data["status"] not in ("PENDING", "STARTED"):
            return data
        time.sleep(0.02)
    raise AssertionError(f"invocation {invocation} did not end")


# -- deploying and versions -----------------------------------------------------------------


def test_deploy_answers_taruvis_shape_and_list_pages_with_a_count(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    app = unique("app")
    names = sorted(deployed(http, admin, ECHO, app=app) for _ in range(3))
    info = http.post("/api/v1/functions/get", json={"name": names[0]}, headers=admin).json()
    assert (info["name"], info["slug"], info["version"], info["kind"]) == (
        names[0],
        names[0],
        1,
        "unary",
    )
    assert info["execution_mode"] == "both"
    assert info["entrypoint"] == "main:main"
    page = http.post(
        "/api/v1/functions/list", json={"limit": 2, "offset": 1, "app": app}, headers=admin
    ).json()
    assert page["count"] == 3
    assert [f["name"] for f in page["results"]] == names[1:]


def test_every_deploy_is_a_new_version_and_rollback_runs_the_old_code(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name = deployed(http, admin, "def main(params, user_data):\n    return 'one'\n", timeout=5)
    second = deploy(http, admin, name, "def main(params, user_data):\n    return 'two'\n")
    assert second.json()["version"] == 2
    assert execute(http, admin, name).json()["data"] == "two"
    versions = http.post("/api/v1/functions/versions", json={"name": name}, headers=admin).json()
    assert [(v["version"], v["active"]) for v in versions["results"]] == [(2, True), (1, False)]
    assert versions["results"][1]["timeout"] == 5  # a version keeps its own settings
    back = http.post(
        "/api/v1/functions/rollback", json={"name": name, "version": 1}, headers=admin
    ).json()
    assert (back["version"], back["latest_version"], back["timeout"]) == (1, 2, 5)
    answer = execute(http, admin, name).json()
    assert (answer["data"], answer["invocation"]["version"]) == ("one", 1)
    missing = http.post(
        "/api/v1/functions/rollback", json={"name": name, "version": 9}, headers=admin
    )
    assert (missing.status_code, error_of(missing)["details"]["field"]) == (404, "version")


def test_delete_takes_the_function_its_versions_and_invocations(
    http: httpx.Client, admin: dict[str, str], functions_server: RunningServer
) -> None:
    name = deployed(http, admin, "def main(params, user_data):\n    return 1\n")
    function_id = http.post("/api/v1/functions/get", json={"name": name}, headers=admin).json()[
        "id"
    ]
    invocation = execute(http, admin, name).json()["invocation"]["id"]
    unpacked = functions_server.settings.data_dir / "functions" / "default" / function_id
    assert unpacked.is_dir()  # where the run found its code
    assert http.post("/api/v1/functions/delete", json={"name": name}, headers=admin).json()["ok"]
    for operation in ("get", "versions", "delete"):
        gone = http.post(f"/api/v1/functions/{operation}", json={"name": name}, headers=admin)
        assert gone.status_code == 404
    gone = http.post("/api/v1/functions/get_result", json={"id": invocation}, headers=admin)
    assert gone.status_code == 404
    assert execute(http, admin, name).status_code == 404
    assert not unpacked.exists()


def test_a_folder_bundle_runs_the_entrypoint_of_its_package(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    bundle = zip_of(
        {
            "handlers/__init__.py": "",
            "handlers/orders.py": "from handlers.tax import rate\n\n"
            "def total(params, user_data):\n    return params['net'] * (1 + rate())\n",
            "handlers/tax.py": "def rate():\n    return 0.25\n",
            "data/readme.txt": "not code",
        }
    )
    name = unique("fn")
    response = deploy_bundle(http, admin, name, bundle, entrypoint="handlers.orders:total")
    assert response.status_code == 200, response.text
    assert execute(http, admin, name, {"net": 8}).json()["data"] == 10


def test_a_generator_handler_is_a_streamed_function(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name = deployed(http, admin, COUNTER)
    info = http.post("/api/v1/functions/get", json={"name": name}, headers=admin).json()
    assert info["kind"] == "stream"
    lines = http.post(
        "/api/v1/functions/stream", json={"name": name, "params": {"n": 3}}, headers=admin
    ).text.splitlines()
    assert [json.loads(line) for line in lines] == [
        {"chunk": {"n": 0}},
        {"chunk": {"n": 1}},
        {"chunk": {"n": 2}},
        {"end": True},
    ]
    # run as a unary call, a generator answers the list of its items
    assert execute(http, admin, name, {"n": 2}).json()["data"] == [{"n": 0}, {"n": 1}]


# -- running -------------------------------------------------------------------------------


def test_execute_answers_data_and_invocation_and_keeps_result_and_logs(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name = deployed(http, admin, ECHO)
    answer = execute(http, admin, name, {"a": 1})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["data"]["params"] == {"a": 1}
    user = body["data"]["user"]
    assert (user["username"], user["roles"], user["tenant"], user["app"]) == (
        "admin",
        ["admin"],
        "default",
        "default",
    )
    invocation = body["invocation"]
    assert invocation["status"] == "SUCCESS"
    assert invocation["celery_task_id"] == invocation["task_id"] == invocation["id"]
    assert isinstance(invocation["duration_ms"], int)
    data = result_of(http, admin, invocation["id"])
    assert data["status"] == "SUCCESS"
    assert data["result"]["params"] == {"a": 1}
    assert any("printed {'a': 1}" in line for line in data["logs"])
    assert any("logged {'a': 1}" in line for line in data["logs"])
    # ... and in the logs, under the function's category, with the execution id
    entries = http.post(
        "/api/v1/logs/query", json={"category": f"functions:{name}"}, headers=admin
    ).json()["entries"]
    assert {entry["data"]["execution_id"] for entry in entries} == {invocation["id"]}
    assert {entry["level"] for entry in entries} >= {"info", "warn"}


def test_a_handler_that_raises_answers_422_with_the_remote_traceback(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name = deployed(
        http, admin, "def main(params, user_data):\n    raise KeyError('missing thing')\n"
    )
    failed = execute(http, admin, name)
    error = error_of(failed)
    assert (failed.status_code, error["code"]) == (422, "function_failed")
    assert "KeyError" in error["details"]["traceback"]
    assert "missing thing" in error["message"]
    data = result_of(http, admin, error["details"]["invocation_id"])
    assert data["status"] == "FAILURE"
    assert "KeyError" in data["traceback"]


def test_a_handler_past_its_timeout_is_stopped_and_the_next_call_succeeds(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name = deployed(
        http,
        admin,
        """
        import time

        def main(params, user_data):
            if params == "spin":
                while True:
                    time.sleep(0.01)
            return "fine"
        """,
    )
    stopped = execute(http, admin, name, "spin", timeout=1)
    error = error_of(stopped)
    assert (stopped.status_code, error["code"]) == (422, "function_timeout")
    assert result_of(http, admin, error["details"]["invocation_id"])["status"] == "TIMEOUT"
    assert execute(http, admin, name, "other").json()["data"] == "fine"


def test_an_async_invocation_answers_at_once_then_its_result(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name = deployed(http, admin, ECHO)
    answer = execute(http, admin, name, {"later": True}, is_async=True).json()
    assert answer["data"] is None
    invocation = answer["invocation"]
    assert invocation["status"] == "PENDING"
    assert invocation["celery_task_id"] == invocation["task_id"] == invocation["id"]
    data = finished(http, admin, invocation["id"])
    assert (data["status"], data["mode"]) == ("SUCCESS", "async")
    assert data["result"]["params"] == {"later": True}
    listed = http.post(
        "/api/v1/functions/invocations", json={"name": name, "status": "SUCCESS"}, headers=admin
    ).json()
    assert [item["id"] for item in listed["results"]] == [invocation["id"]]
    assert listed["count"] == 1


def test_execution_mode_and_params_schema_are_checked_before_a_run(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0}},
        "required": ["n"],
    }
    name = deployed(http, admin, ECHO, execution_mode="sync", params_schema=schema)
    refused = execute(http, admin, name, {"n": 1}, is_async=True)
    assert (refused.status_code, error_of(refused)["code"]) == (400, "wrong_execution_mode")
    bad = execute(http, admin, name, {"n": -1})
    assert (bad.status_code, error_of(bad)["details"]["field"]) == (400, "params.n")
    assert execute(http, admin, name, {"n": 2}).status_code == 200
    only_async = deployed(http, admin, ECHO, execution_mode="async")
    assert execute(http, admin, only_async).status_code == 400


def test_declared_secrets_arrive_as_environment_variables(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    key = f"FN_SECRET_{unique('k').upper()}"
    reader = f"""
        import os

        def main(params, user_data):
            return [os.environ.get("{key}"), os.environ.get("ROOST_TOKEN", "")[:4],
                    os.environ.get("ROOST_EXECUTION_ID"), os.environ.get("ROOST_RUNTIME")]
        """
    name = deployed(http, admin, reader, secrets=[key])
    missing = execute(http, admin, name)
    assert (missing.status_code, error_of(missing)["code"]) == (404, "secret_not_found")
    http.post("/api/v1/secrets/set", json={"key": key, "value": "s3cr3t"}, headers=admin)
    body = execute(http, admin, name).json()
    assert body["data"] == ["s3cr3t", "rft_", body["invocation"]["id"], "roost-functions"]


def test_functions_call_roost_back_as_their_caller_and_call_each_other(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    inner = deployed(http, admin, "def main(params, user_data):\n    return params * 2\n")
    outer = deployed(
        http,
        admin,
        f"""
        from roost import Client, get_function_context

        def main(params, user_data):
            with Client() as client:
                me = client.auth.whoami()
                doubled = client.functions.execute("{inner}", params)["data"]
            return [me["kind"], me["username"], doubled, get_function_context()["function_name"]]
        """,
        scopes=["functions:execute"],
    )
    assert execute(http, admin, outer, 21).json()["data"] == ["function", "admin", 42, outer]


def test_fn_methods_run_functions_over_http_and_the_websocket(
    http: httpx.Client, admin: dict[str, str], functions_server: RunningServer
) -> None:
    echo = deployed(http, admin, "def main(params, user_data):\n    return params\n")
    counter = deployed(http, admin, COUNTER)
    assert http.post(f"/api/v1/fn/{echo}", json={"x": 1}, headers=admin).json() == {"x": 1}
    lines = http.post(f"/api/v1/fn/{counter}", json={"n": 2}, headers=admin).text.splitlines()
    assert [json.loads(line) for line in lines][-1] == {"end": True}
    unknown = http.post("/api/v1/fn/nope-not-there", json={}, headers=admin)
    assert unknown.status_code == 404
    url = functions_server.url.replace("http://", "ws://") + "/api/v1/ws"
    with connect(url, additional_headers=admin) as ws:
        ws.send(json.dumps({"id": 1, "method": f"fn.{echo}", "params": {"y": 2}}))
        assert json.loads(ws.recv()) == {"id": 1, "result": {"y": 2}}
        # a generator function streams: chunk frames, then the end frame
        ws.send(json.dumps({"id": 2, "method": f"fn.{counter}", "params": {"n": 2}}))
        frames = [json.loads(ws.recv()) for _ in range(3)]
        assert [frame.get("chunk", frame.get("end")) for frame in frames] == [
            {"n": 0},
            {"n": 1},
            True,
        ]


def test_usage_counts_function_invocations_and_seconds(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    def totals() -> dict[str, Any]:
        report: dict[str, Any] = http.post("/api/v1/usage/get", json={}, headers=admin).json()
        return dict(report["totals"])

    before = totals()
    name = deployed(http, admin, "import time\ndef main(p, u):\n    time.sleep(0.05)\n")
    for _ in range(2):
        assert execute(http, admin, name).status_code == 200
    after = totals()
    assert after["function_invocations"] >= before["function_invocations"] + 2
    assert after["function_seconds"] - before["function_seconds"] >= 0.099  # 2 x 50 ms


def test_health_shows_the_isolation_of_the_workers(
    http: httpx.Client, admin: dict[str, str], functions_server: RunningServer
) -> None:
    assert execute(http, admin, deployed(http, admin, ECHO)).status_code == 200  # started
    functions = http.get("/api/v1/health").json()["backends"]["functions"]
    runtime = platform_of(functions_server).functions
    assert runtime is not None
    assert (functions["status"], functions["backend"]) == ("ok", runtime.isolation)
    assert functions["stats"]["size"] == functions_server.settings.functions_pool_size


def test_stopping_a_stream_stops_the_run_and_records_it(
    http: httpx.Client, admin: dict[str, str], functions_server: RunningServer
) -> None:
    name = deployed(
        http,
        admin,
        """
        import time

        def main(params, user_data):
            n = 0
            while True:
                yield n
                n += 1
                time.sleep(0.01)
        """,
    )
    runtime = platform_of(functions_server).functions
    assert runtime is not None
    before = runtime.stats().replaced.get("cancelled", 0)
    url = functions_server.url.replace("http://", "ws://") + "/api/v1/ws"
    with connect(url, additional_headers=admin) as ws:
        ws.send(json.dumps({"id": 7, "method": "functions.stream", "params": {"name": name}}))
        chunks = [json.loads(ws.recv()) for _ in range(3)]
        assert [frame["chunk"] for frame in chunks] == [0, 1, 2]
        ws.send(json.dumps({"type": "cancel", "id": 7}))
    for _ in range(500):
        listed = http.post(
            "/api/v1/functions/invocations", json={"name": name}, headers=admin
        ).json()["results"]
        if listed and listed[0]["status"] != "STARTED":
            break
        time.sleep(0.02)
    assert (listed[0]["status"], listed[0]["mode"]) == ("FAILURE", "stream")
    assert "cancelled" in result_of(http, admin, listed[0]["id"])["error"]
    assert runtime.stats().replaced.get("cancelled", 0) > before  # its worker was killed


# -- shares, tokens and versions -------------------------------------------------------------

HOLD = """
    import time

    def main(params, user_data):
        yield "started"
        for _ in range(600):
            time.sleep(0.1)
            yield "holding"
"""


def test_a_tenant_past_its_share_of_workers_is_told_when_to_retry_and_async_calls_wait(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    holder = deployed(http, admin, HOLD, timeout=60)
    echo = deployed(http, admin, "def main(params, user_data):\n    return params\n")
    with http.stream("POST", f"/api/v1/fn/{holder}", json=None, headers=admin) as holding:
        lines = holding.iter_lines()
        assert json.loads(next(lines)) == {"chunk": "started"}  # the tenant's share: 1 of 2
        refused = execute(http, admin, echo, 1)
        assert (refused.status_code, refused.headers["retry-after"]) == (429, "1")
        error = error_of(refused)
        assert error["code"] == "too_many_runs"
        assert "ROOST_FUNCTIONS_MAX_RUNS_PER_TENANT" in error["message"]
        assert error["details"]["setting"] == "functions_max_runs_per_tenant"
        queued = execute(http, admin, echo, 2, is_async=True).json()["invocation"]
        assert queued["status"] == "PENDING"
    data = finished(http, admin, queued["id"])  # its turn came once the stream was closed
    assert (data["status"], data["result"]) == ("SUCCESS", 2)


def test_a_runtime_token_used_in_its_run_acts_no_more_once_the_run_is_over(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name = deployed(
        http,
        admin,
        """
        import os
        from roost import Client

        def main(params, user_data):
            with Client(max_retries=0) as client:
                client.auth.whoami()  # the server keeps this token's principal in its cache
            return os.environ["ROOST_TOKEN"]
        """,
    )
    token = execute(http, admin, name).json()["data"]
    after = http.post("/api/v1/auth/whoami", headers={"authorization": f"Bearer {token}"})
    assert (after.status_code, error_of(after)["code"]) == (401, "token_expired")


def test_versions_past_the_kept_number_are_deleted_with_their_code(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(functions_enabled=True, functions_pool_size=1, functions_max_versions=2)
    with httpx.Client(base_url=running.url, timeout=60) as http:
        admin = sign_in(http)
        name = deployed(http, admin, "def main(params, user_data):\n    return 1\n")
        function_id = http.post("/api/v1/functions/get", json={"name": name}, headers=admin)
        folder = running.settings.data_dir / "functions" / "default" / function_id.json()["id"]
        assert execute(http, admin, name).json()["data"] == 1  # unpacked here
        assert (folder / "1").is_dir()
        for version in (2, 3):
            code = f"def main(params, user_data):\n    return {version}\n"
            assert deploy(http, admin, name, code).json()["version"] == version
        kept = http.post("/api/v1/functions/versions", json={"name": name}, headers=admin)
        assert [v["version"] for v in kept.json()["results"]] == [3, 2]
        assert not (folder / "1").exists()
        bundles = running.settings.data_dir / "files" / "default" / "functions"
        assert len(list(bundles.rglob("*.zip"))) == 2
        gone = http.post(
            "/api/v1/functions/rollback", json={"name": name, "version": 1}, headers=admin
        )
        assert (gone.status_code, error_of(gone)["details"]["field"]) == (404, "version")
        back = http.post(
            "/api/v1/functions/rollback", json={"name": name, "version": 2}, headers=admin
        )
        assert back.json()["version"] == 2
        assert execute(http, admin, name).json()["data"] == 2
