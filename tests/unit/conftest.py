"""Fixtures of the SDK unit tests: both clients over a scripted `FakeServer`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

import roost.client._async.client as async_client_module
import roost.client._sync.client as sync_client_module
from roost import AsyncClient, Client
from tests.unit.fake_server import API_URL, FakeServer, run


@pytest.fixture(params=["async", "sync"])
def flavour(request: pytest.FixtureRequest) -> str:
    """Which client a test runs on: every SDK flow test runs on both."""
    return str(request.param)


@pytest.fixture
def sleeps(flavour: str, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the client chose between attempts, recorded instead of slept."""
    waited: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waited.append(seconds)

    # only the client module's view of sleeping changes, not the event loop's
    if flavour == "async":
        fake = SimpleNamespace(sleep=no_sleep, Lock=asyncio.Lock)
        monkeypatch.setattr(async_client_module, "asyncio", fake)
    else:
        monkeypatch.setattr(sync_client_module, "time", SimpleNamespace(sleep=waited.append))
    return waited


@pytest.fixture
async def connect(flavour: str, sleeps: list[float]) -> AsyncIterator[Callable[..., Any]]:
    """`connect(server, **config)`: a client of the chosen flavour that talks to `server`."""
    clients: list[Any] = []

    def build(server: FakeServer, **config: Any) -> Any:
        transport = httpx.MockTransport(server.handle)
        client: Any
        if flavour == "async":
            http = httpx.AsyncClient(base_url=API_URL, transport=transport)
            client = AsyncClient(api_url=API_URL, http_client=http, **config)
        else:
            http_sync = httpx.Client(base_url=API_URL, transport=transport)
            client = Client(api_url=API_URL, http_client=http_sync, **config)
        clients.append(client)
        return client

    yield build
    for client in clients:
        await run(client.close())
