"""Async invocations, durably: recorded PENDING, queued on the platform's queue backend,
run at least once by whichever server or `roost worker` takes them.

`queue` records an invocation PENDING, then publishes `{"tenant", "id"}` on the deployment's
functions queue: `$functions:<ROOST_FUNCTIONS_QUEUE>` in the queue store (SQL tables
embedded, Redis scaled out), which therefore keeps it across restarts. Tenants' queues are
named `<tenant>:<queue>` in the same store, and neither a tenant name nor a queue name a
tenant may send starts with `$`, so no tenant can publish to it, consume from it or see it
through `queue.*`.

`AsyncRunner` (runner.py) takes a message, leased to it for `functions_async_lease_seconds`
and renewed while the run lasts, and calls `run_queued`, which claims the invocation
(PENDING -> STARTED: one runner wins), runs it and records it; the message is acked after.
If the process running it dies, the lease runs out, the queue delivers the message again and
the next runner claims the STARTED invocation again (a redelivery says that its last runner
stopped) and runs it from the start: at least once. After `MAX_ATTEMPTS` runs cut short it is
recorded FAILURE instead of being run yet again.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta
from sqlalchemy import Connection, select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import function_invocations, utcnow
from roost.errors import AuthenticationError, NotFoundError
from roost.services import principals
from roost.services.context import Context, Platform, Principal, to_its_end
from roost.services.functions import runs, specs
from roost.services.functions.runs import Outcome, Started
from roost.services.functions.specs import FunctionSpec
from roost.services.functions.tokens import CallerRef
from roost.services.security import new_id
from roost.settings import Settings
from roost.wire.common import TENANT_NAME
from roost.wire.functions import InvocationId, Status

MAX_ATTEMPTS = 3
"""Runs of one invocation that may be cut short (the process running it stopped) before it
is given up; below the queue's own delivery limit, so that giving up is recorded."""

_BODY = msgspec.json.Decoder()


class QueuedInvocation(msgspec.Struct, forbid_unknown_fields=True):
    """A message of the functions queue: which invocation of which tenant to run."""

    tenant: Annotated[str, Meta(pattern=TENANT_NAME)]
    id: InvocationId


def queue_name(settings: Settings) -> str:
    """The deployment's functions queue in the queue store (no tenant can name it)."""
    return f"$functions:{settings.functions_queue}"


def wake_channel(queue: str) -> str:
    """The bus channel that wakes runners waiting on `queue` (the queue service's form)."""
    return f"queue:{queue}"


async def queue(ctx: Context, spec: FunctionSpec, params: Any, time_limit: float) -> Started:
    """Record an async invocation PENDING and queue it. If the queue backend refuses it, the
    record says so (FAILURE) and the caller gets the backend's error."""
    platform = ctx.platform
    caller = ctx.require_principal()
    started = Started(new_id(), spec, caller, "async", time_limit, utcnow(), None)
    row = {**runs.invocation_row(started, params), "status": "PENDING"}
    # one step that a caller going away (a cancelled call) cannot cut in two: a row left
    # PENDING and never queued would never run
    await to_its_end(_record_and_queue(platform, ctx.tenant, started.id, row))
    return started


async def _record_and_queue(
    platform: Platform, tenant: str, invocation_id: str, row: dict[str, Any]
) -> None:
    record = function_invocations.insert().values(row)
    # a group commit: a burst of calls queueing invocations shares one transaction
    await platform.db.run(tenant, lambda conn: conn.execute(record), write=True)
    try:
        await publish(platform, tenant, invocation_id)
    except Exception:
        await _give_up(platform, tenant, invocation_id, "not run: it could not be queued")
        raise


async def publish(platform: Platform, tenant: str, invocation_id: str) -> None:
    """Put a recorded invocation on the functions queue, and wake the runners that wait."""
    name = queue_name(platform.settings)
    body = msgspec.json.encode(QueuedInvocation(tenant=tenant, id=invocation_id)).decode()
    await platform.queues.publish(name, body, priority=5, headers={}, delay=0)
    await platform.bus.publish(wake_channel(name), b"")


def decode(body: str) -> QueuedInvocation | None:
    """A message of the functions queue, or None for one this platform never wrote."""
    try:
        return msgspec.convert(_BODY.decode(body), QueuedInvocation)
    except msgspec.MsgspecError:
        return None


async def run_queued(
    platform: Platform, tenant: str, invocation_id: str, attempt: int = 0
) -> Status | None:
    """Run one queued invocation delivered for the `attempt`-th time before (0: the first),
    unless it is not this runner's to run (None then): already ended, claimed by the runner
    of another delivery, or gone (its function was deleted). A redelivered invocation left
    STARTED was cut short by its runner's end and runs again, up to `MAX_ATTEMPTS` times.
    It acts as its caller does when it starts (not as when it was queued) and runs the
    version it was queued for."""
    if attempt >= MAX_ATTEMPTS:
        reason = f"given up: {attempt} runs of it were cut short (the process running it stopped)"
        await _give_up(platform, tenant, invocation_id, reason)
        return None
    claimed = await _claim(platform, tenant, invocation_id, rerun=attempt > 0)
    if claimed is None:
        return None
    try:
        spec = await specs.version_spec(
            platform, tenant, claimed["function_id"], claimed["version"]
        )
        caller = await _caller_of(platform, tenant, claimed)
    except (NotFoundError, AuthenticationError) as exc:
        outcome = Outcome("FAILURE", message=f"not run: {exc.message}")
        await _record_claimed(platform, tenant, claimed["id"], outcome)
        return outcome.status
    started = Started(
        claimed["id"],
        spec,
        caller,
        "async",
        claimed["timeout"],
        claimed["created_at"],
        claimed["started_at"],
    )
    params = msgspec.json.decode(claimed["params"]) if claimed["params"] else None
    outcome = await runs.run_to_end(platform, tenant, started, params, insert=False)
    return outcome.status


async def _claim(
    platform: Platform, tenant: str, invocation_id: str, *, rerun: bool
) -> RowMapping | None:
    """PENDING -> STARTED (and STARTED again for a `rerun`); None if this runner lost."""
    movable = ("PENDING", "STARTED") if rerun else ("PENDING",)
    move = (
        function_invocations.update()
        .where(
            function_invocations.c.id == invocation_id,
            function_invocations.c.status.in_(movable),
        )
        .values(status="STARTED", started_at=utcnow())
    )
    query = select(function_invocations).where(function_invocations.c.id == invocation_id)

    def claim(conn: Connection) -> RowMapping | None:
        if conn.execute(move).rowcount != 1:
            return None
        return conn.execute(query).mappings().one()

    # a group commit, shared with the runner's other claims and records under way
    return await platform.db.run(tenant, claim, write=True)


async def _caller_of(platform: Platform, tenant: str, row: RowMapping) -> Principal:
    caller = await principals.of_queued_caller(
        platform, tenant, CallerRef(row["user_id"], row["session_id"], row["api_key_id"])
    )
    limits = tuple(frozenset(scopes) for scopes in row["limits"] or ())
    if not limits:
        return caller
    return Principal(
        "function",
        tenant,
        caller.user_id,
        caller.username,
        caller.grants + limits,
        session_id=caller.session_id,
        api_key_id=caller.api_key_id,
        limits=limits,
    )


async def _record_claimed(
    platform: Platform, tenant: str, invocation_id: str, outcome: Outcome
) -> None:
    async with platform.db.write(tenant) as conn:
        await conn.execute(
            function_invocations.update()
            .where(function_invocations.c.id == invocation_id)
            .values(status=outcome.status, error=outcome.message, finished_at=utcnow())
        )


async def _give_up(platform: Platform, tenant: str, invocation_id: str, error: str) -> None:
    """Record an invocation that will not run (again), unless it has ended meanwhile."""
    async with platform.db.write(tenant) as conn:
        await conn.execute(
            function_invocations.update()
            .where(
                function_invocations.c.id == invocation_id,
                function_invocations.c.status.in_(("PENDING", "STARTED")),
            )
            .values(status="FAILURE", error=error, finished_at=utcnow())
        )
