"""The DotDo seed's documented examples through `roost.compat.dotdo`, as the seed writes them
with only the import changed, on SQLite and PostgreSQL (the sync tests are generated from these).

Filled in: the server as `DOTDO_ENDPOINT` or `endpoint=`, a real API key for `"your-api-key"`,
and for the seed's own hosted methods (`ai.generate`, `"method"`) Roost operations by name
(`kv.set`, `database.export`): `ai.generate` itself is no Roost operation and raises the
seed's `RpcError`, which docs/coming-from-dotdo.md explains. Where an example cannot run as
written the test pins what happens instead.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from roost.compat._async.dotdo import AsyncDotDo
from roost.compat.dotdo import (
    AuthError,
    ConnectionError,
    DotDoError,
    RateLimitError,
    RpcError,
    TimeoutError,
)
from roost.errors import ConfigurationError, NotFoundError, ValidationError
from tests.compat.tenants import Tenant
from tests.conftest import RunningServer, unique


@pytest.fixture
def dotdo_env(server: RunningServer, tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> str:
    """The tenant's API key, also as DOTDO_API_KEY, and the server as DOTDO_ENDPOINT."""
    monkeypatch.setenv("DOTDO_ENDPOINT", server.url.replace("http://", "ws://") + "/rpc")
    monkeypatch.setenv("DOTDO_API_KEY", tenant.key)
    return tenant.key


async def drain(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


def access_token_of(server: RunningServer, tenant: Tenant) -> str:
    """An access JWT of the tenant's superuser (what DotDo's OAuth token stands for)."""
    login = httpx.post(
        f"{server.url}/api/v1/auth/login",
        json={"username": tenant.username, "password": tenant.password},
        headers={"X-Roost-Tenant": tenant.name},
        timeout=60,
    )
    login.raise_for_status()
    return str(login.json()["access"])


@pytest.mark.anyio
async def test_basic_usage(dotdo_env: str) -> None:
    # Create a client
    client = AsyncDotDo(api_key=dotdo_env)

    # Connect to a service
    async with client:
        # DotDo's hosted AI service is no Roost operation: the seed's RPC error says so
        with pytest.raises(RpcError, match="no operation named") as missing:
            await client.call("ai.generate", {"prompt": "Hello, world!", "model": "claude-3"})
        assert isinstance(missing.value, NotFoundError)
        result = await client.call("kv.set", {"key": "greeting", "value": "Hello, world!"})
        assert result == {"success": True}


@pytest.mark.anyio
async def test_environment_variables(dotdo_env: str) -> None:
    # Automatically reads DOTDO_API_KEY
    client = AsyncDotDo()

    async with client:
        await client.call("kv.set", {"key": "env", "value": "Hello!"})
        result = await client.call("kv.get", {"key": "env"})
        assert result["value"] == "Hello!"
    assert client.native.config.token == dotdo_env


@pytest.mark.anyio
async def test_configuration(server: RunningServer, tenant: Tenant) -> None:
    client = AsyncDotDo(
        # Authentication
        api_key=tenant.key,
        headers={"X-Custom": "value"},  # Custom headers
        # Endpoint
        endpoint=server.url.replace("http://", "ws://") + "/rpc",
        # Connection Pool
        pool_size=10,  # Max concurrent connections
        pool_timeout=30.0,  # Connection acquire timeout
        # Retry Policy
        max_retries=3,  # Number of retry attempts
        retry_delay=0.1,  # Initial retry delay (seconds)
        retry_max_delay=30.0,  # Maximum retry delay
        retry_multiplier=2.0,  # Exponential backoff multiplier
        # Request Settings
        timeout=30.0,  # Default request timeout
        # Debug
        debug=False,  # Enable debug logging
    )
    native = client.native.config
    assert native.api_url == server.url
    assert (native.pool_size, native.pool_timeout, native.max_retries) == (10, 30.0, 3)
    assert (native.retry_delay, native.retry_max_delay, native.retry_multiplier) == (
        0.1,
        30.0,
        2.0,
    )
    assert (native.timeout, native.token_type) == (30.0, "api_key")
    async with client:
        assert await client.call("kv.set", {"key": "configured", "value": 1}) == {"success": True}


@pytest.mark.anyio
async def test_configuration_via_environment(
    dotdo_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOTDO_POOL_SIZE", "20")
    monkeypatch.setenv("DOTDO_POOL_TIMEOUT", "60")
    monkeypatch.setenv("DOTDO_MAX_RETRIES", "5")
    monkeypatch.setenv("DOTDO_RETRY_DELAY", "0.2")
    monkeypatch.setenv("DOTDO_TIMEOUT", "45")
    monkeypatch.setenv("DOTDO_DEBUG", "false")
    async with AsyncDotDo() as client:
        native = client.native.config
        assert (native.pool_size, native.pool_timeout, native.max_retries) == (20, 60.0, 5)
        assert (native.retry_delay, native.timeout) == (0.2, 45.0)
        assert (await client.call("kv.set", {"key": "env-config", "value": 2}))["success"]


@pytest.mark.anyio
async def test_a_setting_the_native_client_refuses_names_its_field(
    dotdo_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOTDO_POOL_SIZE", "many")
    with pytest.raises(ConfigurationError, match="DOTDO_POOL_SIZE") as not_a_number:
        AsyncDotDo()
    assert not_a_number.value.details == {"field": "pool_size"}
    monkeypatch.setenv("DOTDO_POOL_SIZE", "0")
    with pytest.raises(ConfigurationError, match="pool_size"):
        AsyncDotDo()
    monkeypatch.delenv("DOTDO_POOL_SIZE")
    with pytest.raises(ConfigurationError) as refused:
        AsyncDotDo(endpoint="ftp://api.dotdo.dev/rpc")
    assert refused.value.details == {"field": "endpoint"}


@pytest.mark.anyio
async def test_oauth_token_and_tenant_header(server: RunningServer, tenant: Tenant) -> None:
    access = access_token_of(server, tenant)
    client = AsyncDotDo(
        access_token=access,
        endpoint=server.url,
        headers={"X-Tenant-ID": tenant.name, "X-Request-ID": "req-456"},
    )
    async with client:
        me = await client.call("auth.whoami")
        assert me["username"] == tenant.username
    assert client.native.config.token_type == "jwt"


@pytest.mark.anyio
async def test_a_bad_api_key_raises_auth_error_at_connect(server: RunningServer) -> None:
    client = AsyncDotDo(api_key="rak_not-a-key", endpoint=server.url)
    try:
        with pytest.raises(AuthError):
            await client.connect()
        with pytest.raises(DotDoError):  # AuthError is a DotDoError
            await client.call("kv.get", {"key": "k"})
    finally:
        await client.close()


@pytest.mark.anyio
async def test_a_tenant_header_of_another_tenant_is_refused(
    server: RunningServer, tenant: Tenant
) -> None:
    """An API key of one tenant naming another in `X-Tenant-ID` reads nothing there."""
    async with AsyncDotDo(
        api_key=tenant.key, endpoint=server.url, headers={"X-Tenant-ID": "default"}
    ) as client:
        with pytest.raises(DotDoError):
            await client.call("kv.get", {"key": "greeting"})


@pytest.mark.anyio
async def test_with_timeout_override(dotdo_env: str) -> None:
    async with AsyncDotDo() as client:
        await client.call("kv.set", {"key": "long-task", "value": "Long task..."})
        result = await client.call(
            "kv.get",
            {"key": "long-task"},
            timeout=120.0,  # 2 minute timeout for this call
        )
        assert result["value"] == "Long task..."
        with pytest.raises(ValueError, match="timeout"):
            await client.call("kv.get", {"key": "long-task"}, timeout=0)


@pytest.mark.anyio
async def test_streaming_responses(dotdo_env: str, tenant: Tenant) -> None:
    table = unique("orders")
    async with AsyncDotDo() as client:
        await client.native.schema.add_table(table, [{"name": "item", "type": "text"}])
        for item in ("Hel", "lo"):
            await client.native.database.create(table, {"item": item})
        chunks = []
        async for chunk in client.stream("database.export", {"table": table}):
            chunks.append(chunk["item"])
        assert "".join(chunks) == "Hello"

        with pytest.raises(RpcError):
            await drain(client.stream("database.export", {"table": "nosuch"}))


@pytest.mark.anyio
async def test_manual_lifecycle(dotdo_env: str) -> None:
    params = {"key": "manual", "value": "lifecycle"}
    client = AsyncDotDo(api_key=dotdo_env)
    await client.connect()

    try:
        result = await client.call("kv.set", params)
    finally:
        await client.close()
    assert result == {"success": True}
    assert client.native.rpc.stats().connections == 0


@pytest.mark.anyio
async def test_error_handling_example(server: RunningServer) -> None:
    printed: list[str] = []

    async def make_request() -> Any:
        client = AsyncDotDo(api_key="rak_revoked-key", endpoint=server.url)

        try:
            async with client:
                result = await client.call("kv.get", {"key": "prompt"})
                return result
        except AuthError as e:
            printed.append(f"Authentication failed: {e}")
            # Re-authenticate or check API key
        except RateLimitError as e:
            printed.append(f"Rate limited. Retry after: {e.retry_after}s")
        except TimeoutError:
            printed.append("Request timed out")
        except DotDoError as e:
            printed.append(f"DotDo error: {e}")
            raise

    assert await make_request() is None
    assert printed[0].startswith("Authentication failed")


@pytest.mark.anyio
async def test_exception_types_are_one_tree() -> None:
    for cls in (AuthError, ConnectionError, TimeoutError, RateLimitError, RpcError):
        assert issubclass(cls, DotDoError)
    assert issubclass(ValidationError, RpcError)  # an RPC call raises its failure's class
    assert issubclass(TimeoutError, builtins.TimeoutError)
    assert RateLimitError("slow down", retry_after=2).retry_after == 2


@pytest.mark.anyio
async def test_collections(dotdo_env: str) -> None:
    async with AsyncDotDo(api_key=dotdo_env) as client:
        users = client.collection("users")

        # Create a document
        await users.set(
            "user-123",
            {
                "name": "Alice",
                "email": "alice@example.com",
            },
        )

        # Read a document
        user = await users.get("user-123")
        assert (user["name"], user["email"]) == ("Alice", "alice@example.com")

        # Update a document
        await users.update("user-123", {"name": "Alice Smith"})
        assert (await users.get("user-123"))["name"] == "Alice Smith"

        # Delete a document
        await users.delete("user-123")
        with pytest.raises(RpcError):
            await users.get("user-123")


@pytest.mark.anyio
async def test_querying_collections(dotdo_env: str) -> None:
    async with AsyncDotDo(api_key=dotdo_env) as client:
        users = client.collection(unique("people"))
        for n, (status, age) in enumerate([("active", 30), ("active", 17), ("gone", 40)]):
            await users.set(
                f"u{n}", {"status": status, "age": age, "created_at": f"2026-01-0{n + 1}"}
            )
        await users.set("u3", {"status": "active", "age": 18, "created_at": "2026-01-09"})

        # Build a query
        results = await (
            users.query()
            .where("status", "==", "active")
            .where("age", ">=", 18)
            .order_by("created_at", descending=True)
            .limit(10)
            .offset(0)
            .execute()
        )

        assert [user["id"] for user in results] == ["u3", "u0"]
        first = await users.query().where("age", "in", [17, 40]).order_by("age").first()
        assert first is not None
        assert first["id"] == "u1"
        assert await users.query().where("status", "==", "nobody").first() is None
        with pytest.raises(ValidationError):
            await users.query().where("age", "=~", 1).execute()


@pytest.mark.anyio
async def test_reuse_client_instances(dotdo_env: str) -> None:
    # Good - single client instance
    client = AsyncDotDo(api_key=dotdo_env)

    async def handler1() -> None:
        await client.call("kv.set", {"key": "method1", "value": 1})

    async def handler2() -> None:
        await client.call("kv.set", {"key": "method2", "value": 2})

    try:
        await handler1()
        await handler2()
        assert client.native.rpc.stats().opened == 1
    finally:
        await client.close()


@pytest.mark.anyio
async def test_debug_turns_on_roost_debug_logging(dotdo_env: str) -> None:
    logger = logging.getLogger("roost")
    level = logger.level
    try:
        client = AsyncDotDo(debug=True)
        assert logger.level == logging.DEBUG
        await client.close()
    finally:
        logger.setLevel(level)
