"""One contract for every blob store: a local folder, and S3 (moto's S3 server on loopback,
reached through the same client code as production)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from roost.backends.blob import BlobStore, open_blob_store
from roost.errors import NotFoundError, PayloadTooLargeError


@pytest.fixture(params=["file", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "file":
        blobs = open_blob_store(f"file://{tmp_path / 'blobs'}", tmp_path)
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = f"roost-{secrets.token_hex(4)}"
        blobs = open_blob_store(
            f"s3://test:test@{bucket}?endpoint={endpoint}&region=us-east-1", tmp_path
        )
    await blobs.prepare()
    yield blobs
    await blobs.close()


async def _chunks(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _read(store: BlobStore, key: str, **window: int) -> bytes:
    return b"".join([chunk async for chunk in store.get(key, **window)])


@pytest.mark.anyio
async def test_put_then_get_returns_the_same_bytes_with_their_hash(store: BlobStore) -> None:
    data = os.urandom(1_300_000)
    stored = await store.put("t/b/one", _chunks(data))
    assert stored.size == len(data)
    import hashlib

    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.etag
    assert await _read(store, "t/b/one") == data
    assert await store.size("t/b/one") == len(data)


@pytest.mark.anyio
async def test_a_local_store_opens_the_file_itself_for_the_kernel_to_send(
    store: BlobStore,
) -> None:
    data = os.urandom(70_000)
    await store.put("t/b/local", _chunks(data))
    opened = await store.open_local("t/b/local")
    if store.kind == "s3":
        assert opened is None  # its bytes come over HTTP only
        return
    assert opened is not None
    with opened:
        assert opened.read() == data
    with pytest.raises(NotFoundError):
        await store.open_local("t/b/none")


@pytest.mark.anyio
async def test_ranges_read_inclusive_windows(store: BlobStore) -> None:
    data = bytes(range(256)) * 4000
    await store.put("t/b/range", _chunks(data))
    assert await _read(store, "t/b/range", start=10, end=19) == data[10:20]
    assert await _read(store, "t/b/range", start=len(data) - 5) == data[-5:]


@pytest.mark.anyio
async def test_put_replaces_and_empty_blobs_exist(store: BlobStore) -> None:
    await store.put("t/b/x", _chunks(b"first"))
    await store.put("t/b/x", _chunks(b"second"))
    assert await _read(store, "t/b/x") == b"second"
    await store.put("t/b/empty", _chunks(b""))
    assert await store.size("t/b/empty") == 0
    assert await _read(store, "t/b/empty") == b""


@pytest.mark.anyio
async def test_over_the_limit_is_refused_and_nothing_is_kept(store: BlobStore) -> None:
    await store.put("t/b/kept", _chunks(b"old"))
    with pytest.raises(PayloadTooLargeError):
        await store.put("t/b/kept", _chunks(b"x" * 300_000), max_bytes=200_000)
    with pytest.raises(PayloadTooLargeError):
        await store.put("t/b/new", _chunks(b"x" * 300_000), max_bytes=200_000)
    assert await _read(store, "t/b/kept") == b"old"
    assert await store.size("t/b/new") is None


@pytest.mark.anyio
async def test_missing_keys(store: BlobStore) -> None:
    assert await store.size("t/b/none") is None
    with pytest.raises(NotFoundError):
        await _read(store, "t/b/none")
    await store.delete("t/b/none")  # a no-op
    with pytest.raises(NotFoundError):
        await store.copy("t/b/none", "t/b/other")


@pytest.mark.anyio
async def test_delete_and_copy(store: BlobStore) -> None:
    await store.put("t/b/src", _chunks(b"payload"))
    await store.copy("t/b/src", "t/c/dst")
    await store.delete("t/b/src")
    assert await store.size("t/b/src") is None
    assert await _read(store, "t/c/dst") == b"payload"


@pytest.mark.anyio
async def test_delete_prefix_removes_every_key_under_the_folder_only(store: BlobStore) -> None:
    for key in ("t/b/one", "t/c/two", "tt/b/kept"):
        await store.put(key, _chunks(key.encode()))
    await store.delete_prefix("t/")
    assert await store.size("t/b/one") is None
    assert await store.size("t/c/two") is None
    with pytest.raises(NotFoundError):
        await _read(store, "t/b/one")
    assert await _read(store, "tt/b/kept") == b"tt/b/kept"
    await store.delete_prefix("t/")  # nothing left: a no-op
    with pytest.raises(ValueError, match="folder"):
        await store.delete_prefix("t")


def test_file_store_leaves_no_temporary_files(tmp_path: Path) -> None:
    import asyncio

    blobs = open_blob_store(f"file://{tmp_path}", tmp_path)

    async def run() -> None:
        with pytest.raises(PayloadTooLargeError):
            await blobs.put("t/b/big", _chunks(b"x" * 50_000, 1000), max_bytes=10_000)
        await blobs.put("t/b/ok", _chunks(b"fine"))

    asyncio.run(run())
    assert sorted(p.name for p in (tmp_path / "t" / "b").iterdir()) == ["ok"]
    assert list((tmp_path / ".uploads").iterdir()) == []
