"""Types of the functions operations (Taruvi functions, DotDo `fn.<name>` calls).

A function is a name in a tenant with numbered versions; each deploy makes a new version and
makes it the active one, `functions.rollback` makes an earlier one active again. A version
carries everything that decides how it runs (code, entrypoint, limits, mode, secrets, scopes,
params schema), so a rollback brings all of it back.

The answers keep Taruvi's shapes: `functions.list` is `{"results", "count"}`, an execution is
`{"data", "invocation"}` (the invocation's id also under `celery_task_id` and `task_id`) and a
result is `{"data": {"status", "result", "traceback", "logs", "duration_ms", ...}}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from roost.wire.auth import Scope

FUNCTION_NAME = r"^[a-z][a-z0-9_-]{0,62}$"
FunctionName = Annotated[
    str,
    Meta(
        pattern=FUNCTION_NAME,
        description="lower-case letters, digits, _ and -, starting with a letter, at most 63",
    ),
]
Entrypoint = Annotated[
    str,
    Meta(
        pattern=r"^(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:)?[A-Za-z_][A-Za-z0-9_]*$",
        max_length=200,
        description="`function` (in main.py) or `module:function` (`handlers.orders:main`)",
    ),
]
SecretEnvName = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description="a secret's key that is also an environment variable's name",
    ),
]
AppName = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_\-]*$", max_length=64)]
ExecutionMode = Literal["sync", "async", "both"]
HandlerKind = Literal["unary", "stream"]
Status = Literal["PENDING", "STARTED", "SUCCESS", "FAILURE", "TIMEOUT"]
InvocationMode = Literal["sync", "async", "stream"]
# at least 1 s (as Lambda's): a run past its timeout has its worker killed and restarted, and
# a caller may shorten a function's timeout, so a tiny one would cost a process start a call
Timeout = Annotated[float, Meta(ge=1, le=86400)]
InvocationId = Annotated[str, Meta(pattern=r"^[a-z0-9]{1,64}$")]
Version = Annotated[int, Meta(ge=1, le=2**31 - 1)]
Code = Annotated[str, Meta(min_length=1, max_length=1024 * 1024)]
Bundle = Annotated[bytes, Meta(min_length=1, max_length=64 * 1024 * 1024)]


class DeployRequest(Struct, forbid_unknown_fields=True):
    """Exactly one of `code` (the source of main.py, or of the module the entrypoint names)
    and `bundle` (a zip of the function's folder)."""

    name: FunctionName
    code: Code | None = None
    bundle: Bundle | None = None
    entrypoint: Entrypoint = "main"
    description: Annotated[str, Meta(max_length=1000)] = ""
    timeout: Timeout | None = None  # seconds; default: the server's
    memory_mb: Annotated[int, Meta(ge=16, le=1024 * 1024)] | None = None
    execution_mode: ExecutionMode = "both"
    secrets: Annotated[list[SecretEnvName], Meta(max_length=100)] = []
    scopes: Annotated[list[Scope], Meta(max_length=100)] = []
    params_schema: dict[str, Any] | None = None
    app: AppName = "default"


class FunctionRef(Struct, forbid_unknown_fields=True):
    name: FunctionName


class RollbackRequest(Struct, forbid_unknown_fields=True):
    name: FunctionName
    version: Version


class ListFunctionsRequest(Struct, forbid_unknown_fields=True):
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    offset: Annotated[int, Meta(ge=0, le=2**31 - 1)] = 0
    app: AppName | None = None


class FunctionVersion(Struct):
    """One deployed version and how it runs."""

    version: int
    active: bool
    entrypoint: str
    kind: HandlerKind  # "stream": a generator handler, whose items are streamed
    execution_mode: ExecutionMode
    timeout: float
    memory_mb: int
    secrets: list[str]
    scopes: list[str]
    params_schema: dict[str, Any] | None
    bundle_size: int
    sha256: str
    created_at: datetime
    created_by: str


class FunctionInfo(Struct):
    """A function with its active version's settings (Taruvi's `name`, `slug`,
    `execution_mode`, ...). `slug` is the name: functions are called by it."""

    id: str
    name: str
    slug: str
    app: str
    description: str
    version: int  # the active one
    latest_version: int
    entrypoint: str
    kind: HandlerKind
    execution_mode: ExecutionMode
    timeout: float
    memory_mb: int
    secrets: list[str]
    scopes: list[str]
    params_schema: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    created_by: str


class FunctionList(Struct):
    results: list[FunctionInfo]
    count: int  # every function that matches, not only this page


class VersionList(Struct):
    results: list[FunctionVersion]  # newest first
    count: int


class ExecuteRequest(Struct, forbid_unknown_fields=True):
    name: FunctionName
    params: Any = None
    is_async: bool = False
    timeout: Timeout | None = None  # at most the function's own


class StreamRequest(Struct, forbid_unknown_fields=True):
    name: FunctionName
    params: Any = None
    timeout: Timeout | None = None


class Invocation(Struct):
    """One run of a function. `celery_task_id` and `task_id` repeat `id` for Taruvi code."""

    id: str
    function: str
    version: int
    status: Status
    mode: InvocationMode
    duration_ms: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    celery_task_id: str
    task_id: str


class Execution(Struct):
    """`functions.execute`'s answer: the result (None for an async run, which answers at
    once) and the invocation."""

    data: Any
    invocation: Invocation


class ResultRequest(Struct, forbid_unknown_fields=True):
    id: InvocationId


class InvocationResult(Struct):
    id: str
    function: str
    version: int
    status: Status
    mode: InvocationMode
    result: Any
    error: str | None
    traceback: str | None
    logs: list[str]  # print and logging output, in order
    duration_ms: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ResultAnswer(Struct):
    data: InvocationResult


class InvocationsRequest(Struct, forbid_unknown_fields=True):
    name: FunctionName | None = None
    status: Status | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    offset: Annotated[int, Meta(ge=0, le=2**31 - 1)] = 0


class InvocationList(Struct):
    results: list[Invocation]  # newest first
    count: int
