"""Storage through the SDK: buckets, streamed files, links, refusals."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    ValidationError,
)
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique


@pytest.mark.anyio
async def test_buckets_are_created_listed_updated_and_deleted(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        name = unique("b-")
        bucket = await admin.storage.create_bucket(name, "docs", max_file_size=1000)
        assert (bucket["visibility"], bucket["max_file_size"]) == ("private", 1000)
        assert name in [b["name"] for b in await admin.storage.list_buckets()]
        updated = await admin.storage.update_bucket(name, {"visibility": "public"})
        assert updated["visibility"] == "public"
        with pytest.raises(ConflictError):
            await admin.storage.create_bucket(name)
        await admin.storage.delete_bucket(name)
        with pytest.raises(NotFoundError):
            await admin.storage.get_bucket(name)


@pytest.mark.anyio
async def test_files_stream_up_and_down_with_their_hashes(
    server: RunningServer, tmp_path: Path, admin_token: str
) -> None:
    data = os.urandom(700_000)
    source = tmp_path / "blob.bin"
    source.write_bytes(data)
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        name = unique("f-")
        await admin.storage.create_bucket(name)
        files = admin.storage.from_(name)
        stored = await files.upload(
            [
                {"file": source, "name": "dir/blob.bin", "metadata": {"owner": "ann"}},
                {"file": b"hello", "name": "hello.txt"},
                {
                    "file": io.BytesIO(b"from a file object"),
                    "name": "obj.txt",
                    "sha256": hashlib.sha256(b"from a file object").hexdigest(),
                },
            ]
        )
        assert stored[0]["sha256"] == hashlib.sha256(data).hexdigest()
        assert (stored[0]["size"], stored[1]["content_type"]) == (len(data), "text/plain")
        assert await files.download("dir/blob.bin") == data
        assert (
            b"".join([c async for c in files.stream("dir/blob.bin", start=5, end=9)]) == data[5:10]
        )
        target = await files.download_to("dir/blob.bin", tmp_path / "copy.bin")
        assert target.read_bytes() == data
        listed = await files.filter("metadata.owner", "eq", "ann").list()
        assert [f["name"] for f in listed] == ["dir/blob.bin"]
        assert [f["name"] for f in await files.list(prefix="dir/")] == ["dir/blob.bin"]
        assert len(await files.filter("mimetype", "startswith", "text/").list()) == 2


@pytest.mark.anyio
async def test_update_copy_move_delete(server: RunningServer, admin_token: str) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        first, second = unique("m-"), unique("m-")
        await admin.storage.create_bucket(first)
        await admin.storage.create_bucket(second)
        files = admin.storage.from_(first)
        await files.upload([{"file": b"one", "name": "a.txt"}])
        renamed = await files.update("a.txt", {"name": "b.txt", "metadata": {"v": 2}})
        assert (renamed["name"], renamed["metadata"]) == ("b.txt", {"v": 2})
        await files.copy_object("b.txt", second, "copy.txt")
        await files.move_object("b.txt", second)
        assert await files.list() == []
        assert sorted(f["name"] for f in await admin.storage.from_(second).list()) == [
            "b.txt",
            "copy.txt",
        ]
        assert await admin.storage.from_(second).download("copy.txt") == b"one"
        with pytest.raises(ConflictError):
            await admin.storage.delete_bucket(second)
        assert await admin.storage.from_(second).delete(["b.txt", "missing.txt"]) == 1
        await admin.storage.delete_bucket(second, force=True)


@pytest.mark.anyio
async def test_signed_links_and_public_buckets_need_no_credentials(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        name = unique("p-")
        await admin.storage.create_bucket(name)
        files = admin.storage.from_(name)
        await files.upload([{"file": b"secret", "name": "s.txt"}])
        link = await files.create_signed_url("s.txt", expires_in=60)
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(link["signed_url"])).content == b"secret"
            tampered = await anonymous.get(link["signed_url"][:-3] + "abc")
            assert tampered.status_code == 401
            public_url = f"{server.url}/api/v1/storage/public/default/{name}/s.txt"
            assert (await anonymous.get(public_url)).status_code == 404
            await admin.storage.update_bucket(name, {"visibility": "public"})
            assert (await anonymous.get(public_url)).content == b"secret"
            assert (
                await anonymous.get(f"{server.url}/api/v1/storage/buckets/{name}/objects/s.txt")
            ).status_code == 401


@pytest.mark.anyio
async def test_a_signed_link_stops_working_when_it_expires(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        name = unique("exp-")
        await admin.storage.create_bucket(name)
        files = admin.storage.from_(name)
        await files.upload([{"file": b"brief", "name": "b.txt"}])
        brief = await files.create_signed_url("b.txt", expires_in=60)
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(brief["signed_url"])).content == b"brief"
            clocked_server.clock.advance(61)
            expired = await anonymous.get(brief["signed_url"])
            assert expired.status_code == 401
            assert expired.json()["error"]["code"] == "token_expired"


@pytest.mark.anyio
async def test_bad_uploads_are_refused_and_leave_nothing(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        name = unique("r-")
        await admin.storage.create_bucket(
            name, max_file_size=100_000, allowed_mime_types=["text/*"]
        )
        files = admin.storage.from_(name)
        for bad_name in ("../x.txt", "/abs.txt", "a\x01b.txt", "x" * 1025 + ".txt"):
            with pytest.raises(ValidationError) as caught:
                await files.upload([{"file": b"x", "name": bad_name}])
            assert caught.value.details["field"] == "name"
        with pytest.raises(PayloadTooLargeError):
            await files.upload([{"file": io.BytesIO(b"x" * 300_000), "name": "big.txt"}])
        with pytest.raises(ValidationError):
            await files.upload([{"file": b"%PDF", "name": "doc.pdf"}])
        with pytest.raises(ValidationError):
            await files.upload([{"file": b"abc", "name": "sum.txt", "sha256": "0" * 64}])
        assert await files.list() == []
        with pytest.raises(NotFoundError):
            await files.download("big.txt")


@pytest.mark.anyio
async def test_storage_is_per_tenant_and_scoped(server: RunningServer) -> None:
    tenant = unique("st")
    async with AsyncClient(api_url=server.url) as client:
        # a session of its own: the test signs it out at the end
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        name = unique("t-")
        await admin.storage.create_bucket(name)
        await admin.storage.from_(name).upload([{"file": b"mine", "name": "m.txt"}])
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            root = await other.auth.sign_in_with_password("root", "root-password")
            with pytest.raises(NotFoundError):
                await root.storage.from_(name).download("m.txt")
            assert await root.storage.list_buckets() == []
        reader_key = await admin.api_keys.create(unique("r"), ["storage:read"])
        reader = await client.auth.sign_in_with_token(reader_key["key"], "api_key")
        assert await reader.storage.from_(name).download("m.txt") == b"mine"
        with pytest.raises(AuthorizationError):
            await reader.storage.from_(name).upload([{"file": b"x", "name": "y.txt"}])
        with pytest.raises(AuthorizationError):
            await reader.storage.create_bucket(unique("no-"))
        await admin.tenants.delete(tenant)
        anonymous = await admin.auth.sign_out()
        with pytest.raises(AuthenticationError):
            await anonymous.storage.from_(name).download("m.txt")


@pytest.mark.anyio
async def test_files_on_s3_storage(
    make_server: Callable[..., RunningServer], s3_endpoint: str
) -> None:
    url = f"s3://test:test@{unique('roost-')}?endpoint={s3_endpoint}&region=us-east-1"
    on_s3 = make_server(storage_url=url)
    data = os.urandom(400_000)
    async with AsyncClient(api_url=on_s3.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.storage.create_bucket("media", max_file_size=500_000)
        files = admin.storage.from_("media")
        await files.upload([{"file": data, "name": "clip.bin"}])
        assert await files.download("clip.bin") == data
        assert (
            b"".join([c async for c in files.stream("clip.bin", start=100, end=199)])
            == data[100:200]
        )
        with pytest.raises(PayloadTooLargeError):
            await files.upload([{"file": os.urandom(600_000), "name": "huge.bin"}])
        await files.copy_object("clip.bin", "media", "again.bin")
        assert await files.download("again.bin") == data
        await admin.storage.delete_bucket("media", force=True)


@pytest.mark.anyio
async def test_dominus_files_form_names_files_by_id(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        category = unique("reports-")
        await admin.storage.create_bucket(category)
        report = await admin.files.upload(b"%PDF-1.7 ...", "q3.pdf", category=category)
        assert report["content_type"] == "application/pdf"
        assert [f["id"] for f in await admin.files.list(category)] == [report["id"]]
        found = await admin.files.download(report["id"])
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(found["download_url"])).content == b"%PDF-1.7 ..."
        await admin.files.delete(report["id"])
        with pytest.raises(NotFoundError):
            await admin.files.download(report["id"])
