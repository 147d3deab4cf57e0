"""Taruvi's `Client()` factory, which picks the sync or async client by `mode` (or
`TARUVI_MODE`), with the seed's Quick Start in both modes as written (import changed), and
its functions examples on the servers that run functions."""

from __future__ import annotations

import contextlib
import time

import httpx
import pytest

import roost
from roost.compat.taruvi import (
    AsyncTaruviClient,
    Client,
    ConfigurationError,
    ConflictError,
    TaruviClient,
    detect_runtime,
)
from tests.compat.tenants import Tenant
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer

PROCESS_ORDER = "def main(params, user_data):\n    return {'processed': params['order_id']}\n"
HELPER = "def main(params, user_data):\n    return {'helped': params}\n"
# The seed's "Inside Taruvi Function" handler, as written but for the import: the runtime's
# settings (the API's socket, the caller's token, the tenant) reach the client it makes.
HANDLER = """
from roost.compat.taruvi import Client

def main(params, user_data):
    # Auto-configured from environment variables!
    client = Client(
        api_url="http://localhost:8000",  # Or from TARUVI_API_URL
        app_slug="my-app"  # Or from TARUVI_APP_SLUG
    )

    # Call another function
    result = client.functions.execute("helper", {"test": True})

    # Query database
    users = client.database.query("users").page_size(10).get()

    return {"result": result, "user_count": len(users)}
"""


def test_the_mode_picks_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TARUVI_MODE", raising=False)
    assert type(Client(api_url="http://127.0.0.1:48800")) is TaruviClient
    assert type(Client(mode="async", api_url="http://127.0.0.1:48800")) is AsyncTaruviClient
    monkeypatch.setenv("TARUVI_MODE", "async")
    assert type(Client(api_url="http://127.0.0.1:48800")) is AsyncTaruviClient
    assert type(Client(mode="sync", api_url="http://127.0.0.1:48800")) is TaruviClient
    with pytest.raises(ConfigurationError) as refused:
        Client(mode="threads", api_url="http://127.0.0.1:48800")  # type: ignore[call-overload]
    assert refused.value.details == {"field": "mode"}
    assert detect_runtime is roost.detect_runtime  # Roost's own, under the seed's name


def test_sync_quick_start(server: RunningServer, tenant: Tenant) -> None:
    # Step 1: Create unauthenticated client
    client = Client(api_url=server.url, app_slug="my-app", site_slug=tenant.name)

    # Step 2: Authenticate using AuthManager
    auth_client = client.auth.signInWithPassword(username=tenant.username, password=tenant.password)

    with contextlib.suppress(ConflictError):  # the table the example reads
        auth_client.schema.add_table("users", [{"name": "email", "type": "text"}])
    # Query database
    users = auth_client.database.query("users").page_size(10).get()
    assert users == []
    auth_client.close()


@pytest.mark.anyio
async def test_async_quick_start(server: RunningServer, tenant: Tenant) -> None:
    # Step 1: Create unauthenticated client
    client = Client(mode="async", api_url=server.url, app_slug="my-app", site_slug=tenant.name)

    # Step 2: Authenticate using AuthManager (not async)
    auth_client = client.auth.signInWithPassword(username=tenant.username, password=tenant.password)

    with contextlib.suppress(ConflictError):  # the table the example reads
        await auth_client.schema.add_table("users", [{"name": "email", "type": "text"}])
    # Query database
    users = await auth_client.database.query("users").page_size(10).get()
    assert users == []

    await auth_client.close()


@pytest.fixture(scope="module")
def functions_admin(functions_server: RunningServer) -> str:
    """The server that runs functions, with "process-order", "long-running-task", and the
    seed's handler and the "helper" it calls."""
    login = httpx.post(
        f"{functions_server.url}/api/v1/auth/login",
        json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD},
        timeout=60,
    )
    login.raise_for_status()
    with Client(api_url=functions_server.url, timeout=60) as client:
        admin = client.auth.signInWithToken(token=login.json()["access"], token_type="jwt")
        admin.functions.deploy("process-order", PROCESS_ORDER)
        admin.functions.deploy("long-running-task", PROCESS_ORDER.replace("order_id", "data"))
        admin.functions.deploy("helper", HELPER)
        admin.functions.deploy("handler", HANDLER, scopes=["functions:execute", "database:read"])
        with contextlib.suppress(ConflictError):  # the table the handler reads
            admin.schema.add_table("users", [{"name": "email", "type": "text"}])
    return functions_server.url


def test_functions_examples(functions_admin: str) -> None:
    client = Client(api_url=functions_admin, app_slug="my-app", timeout=60)
    client = client.auth.signInWithPassword(username=ADMIN_USERNAME, password=ADMIN_PASSWORD)

    # Synchronous execution (waits for result)
    result = client.functions.execute("process-order", params={"order_id": 123, "customer_id": 456})
    assert result["data"] == {"processed": 123}

    # Start async execution (returns immediately with task_id)
    result = client.functions.execute(
        "long-running-task",
        params={"data": "large_dataset"},
        is_async=True,  # Execute in background
    )
    task_id = result["invocation"]["celery_task_id"]

    # Poll for result
    while True:
        task_result = client.functions.get_result(task_id)
        status = task_result["data"]["status"]
        if status == "SUCCESS":
            assert task_result["data"]["result"] == {"processed": "large_dataset"}
            break
        assert status != "FAILURE", task_result["data"]["traceback"]
        time.sleep(0.1)  # the seed waits 2 s

    # List all functions
    functions = client.functions.list(limit=50, offset=0)
    assert "process-order" in [func["slug"] for func in functions["results"]]

    # Get specific function
    func = client.functions.get("process-order")
    assert (func["name"], func["execution_mode"]) == ("process-order", "both")
    client.close()


@pytest.mark.anyio
async def test_async_functions_example(functions_admin: str) -> None:
    client = Client(mode="async", api_url=functions_admin, app_slug="my-app", timeout=60)
    auth_client = client.auth.signInWithPassword(username=ADMIN_USERNAME, password=ADMIN_PASSWORD)

    # Step 3: Use authenticated client
    result = await auth_client.functions.execute("process-order", params={"order_id": 123})
    assert result["data"] == {"processed": 123}

    await auth_client.close()


def test_inside_a_function_example(functions_admin: str) -> None:
    client = Client(api_url=functions_admin, app_slug="my-app", timeout=60)
    client = client.auth.signInWithPassword(username=ADMIN_USERNAME, password=ADMIN_PASSWORD)
    result = client.functions.execute("handler", params={})
    assert result["data"]["result"]["data"] == {"helped": {"test": True}}
    assert result["data"]["user_count"] == 0
    client.close()
