"""Every door is one door to the caller: errors, request ids and metering alike; signed links
bound to what they named.

- File bytes uploaded and downloaded (by a key, and through a signed link) show in
  `usage.get`, counted as they stream: the file door used to meter nothing, so moving
  gigabytes through it cost a tenant nothing on its usage report.
- REST, batch, the file door and the WebSocket door answer an error as
  `{"code", "message", "details"}` and name a request id (the X-Request-Id header over HTTP,
  `request_id` in a WebSocket error frame); every file answer carries X-Request-Id.
- A signed link made before its bucket, or its whole tenant, was deleted and made again under
  the same name answers 404: it used to serve the new bucket's file of the same name.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from roost import AsyncClient
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique

pytestmark = pytest.mark.anyio

ROOT, ROOT_PASSWORD = "root", "root-password-1"
SIZE = 300_000  # more than one chunk of the blob store (256 KiB) each way
ERROR_KEYS = {"code", "message", "details"}


async def _tenant_with_key(server: RunningServer, scopes: list[str]) -> tuple[str, str]:
    """A new tenant, and an API key of its root holding `scopes`."""
    tenant = unique("doors")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.tenants.create(tenant, admin_username=ROOT, admin_password=ROOT_PASSWORD)
    async with AsyncClient(api_url=server.url, tenant=tenant) as client:
        root = await client.auth.sign_in_with_password(ROOT, ROOT_PASSWORD)
        return tenant, str((await root.api_keys.create(unique("files"), scopes))["key"])


def _object_url(server: RunningServer, bucket: str, name: str) -> str:
    return f"{server.url}/api/v1/storage/buckets/{bucket}/objects/{name}"


async def test_file_bytes_in_and_out_show_in_usage(server: RunningServer) -> None:
    tenant, key = await _tenant_with_key(server, ["storage:*"])
    bucket, data = unique("meter-"), os.urandom(SIZE)
    headers = {"Authorization": f"Api-Key {key}"}
    async with AsyncClient(api_url=server.url, tenant=tenant) as client:
        service = await client.auth.sign_in_with_token(key, "api_key")
        await service.storage.create_bucket(bucket)
        url = _object_url(server, bucket, "big.bin")
        async with httpx.AsyncClient(headers=headers, timeout=60) as http:
            assert (await http.put(url, content=data)).status_code == 200
            link = await service.storage.from_(bucket).create_signed_url("big.bin")
            assert (await http.get(url)).content == data
            ranged = await http.get(url, headers={"Range": "bytes=1000-1999"})
            assert ranged.content == data[1000:2000]
            assert (await http.head(url)).headers["content-length"] == str(SIZE)
        async with httpx.AsyncClient(timeout=60) as anonymous:
            assert (await anonymous.get(link["signed_url"])).content == data
    async with AsyncClient(api_url=server.url, tenant=tenant) as client:
        root = await client.auth.sign_in_with_password(ROOT, ROOT_PASSWORD)
        report = await root.usage.get("day", by_api_key=True)
    by_key = {k: v for bucket_ in report["buckets"] for k, v in bucket_["api_keys"].items()}
    key_id = next(k for k in by_key if k)  # the tenant's only key
    mine = by_key[key_id]
    # create_bucket and create_signed_url over the SDK, 4 calls through the file door
    assert mine["requests"] >= 6
    assert SIZE <= mine["bytes_in"] < SIZE + 2000  # the upload, and two small JSON bodies
    assert mine["bytes_out"] >= SIZE + 1000  # the download and the range
    assert by_key[""]["bytes_out"] >= SIZE  # the signed link: the tenant's, no key's


async def test_every_door_answers_errors_in_one_shape_with_a_request_id(
    server: RunningServer,
) -> None:
    tenant, key = await _tenant_with_key(server, ["kv:read", "storage:read"])
    headers = {"Authorization": f"Api-Key {key}", "X-Request-Id": "trace-42"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:
        rest = await http.post("/api/v1/kv/set", json={"key": "k", "value": 1})
        assert rest.status_code == 403
        assert set(rest.json()["error"]) == ERROR_KEYS
        assert rest.json()["error"]["code"] == "missing_scope"
        assert rest.headers["x-request-id"] == "trace-42"

        batch = await http.post(
            "/api/v1/batch",
            json={"operations": [{"command": "kv.set", "payload": {"key": "k", "value": 1}}]},
        )
        assert batch.headers["x-request-id"] == "trace-42"
        [item] = batch.json()["results"]
        assert (item["status"], item["error"]["code"]) == ("error", "missing_scope")
        assert set(item["error"]) == ERROR_KEYS

        refused = await http.put("/api/v1/storage/buckets/b/objects/f.txt", content=b"x")
        assert refused.status_code == 403
        assert set(refused.json()["error"]) == ERROR_KEYS
        assert refused.json()["error"]["code"] == "missing_scope"
        assert refused.headers["x-request-id"] == "trace-42"
        missing = await http.get("/api/v1/storage/buckets/nobucket/objects/f.txt")
        assert missing.status_code == 404
        assert missing.json()["error"]["details"]["field"] == "bucket"
        assert missing.headers["x-request-id"] == "trace-42"
        bad_link = await http.get("/api/v1/storage/signed/not.valid")
        assert (bad_link.status_code, bad_link.json()["error"]["code"]) == (
            401,
            "invalid_credentials",
        )
        assert bad_link.headers["x-request-id"] == "trace-42"

    # a file answer that is no error carries the request id too, made when none is sent
    async with AsyncClient(api_url=server.url, tenant=tenant) as client:
        root = await client.auth.sign_in_with_password(ROOT, ROOT_PASSWORD)
        await root.storage.create_bucket("docs")
        await root.storage.from_("docs").upload([{"file": b"hello", "name": "a.txt"}])
    async with httpx.AsyncClient(headers={"Authorization": f"Api-Key {key}"}) as http:
        served = await http.get(_object_url(server, "docs", "a.txt"))
        assert served.content == b"hello"
        assert len(served.headers["x-request-id"]) == 32

    url = server.url.replace("http://", "ws://") + "/api/v1/ws"
    async with connect(url, additional_headers={"Authorization": f"Api-Key {key}"}) as ws:
        await ws.send(json.dumps({"id": 7, "method": "kv.set", "params": {"key": "k"}}))
        frame: dict[str, Any] = json.loads(await ws.recv())
        assert frame["id"] == 7
        assert set(frame["error"]) == ERROR_KEYS
        assert frame["error"]["code"] == "missing_scope"
        assert len(frame["request_id"]) == 32


async def test_a_signed_link_never_serves_a_bucket_made_again_under_its_name(
    server: RunningServer,
) -> None:
    tenant, key = await _tenant_with_key(server, ["storage:*"])
    async with AsyncClient(api_url=server.url, tenant=tenant) as client:
        service = await client.auth.sign_in_with_token(key, "api_key")
        await service.storage.create_bucket("docs")
        files = service.storage.from_("docs")
        await files.upload([{"file": b"the old file", "name": "f.txt"}])
        link = (await files.create_signed_url("f.txt", expires_in=600))["signed_url"]
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(link)).content == b"the old file"
            await service.storage.delete_bucket("docs", force=True)
            await service.storage.create_bucket("docs")
            await files.upload([{"file": b"someone else's file", "name": "f.txt"}])
            gone = await anonymous.get(link)
            assert gone.status_code == 404
            assert gone.json()["error"]["code"] == "not_found"
            # a link made now serves the new bucket's file
            fresh = await files.create_signed_url("f.txt", expires_in=600)
            assert (await anonymous.get(fresh["signed_url"])).content == (b"someone else's file")


async def test_a_signed_link_never_serves_a_tenant_made_again_under_its_name(
    server: RunningServer,
) -> None:
    tenant, _ = await _tenant_with_key(server, [])

    async def fill(content: bytes) -> str:
        async with AsyncClient(api_url=server.url, tenant=tenant) as client:
            root = await client.auth.sign_in_with_password(ROOT, ROOT_PASSWORD)
            await root.storage.create_bucket("docs")
            files = root.storage.from_("docs")
            await files.upload([{"file": content, "name": "f.txt"}])
            return str((await files.create_signed_url("f.txt", expires_in=600))["signed_url"])

    link = await fill(b"the old tenant's file")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.tenants.delete(tenant)
        await admin.tenants.create(tenant, admin_username=ROOT, admin_password=ROOT_PASSWORD)
    await fill(b"the new tenant's file")
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(link)).status_code == 404
