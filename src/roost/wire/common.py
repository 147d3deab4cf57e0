"""Types every module uses: errors, batch, health."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

OperationName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$", max_length=80)]


class Empty(Struct, forbid_unknown_fields=True):
    """An operation that takes no parameters."""


class ErrorBody(Struct):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorResponse(Struct):
    error: ErrorBody


class BatchCommand(Struct, forbid_unknown_fields=True):
    command: OperationName
    payload: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b""))


class BatchRequest(Struct, forbid_unknown_fields=True):
    operations: Annotated[list[BatchCommand], Meta(min_length=1, max_length=100)]


class BatchResult(Struct, omit_defaults=True):
    status: Literal["success", "error"]
    payload: Any = None
    error: ErrorBody | None = None


class BatchResponse(Struct):
    results: list[BatchResult]


class BackendHealth(Struct, omit_defaults=True):
    status: Literal["ok", "down"]
    backend: str
    latency_ms: float | None = None
    error: str | None = None


class HealthReport(Struct):
    status: Literal["ok", "degraded"]
    version: str
    backends: dict[str, BackendHealth]
