"""`client.functions` against a server that runs functions: deploys from a string, a file, a
folder and a zip; versions; sync, async and streamed runs; the errors a failed run raises;
`fn.<name>` through `client.call`; and the SDK inside a function."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost import (
    AsyncClient,
    ConfigurationError,
    FunctionExecutionError,
    FunctionTimeoutError,
    NotFoundError,
    RuntimeMode,
    detect_runtime,
    get_function_context,
    is_inside_function,
)
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique

pytestmark = pytest.mark.anyio

ECHO = "def main(params, user_data):\n    return {'echo': params}\n"
COUNTER = "import time\ndef main(params, user_data):\n    n = 0\n    while n < params:\n        yield n\n        n += 1\n        time.sleep(0.01)\n"


@pytest.fixture(scope="module")
def token(functions_server: RunningServer) -> str:
    """An access token of the admin of the server that runs functions."""
    response = httpx.post(
        f"{functions_server.url}/api/v1/auth/login",
        json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD},
        timeout=60,
    )
    response.raise_for_status()
    return str(response.json()["access"])


@pytest.fixture
async def admin(functions_server: RunningServer, token: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(api_url=functions_server.url, timeout=60) as client:
        yield await client.auth.sign_in_with_token(token)


async def test_deploy_from_a_string_a_file_a_folder_and_a_zip(
    admin: AsyncClient, tmp_path: Path
) -> None:
    from_string = unique("fn")
    await admin.functions.deploy(from_string, ECHO)
    handler = tmp_path / "handler.py"
    handler.write_text("def main(params, user_data):\n    return 'file'\n")
    from_file = unique("fn")
    assert (await admin.functions.deploy(from_file, handler))["entrypoint"] == "handler:main"
    folder = tmp_path / "app"
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "logic.py").write_text("WORD = 'folder'\n")
    (folder / "main.py").write_text(
        "from pkg.logic import WORD\ndef main(p, u):\n    return WORD\n"
    )
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    from_folder = unique("fn")
    await admin.functions.deploy(from_folder, path=folder)
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("main.py", "def main(params, user_data):\n    return 'zip'\n")
    from_zip = unique("fn")
    await admin.functions.deploy(from_zip, str(archive))
    answers = [
        (await admin.functions.execute(name, 1))["data"]
        for name in (from_string, from_file, from_folder, from_zip)
    ]
    assert answers == [{"echo": 1}, "file", "folder", "zip"]


async def test_versions_rollback_list_get_and_delete(admin: AsyncClient) -> None:
    name = unique("fn")
    await admin.functions.deploy(name, ECHO, description="first")
    await admin.functions.deploy(name, "def main(p, u):\n    return 'two'\n")
    versions = await admin.functions.versions(name)
    assert [v["version"] for v in versions["results"]] == [2, 1]
    assert (await admin.functions.rollback(name, 1))["version"] == 1
    assert (await admin.functions.execute(name, "x"))["data"] == {"echo": "x"}
    info = await admin.functions.get(name)
    assert (info["name"], info["slug"], info["execution_mode"]) == (name, name, "both")
    listed = await admin.functions.list(limit=1000)
    assert name in [f["name"] for f in listed["results"]]
    assert listed["count"] >= 1
    await admin.functions.delete(name)
    with pytest.raises(NotFoundError, match="no function named"):
        await admin.functions.get(name)


async def test_a_failed_run_raises_with_the_remote_traceback(admin: AsyncClient) -> None:
    name = unique("fn")
    await admin.functions.deploy(
        name,
        "import time\ndef main(params, user_data):\n"
        "    if params == 'slow':\n        time.sleep(30)\n"
        "    raise RuntimeError('it broke')\n",
    )
    with pytest.raises(FunctionExecutionError) as failed:
        await admin.functions.execute(name, "now")
    assert "RuntimeError: it broke" in failed.value.traceback
    assert failed.value.status == "FAILURE"
    invocation = failed.value.invocation_id
    assert invocation is not None
    data = (await admin.functions.get_result(invocation))["data"]
    assert data["status"] == "FAILURE"
    with pytest.raises(FunctionTimeoutError) as late:
        await admin.functions.execute(name, "slow", timeout=1)
    assert late.value.status == "TIMEOUT"


async def test_an_async_run_is_polled_to_its_result(admin: AsyncClient) -> None:
    name = unique("fn")
    await admin.functions.deploy(name, ECHO)
    started = await admin.functions.execute(name, {"n": 1}, is_async=True)
    task_id = started["invocation"]["celery_task_id"]
    data: dict[str, Any] = {}
    for _ in range(500):
        data = (await admin.functions.get_result(task_id))["data"]
        if data["status"] not in ("PENDING", "STARTED"):
            break
        await asyncio.sleep(0.02)
    assert (data["status"], data["result"]) == ("SUCCESS", {"echo": {"n": 1}})
    listed = await admin.functions.invocations(name, status="SUCCESS")
    assert [i["id"] for i in listed["results"]] == [task_id]


async def test_stream_yields_a_generators_items_and_stopping_cancels_the_run(
    admin: AsyncClient,
) -> None:
    name = unique("fn")
    await admin.functions.deploy(name, COUNTER)
    assert [n async for n in admin.functions.stream(name, 3)] == [0, 1, 2]
    items = admin.functions.stream(name, 1_000_000)
    seen = []
    async for n in items:
        seen.append(n)
        if len(seen) == 3:
            break
    await items.aclose()
    assert seen == [0, 1, 2]
    cancelled: list[Any] = []
    for _ in range(500):
        cancelled = (await admin.functions.invocations(name, status="FAILURE"))["results"]
        if cancelled:
            break
        await asyncio.sleep(0.02)
    data = (await admin.functions.get_result(cancelled[0]["id"]))["data"]
    assert data["mode"] == "stream"
    assert "cancel" in (data["error"] or "")


async def test_a_function_is_an_rpc_method(admin: AsyncClient) -> None:
    name = unique("fn")
    await admin.functions.deploy(name, ECHO)
    assert await admin.call(f"fn.{name}", {"via": "call"}) == {"echo": {"via": "call"}}


async def test_inside_a_function_the_sdk_knows_where_it_runs(admin: AsyncClient) -> None:
    assert detect_runtime() is RuntimeMode.EXTERNAL
    assert not is_inside_function()
    assert get_function_context() == {}
    name = unique("fn")
    await admin.functions.deploy(
        name,
        "from roost import detect_runtime, get_function_context, is_inside_function\n"
        "def main(params, user_data):\n"
        "    return [detect_runtime().value, is_inside_function(), get_function_context()]\n",
    )
    answer = await admin.functions.execute(name)
    mode, inside, context = answer["data"]
    assert (mode, inside) == ("function", True)
    assert context["function_name"] == name
    assert context["function_version"] == 1
    assert context["execution_id"] == answer["invocation"]["id"]
    assert (context["tenant"], context["app"]) == ("default", "default")


async def test_a_zip_with_a_symlink_is_refused_before_it_is_sent(
    admin: AsyncClient, tmp_path: Path
) -> None:
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "main.py").write_text(ECHO)
    (folder / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ConfigurationError, match="symlink"):
        await admin.functions.deploy(unique("fn"), path=folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("main.py", ECHO)
    archive = tmp_path / "fine.zip"
    archive.write_bytes(buffer.getvalue())
    assert (await admin.functions.deploy(unique("fn"), path=archive))["version"] == 1
