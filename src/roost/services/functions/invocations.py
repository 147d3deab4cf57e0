"""Running functions: execute (sync or async), stream, results, invocations, `fn.<name>`.

Every run is an invocation with a record in SQL, sync runs included (written just after
their answer, `records.py`; reads here wait for those of this server). A sync run answers
`{"data": result, "invocation"}`, or raises FunctionExecutionError / FunctionTimeoutError
with the remote traceback. An async run (`is_async=True`) is recorded PENDING, queued on the
queue backend and answered at once (`queued.py`); a server or `roost worker` runs it later
(`runner.py`). A streamed run yields a generator handler's items; stopping the iteration
cancels the run.

Any deployed function is also the RPC method `fn.<name>` (`rpc_operation`), unary or
streamed as its handler is: the doors find it through the dispatcher. A function bound to
policies (`policies.bind("function", name, kind)`) runs, by any of these ways, only for a
caller they allow to `execute` it.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import function_invocations, utcnow
from roost.errors import (
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from roost.services import guards
from roost.services.context import Context
from roost.services.functions import queued, runs, specs
from roost.services.functions.runs import Outcome, Started
from roost.services.functions.schemas import check_params_soon
from roost.services.functions.specs import FunctionSpec
from roost.services.registry import Operation, operation, streamed
from roost.services.security import new_id
from roost.wire.functions import (
    FUNCTION_NAME,
    ExecuteRequest,
    Execution,
    HandlerKind,
    Invocation,
    InvocationList,
    InvocationResult,
    InvocationsRequest,
    ResultAnswer,
    ResultRequest,
    Status,
    StreamRequest,
)

logger = logging.getLogger("roost.functions")

EXECUTE_SCOPE = "functions:execute"
RPC_PREFIX = "fn."
_NAME = re.compile(FUNCTION_NAME)


@operation("functions.execute", scope=EXECUTE_SCOPE)
async def execute(ctx: Context, params: ExecuteRequest) -> Execution:
    """Run a function with `params`: `{"data": result, "invocation": {...}}`. With
    `is_async`, answer at once (`data` is null) and poll `functions.get_result` with
    `invocation.id` (also `celery_task_id`, `task_id`). `timeout` may only shorten the
    function's own. A handler that raises answers 422 `function_failed` (`function_timeout`
    past its timeout) with the remote traceback in `details.traceback`."""
    spec = await specs.active_spec(ctx.platform, ctx.tenant, params.name)
    await _check_run(spec, params.params, "async" if params.is_async else "sync")
    await _may_run(ctx, spec, params.params)
    timeout = _timeout(spec, params.timeout)
    if params.is_async:
        started = await queued.queue(ctx, spec, params.params, timeout)
        return Execution(data=None, invocation=_invocation(started, "PENDING"))
    started, outcome = await _run_sync(ctx, spec, params.params, timeout)
    return Execution(data=outcome.result, invocation=_invocation(started, outcome.status, outcome))


@streamed("functions.stream", scope=EXECUTE_SCOPE, read_only=False)
async def stream(ctx: Context, params: StreamRequest) -> AsyncIterator[Any]:
    """Run a function and stream what its generator handler yields, item by item (a plain
    handler's result comes as one item). Stopping the iteration cancels the run."""
    spec = await specs.active_spec(ctx.platform, ctx.tenant, params.name)
    await _check_run(spec, params.params, "sync")
    await _may_run(ctx, spec, params.params)
    async for item in _run_streamed(ctx, spec, params.params, _timeout(spec, params.timeout)):
        yield item


@operation("functions.get_result", scope=EXECUTE_SCOPE, read_only=True)
async def get_result(ctx: Context, params: ResultRequest) -> ResultAnswer:
    """An invocation's status (PENDING, STARTED, SUCCESS, FAILURE, TIMEOUT), result,
    traceback, logs and duration: `{"data": {...}}`. Your own invocations, or any of the
    tenant's with `functions:read`."""
    principal = ctx.require_principal()
    await ctx.platform.function_records.flush()  # the sync runs answered here so far
    async with ctx.platform.db.read(ctx.tenant) as conn:
        row = (
            (
                await conn.execute(
                    select(function_invocations).where(function_invocations.c.id == params.id)
                )
            )
            .mappings()
            .first()
        )
    if row is None or (
        row["user_id"] != principal.user_id and not principal.allows("functions:read")
    ):
        raise NotFoundError(f"no invocation with id {params.id!r}", details={"field": "id"})
    return ResultAnswer(data=_result(row))


@operation("functions.invocations", scope="functions:read", read_only=True)
async def invocations(ctx: Context, params: InvocationsRequest) -> InvocationList:
    """Invocations, newest first, of one function (`name`) or all, in one status or any:
    `{"results", "count"}`."""
    where = []
    if params.name is not None:
        where.append(function_invocations.c.function_name == params.name)
    if params.status is not None:
        where.append(function_invocations.c.status == params.status)
    query = (
        select(function_invocations)
        .where(*where)
        .order_by(function_invocations.c.created_at.desc(), function_invocations.c.id)
        .limit(params.limit)
        .offset(params.offset)
    )
    count = select(func.count()).select_from(function_invocations).where(*where)
    await ctx.platform.function_records.flush()  # the sync runs answered here so far
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(query)).mappings().all()
        total = await conn.scalar(count)
    return InvocationList(results=[_listed(row) for row in rows], count=int(total or 0))


# -- sync and streamed runs ----------------------------------------------------------------


async def _run_sync(
    ctx: Context, spec: FunctionSpec, params: Any, time_limit: float
) -> tuple[Started, Outcome]:
    now = utcnow()
    started = Started(new_id(), spec, ctx.require_principal(), "sync", time_limit, now, now)
    outcome = await runs.run_to_end(ctx.platform, ctx.tenant, started, params, insert=True)
    if outcome.status != "SUCCESS":
        raise outcome.error(started.id)
    return started, outcome


async def _run_streamed(
    ctx: Context, spec: FunctionSpec, params: Any, time_limit: float
) -> AsyncIterator[Any]:
    now = utcnow()
    started = Started(new_id(), spec, ctx.require_principal(), "stream", time_limit, now, now)
    job = await runs.prepare(
        ctx.platform,
        ctx.tenant,
        spec,
        started.caller,
        params,
        time_limit=time_limit,
        invocation_id=started.id,
        stream=True,
    )
    watch = runs.watch_of(ctx.platform, started, job)
    # a reader that stalls holds the stream (and the run's end) where it stopped: the run is
    # recorded at its timeout, so that its token ends there, not when the reader goes on
    late = runs.timed_out(time_limit)
    watch.on_deadline = lambda: runs.record_later(ctx.platform, ctx.tenant, started, late, watch)
    try:
        async for item in watch.items():
            yield item
    except (RateLimitError, ServiceUnavailableError):
        raise  # refused before it ran (no share or place for it in the pool): nothing to keep
    except BaseException as exc:  # the caller stopped reading (or went away): the run is cancelled
        if watch.sent:  # else it never began: nothing to keep
            stopped = watch.outcome or runs.stopped(exc)
            runs.record_later(ctx.platform, ctx.tenant, started, stopped, watch)
        raise
    outcome = watch.outcome or Outcome("FAILURE", message="the run ended without a result")
    await runs.record(ctx.platform, ctx.tenant, started, outcome, watch, insert=True)
    if outcome.status != "SUCCESS":
        raise outcome.error(started.id)
    if spec.kind == "unary":  # a plain handler streamed: its result is the one item
        yield outcome.result


# -- fn.<name> -----------------------------------------------------------------------------


async def rpc_operation(ctx: Context, method: str) -> Operation:
    """The operation `fn.<name>` of a deployed function: streamed if its handler is a
    generator, else unary (the caller holds `functions:execute`: checked before this)."""
    spec = await specs.active_spec(ctx.platform, ctx.tenant, _function_name(method))
    return function_operation(method, spec.kind)


@functools.lru_cache(maxsize=4096)
def function_operation(method: str, kind: HandlerKind = "unary") -> Operation:
    """`fn.<name>` as an operation of kind `kind`; its parameters are the function's params.
    NotFoundError if `method` cannot name a function."""
    name = _function_name(method)

    async def call(ctx: Context, params: Any) -> Any:
        spec = await specs.active_spec(ctx.platform, ctx.tenant, name)
        await _check_run(spec, params, "sync")
        await _may_run(ctx, spec, params)
        _, outcome = await _run_sync(ctx, spec, params, spec.timeout)
        return outcome.result

    async def items(ctx: Context, params: Any) -> AsyncIterator[Any]:
        spec = await specs.active_spec(ctx.platform, ctx.tenant, name)
        await _check_run(spec, params, "sync")
        await _may_run(ctx, spec, params)
        async for item in _run_streamed(ctx, spec, params, spec.timeout):
            yield item

    return Operation(
        name=method,
        handler=items if kind == "stream" else call,
        input_type=Any,  # any JSON value: the function's params
        output_type=Any,
        scope=EXECUTE_SCOPE,
        access="authenticated",
        read_only=False,
        summary=f"the deployed function {name}",
        kind=kind,
    )


def _function_name(method: str) -> str:
    name = method.removeprefix(RPC_PREFIX)
    if not method.startswith(RPC_PREFIX) or not _NAME.match(name):
        raise NotFoundError(
            f"no operation named {method[:100]!r}; a function is called as fn.<name>",
            details={"operation": method[:100]},
        )
    return name


# -- checks and answers --------------------------------------------------------------------


async def _check_run(spec: FunctionSpec, params: Any, mode: str) -> None:
    if spec.execution_mode not in (mode, "both"):
        other = "is_async=true" if spec.execution_mode == "async" else "is_async=false"
        raise ValidationError(
            f"{spec.name} runs {spec.execution_mode} only: call it with {other}",
            code="wrong_execution_mode",
            details={"field": "is_async", "execution_mode": spec.execution_mode},
        )
    if spec.params_schema is not None:
        await check_params_soon(spec.params_schema, params)


async def _may_run(ctx: Context, spec: FunctionSpec, params: Any) -> None:
    """A function bound to policies runs only for a caller they allow to `execute` it, with
    these params (`R.attr`: name, app, version, params; `R.id`: its name)."""
    attr = {"name": spec.name, "app": spec.app, "version": spec.version, "params": params}
    await guards.require(ctx, "function", spec.name, "execute", spec.name, attr)


def _timeout(spec: FunctionSpec, asked: float | None) -> float:
    return spec.timeout if asked is None else min(asked, spec.timeout)


def _invocation(started: Started, status: Status, outcome: Outcome | None = None) -> Invocation:
    return Invocation(
        id=started.id,
        function=started.spec.name,
        version=started.spec.version,
        status=status,
        mode=started.mode,
        duration_ms=outcome.duration_ms if outcome else None,
        created_at=started.created_at,
        started_at=started.started_at,
        finished_at=utcnow() if outcome else None,
        celery_task_id=started.id,
        task_id=started.id,
    )


def _listed(row: RowMapping) -> Invocation:
    return Invocation(
        id=row["id"],
        function=row["function_name"],
        version=row["version"],
        status=row["status"],
        mode=row["mode"],
        duration_ms=row["duration_ms"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        celery_task_id=row["id"],
        task_id=row["id"],
    )


def _result(row: RowMapping) -> InvocationResult:
    return InvocationResult(
        id=row["id"],
        function=row["function_name"],
        version=row["version"],
        status=row["status"],
        mode=row["mode"],
        result=msgspec.json.decode(row["result"]) if row["result"] else None,
        error=row["error"],
        traceback=row["traceback"],
        logs=msgspec.json.decode(row["logs"], type=list[str]) if row["logs"] else [],
        duration_ms=row["duration_ms"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )
