"""Types every module uses: names, errors, `Done`, batch, health, `NoTruthValue`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NoReturn

import msgspec
from msgspec import Meta, Struct

OPERATION_NAME = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
"""`module.operation`: the service module that owns an operation, then its name there."""
OperationName = Annotated[str, Meta(pattern=OPERATION_NAME, max_length=80)]
TENANT_NAME = r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$"
TenantName = Annotated[
    str,
    Meta(
        pattern=TENANT_NAME,
        description="lower-case letters, digits and hyphens, at most 40",
    ),
]


class NoTruthValue:
    """Mixin of the answers that report (ids, offsets, counts, a page, a value that may be
    absent) instead of saying yes or no. Such an answer would be true whatever it says
    (`if await kv.get(key):` entered for a missing key), so bool() raises TypeError naming the
    fields to test. An answer that says yes or no has that answer as its truth value instead
    (`SetAnswer.success`, `PageAccess.allowed`, ...). The rule is in docs/architecture.md,
    "Truth values"."""

    __slots__ = ()

    def __bool__(self) -> NoReturn:
        fields = ", ".join(getattr(self, "__struct_fields__", ()))
        raise TypeError(
            f"a {type(self).__name__} is neither true nor false: test one of its fields ({fields})"
        )


class Empty(Struct, forbid_unknown_fields=True):
    """An operation that takes no parameters."""


class Done(Struct):
    """The answer of an operation whose only result is that it happened."""

    ok: bool = True
    count: int | None = None


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
    """One backend in `health.check`; true when its status is "ok"."""

    status: Literal["ok", "down"]
    backend: str  # for functions: the isolation the workers run under
    latency_ms: float | None = None
    error: str | None = None
    stats: dict[str, Any] | None = None  # functions: the workers, busy, replaced, ...

    def __bool__(self) -> bool:
        return self.status == "ok"


class HealthReport(Struct):
    """`health.check` (the SDK's `HealthReport`): true when the server and every backend it
    needs answer (status "ok"), false when it is "degraded"."""

    status: Literal["ok", "degraded"]
    version: str
    backends: dict[str, BackendHealth]

    def __bool__(self) -> bool:
        return self.status == "ok"
