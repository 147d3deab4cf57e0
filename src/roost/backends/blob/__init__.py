"""Object bytes: one protocol, a local folder (default) or S3-compatible storage.

Keys are chosen by the platform (`<tenant>/<bucket id>/<object id>`), never by users, so they
are always plain ASCII paths. Object names, content types and metadata live in the SQL
backend; a blob store only keeps bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from roost.errors import ConfigurationError, PayloadTooLargeError

CHUNK = 256 * 1024


class StoredBlob(msgspec.Struct, frozen=True):
    size: int
    sha256: str  # hex digest of the bytes
    etag: str


class Measured:
    """Counts and hashes the chunks that pass through, refusing them past `max_bytes`."""

    def __init__(self, max_bytes: int | None) -> None:
        self.size = 0
        self._max = max_bytes
        self._digest = hashlib.sha256()

    async def chunks(self, source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in source:
            self.size += len(chunk)
            if self._max is not None and self.size > self._max:
                raise PayloadTooLargeError(
                    f"the file is larger than {self._max} bytes", details={"limit": self._max}
                )
            self._digest.update(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class BlobStore(Protocol):
    kind: str  # "file" or "s3", as health checks report it

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredBlob:
        """Store the bytes under `key`, replacing any. Readers see the old bytes or the new,
        never part of them. Past `max_bytes` it raises PayloadTooLargeError and keeps nothing."""
        ...

    def get(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes from `start` to `end` (inclusive), in chunks; NotFoundError if no such key."""
        ...

    async def open_local(self, key: str) -> BinaryIO | None:
        """The bytes under `key` as a local file open for reading, where this store keeps
        them in one (a server can then hand them to the kernel); None where it does not.
        NotFoundError if no such key."""
        ...

    async def size(self, key: str) -> int | None:
        """The size of the bytes under `key`, or None if there are none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key`. Removing a key that does not exist is a no-op."""
        ...

    async def copy(self, source: str, destination: str) -> None:
        """Copy the bytes of `source` to `destination` (NotFoundError if no source)."""
        ...

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every key under the folder `prefix` (it ends with "/", as `<tenant>/` does;
        anything else raises ValueError). With no such key it is a no-op, so a purge that was
        interrupted can simply run again."""
        ...

    async def prepare(self) -> None:
        """Create what the store needs (the folder, the bucket) and clear what a crash left
        (unfinished uploads); harmless when it exists."""
        ...

    async def close(self) -> None: ...


def open_blob_store(url: str | None, data_dir: Path) -> BlobStore:
    """The store a `ROOST_STORAGE_URL` names: `file:///path` (default: `<data dir>/files`) or
    `s3://[key:secret@]bucket?endpoint=http://host:port&region=...`."""
    from roost.backends.blob.files import FileBlobStore

    if not url:
        return FileBlobStore(data_dir / "files")
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FileBlobStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        from roost.backends.blob.s3 import S3BlobStore, S3Location

        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if not parts.hostname:
            raise ConfigurationError("ROOST_STORAGE_URL s3:// needs a bucket: s3://bucket?...")
        return S3BlobStore(
            S3Location.from_parts(
                parts.hostname, query, unquote(parts.username or ""), unquote(parts.password or "")
            )
        )
    raise ConfigurationError(f"ROOST_STORAGE_URL must start with file:// or s3://, not {url!r}")
