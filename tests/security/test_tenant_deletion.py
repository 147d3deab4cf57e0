"""A deleted tenant leaves nothing behind: a tenant made again under its name sees none of its
KV keys, queue messages, stream events or files, whose bytes are gone from disk and from S3;
its signed links answer 404; its open WebSockets close at once (4404) and receive nothing of
the new tenant; racing creates and deletes of one name never answer 5xx; and uploads that a
killed server left half-written are swept at start."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from roost import AsyncClient, AuthenticationError
from roost.backends.blob.files import ABANDONED_AFTER, UPLOADS
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    REDIS_URL,
    RunningServer,
    platform_of,
    require_redis,
    unique,
)

pytestmark = pytest.mark.anyio

ROOT, ROOT_PASSWORD = "root", "root-password-1"
SECRET_BYTES = b"the old tenant's file " + secrets.token_bytes(16)


def _s3_url(endpoint: str) -> str:
    return f"s3://test:test@{unique('roost-')}?endpoint={endpoint}&region=us-east-1"


@pytest.fixture(params=["sqlite", "postgresql", "redis", "s3"])
def running(request: pytest.FixtureRequest, make_server: Callable[..., RunningServer]) -> Any:
    """A server on SQLite, PostgreSQL, SQLite with Redis (KV, queues, streams, bus), and
    SQLite with S3 storage."""
    if request.param == "postgresql":
        return make_server(backend="postgresql")
    if request.param == "redis":
        require_redis()
        return make_server(redis_url=REDIS_URL)
    if request.param == "s3":
        return make_server(storage_url=_s3_url(request.getfixturevalue("s3_endpoint")))
    return make_server()


async def _admin(client: AsyncClient) -> AsyncClient:
    return await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)


async def _fill(root: AsyncClient) -> str:
    """Give the tenant something of everything; returns a signed link to its file."""
    await root.kv.set("plain", "old value")
    await root.kv.set("timed", {"n": 1}, ttl=3600)
    await root.kv.hset("hash", "field", "old field")
    await root.kv.get("plain")  # now in a near cache, where there is one
    await root.queue.publish("jobs", {"old": "ready"})
    await root.queue.publish("jobs", {"old": "delayed"}, delay=3600)
    await root.queue.configure("jobs", max_deliveries=1)
    for n in range(3):
        await root.stream.publish("room", "old", {"n": n})
    await root.storage.create_bucket("docs")
    bucket = root.storage.from_("docs")
    await bucket.upload([{"file": SECRET_BYTES, "name": "secret.bin"}])
    return str((await bucket.create_signed_url("secret.bin"))["signed_url"])


async def _sees_nothing_of_the_old(root: AsyncClient) -> None:
    assert not (await root.kv.get("plain")).found
    assert not (await root.kv.get("timed")).found
    assert await root.kv.hgetall("hash") == {}
    assert (await root.kv.scan("")).keys == []
    stats = await root.queue.stats("jobs")
    assert (stats.ready, stats.delayed, stats.in_flight, stats.dead) == (0, 0, 0, 0)
    assert await root.queue.consume("jobs") is None
    history = await root.stream.history("room", from_offset=0)
    assert (history.events, history.newest_offset) == ([], -1)
    assert (await root.stream.publish("room", "new", {})).offset == 0  # offsets start again
    assert await root.storage.list_buckets() == []
    # the old queue setting (1 delivery) is gone with the rest: a message gets the default
    await root.queue.publish("jobs", {"new": 1})
    message = await root.queue.consume("jobs")
    assert message is not None
    assert (await root.queue.nack("jobs", message.message_id)).action == "requeued"


def _bytes_on_disk(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*") if p.is_file() and SECRET_BYTES in p.read_bytes()]


def _keys_in_s3(running: RunningServer, prefix: str) -> list[str]:
    import boto3

    from roost.backends.blob.s3 import S3BlobStore

    blobs = platform_of(running).blobs
    assert isinstance(blobs, S3BlobStore)
    where = blobs.location
    s3 = boto3.client(
        "s3",
        endpoint_url=where.endpoint,
        region_name=where.region,
        aws_access_key_id=where.access_key,
        aws_secret_access_key=where.secret_key,
    )
    found = s3.list_objects_v2(Bucket=where.bucket, Prefix=prefix).get("Contents", [])
    return [item["Key"] for item in found]


async def test_a_tenant_made_again_under_a_deleted_name_sees_nothing_of_the_old(
    running: RunningServer,
) -> None:
    tenant = unique("gone")
    async with AsyncClient(api_url=running.url) as client:
        admin = await _admin(client)
        await admin.tenants.create(tenant, admin_username=ROOT, admin_password=ROOT_PASSWORD)
        async with AsyncClient(api_url=running.url, tenant=tenant) as old_client:
            old_root = await old_client.auth.sign_in_with_password(ROOT, ROOT_PASSWORD)
            link = await _fill(old_root)
            if running.settings.storage_url:
                assert _keys_in_s3(running, f"{tenant}/")
            else:
                assert _bytes_on_disk(running.settings.data_dir)

            await admin.tenants.delete(tenant)

            if running.settings.storage_url:
                assert _keys_in_s3(running, f"{tenant}/") == []
            else:
                assert _bytes_on_disk(running.settings.data_dir) == []
            async with httpx.AsyncClient() as http:
                assert (await http.get(link)).status_code == 404
            await admin.tenants.create(tenant, admin_username=ROOT, admin_password=ROOT_PASSWORD)
            with pytest.raises(AuthenticationError):  # the old tenant's sign-in is no key
                await old_root.kv.get("plain")
        async with AsyncClient(api_url=running.url, tenant=tenant) as new_client:
            new_root = await new_client.auth.sign_in_with_password(ROOT, ROOT_PASSWORD)
            await _sees_nothing_of_the_old(new_root)
        async with httpx.AsyncClient() as http:
            assert (await http.get(link)).status_code == 404
        await admin.tenants.delete(tenant)


async def test_idempotency_records_of_a_deleted_tenant_are_not_replayed(
    running: RunningServer,
) -> None:
    """An anonymous sign-in is recorded under the caller's address: made again with the same
    Idempotency-Key, the new tenant must answer afresh, not with the old tenant's tokens."""
    tenant = unique("idem")
    create = {"name": tenant, "admin_username": ROOT, "admin_password": ROOT_PASSWORD}
    sign_in = {"username": ROOT, "password": ROOT_PASSWORD}
    once = {"x-roost-tenant": tenant, "idempotency-key": "same-key-1"}
    async with httpx.AsyncClient(base_url=running.url, timeout=30) as http:
        admin = await _login(http, "default", ADMIN_USERNAME, ADMIN_PASSWORD)
        assert (await http.post("/api/v1/tenants/create", json=create, headers=admin)).is_success
        first = await http.post("/api/v1/auth/login", json=sign_in, headers=once)
        assert first.is_success
        delete = {"name": tenant}
        assert (await http.post("/api/v1/tenants/delete", json=delete, headers=admin)).is_success
        assert (await http.post("/api/v1/tenants/create", json=create, headers=admin)).is_success
        again = await http.post("/api/v1/auth/login", json=sign_in, headers=once)
        assert again.is_success
        assert again.json()["access"] != first.json()["access"]  # ran, not replayed
        me = {"authorization": f"Bearer {again.json()['access']}", "x-roost-tenant": tenant}
        assert (await http.post("/api/v1/auth/me", json={}, headers=me)).is_success
        assert (await http.post("/api/v1/tenants/delete", json=delete, headers=admin)).is_success


async def _login(
    http: httpx.AsyncClient, tenant: str, username: str, password: str
) -> dict[str, str]:
    answer = await http.post(
        "/api/v1/auth/login",
        json={"username": username, "password": password},
        headers={"x-roost-tenant": tenant},
    )
    assert answer.is_success, answer.text
    return {"authorization": f"Bearer {answer.json()['access']}", "x-roost-tenant": tenant}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_racing_creates_and_deletes_of_one_name_never_answer_5xx(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    running = make_server(backend=backend)
    tenant = unique("race")
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=running.url, timeout=60) as http:
        admin = await _login(http, "default", ADMIN_USERNAME, ADMIN_PASSWORD)

        async def call(operation: str, body: dict[str, str]) -> None:
            answer = await http.post(f"/api/v1/tenants/{operation}", json=body, headers=admin)
            statuses.append(answer.status_code)
            assert answer.status_code < 500, answer.text

        for _ in range(20):
            await asyncio.gather(
                call(
                    "create", {"name": tenant, "admin_username": ROOT, "admin_password": "p" * 12}
                ),
                call("delete", {"name": tenant}),
            )
        await call("delete", {"name": tenant})
        assert set(statuses) <= {200, 201, 404, 409}
        # the name is whole afterwards: made again, it works
        await call("create", {"name": tenant, "admin_username": ROOT, "admin_password": "p" * 12})
        root = await _login(http, tenant, ROOT, "p" * 12)
        answer = await http.post("/api/v1/kv/get", json={"key": "k"}, headers=root)
        assert answer.json()["found"] is False
        await call("delete", {"name": tenant})


async def test_uploads_left_half_written_by_a_crash_are_swept_at_start(
    make_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "crashed"
    uploads = data_dir / "files" / UPLOADS
    uploads.mkdir(parents=True)
    abandoned = uploads / f"{secrets.token_hex(16)}.tmp"
    abandoned.write_bytes(b"half an upload")
    long_ago = time.time() - ABANDONED_AFTER - 60
    os.utime(abandoned, (long_ago, long_ago))
    busy = uploads / f"{secrets.token_hex(16)}.tmp"  # another worker's upload, under way
    busy.write_bytes(b"still being written")
    make_server(data_dir=data_dir)
    assert not abandoned.exists()
    assert busy.exists()


def _interrupt_a_deletion(running: RunningServer, tenant: str) -> None:
    """What a server killed right after the first step of a deletion leaves: the tenant's
    row gone and its purge record written, but every byte of its data still there."""
    from roost.backends.sql import CONTROL

    control = platform_of(running).db.sqlite_path_of(CONTROL)
    with sqlite3.connect(control, timeout=30) as conn:
        conn.execute("DELETE FROM roost_tenants WHERE name = ?", (tenant,))
        conn.execute(
            "INSERT INTO roost_tenant_purges (name, started_at) VALUES (?, ?)",
            (tenant, "2026-01-01 00:00:00"),
        )
    conn.close()


@pytest.mark.parametrize("finished_by", ["restart", "create"])
async def test_an_interrupted_purge_is_finished_before_the_name_is_used_again(
    make_server: Callable[..., RunningServer], tmp_path: Path, finished_by: str
) -> None:
    data_dir, secret_key = tmp_path / "interrupted", secrets.token_urlsafe(40)
    running = make_server(data_dir=data_dir, secret_key=secret_key)
    tenant = unique("cut")
    async with AsyncClient(api_url=running.url) as client:
        admin = await _admin(client)
        await admin.tenants.create(tenant, admin_username=ROOT, admin_password=ROOT_PASSWORD)
        async with AsyncClient(api_url=running.url, tenant=tenant) as old_client:
            await _fill(await old_client.auth.sign_in_with_password(ROOT, ROOT_PASSWORD))
    if finished_by == "restart":
        running.stop()
        _interrupt_a_deletion(running, tenant)
        running = make_server(data_dir=data_dir, secret_key=secret_key)
        assert _bytes_on_disk(data_dir) == []  # start-up finished the purge
    else:
        _interrupt_a_deletion(running, tenant)
    async with AsyncClient(api_url=running.url) as client:
        admin = await _admin(client)
        await admin.tenants.create(tenant, admin_username=ROOT, admin_password=ROOT_PASSWORD)
        async with AsyncClient(api_url=running.url, tenant=tenant) as new_client:
            await _sees_nothing_of_the_old(
                await new_client.auth.sign_in_with_password(ROOT, ROOT_PASSWORD)
            )
    assert _bytes_on_disk(data_dir) == []


async def _read_until_closed(ws: ClientConnection, frames: list[str | bytes]) -> None:
    while True:  # the timeout is a safety net against a hung test, not a timing assertion
        frames.append(await asyncio.wait_for(ws.recv(), 30))


@pytest.mark.parametrize("bus", ["local", "redis"])
async def test_a_deleted_tenants_websockets_close_at_once(
    make_server: Callable[..., RunningServer], bus: str
) -> None:
    if bus == "redis":
        require_redis()
    running = make_server(redis_url=REDIS_URL) if bus == "redis" else make_server()
    tenant = unique("ws-")
    async with httpx.AsyncClient(base_url=running.url, timeout=60) as http:
        admin = await _login(http, "default", ADMIN_USERNAME, ADMIN_PASSWORD)
        owner = {"name": tenant, "admin_username": ROOT, "admin_password": ROOT_PASSWORD}
        assert (await http.post("/api/v1/tenants/create", json=owner, headers=admin)).is_success
        old = await _login(http, tenant, ROOT, ROOT_PASSWORD)
        token = old["authorization"].split(" ", 1)[1]
        url = running.url.replace("http://", "ws://") + f"/api/v1/ws?access_token={token}"
        async with connect(f"{url}&tenant={tenant}") as ws:
            subscriptions = [
                ("pubsub.subscribe", {"patterns": ["news"]}),
                ("stream.subscribe", {"room": "r1"}),
            ]
            for number, (method, params) in enumerate(subscriptions):
                await ws.send(json.dumps({"id": number, "method": method, "params": params}))
                assert "result" in json.loads(await ws.recv()), "not subscribed"
            gone = await http.post("/api/v1/tenants/delete", json={"name": tenant}, headers=admin)
            assert gone.is_success
            new = {"name": tenant, "admin_username": "nb", "admin_password": "new-owner-pass-1"}
            assert (await http.post("/api/v1/tenants/create", json=new, headers=admin)).is_success
            headers = await _login(http, tenant, "nb", "new-owner-pass-1")
            for _ in range(3):
                news = {"topic": "news", "message": "NEW-TENANT-SECRET"}
                await http.post("/api/v1/pubsub/publish", json=news, headers=headers)
                event = {"room": "r1", "event_type": "m", "data": "NEW-STREAM"}
                await http.post("/api/v1/stream/publish", json=event, headers=headers)
            frames: list[str | bytes] = []
            with pytest.raises(ConnectionClosed) as closed:
                await _read_until_closed(ws, frames)
    assert frames == [], "the old tenant's socket got the new tenant's events"
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4404, "tenant_deleted")
