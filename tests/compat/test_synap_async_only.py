"""The Synap seed's examples that only exist for its async client (not generated to sync)."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock

import pytest

from roost.compat.synap import AsyncSynapClient, GetResult
from tests.compat.tenants import Tenant
from tests.conftest import RunningServer


@pytest.mark.anyio
async def test_mock_client_example() -> None:
    """As written it cannot run on any client: a spec'd AsyncMock makes `kv`, an attribute
    and not a coroutine function, a plain MagicMock, whose `get` is not awaitable. The
    one-line fix of docs/coming-from-synap.md makes it run."""
    # Create mock
    mock_client = AsyncMock(spec=AsyncSynapClient)

    # Setup mock responses
    mock_client.kv.get.return_value = GetResult(found=True, value={"name": "Alice"}, ttl=3600)

    # Use in tests
    with pytest.raises(TypeError, match="can't be used in 'await' expression"):
        result = await mock_client.kv.get("user:1")

    mock_client.kv.get = AsyncMock(return_value=mock_client.kv.get.return_value)
    result = await mock_client.kv.get("user:1")
    assert result.value["name"] == "Alice"


@pytest.mark.anyio
async def test_connection_pool_example(
    server: RunningServer, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNAP_URL", server.url)
    monkeypatch.setenv("SYNAP_API_KEY", tenant.key)
    # Pool is managed automatically
    client = AsyncSynapClient(pool_size=20)
    for n in (1, 2, 3):
        await client.kv.set(f"key{n}", n)

    # Multiple concurrent requests use pool
    results = await asyncio.gather(
        client.kv.get("key1"), client.kv.get("key2"), client.kv.get("key3")
    )
    assert [result.value for result in results] == [1, 2, 3]
    await client.close()
