"""Blobs in S3-compatible object storage, over httpx with our own SigV4 signing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import os
import re
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from urllib.parse import quote

import httpx
import msgspec

from roost.backends.blob import CHUNK, Measured, StoredBlob
from roost.backends.blob.sigv4 import EMPTY_SHA256, sign
from roost.backends.errors import unavailable
from roost.errors import (
    ConfigurationError,
    NotFoundError,
    ServiceUnavailableError,
)

_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_PAGE = 1000  # the most keys S3 lists, or deletes, in one request
# Our keys are plain ASCII paths (see BlobStore), so these two elements are all we read of
# S3's XML answers.
_KEY = re.compile(r"<Key>([^<]*)</Key>")
_ERROR = re.compile(r"<Error>.*?<Code>([^<]*)</Code>", re.S)


class S3Location(msgspec.Struct, frozen=True):
    bucket: str
    endpoint: str
    region: str
    access_key: str
    secret_key: str

    @classmethod
    def from_parts(cls, bucket: str, query: dict[str, str], user: str, password: str) -> S3Location:
        region = query.get("region", os.environ.get("AWS_REGION", "us-east-1"))
        endpoint = query.get("endpoint", f"https://s3.{region}.amazonaws.com").rstrip("/")
        access_key = user or os.environ.get("AWS_ACCESS_KEY_ID", "")
        secret_key = password or os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if not access_key or not secret_key:
            raise ConfigurationError(
                "S3 storage needs credentials: s3://KEY:SECRET@bucket?... or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        return cls(bucket, endpoint, region, access_key, secret_key)


class S3BlobStore:
    """Uploads are spooled (in memory up to 8 MiB, then on disk) while they are hashed and
    counted, so a file over its limit never reaches S3, and the PUT is signed with the real
    payload hash. S3 makes the object visible only once the PUT completes."""

    kind = "s3"

    def __init__(self, location: S3Location, http: httpx.AsyncClient | None = None) -> None:
        self.location = location
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10))

    def _url(self, key: str = "") -> str:
        suffix = f"/{quote(key, safe='/-_.~')}" if key else ""
        return f"{self.location.endpoint}/{quote(self.location.bucket)}{suffix}"

    def _headers(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        payload_sha256: str = EMPTY_SHA256,
    ) -> dict[str, str]:
        loc = self.location
        return sign(
            method,
            url,
            headers or {},
            payload_sha256,
            access_key=loc.access_key,
            secret_key=loc.secret_key,
            region=loc.region,
        )

    async def _request(
        self,
        method: str,
        key: str = "",
        headers: dict[str, str] | None = None,
        content: bytes | AsyncIterable[bytes] | None = None,
        payload_sha256: str = EMPTY_SHA256,
        query: str = "",
    ) -> httpx.Response:
        url = self._url(key) + (f"?{query}" if query else "")
        try:
            return await self._http.request(
                method,
                url,
                content=content,
                headers=self._headers(method, url, headers, payload_sha256),
            )
        except httpx.TransportError as exc:
            raise unavailable("object storage", exc) from None

    async def prepare(self) -> None:
        """Create the bucket if it does not exist."""
        if (await self._request("HEAD")).status_code == 404:
            _check(await self._request("PUT"), "create the bucket")

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredBlob:
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        try:
            measured = Measured(max_bytes)
            async for chunk in measured.chunks(chunks):
                await asyncio.to_thread(spool.write, chunk)
            size, sha = measured.size, measured.sha256
            spool.seek(0)

            async def body() -> AsyncIterator[bytes]:
                while chunk := await asyncio.to_thread(spool.read, CHUNK):
                    yield chunk

            headers = {"content-length": str(size), "x-amz-meta-sha256": sha}
            response = await self._request("PUT", key, headers, body(), sha)
            _check(response, "store the file")
        finally:
            spool.close()
        return StoredBlob(size=size, sha256=sha, etag=response.headers.get("etag", "").strip('"'))

    async def get(
        self, key: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        url = self._url(key)
        headers = (
            {"range": f"bytes={start}-{'' if end is None else end}"}
            if start or end is not None
            else {}
        )
        request = self._http.build_request("GET", url, headers=self._headers("GET", url, headers))
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise unavailable("object storage", exc) from None
        try:
            if response.status_code == 404:
                raise NotFoundError(f"no blob {key!r}")
            if response.status_code >= 300:
                await response.aread()
                _check(response, "read the file")
            async for chunk in response.aiter_bytes(CHUNK):
                yield chunk
        finally:
            await response.aclose()

    async def open_local(self, key: str) -> None:
        return None  # its bytes are read over HTTP (`get`)

    async def size(self, key: str) -> int | None:
        response = await self._request("HEAD", key)
        if response.status_code == 404:
            return None
        _check(response, "look up the file")
        return int(response.headers["content-length"])

    async def delete(self, key: str) -> None:
        response = await self._request("DELETE", key)
        if response.status_code != 404:
            _check(response, "delete the file")

    async def copy(self, source: str, destination: str) -> None:
        copy_source = f"/{self.location.bucket}/{quote(source, safe='/-_.~')}"
        response = await self._request("PUT", destination, {"x-amz-copy-source": copy_source})
        if response.status_code == 404:
            raise NotFoundError(f"no blob {source!r}")
        _check(response, "copy the file")

    async def delete_prefix(self, prefix: str) -> None:
        if not prefix.endswith("/") or prefix == "/":
            raise ValueError(f"blob prefix {prefix!r} is not a folder (it must end with '/')")
        # Each round lists from the start what is left: deleted keys drop out of the listing,
        # so no continuation token has to survive the deletions.
        while keys := await self._list(prefix):
            await self._delete_many(keys)

    async def _list(self, prefix: str) -> list[str]:
        query = f"list-type=2&max-keys={_PAGE}&prefix={quote(prefix, safe='')}"
        response = await self._request("GET", query=query)
        _check(response, "list the files")
        return [html.unescape(key) for key in _KEY.findall(response.text)]

    async def _delete_many(self, keys: list[str]) -> None:
        objects = "".join(f"<Object><Key>{html.escape(key)}</Key></Object>" for key in keys)
        body = f"<Delete><Quiet>true</Quiet>{objects}</Delete>".encode()
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        headers = {"content-md5": md5, "content-type": "application/xml"}
        sha = hashlib.sha256(body).hexdigest()
        response = await self._request("POST", "", headers, body, sha, query="delete")
        _check(response, "delete the files")
        if failed := _ERROR.search(response.text):
            raise ServiceUnavailableError(
                f"object storage could not delete the files: {failed.group(1)}"
            )

    async def close(self) -> None:
        await self._http.aclose()


def _check(response: httpx.Response, doing: str) -> None:
    if response.status_code >= 300:
        detail = response.text[:300].replace("\n", " ")
        raise ServiceUnavailableError(
            f"object storage could not {doing} ({response.status_code}): {detail}"
        )
