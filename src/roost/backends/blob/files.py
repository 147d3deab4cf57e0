"""Blobs in a local folder: written to a temporary file, fsynced, then renamed into place.

Temporary files live in one folder of their own, `<root>/.uploads/` (never a tenant's: tenant
names start with a letter), so that what a killed server left there is found without walking
every tenant's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from roost.backends.blob import Measured, StoredBlob
from roost.errors import NotFoundError

UPLOADS = ".uploads"
DISK_CHUNK = 1024 * 1024
"""Bytes a thread reads, or writes, at once: an upload arrives in pieces of ~64 KB, and a
thread hop for each (160 for 10 MB) cost more of the event loop than the writes did."""
ABANDONED_AFTER = 3600.0
"""Seconds since its last write after which an upload's temporary file is taken for one a
crash left behind: younger ones may belong to another worker on the same folder, still busy."""


class FileBlobStore:
    """A crash never leaves a half-written file visible: the rename is the commit."""

    kind = "file"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob key {key!r} leaves the storage folder")
        return path

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredBlob:
        path = self._path(key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        temporary = self.root / UPLOADS / f"{uuid.uuid4().hex}.tmp"
        await asyncio.to_thread(temporary.parent.mkdir, exist_ok=True)
        handle: BinaryIO = await asyncio.to_thread(open, temporary, "wb")
        measured = Measured(max_bytes)
        try:
            pending: list[bytes] = []
            held = 0
            async for chunk in measured.chunks(chunks):
                pending.append(chunk)
                held += len(chunk)
                if held >= DISK_CHUNK:
                    await asyncio.to_thread(handle.writelines, pending)
                    pending, held = [], 0
            await asyncio.to_thread(_write_flush_and_sync, handle, pending)
            handle.close()
            await asyncio.to_thread(os.replace, temporary, path)
        except BaseException:
            handle.close()
            temporary.unlink(missing_ok=True)
            raise
        return StoredBlob(size=measured.size, sha256=measured.sha256, etag=measured.sha256)

    async def get(
        self, key: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle: BinaryIO = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise NotFoundError(f"no blob {key!r}") from None
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                want = DISK_CHUNK if remaining is None else min(DISK_CHUNK, remaining)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def open_local(self, key: str) -> BinaryIO:
        try:
            return await asyncio.to_thread(open, self._path(key), "rb")
        except FileNotFoundError:
            raise NotFoundError(f"no blob {key!r}") from None

    async def size(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def copy(self, source: str, destination: str) -> None:
        chunks = self.get(source)
        first = await anext(chunks, None)  # raises NotFoundError before anything is written

        async def again() -> AsyncIterator[bytes]:
            if first is not None:
                yield first
            async for chunk in chunks:
                yield chunk

        await self.put(destination, again())

    async def delete_prefix(self, prefix: str) -> None:
        if not prefix.endswith("/"):
            raise ValueError(f"blob prefix {prefix!r} is not a folder (it must end with '/')")
        folder = self._path(prefix)
        if folder == self.root.resolve():
            raise ValueError("refusing to delete the whole storage folder")
        await asyncio.to_thread(_remove_tree, folder)

    async def prepare(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(_sweep_uploads, self.root / UPLOADS)

    async def close(self) -> None:
        return None


def _remove_tree(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # nothing was ever stored there, or is left
        shutil.rmtree(folder)


def _sweep_uploads(folder: Path) -> None:
    """Remove the temporary files of uploads that a crash (kill -9) left unfinished."""
    cutoff = time.time() - ABANDONED_AFTER
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
        except FileNotFoundError:  # another worker swept it, or its upload just finished
            continue


def _write_flush_and_sync(handle: BinaryIO, pending: list[bytes]) -> None:
    handle.writelines(pending)
    handle.flush()
    os.fsync(handle.fileno())
