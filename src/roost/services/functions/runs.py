"""One run of a function: from its caller, to the runtime's events, to the invocation's record.

`prepare` builds the runtime's Job: the caller's `user_data` (id, username, roles, tenant,
app), the declared secrets and the ROOST_* variables as the environment, and a runtime token
(`tokens.py`) that acts for the caller narrowed by the function's declared scopes. `Watch`
reads the run's events (items, logs, the end). `record` keeps the invocation and its logs in
one transaction (the logs also as entries of the `logs` service, category
`functions:<name>`, each with the execution id; a sync run's just after its answer, through
`records.py`), ends the run's token and meters the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Connection

from roost.backends.sql.tables import function_invocations, logs, utcnow
from roost.errors import (
    FunctionExecutionError,
    FunctionTimeoutError,
    RateLimitError,
    SecretNotFoundError,
    ServiceUnavailableError,
    ValidationError,
)
from roost.functions.protocol import Failed, Finished, Item, Job, Log, timeout_message
from roost.services import accounts, principals
from roost.services import secrets as secret_store
from roost.services.caching import TenantCache
from roost.services.context import Context, Platform, Principal
from roost.services.functions.records import PendingRecord, Rows
from roost.services.functions.runtime import FunctionRuntime, unavailable
from roost.services.functions.specs import FunctionSpec, ensure_code
from roost.services.functions.tokens import (
    MAX_CHAIN,
    CallerRef,
    RuntimeClaims,
    RuntimeTokens,
    attempt_stamp,
)
from roost.wire.functions import InvocationMode, Status
from roost.wire.logs import LEVELS, Level
from roost.wire.secrets import GetSecretsRequest

logger = logging.getLogger("roost.functions")

TOKEN_GRACE = 30.0  # seconds a runtime token outlives its run's timeout (clock skew, exit)
DEADLINE_GRACE = 0.5  # seconds past a run's timeout before a stalled stream is recorded
_MAX_LINE = 10_000  # characters of one log line (a log entry's message, at most)
_MAX_TRACEBACK = 64 * 1024
_MAX_MESSAGE = 4000
_ROLES = TenantCache[tuple[str, ...]]("functions.caller_roles", ttl=2.0)
_LEVEL_NAMES: dict[str, Level] = {
    "debug": "debug",
    "info": "info",
    "warning": "warn",
    "warn": "warn",
    "error": "error",
    "critical": "critical",
    "fatal": "critical",
}


class Outcome(msgspec.Struct):
    """How a run ended."""

    status: Status
    result: Any = None
    message: str | None = None
    traceback: str | None = None
    duration_ms: int = 0

    def error(self, invocation_id: str) -> FunctionExecutionError:
        """The error a caller gets for a run that did not succeed."""
        cls = FunctionTimeoutError if self.status == "TIMEOUT" else FunctionExecutionError
        return cls(
            self.message or "the function failed",
            details={
                "invocation_id": invocation_id,
                "status": self.status,
                "traceback": self.traceback or "",
            },
        )


def runtime_of(platform: Platform) -> FunctionRuntime:
    if platform.functions is None:
        raise unavailable()
    return platform.functions


async def prepare(
    platform: Platform,
    tenant: str,
    spec: FunctionSpec,
    caller: Principal,
    params: Any,
    *,
    time_limit: float,
    invocation_id: str,
    stream: bool,
    attempt: int | None = None,
) -> Job:
    """The Job of one run of `spec` for `caller` (`attempt`: an async run's, see
    `RuntimeClaims.attempt`)."""
    if len(caller.limits) >= MAX_CHAIN:
        raise ValidationError(
            f"functions call functions more than {MAX_CHAIN} deep; {spec.name} is not run",
            code="call_chain_too_deep",
        )
    runtime_of(platform)
    folder = await ensure_code(platform, tenant, spec)
    roles = await _roles(platform, tenant, caller.user_id)
    token = RuntimeTokens(platform.access_tokens).issue(
        RuntimeClaims(
            tenant=tenant,
            caller=CallerRef(caller.user_id, caller.session_id, caller.api_key_id),
            limits=(*caller.limits, spec.scopes),
            function=spec.name,
            execution_id=invocation_id,
            expires_at=platform.clock.time() + time_limit + TOKEN_GRACE,
            attempt=attempt,
        )
    )
    env = {
        **await _secrets(platform, tenant, caller, spec),
        "ROOST_API_URL": platform.settings.functions_api_url,
        "ROOST_TOKEN": token,
        "ROOST_TENANT": tenant,
        "ROOST_APP": spec.app,
        "ROOST_FUNCTION_ID": spec.id,
        "ROOST_FUNCTION_NAME": spec.name,
        "ROOST_FUNCTION_VERSION": str(spec.version),
        "ROOST_EXECUTION_ID": invocation_id,
        "ROOST_RUNTIME": "roost-functions",
    }
    return Job(
        execution_id=invocation_id,
        tenant=tenant,
        function=spec.name,
        version=spec.version,
        code_dir=str(folder),
        entrypoint=spec.entrypoint,
        params=params,
        user_data={
            "id": caller.user_id,
            "username": caller.username,
            "roles": list(roles),
            "tenant": tenant,
            "app": spec.app,
        },
        env=env,
        timeout=time_limit,
        memory_mb=spec.memory_mb,
        stream=stream,
    )


class Watch(msgspec.Struct):
    """Reads the events of one run: `items()` yields what a generator handler yields (only
    when the job streams), keeps its output within `max_log_bytes`, and leaves the end in
    `outcome`. Closing `items()` early cancels the run (the runtime's iterator is closed)."""

    runtime: FunctionRuntime
    job: Job
    max_log_bytes: int
    depth: int = 0  # runs waiting on this one (a call made by a running function: 1)
    queued: bool = False  # an async run: it may wait for its tenant's share of the workers
    outcome: Outcome | None = None
    lines: list[Log] = msgspec.field(default_factory=list)
    dropped: int = 0
    sent: bool = False  # the job went to a worker: the run began (and its token went out)
    recorded: bool = False  # `record` took the run (once only)
    # called if the run is still read past its timeout (a stream whose reader stalls: the
    # pool kills its worker then, but nothing reads the end until the reader does)
    on_deadline: Callable[[], None] | None = None
    _deadline: asyncio.TimerHandle | None = None
    _size: int = 0

    async def items(self) -> AsyncIterator[Any]:
        events = self.runtime.run(
            self.job, depth=self.depth, queued=self.queued, on_sent=self._on_sent
        )
        try:
            async for event in events:
                if isinstance(event, Item):
                    yield event.value
                elif isinstance(event, Log):
                    self._keep(event)
                elif isinstance(event, Finished):
                    self.outcome = Outcome("SUCCESS", event.result, duration_ms=event.duration_ms)
                elif isinstance(event, Failed):
                    self.outcome = Outcome(
                        event.status,
                        message=event.message[:_MAX_MESSAGE],
                        traceback=event.traceback[-_MAX_TRACEBACK:],
                        duration_ms=event.duration_ms,
                    )
        finally:
            if self._deadline is not None:
                self._deadline.cancel()
            close = getattr(events, "aclose", None)  # the runtime's is an async generator
            if close is not None:
                await close()
        if self.outcome is None:  # the runtime broke its promise of a last event
            self.outcome = Outcome("FAILURE", message="the run ended without a result")

    async def finish(self) -> Outcome:
        """Run to the end (a job that does not stream yields nothing) and answer how it ended."""
        async for _ in self.items():
            pass
        assert self.outcome is not None
        return self.outcome

    def _on_sent(self) -> None:
        self.sent = True
        if self.on_deadline is not None:  # just after the pool's own watchdog
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self.job.timeout + DEADLINE_GRACE, self.on_deadline)

    def log_texts(self) -> list[str]:
        texts = [event.line for event in self.lines]
        if self.dropped:
            texts.append(f"[{self.dropped} more lines of output were not kept]")
        return texts

    def _keep(self, event: Log) -> None:
        line = event.line[:_MAX_LINE].replace("\x00", "\ufffd")
        if self._size + len(line) > self.max_log_bytes:
            self.dropped += 1
            return
        self._size += len(line)
        self.lines.append(Log(line=line, stream=event.stream, level=event.level))


def watch_of(platform: Platform, started: Started, job: Job) -> Watch:
    """The Watch of one run of an invocation."""
    return Watch(
        runtime_of(platform),
        job,
        platform.settings.functions_max_log_bytes,
        depth=len(started.caller.limits),
        queued=started.mode == "async",
    )


class Started(msgspec.Struct, frozen=True):
    """An invocation's fixed fields, as recorded when it started (or was queued)."""

    id: str
    spec: FunctionSpec
    caller: Principal
    mode: InvocationMode
    timeout: float
    created_at: datetime
    started_at: datetime | None


def invocation_row(started: Started, params: Any = None) -> dict[str, Any]:
    """The columns of a new invocation record, but its status."""
    caller = started.caller
    return {
        "id": started.id,
        "function_id": started.spec.id,
        "function_name": started.spec.name,
        "version": started.spec.version,
        "mode": started.mode,
        "timeout": started.timeout,
        "params": None if params is None else msgspec.json.encode(params).decode(),
        "user_id": caller.user_id,
        "username": caller.username,
        "session_id": caller.session_id,
        "api_key_id": caller.api_key_id,
        "limits": [sorted(scopes) for scopes in caller.limits] or None,
        "created_at": started.created_at,
        "started_at": started.started_at,
    }


async def record(
    platform: Platform,
    tenant: str,
    started: Started,
    outcome: Outcome,
    watch: Watch | None,
    *,
    insert: bool,
) -> None:
    """Keep how a run ended (a new record for a sync or streamed run; the queued record for
    an async one), its output as log entries, and meter it. A new record is written just
    after the caller's answer (`records.py`); the run's token acts no more from here on."""
    if watch is not None:
        if watch.recorded:  # at its deadline already, or by its caller's going away
            return
        watch.recorded = True
    finished = utcnow()
    lines = watch.lines if watch else []
    token = watch.job.env["ROOST_TOKEN"] if watch is not None else None
    platform.meter.count_function(tenant, started.caller.api_key_id, outcome.duration_ms)
    if insert:

        def rows() -> Rows:
            values = _final_values(platform, outcome, watch, finished)
            return {**invocation_row(started), **values}, _log_entries(started, lines, finished)

        pending = PendingRecord(
            tenant,
            started.id,
            rows,
            token,
            platform.clock.time() + started.timeout + TOKEN_GRACE,
        )
        if token is not None and platform.function_records.take_presented(platform, started.id):
            principals.end_runtime_token_here(platform, token)
        await platform.function_records.add(platform, pending)
        return
    values = _final_values(platform, outcome, watch, finished)
    entries = _log_entries(started, lines, finished)
    keep = (
        function_invocations.update()
        .where(function_invocations.c.id == started.id)
        .values(**values)
    )

    def write(conn: Connection) -> None:
        conn.execute(keep)
        if entries:
            conn.execute(logs.insert(), entries)

    await platform.db.run(tenant, write, write=True)
    platform.function_records.take_presented(platform, started.id)  # forgotten just below
    if token is not None:  # recorded as over: its token acts no more (a copy kept, or stolen)
        principals.end_runtime_token(platform, token)


def _final_values(
    platform: Platform, outcome: Outcome, watch: Watch | None, finished: datetime
) -> dict[str, Any]:
    """The columns a run's end sets."""
    values: dict[str, Any] = {
        "status": outcome.status,
        "result": None,
        "error": outcome.message,
        "traceback": outcome.traceback,
        "logs": msgspec.json.encode(watch.log_texts() if watch else []).decode(),
        "duration_ms": outcome.duration_ms,
        "finished_at": finished,
    }
    if outcome.status == "SUCCESS" and outcome.result is not None:
        encoded = msgspec.json.encode(outcome.result)
        if len(encoded) <= platform.settings.functions_max_result_bytes:
            values["result"] = encoded.decode()
        else:
            values["error"] = (
                f"the result ({len(encoded)} bytes of JSON) was larger than the server keeps "
                f"({platform.settings.functions_max_result_bytes}); only its caller got it"
            )
    return values


async def run_to_end(
    platform: Platform, tenant: str, started: Started, params: Any, *, insert: bool
) -> Outcome:
    """Run a unary invocation through and record it, whatever happened: a refusal before
    the runtime had it (a missing secret, a caller who may no longer act) is a FAILURE."""
    watch: Watch | None = None
    # a queued run's token is its attempt's: a run again (redelivered) outdates the last one's
    stamp = None if insert or started.started_at is None else attempt_stamp(started.started_at)
    try:
        job = await prepare(
            platform,
            tenant,
            started.spec,
            started.caller,
            params,
            time_limit=started.timeout,
            invocation_id=started.id,
            stream=False,
            attempt=stamp,
        )
        watch = watch_of(platform, started, job)
        outcome = await watch.finish()
    except (ValidationError, SecretNotFoundError) as exc:
        if insert:  # a sync caller is told at once; nothing ran, nothing to keep
            raise
        outcome = Outcome("FAILURE", message=exc.message)
    except (RateLimitError, ServiceUnavailableError):
        raise  # refused before it ran (no share or place for it in the pool): nothing to keep
    except BaseException as exc:
        # a sync run whose caller went away (its call cancelled) ends here, and its token with
        # it: the worker is killed, but what the function sent of the token must not act on
        if insert and watch is not None and watch.sent:
            record_later(platform, tenant, started, watch.outcome or stopped(exc), watch)
        raise
    await record(platform, tenant, started, outcome, watch, insert=insert)
    return outcome


def timed_out(timeout: float) -> Outcome:
    """The end of a run that went past its timeout (as the pool says it)."""
    return Outcome("TIMEOUT", message=timeout_message(timeout))


def stopped(exc: BaseException) -> Outcome:
    """How a run ended that its caller stopped (or that broke on the server's side)."""
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return Outcome("FAILURE", message="cancelled: the caller stopped")
    return Outcome("FAILURE", message=f"the run was stopped: {type(exc).__name__}")


def record_later(
    platform: Platform, tenant: str, started: Started, outcome: Outcome, watch: Watch
) -> None:
    """Record a sync or streamed run that its caller stopped; in a task of its own, as the code
    that ran it is being cancelled (or closed) and must not wait."""

    async def keep() -> None:
        try:
            await record(platform, tenant, started, outcome, watch, insert=True)
        except Exception:
            logger.exception("the stopped invocation %s could not be recorded", started.id)

    platform.spawn(keep())


async def _roles(platform: Platform, tenant: str, user_id: str) -> tuple[str, ...]:
    async def load() -> tuple[str, ...]:
        async with platform.db.read(tenant) as conn:
            user = await accounts.find_by_id(conn, user_id)
            if user is None:
                return ()
            names, _ = await accounts.roles_and_scopes(conn, user, platform.clock.now())
        return tuple(names)

    return await _ROLES.of(platform).get_or_load(f"{tenant}/{user_id}", load)


async def _secrets(
    platform: Platform, tenant: str, caller: Principal, spec: FunctionSpec
) -> dict[str, str]:
    """The declared secrets as environment variables (the app's own value over the
    tenant-wide one). A declared secret that is not set refuses the run."""
    if not spec.secrets:
        return {}
    ctx = Context(platform=platform, tenant=tenant, principal=caller)
    found = await secret_store.get_secrets(
        ctx, GetSecretsRequest(keys=list(spec.secrets), app=spec.app)
    )
    if missing := sorted(set(spec.secrets) - set(found)):
        raise SecretNotFoundError(
            f"{spec.name} reads the secrets {', '.join(missing)}, which are not set",
            details={"secrets": missing},
        )
    return {key: secret.value for key, secret in found.items()}


def _log_entries(started: Started, lines: list[Log], at: datetime) -> list[dict[str, Any]]:
    category = f"functions:{started.spec.name}"
    return [
        {
            "at": at,
            "level_no": LEVELS[_level(line)],
            "category": category,
            "message": line.line or " ",
            "data": {
                "execution_id": started.id,
                "function": started.spec.name,
                "version": started.spec.version,
                "stream": line.stream,
            },
            "exception": None,
            "source": None,
            "username": started.caller.username,
        }
        for line in lines
    ]


def _level(line: Log) -> Level:
    named = _LEVEL_NAMES.get(line.level.lower())
    if named is not None:
        return named
    return "warn" if line.stream == "stderr" else "info"
