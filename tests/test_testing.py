"""`roost.testing`: its pytest fixtures (loaded through the `pytest11` entry point, as in any
project that installs Roost) and the in-process client."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost import AsyncClient, Client
from roost.testing import RoostServer, asgi_client
from tests.client.asgi_apps import ADMIN_PASSWORD, LifespanNoted, roost_app


def test_roost_admin_is_a_signed_in_sync_client_of_the_session_server(
    roost_server: RoostServer, roost_admin: Client
) -> None:
    assert roost_server.data_dir.is_dir()
    assert roost_server.url.startswith("http://127.0.0.1:")
    assert roost_admin.auth.get_current_user()["username"] == roost_server.admin_username
    roost_admin.kv.set("testing:sync", 1)
    assert roost_admin.kv.get("testing:sync").value == 1


@pytest.mark.anyio
async def test_roost_admin_async_is_a_signed_in_async_client(
    roost_admin_async: AsyncClient,
) -> None:
    assert isinstance(roost_admin_async, AsyncClient)
    assert "*" in (await roost_admin_async.auth.get_current_user())["scopes"]


@pytest.mark.anyio
async def test_asgi_client_is_the_client_of_an_app_in_process(tmp_path: Path) -> None:
    app = LifespanNoted(roost_app(tmp_path))
    async with asgi_client(app, max_retries=0) as client:
        assert app.seen == ["lifespan.startup", "lifespan.startup.complete"]
        assert client.config.api_url == "http://roost.in-process"
        admin = await client.auth.sign_in_with_password("admin", ADMIN_PASSWORD)
        await admin.kv.set("in-process", "yes")
        assert (await admin.kv.get("in-process")).value == "yes"
    assert app.seen[2:] == ["lifespan.shutdown", "lifespan.shutdown.complete"]
    assert (tmp_path / "roost.db").is_file()  # the app's lifespan opened its backends
