"""Building requests and reading responses: the wire side of every SDK call."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from roost._version import __version__
from roost.client._core.config import ClientConfig
from roost.client._core.credentials import Credential
from roost.errors import APIError, ResponseError, error_from_payload
from roost.wire.codec import codec_for, format_of

USER_AGENT = f"roost-python/{__version__}"


def operation_path(operation: str) -> str:
    """`kv.get` → `/api/v1/kv/get`."""
    module, _, action = operation.partition(".")
    return f"/api/v1/{module}/{action}"


class PreparedRequest(msgspec.Struct, frozen=True):
    method: str
    path: str
    headers: dict[str, str]
    content: bytes


def prepare(
    config: ClientConfig,
    path: str,
    payload: Mapping[str, Any] | None,
    *,
    credential: Credential | None,
    idempotent: bool,
) -> PreparedRequest:
    """A request for one operation. Non-idempotent ones carry a fresh Idempotency-Key, so
    that retrying them is safe: the server runs each key once. No Accept header: the server
    answers in the format of the body (each header costs both ends microseconds)."""
    codec = codec_for(config.format)
    headers = {"Content-Type": codec.content_type, **credential_headers(config, credential)}
    content = codec.encode(dict(payload or {}))
    if config.compression:
        headers["Accept-Encoding"] = "gzip"
        if len(content) > 1024:
            content = gzip.compress(content, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
    if not idempotent:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return PreparedRequest("POST", path, headers, content)


def identity_headers(config: ClientConfig, credential: Credential | None) -> dict[str, str]:
    """What a request without a body of ours says of who sends it: format, tenant, credential."""
    codec = codec_for(config.format)
    return {
        "Accept": codec.content_type,
        "User-Agent": USER_AGENT,
        **credential_headers(config, credential),
    }


def credential_headers(config: ClientConfig, credential: Credential | None) -> dict[str, str]:
    """The tenant and the credential of a request."""
    headers: dict[str, str] = {}
    if config.tenant:
        headers["X-Roost-Tenant"] = config.tenant
    if credential is not None:
        headers.update(credential.headers())
    return headers


@lru_cache(maxsize=64)
def timeout_of(seconds: float, pool: float) -> httpx.Timeout:
    """The timeouts of a request that may take `seconds`, waiting at most `pool` seconds for
    a connection of the pool (built once per value)."""
    return httpx.Timeout(seconds, pool=pool)


def object_path(bucket: str, name: str) -> str:
    """The REST path of a file."""
    # every character encoded, dots too: HTTP clients would otherwise resolve `..` segments
    # away, and the server's own check of the name would never see them
    encoded = quote(name, safe="").replace(".", "%2E")
    return f"/api/v1/storage/buckets/{quote(bucket, safe='')}/objects/{encoded}"


def read_response(
    status: int, headers: Mapping[str, str], content: bytes, retry_after: float | None = None
) -> Any:
    """The decoded result, or the APIError the server described."""
    fmt = format_of(headers.get("content-type")) or "json"
    try:
        payload = codec_for(fmt).decode(content, Any) if content else None
    except msgspec.DecodeError as exc:
        if status >= 400:
            return _raise(error_from_payload(status, None, retry_after))
        raise ResponseError(f"could not decode the server's {fmt} answer: {exc}") from None
    if status >= 400:
        return _raise(error_from_payload(status, payload, retry_after))
    return payload


def _raise(error: APIError) -> Any:
    raise error
