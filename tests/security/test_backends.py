"""Backend outages: with Redis, PostgreSQL or S3 unreachable, a call answers 503 with
Retry-After (`ServiceUnavailableError` in the SDK), never 500 with a driver's traceback.

Each backend family is pointed at a closed port on loopback, and must translate its driver's
errors itself; then real servers lose their Redis or PostgreSQL (a loopback proxy in between
is shut) and are called over HTTP and through the SDK.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost import AsyncClient, ServiceUnavailableError
from roost.backends.blob import open_blob_store
from roost.backends.bus import open_bus
from roost.backends.kv import open_kv_store
from roost.backends.queue import open_queue_store
from roost.backends.ratelimit import open_limiter
from roost.backends.sql import CONTROL, Database
from roost.backends.stream import NewEvent, Retention, open_stream_store
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    REDIS_URL,
    SERVER_POSTGRES_URL,
    RunningServer,
    free_port,
    require_postgres,
    require_redis,
    unique,
)
from tests.proxy import FlakyProxy

pytestmark = pytest.mark.anyio


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: every connection is refused."""
    return free_port()


@pytest.fixture
async def idle_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A SQL database the Redis stores are opened with (they never use it)."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'roost.db'}", data_dir=tmp_path)
    yield db
    await db.close()


async def assert_unavailable(call: Awaitable[Any]) -> None:
    with pytest.raises(ServiceUnavailableError) as caught:
        await call
    assert caught.value.status_code == 503
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0


async def test_kv_on_unreachable_redis_is_unavailable(closed_port: int, idle_db: Database) -> None:
    store = open_kv_store(f"redis://127.0.0.1:{closed_port}/0", idle_db, near_cache_bytes=1 << 20)
    try:
        await assert_unavailable(store.get("t:k"))  # the hot path (our own Redis line)
        await assert_unavailable(store.set("t:k", "1"))
        await assert_unavailable(store.incr("t:n", 1))  # through redis-py
        await assert_unavailable(store.hgetall("t:h"))
    finally:
        await store.close()


async def test_queue_on_unreachable_redis_is_unavailable(
    closed_port: int, idle_db: Database
) -> None:
    store = open_queue_store(f"redis://127.0.0.1:{closed_port}/0", idle_db)
    try:
        publish = store.publish("t:q", "1", priority=5, headers={}, delay=0)
        await assert_unavailable(publish)
        await assert_unavailable(store.claim("t:q", 30))
        await assert_unavailable(store.counts("t:q"))
    finally:
        await store.close()


async def test_stream_on_unreachable_redis_is_unavailable(
    closed_port: int, idle_db: Database
) -> None:
    store = open_stream_store(f"redis://127.0.0.1:{closed_port}/0", idle_db)
    try:
        event = NewEvent("e", "1", {})
        await assert_unavailable(store.append("t:r", [event], Retention(10, None)))
        await assert_unavailable(store.read("t:r", 0, None, 10))
        await assert_unavailable(store.read("t:r", 0, None, 10, live=True))
    finally:
        await store.close()


async def test_bus_on_unreachable_redis_is_unavailable(closed_port: int) -> None:
    bus = open_bus(f"redis://127.0.0.1:{closed_port}/0")
    try:
        await assert_unavailable(bus.publish("t:c", b"x"))
        await assert_unavailable(bus.interest("t:"))
    finally:
        await bus.close()


async def test_rate_limiter_on_unreachable_redis_is_unavailable(closed_port: int) -> None:
    limiter = open_limiter(f"redis://127.0.0.1:{closed_port}/0")
    try:
        await assert_unavailable(limiter.take("t:k", 5, 60, "e1"))
        await assert_unavailable(limiter.blocked_for("t:k", 5, 60))
        await assert_unavailable(limiter.count({"t:k": 1}, 60))
    finally:
        await limiter.close()


async def test_sql_on_unreachable_postgresql_is_unavailable(
    closed_port: int, tmp_path: Path
) -> None:
    url = f"postgresql+asyncpg://roost:roost@127.0.0.1:{closed_port}/test"
    db = Database(url, data_dir=tmp_path)
    try:
        await assert_unavailable(db.ping())
        await assert_unavailable(db.run(CONTROL, lambda conn: None))
        await assert_unavailable(db.run(CONTROL, lambda conn: None, write=True))
    finally:
        await db.close()


async def test_blobs_on_unreachable_s3_are_unavailable(closed_port: int, tmp_path: Path) -> None:
    url = f"s3://k:s@bucket?endpoint=http://127.0.0.1:{closed_port}&region=us-east-1"
    blobs = open_blob_store(url, tmp_path)
    try:
        await assert_unavailable(blobs.size("t/b/o"))
        await assert_unavailable(blobs.delete("t/b/o"))
    finally:
        await blobs.close()


async def test_a_driver_refusal_that_is_no_outage_passes_unchanged(tmp_path: Path) -> None:
    """Only outages become 503: a statement the database refuses keeps its own error."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'roost.db'}", data_dir=tmp_path)
    try:
        with pytest.raises(Exception) as caught:  # noqa: PT011 (the driver's own class)
            await db.run(CONTROL, lambda conn: conn.exec_driver_sql("SELECT * FROM nowhere"))
        assert not isinstance(caught.value, ServiceUnavailableError)
        assert "nowhere" in str(caught.value)
    finally:
        await db.close()


# -- servers that lose a backend -------------------------------------------------------


async def admin_key(server: RunningServer) -> str:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        scopes = ["kv:*", "queue:*", "stream:*", "pubsub:*"]
        return str((await admin.api_keys.create(unique("outage"), scopes))["key"])


async def assert_http_503(server: RunningServer, key: str, path: str, body: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        answer = await http.post(path, json=body, headers={"Authorization": f"Api-Key {key}"})
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.json()["error"]["code"] == "service_unavailable"


SdkCall = Callable[[AsyncClient], Awaitable[Any]]
CALLS: dict[str, tuple[str, Any, SdkCall]] = {
    "kv": ("/api/v1/kv/set", {"key": "k", "value": 1}, lambda c: c.kv.get("k")),
    "queue": (
        "/api/v1/queue/publish",
        {"queue": "jobs", "message": 1},
        lambda c: c.queue.publish("jobs", {"n": 1}),
    ),
    "stream": (
        "/api/v1/stream/publish",
        {"room": "r", "event_type": "e", "data": 1},
        lambda c: c.stream.publish("r", "e", {"n": 1}),
    ),
    "pubsub": (
        "/api/v1/pubsub/publish",
        {"topic": "c", "message": 1},
        lambda c: c.pubsub.publish("c", {"n": 1}),
    ),
}


async def test_a_server_that_loses_redis_answers_503_not_500(
    make_server: Callable[..., RunningServer],
) -> None:
    require_redis()
    proxy = FlakyProxy(REDIS_URL)
    database = REDIS_URL.rsplit("/", 1)[-1]
    server = make_server(redis_url=f"redis://127.0.0.1:{proxy.url.rsplit(':', 1)[-1]}/{database}")
    key = await admin_key(server)
    proxy.close()
    proxy.cut_all()
    async with AsyncClient(
        api_url=server.url, token=key, token_type="api_key", max_retries=0
    ) as client:
        for path, body, sdk_call in CALLS.values():
            await assert_http_503(server, key, path, body)
            with pytest.raises(ServiceUnavailableError):
                await sdk_call(client)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        login = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        answer = await http.post("/api/v1/auth/login", json=login)  # the rate limiter's
    assert answer.status_code == 503, answer.text


async def test_a_server_that_loses_postgresql_answers_503_not_500(
    make_server: Callable[..., RunningServer],
) -> None:
    require_postgres()
    proxy = FlakyProxy(SERVER_POSTGRES_URL.replace("postgresql://", "http://"))
    host = SERVER_POSTGRES_URL.split("@", 1)[1].split("/", 1)[0]
    port = proxy.url.rsplit(":", 1)[-1]
    server = make_server(
        "postgresql", database_url=SERVER_POSTGRES_URL.replace(host, f"127.0.0.1:{port}")
    )
    key = await admin_key(server)
    proxy.close()
    proxy.cut_all()
    await assert_http_503(server, key, "/api/v1/kv/set", {"key": "k", "value": 1})
    async with AsyncClient(
        api_url=server.url, token=key, token_type="api_key", max_retries=0
    ) as client:
        with pytest.raises(ServiceUnavailableError):
            await client.kv.get("k")
