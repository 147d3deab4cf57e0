"""`AsyncClient(app=...)`: an ASGI app called in this process, without a socket
(`roost/client/_asgi.py`); `app="slug"` still names the app a client acts for."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    ConfigurationError,
    ConnectionError,
    NotFoundError,
    RoostError,
    ServerError,
    TimeoutError,
    ValidationError,
)
from tests.client.asgi_apps import (
    ADMIN_PASSWORD,
    LifespanNoted,
    bare_app,
    failing_app,
    roost_app,
    stateful_app,
)

STARTED = ["lifespan.startup", "lifespan.startup.complete"]
STOPPED = ["lifespan.shutdown", "lifespan.shutdown.complete"]


@pytest.mark.anyio
async def test_roost_s_app_answers_in_process_and_shuts_down_on_close(tmp_path: Path) -> None:
    app = LifespanNoted(roost_app(tmp_path / "data"))
    report = tmp_path / "report.bin"
    report.write_bytes(os.urandom(300_000))
    async with AsyncClient(app=app, max_retries=0) as client:
        assert app.seen == STARTED  # at `async with`: the backends are open before any call
        with pytest.raises(AuthenticationError):
            await client.auth.sign_in_with_password("admin", "not-the-password")
        admin = await client.auth.sign_in_with_password("admin", ADMIN_PASSWORD)
        await admin.schema.add_table("orders", [{"name": "total", "type": "integer"}])
        await admin.database.create("orders", [{"total": 5}, {"total": 7}])
        assert await admin.database.query("orders").filter("total", "gt", 6).count() == 1
        with pytest.raises(NotFoundError):
            await admin.database.query("no_such_table").count()
        await admin.kv.set("greeting", {"hello": "world"}, ttl=60)
        assert (await admin.kv.get("greeting")).value == {"hello": "world"}
        with pytest.raises(ValidationError) as caught:
            await admin.kv.incr("greeting")
        assert caught.value.code == "not_an_integer"
        with pytest.raises(AuthenticationError):
            await client.kv.get("greeting")  # the signed-out client
        await admin.storage.create_bucket("reports")
        reports = admin.storage.from_("reports")
        await reports.upload([{"file": report, "name": "r.bin"}])
        assert await reports.download("r.bin") == report.read_bytes()
    assert app.seen == STARTED + STOPPED  # once, for the client and the one signed in
    assert (tmp_path / "data" / "roost.db").is_file()
    with pytest.raises(RoostError, match="closed"):
        await admin.kv.get("greeting")


@pytest.mark.anyio
async def test_the_lifespan_starts_at_the_first_call_and_stops_once(tmp_path: Path) -> None:
    app = LifespanNoted(stateful_app)
    client = AsyncClient(app=app)
    assert app.seen == []
    assert await client.call("pool.state") == {"pool": "open"}  # the lifespan's state
    assert await client._in_tenant("other").call("pool.state") == {"pool": "open"}
    assert app.seen == STARTED
    await client.close()
    await client.close()
    assert app.seen == STARTED + STOPPED


@pytest.mark.anyio
async def test_any_asgi_app_is_called_and_what_it_raises_is_a_server_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ROOST_API_URL", "http://127.0.0.1:9")  # no socket is opened to it
    async with AsyncClient(app=bare_app, max_retries=0) as client:  # it has no lifespan
        assert client.config.api_url == "http://roost.in-process"
        assert await client.call("echo.me") == {"path": "/api/v1/echo/me", "state": {}}
        with pytest.raises(ServerError):
            await client.call("broken.call")
        with pytest.raises(TimeoutError, match="within 1"):
            await client.call("slow.call", timeout=1)
    assert "a bug in the app" in caplog.text  # logged, as a server logs it


@pytest.mark.anyio
async def test_an_app_whose_startup_fails_raises_why_at_every_call() -> None:
    with pytest.raises(ConnectionError, match="database unreachable") as caught:
        async with AsyncClient(app=failing_app):
            pass
    assert caught.value.code == "app_startup_failed"
    client = AsyncClient(app=failing_app, max_retries=0)
    for _ in range(2):
        with pytest.raises(ConnectionError, match="the app failed to start"):
            await client.call("kv.get", {"key": "k"})
    await client.close()


@pytest.mark.anyio
async def test_websocket_features_are_refused_naming_what_to_do() -> None:
    async with AsyncClient(app=bare_app) as client:
        with pytest.raises(ConfigurationError, match="roost_server") as caught:
            _ = client.realtime
        assert caught.value.code == "in_process_http_only"
        with pytest.raises(ConfigurationError, match=r"client\.rpc"):
            _ = client.rpc
        with pytest.raises(ConfigurationError, match=r"client\.realtime"):
            await client.pubsub.subscribe(["news.*"], lambda topic, message: None)


@pytest.mark.anyio
async def test_app_as_a_string_is_still_the_app_slug() -> None:
    async with AsyncClient("http://127.0.0.1:8787", app="my-app") as client:
        assert (client.config.app, client.config.api_url) == ("my-app", "http://127.0.0.1:8787")
    async with AsyncClient(app=bare_app) as client:
        assert client.config.app == "default"
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigurationError, match="not both"):
            AsyncClient(app=bare_app, http_client=http)
