"""`client.storage`: buckets, and `storage.from_(bucket)` for the files in one."""

from __future__ import annotations

import asyncio
import mimetypes
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

from roost.client._core.namespace import Namespace
from roost.client._core.protocol import object_path, read_response
from roost.errors import ValidationError

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient

CHUNK = 256 * 1024


class AsyncStorage(Namespace):
    """Buckets of files (Taruvi storage)."""

    _client: AsyncClient

    def from_(self, bucket: str) -> AsyncBucketFiles:
        """The files of one bucket.

        Example:
            files = await client.storage.from_("images").list(prefix="2026/")
        """
        return AsyncBucketFiles(self._client, bucket)

    async def list_buckets(self) -> list[dict[str, Any]]:
        """Every bucket.

        Example:
            names = [b["name"] for b in await client.storage.list_buckets()]
        """
        result: list[dict[str, Any]] = await self._client.call(
            "storage.list_buckets", idempotent=True
        )
        return result

    async def create_bucket(
        self,
        name: str,
        description: str = "",
        *,
        visibility: str = "private",
        max_file_size: int | None = None,
        allowed_mime_types: list[str] | None = None,
    ) -> dict[str, Any]:
        """Create a bucket (scope `storage:admin`).

        Example:
            await client.storage.create_bucket("images", allowed_mime_types=["image/*"])
        """
        params: dict[str, Any] = {
            "name": name,
            "description": description,
            "visibility": visibility,
            "allowed_mime_types": allowed_mime_types or [],
        }
        if max_file_size is not None:
            params["max_file_size"] = max_file_size
        result: dict[str, Any] = await self._client.call("storage.create_bucket", params)
        return result

    async def get_bucket(self, name: str) -> dict[str, Any]:
        """One bucket.

        Example:
            images = await client.storage.get_bucket("images")
        """
        result: dict[str, Any] = await self._client.call(
            "storage.get_bucket", {"name": name}, idempotent=True
        )
        return result

    async def update_bucket(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change description, visibility, max_file_size or allowed_mime_types.

        Example:
            await client.storage.update_bucket("images", {"visibility": "public"})
        """
        result: dict[str, Any] = await self._client.call(
            "storage.update_bucket", {"name": name, **changes}
        )
        return result

    async def delete_bucket(self, name: str, *, force: bool = False) -> dict[str, Any]:
        """Delete a bucket; one with files in it only with force=True.

        Example:
            await client.storage.delete_bucket("scratch", force=True)
        """
        result: dict[str, Any] = await self._client.call(
            "storage.delete_bucket", {"name": name, "force": force}
        )
        return result


class AsyncBucketFiles(Namespace):
    """The files of one bucket. `.filter()` returns a new view; the other calls act."""

    _client: AsyncClient

    def __init__(
        self, client: AsyncClient, bucket: str, filters: tuple[tuple[str, str, Any], ...] = ()
    ) -> None:
        super().__init__(client)
        self.bucket = bucket
        self._filters = filters

    def filter(self, field: str, op: str, value: Any) -> Self:
        """Only files where `field op value` (fields: name, mimetype, size, created_at,
        metadata.<key>)."""
        return type(self)(self._client, self.bucket, (*self._filters, (field, op, value)))

    async def upload(self, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Upload files, each `{"file": bytes | path | file object, "name", "content_type",
        "metadata", "sha256"}`; paths and file objects are streamed, never read whole.

        Example:
            await client.storage.from_("images").upload([{"file": "cat.jpg", "name": "cat.jpg"}])
        """
        return [await self._upload_one(item) for item in files]

    async def _upload_one(self, item: dict[str, Any]) -> dict[str, Any]:
        source = item.get("file")
        name = item.get("name") or (Path(source).name if isinstance(source, str | Path) else None)
        if not name:
            raise ValidationError("each file needs a name", details={"field": "name"})
        headers = {
            "Content-Type": item.get("content_type")
            or mimetypes.guess_type(name)[0]
            or "application/octet-stream"
        }
        if item.get("metadata"):
            import json

            headers["X-Roost-Metadata"] = json.dumps(item["metadata"])
        if item.get("sha256"):
            headers["X-Roost-Sha256"] = item["sha256"]
        handle: IO[bytes] | None = None
        if isinstance(source, bytes | bytearray | memoryview):
            content: Any = bytes(source)
        elif isinstance(source, str | Path):
            handle = await asyncio.to_thread(open, source, "rb")  # closed below
            headers["Content-Length"] = str(os.fstat(handle.fileno()).st_size)
            content = _chunks(handle)
        elif hasattr(source, "read"):
            content = _chunks(source)  # type: ignore[arg-type]
        else:
            raise ValidationError(
                "file must be bytes, a path or a file object", details={"field": "file"}
            )
        try:
            result: dict[str, Any] = await self._client._raw(
                "PUT", object_path(self.bucket, name), content=content, headers=headers
            )
        finally:
            if handle is not None:
                handle.close()
        return result

    async def download(self, name: str) -> bytes:
        """The file's bytes (for big files, `download_to` streams to disk).

        Example:
            data = await client.storage.from_("images").download("cat.jpg")
        """
        parts = [chunk async for chunk in self.stream(name)]
        return b"".join(parts)

    async def download_to(self, name: str, path: str | Path) -> Path:
        """Stream the file into `path` (written to a temporary file first, then renamed).

        Example:
            await client.storage.from_("videos").download_to("talk.mp4", "/tmp/talk.mp4")
        """
        target = Path(path)
        temporary = target.with_name(f".{target.name}.part")
        handle = await asyncio.to_thread(open, temporary, "wb")  # closed below
        try:
            async for chunk in self.stream(name):
                await asyncio.to_thread(handle.write, chunk)
            handle.close()
            os.replace(temporary, target)
        except BaseException:
            handle.close()
            temporary.unlink(missing_ok=True)
            raise
        return target

    async def stream(
        self, name: str, *, start: int | None = None, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The file's bytes in chunks; with start/end, only those bytes (inclusive).

        Example:
            async for chunk in client.storage.from_("videos").stream("talk.mp4"):
                ...
        """
        extra = {}
        if start is not None or end is not None:
            extra["Range"] = f"bytes={start or 0}-{'' if end is None else end}"
        headers = await self._client._fresh_headers(extra)
        http = self._client._http
        async with http.stream("GET", object_path(self.bucket, name), headers=headers) as response:
            if response.status_code >= 400:
                await response.aread()
                read_response(response.status_code, response.headers, response.content)
            async for chunk in response.aiter_bytes(CHUNK):
                yield chunk

    async def update(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Rename (`{"name": new}`), or change `visibility` or `metadata`.

        Example:
            await client.storage.from_("images").update("cat.jpg", {"name": "kitten.jpg"})
        """
        params = {
            "bucket": self.bucket,
            "name": name,
            "visibility": changes.get("visibility"),
            "metadata": changes.get("metadata"),
            "new_name": changes.get("name"),
        }
        result: dict[str, Any] = await self._client.call(
            "storage.update", {k: v for k, v in params.items() if v is not None}
        )
        return result

    async def delete(self, names: list[str] | str) -> int:
        """Delete files by name; returns how many there were.

        Example:
            await client.storage.from_("images").delete(["a.jpg", "b.jpg"])
        """
        names = [names] if isinstance(names, str) else names
        result = await self._client.call("storage.delete", {"bucket": self.bucket, "names": names})
        return int(result["count"])

    async def copy_object(
        self, name: str, destination_bucket: str, destination_name: str | None = None
    ) -> dict[str, Any]:
        """Copy a file into another bucket (or under another name).

        Example:
            await client.storage.from_("images").copy_object("cat.jpg", "archive")
        """
        return await self._copy("storage.copy_object", name, destination_bucket, destination_name)

    async def move_object(
        self, name: str, destination_bucket: str, destination_name: str | None = None
    ) -> dict[str, Any]:
        """Move a file into another bucket (or under another name).

        Example:
            await client.storage.from_("inbox").move_object("cat.jpg", "images")
        """
        return await self._copy("storage.move_object", name, destination_bucket, destination_name)

    async def _copy(
        self, operation: str, name: str, destination_bucket: str, destination_name: str | None
    ) -> dict[str, Any]:
        params = {"bucket": self.bucket, "name": name, "destination_bucket": destination_bucket}
        if destination_name is not None:
            params["destination_name"] = destination_name
        result: dict[str, Any] = await self._client.call(operation, params)
        return result

    async def create_signed_url(self, name: str, expires_in: int = 3600) -> dict[str, Any]:
        """A link that downloads the file without credentials until it expires:
        `{"signed_url", "expires_at"}`.

        Example:
            link = await client.storage.from_("images").create_signed_url("cat.jpg", 600)
        """
        result: dict[str, Any] = await self._client.call(
            "storage.create_signed_url",
            {"bucket": self.bucket, "name": name, "expires_in": expires_in},
        )
        result["signed_url"] = self._client.config.api_url + result["path"]
        return result

    async def iter(
        self, prefix: str = "", *, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every file under `prefix` matching the filters, by name, `page_size` at a time.

        Example:
            async for info in client.storage.from_("images").iter(prefix="2026/"):
                print(info["name"], info["size"])
        """
        offset = 0
        while True:
            page = await self.list(prefix, limit=page_size, offset=offset)
            for info in page:
                yield info
            if len(page) < page_size:
                return
            offset += len(page)

    async def list(
        self, prefix: str = "", *, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Files by name, under `prefix`, matching the filters (defined last in the class: its
        name would hide the builtin `list` from the annotations after it).

        Example:
            pngs = await client.storage.from_("images").filter("mimetype", "eq", "image/png").list()
        """
        params = {
            "bucket": self.bucket,
            "prefix": prefix,
            "limit": limit,
            "offset": offset,
            "filters": [list(f) for f in self._filters],
        }
        result: list[dict[str, Any]] = await self._client.call(
            "storage.list", params, idempotent=True
        )
        return result


async def _chunks(handle: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(handle.read, CHUNK):
        yield chunk


class AsyncFiles(Namespace):
    """The Dominus files form: a category is a bucket, files are named by id."""

    _client: AsyncClient

    async def upload(
        self,
        data: bytes | str | Path | IO[bytes],
        filename: str,
        category: str,
        *,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Upload into the bucket `category`; the answer's `id` names the file from then on.

        Example:
            report = await client.files.upload(pdf_bytes, "report.pdf", category="reports")
        """
        files = AsyncBucketFiles(self._client, category)
        item = {"file": data, "name": filename, "content_type": content_type}
        return (await files.upload([item]))[0]

    async def download(self, file_id: str, *, expires_in: int = 3600) -> dict[str, Any]:
        """The file's details with a `download_url` that works without credentials.

        Example:
            url = (await client.files.download(report["id"]))["download_url"]
        """
        found = await self._client.call("storage.stat_by_id", {"id": file_id}, idempotent=True)
        link = await AsyncBucketFiles(self._client, found["bucket"]).create_signed_url(
            found["name"], expires_in
        )
        result: dict[str, Any] = {
            **found,
            "download_url": link["signed_url"],
            "expires_at": link["expires_at"],
        }
        return result

    def iter(self, category: str, prefix: str = "") -> AsyncIterator[dict[str, Any]]:
        """Every file of a category, page by page.

        Example:
            async for info in client.files.iter("reports"):
                print(info["id"])
        """
        return AsyncBucketFiles(self._client, category).iter(prefix)

    async def list(self, category: str, prefix: str = "") -> list[dict[str, Any]]:
        """The files of a category.

        Example:
            reports = await client.files.list("reports", prefix="2026/")
        """
        return await AsyncBucketFiles(self._client, category).list(prefix)

    async def delete(self, file_id: str) -> None:
        """Delete a file by its id.

        Example:
            await client.files.delete(report["id"])
        """
        await self._client.call("storage.delete_by_id", {"id": file_id})
