"""A pool of warm, sandboxed worker processes that run function calls.

`size` places, each holding at most one worker process, so at most `size` calls run at once
(the rest wait their turn). A worker starts as a spare (interpreter and SDK loaded, confined,
bound to nothing); the first call of a function version binds it (its code is copied into the
worker's read-only code folder and imported), and later calls of that version find it warm.
A call of a version with no warm worker takes a spare, else replaces the least recently used
idle worker. A worker that times out, crashes, overruns its output, is abandoned by its caller
or leaves a process or thread behind is killed with everything it started, and a fresh spare
takes its place; the pool keeps serving. A run's timeout holds whether or not its events are
read: a watchdog kills its worker at the deadline.

A tenant runs at most its share of the places at once (`max_runs_per_tenant`, half the pool
by default): its calls past it are refused (429), or wait if they are queued (async) runs. A
call made by a running function (`depth` > 0) never waits for a place, as the places its
chain holds could be all there are: it is refused at once (503) when none is free; and its
tenant's share grows by one per level of the chain (one level always; past that, never to
the pool's last place).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from roost.errors import RateLimitError, ServiceUnavailableError
from roost.functions import sandbox
from roost.functions.process import (
    Broken,
    Exited,
    Key,
    Message,
    Overrun,
    TimedOut,
    WorkerProcess,
)
from roost.functions.protocol import (
    Event,
    Failed,
    Finished,
    Idle,
    Item,
    Job,
    Log,
    Ready,
    Setup,
    timeout_message,
)
from roost.functions.relay import Relay

if TYPE_CHECKING:
    from roost.settings import Settings

logger = logging.getLogger("roost.functions")

RESTART_TRIES = 3  # starts of a replaced worker before its place is left to `_recover`
RESTART_PAUSE = 0.5  # seconds after a failed start, doubled after each
RECOVER_PAUSE = 5.0  # seconds between tries to bring back a place that is down


class WorkerStartError(RuntimeError):
    """A worker process could not be started or did not report ready."""


class PoolStats(msgspec.Struct, frozen=True):
    """What `health` shows of the function runtime."""

    isolation: str
    size: int
    busy: int
    warm: int  # bound to a function version, waiting for its next call
    spare: int  # started, bound to nothing yet
    starting: int
    down: int  # places whose worker could not be restarted (retried every few seconds)
    started: int  # worker processes started since the pool started
    replaced: dict[str, int]  # workers killed and replaced, by reason
    runs: int
    failures: int
    timeouts: int


class WorkerPool:
    """Warm sandboxed workers; `run(job)` streams a call's events. Use `start()` first."""

    def __init__(
        self,
        *,
        size: int,
        run_dir: Path,
        api_url: str,
        isolation: str = "auto",
        max_output_bytes: int = 10 * 1024 * 1024,
        max_processes: int = 32,
        max_open_files: int = 256,
        max_file_bytes: int = 64 * 1024 * 1024,
        tmp_bytes: int = 64 * 1024 * 1024,
        cpu_seconds: int = 3600,
        idle_seconds: float = 300.0,
        uid_base: int = 1_500_000,
        start_timeout: float = 30.0,
        max_runs_per_tenant: int | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self.size = size
        self.per_tenant = max_runs_per_tenant or (size + 1) // 2
        self.run_dir = Path(run_dir)
        self.api_url = api_url
        self.isolation: str = isolation
        self._mode = isolation
        self._max_output = max_output_bytes
        self._max_processes = max_processes
        self._max_open_files = max_open_files
        self._max_file_bytes = max_file_bytes
        self._tmp_bytes = tmp_bytes
        self._cpu_seconds = cpu_seconds
        self._idle_seconds = idle_seconds
        self.uid_base = uid_base
        self._start_timeout = start_timeout
        self._kind: sandbox.Kind = "fallback"
        self._slots: list[WorkerProcess | None] = [None] * size
        # every worker started and not yet seen dead, in a place or not: `close` kills them all
        self._spawned: set[WorkerProcess] = set()
        self._starting: dict[int, asyncio.Task[None]] = {}
        self._down: dict[int, str] = {}  # places whose worker could not be restarted: why
        self._turns = asyncio.Semaphore(size)
        self._changed = asyncio.Condition()
        self._waiting = 0  # calls waiting on `_changed` (none: a change needs no notice)
        self._relays: list[Relay] = []
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._tmp_warned = False
        self._started = 0
        self._replaced: Counter[str] = Counter()
        self._outcomes: Counter[str] = Counter()
        self._tenant_runs: Counter[str] = Counter()  # calls admitted (running or waiting)
        self._start_task: asyncio.Task[None] | None = None
        self.failure: str | None = None  # why the pool could not start (None: it did, or may)

    @classmethod
    def from_settings(cls, settings: Settings, *, run_dir: Path, api_url: str) -> WorkerPool:
        """A pool sized and limited by the `ROOST_FUNCTIONS_*` settings."""
        return cls(
            size=settings.functions_pool_size,
            run_dir=run_dir,
            api_url=api_url,
            isolation=settings.functions_isolation,
            max_output_bytes=settings.functions_max_output_bytes,
            max_processes=settings.functions_max_processes,
            max_file_bytes=settings.functions_tmp_bytes,
            tmp_bytes=settings.functions_tmp_bytes,
            uid_base=settings.functions_uid_base,
            max_runs_per_tenant=settings.functions_max_runs_per_tenant,
        )

    # -- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Choose the isolation, start the API relays and every worker; raises
        ConfigurationError if the host can sandbox nothing, WorkerStartError if a worker
        cannot start."""
        self._kind = await asyncio.to_thread(sandbox.choose, self._mode)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o755)  # noqa: S103 - workers' uids reach their own folders
        if os.geteuid() == 0:
            if self._kind == "fallback":
                sandbox.check_reachable(self.run_dir)
            sandbox.check_uids_free(range(self.uid_base, self.uid_base + self.size))
        try:
            # a relay per place: no worker hoards another's connections
            self._relays = [Relay(self.api_url) for _ in range(self.size)]
            if self._kind == "bubblewrap":
                for index, relay in enumerate(self._relays):
                    await relay.listen(self._relay_dir(index) / sandbox.RELAY_SOCKET)
            # a task group, not gather: a start that fails cancels the others and waits for
            # them (each kills its worker), so none goes on untracked while the pool closes
            async with asyncio.TaskGroup() as starts:
                for index in range(self.size):
                    starts.create_task(self._start_worker(index))
        except BaseExceptionGroup as group:
            await self.close()
            raise group.exceptions[0] from group  # the first failure: callers expect one
        except BaseException:
            await self.close()
            raise
        self._spawn_background(self._retire_idle())
        first = self._slots[0]
        self.isolation = first.isolation if first is not None else self._kind

    def start_soon(self) -> None:
        """Start in the background (`start`): calls wait for it, up to the start timeout; a
        pool that fails to start keeps the reason in `failure`, and refuses calls (503)."""
        self._start_task = asyncio.get_running_loop().create_task(self._start_or_fail())

    async def _start_or_fail(self) -> None:
        try:
            await self.start()
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"[:300]
            logger.exception("the function runtime could not start; functions will not run")
        else:
            logger.info("function runtime: %d workers, isolation %s", self.size, self.isolation)

    async def ready(self) -> bool:
        """Whether the pool runs, once a background start (`start_soon`) has ended."""
        if self._start_task is not None:
            await asyncio.wait({self._start_task})  # its failure is kept, not raised
        return self.failure is None

    async def _wait_started(self) -> None:
        """Wait for a background start under way, up to the start timeout; raises
        ServiceUnavailableError if the pool could not start, or has not yet."""
        task = self._start_task
        if task is not None and not task.done():
            # a caller that gives up waiting leaves the start running for the next
            done, _ = await asyncio.wait({task}, timeout=self._start_timeout)
            if not done:
                raise ServiceUnavailableError(
                    "the function runtime is still starting; try again shortly",
                    code="functions_starting",
                    retry_after=1.0,
                )
        if self.failure is not None:
            raise ServiceUnavailableError(  # the reason (paths, uids) is for health and the log
                "the function runtime could not start on this server (see its health)",
                code="functions_unavailable",
            )

    async def close(self) -> None:
        """Kill every worker and stop the relay; calls under way end as failures."""
        self._closed = True
        start = self._start_task
        if start is not None and start is not asyncio.current_task() and not start.done():
            start.cancel()  # a start under way closes what it started
            with contextlib.suppress(asyncio.CancelledError):
                await start
        # Workers being started are let finish: they see the pool closed and kill themselves.
        # A call that ends meanwhile may replace its worker (`_replace`): that restart kills
        # the worker, and is waited for too, else the loop may close with the worker alive.
        tasks = self._background, self._starting.values()
        while pending := [task for group in tasks for task in group if not task.done()]:
            for task in self._background:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        workers = {w for w in self._slots if w is not None}
        self._slots = [None] * self.size
        strays = {w for w in self._spawned if w.process.returncode is None} - workers
        if strays:  # a path that lost its worker: killed here, else it outlives the loop
            logger.error("function workers outside the pool's places at close: %d", len(strays))
        self._spawned.clear()
        await asyncio.gather(*(worker.kill() for worker in workers | strays))
        await asyncio.gather(*(relay.close() for relay in self._relays))
        await asyncio.to_thread(self._remove_slots)

    def stats(self) -> PoolStats:
        """The pool's figures; raises ServiceUnavailableError if it could not start."""
        if self.failure is not None:
            raise ServiceUnavailableError(f"the function runtime could not start: {self.failure}")
        workers = [w for w in self._slots if w is not None]
        return PoolStats(
            isolation=self.isolation,
            size=self.size,
            busy=sum(w.busy for w in workers),
            warm=sum(not w.busy and w.key is not None for w in workers),
            spare=sum(not w.busy and w.key is None for w in workers),
            starting=len(self._starting) + self._first_starting(),
            down=len(self._down),
            started=self._started,
            replaced=dict(self._replaced),
            runs=sum(self._outcomes.values()),
            failures=self._outcomes["FAILURE"],
            timeouts=self._outcomes["TIMEOUT"],
        )

    def _first_starting(self) -> int:
        """The places still starting their first worker, in a background start."""
        if self._start_task is None or self._start_task.done():
            return 0
        return sum(worker is None for worker in self._slots)

    # -- calls --------------------------------------------------------------------------------

    async def run(
        self,
        job: Job,
        *,
        depth: int = 0,
        queued: bool = False,
        on_sent: Callable[[], None] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Run one call: its items and log lines as they come, then one Finished or Failed.
        Closing the iterator early kills the worker (the call stops there). `depth`: how
        many runs wait on this one (a call made by a running function: 1); `queued`: an
        async run, which may wait for its tenant's share. Raises RateLimitError (past the
        tenant's share) or ServiceUnavailableError (a nested call, no place free; or the pool
        could not start) before anything runs."""
        starting = self._start_task is not None and not self._start_task.done()
        if starting or self.failure is not None:
            await self._wait_started()
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        if not (0 < job.timeout < math.inf and job.memory_mb > 0):
            raise ValueError("a job needs a positive, finite timeout and memory_mb")
        started = time.monotonic()
        turn = await self._take_place(job.tenant, depth, queued)
        try:
            try:
                worker = await self._checkout(job)
            except WorkerStartError as exc:
                self._outcomes["FAILURE"] += 1
                yield Failed("FAILURE", str(exc), "", _ms_since(started))
                return
            done = False
            # the deadline in _drive holds only while someone reads the events: a reader that
            # stops (a stream nobody reads) must not let the handler run on with its token,
            # nor keep its turn from the next call
            loop = asyncio.get_running_loop()
            watchdog = loop.call_at(loop.time() + job.timeout, self._time_out, worker, turn)
            try:
                async for event in self._drive(worker, job, started, watchdog, on_sent):
                    if isinstance(event, Finished | Failed):
                        self._outcomes[
                            "SUCCESS" if isinstance(event, Finished) else event.status
                        ] += 1
                        done = True
                    yield event
            finally:
                watchdog.cancel()
                if not done:
                    self._replace(worker, "cancelled")
        finally:
            self._leave_place(job.tenant, turn)

    def _time_out(self, worker: WorkerProcess, turn: _Turn) -> None:
        """A run's deadline passed: its worker is killed and its turn given to the next call
        now, whether or not anyone reads its events (its reader learns of the timeout when it
        reads again: the watchdog's mark, after whatever the run sent before)."""
        self._replace(worker, "timeout")
        worker.events.put_nowait((TimedOut(), 0))
        turn.give_back()

    async def _take_place(self, tenant: str, depth: int, queued: bool) -> _Turn:
        """A turn of the pool, within the tenant's share of it (the turn may be given back
        early, by the run's watchdog; the share is held until `_leave_place`)."""
        # a nested call may go one further per level, as its caller holds a place while it
        # waits on it: one level always, more only while a place is left for other tenants
        share = min(self.per_tenant + depth, max(self.per_tenant + 1, self.size - 1))
        if self._tenant_runs[tenant] >= share:
            if not queued:
                raise RateLimitError(
                    f"this tenant runs {share} functions at once on this server already, its "
                    f"share of the {self.size} workers (limit {self.per_tenant} per tenant, "
                    "ROOST_FUNCTIONS_MAX_RUNS_PER_TENANT)",
                    code="too_many_runs",
                    retry_after=1.0,
                    details={
                        "per": "tenant",
                        "limit": share,
                        "setting": "functions_max_runs_per_tenant",
                    },
                )
            async with self._changed:
                with self._waits():
                    await self._changed.wait_for(lambda: self._tenant_runs[tenant] < share)
        if depth and not queued and self._turns.locked():
            raise ServiceUnavailableError(
                "every function worker is busy; a function's call of another does not wait "
                "for one, as the workers its own chain holds could be all there are",
                code="functions_busy",
                retry_after=1.0,
            )
        self._tenant_runs[tenant] += 1
        try:
            await self._turns.acquire()
        except BaseException:
            self._leave_share(tenant)
            raise
        return _Turn(self._turns)

    def _leave_place(self, tenant: str, turn: _Turn) -> None:
        turn.give_back()
        self._leave_share(tenant)

    def _leave_share(self, tenant: str) -> None:
        self._tenant_runs[tenant] -= 1
        if self._tenant_runs[tenant] <= 0:
            del self._tenant_runs[tenant]
        self._notify()

    async def _drive(
        self,
        worker: WorkerProcess,
        job: Job,
        started: float,
        watchdog: asyncio.TimerHandle,
        on_sent: Callable[[], None] | None,
    ) -> AsyncIterator[Event]:
        loop = asyncio.get_running_loop()
        deadline = watchdog.when()
        inside = msgspec.structs.replace(job, code_dir=worker.slot.code_inside(self._kind))
        if on_sent is not None:
            on_sent()  # from here on the worker may hold the job (its token, its params)
        await worker.send(inside)
        sent = 0
        final: Finished | Failed | None = None
        while True:
            # past the deadline, the watchdog has killed the worker (or is about to) and put
            # its mark in `events`: no timer of our own per event
            message: Message
            if loop.time() >= deadline:
                message, size = TimedOut(), 0
            else:
                message, size = await worker.events.get()
            if isinstance(message, TimedOut):
                self._replace(worker, "timeout")
                yield Failed("TIMEOUT", timeout_message(job.timeout), "", _ms_since(started))
                return
            if isinstance(message, Log) and final is not None:
                continue  # a late raw line of a finished run
            if isinstance(message, Idle):
                watchdog.cancel()  # before the worker may serve another run
                worker.end_run()
                self._release(worker, message)
                if final is not None:
                    yield final
                return
            failure = await self._failure(worker, job, message, sent + size, final is not None)
            if failure is not None:
                self._replace(worker, failure[0])
                yield final or Failed("FAILURE", failure[1], "", _ms_since(started))
                return
            if isinstance(message, Finished | Failed):
                final = message  # sent once the worker says whether it stays
            elif isinstance(message, Item | Log):
                sent += size
                yield message

    async def _failure(
        self, worker: WorkerProcess, job: Job, message: object, sent: int, ended: bool
    ) -> tuple[str, str] | None:
        """Why the run cannot go on (a reason for the stats, a message for the caller)."""
        if isinstance(message, Exited):
            return "crashed", await worker.death(job)
        if isinstance(message, Broken):
            return "broken", f"the worker {message.reason}"
        if isinstance(message, Overrun) or sent > self._max_output:
            return "output", (
                f"the run sent more than {self._max_output} bytes of output (printed and "
                "logged lines, items and result together)"
            )
        if isinstance(message, Ready) or (ended and not isinstance(message, Idle)):
            return "broken", "the worker broke the protocol"
        return None

    # -- placing calls on workers -------------------------------------------------------------

    async def _checkout(self, job: Job) -> WorkerProcess:
        """A worker bound to the job's function version, marked busy."""
        key: Key = (job.tenant, job.function, job.version, job.code_dir, job.memory_mb)
        warm = self._warm(key)  # most calls: nothing to wait for, no lock to take
        if warm is not None:
            return warm
        async with self._changed:
            while True:
                worker = self._warm(key)
                if worker is not None:
                    return worker
                free = [w for w in self._slots if w is not None and not w.busy]
                spare = next((w for w in free if w.key is None), None)
                if spare is not None:
                    spare.busy = True
                    break
                if free:  # only other versions' workers: the longest idle one makes room
                    self._replace(min(free, key=lambda w: w.last_used), "evicted")
                elif not self._starting:
                    raise WorkerStartError(self._why_down())
                with self._waits():
                    await self._changed.wait()
        try:
            await asyncio.to_thread(spare.slot.install, Path(job.code_dir))
        except OSError as exc:
            self._replace(spare, "broken")
            raise WorkerStartError(str(exc)) from exc
        except BaseException:
            self._replace(spare, "broken")
            raise
        spare.key = key
        return spare

    def _warm(self, key: Key) -> WorkerProcess | None:
        """The most recently used idle worker bound to `key`, marked busy; None if none is."""
        warm = None
        for worker in self._slots:
            if (
                worker is not None
                and not worker.busy
                and worker.key == key
                and (warm is None or worker.last_used > warm.last_used)
            ):
                warm = worker
        if warm is not None:
            warm.busy = True
        return warm

    def _why_down(self) -> str:
        """What a call is told when every place is busy or down, and none is starting."""
        if not self._down:
            return "no function worker could be started"
        reason = next(iter(self._down.values()))
        return (
            f"{len(self._down)} of the {self.size} function workers could not be restarted "
            f"(the server retries every {RECOVER_PAUSE:g} s; try again shortly): {reason}"
        )

    def _release(self, worker: WorkerProcess, idle: Idle) -> None:
        worker.last_used = time.monotonic()
        if not idle.clean:
            self._replace(worker, "unclean")
        elif idle.cpu_seconds > self._cpu_seconds / 2:
            self._replace(worker, "cpu")
        else:
            worker.busy = False
            self._notify()

    def _replace(self, worker: WorkerProcess, reason: str) -> None:
        """Take the worker out of service now; kill it and start a spare in its place."""
        index = worker.slot.index
        if self._slots[index] is not worker:
            return
        self._slots[index] = None
        self._replaced[reason] += 1
        self._starting[index] = asyncio.get_running_loop().create_task(self._restart(worker, index))

    async def _restart(self, worker: WorkerProcess, index: int) -> None:
        try:
            await worker.kill()
            await self._start_with_retries(index)
        finally:
            self._starting.pop(index, None)
            self._notify()

    async def _start_with_retries(self, index: int) -> None:
        """Start the place's worker, trying again after a pause when a start fails (a loaded
        host may miss the start timeout once; a killed worker's folders may take a moment to
        go). A place still down after `RESTART_TRIES` is left to `_recover`, and calls are
        told why meanwhile."""
        for attempt in range(RESTART_TRIES):
            if self._closed:
                return
            exc = await self._try_start(index)
            if exc is None:
                return
            logger.warning(
                "function worker %d could not be restarted (try %d of %d): %s",
                index, attempt + 1, RESTART_TRIES, exc,
            )  # fmt: skip
            if attempt + 1 < RESTART_TRIES:
                await asyncio.sleep(RESTART_PAUSE * 2**attempt)
        logger.error("function worker %d is down; retrying every %g s", index, RECOVER_PAUSE)
        self._spawn_background(self._recover(index))

    async def _recover(self, index: int) -> None:
        """Try, now and then, to bring back a place whose worker could not be restarted."""
        while not self._closed and self._slots[index] is None and index not in self._starting:
            await asyncio.sleep(RECOVER_PAUSE)
            if self._closed or self._slots[index] is not None or index in self._starting:
                return
            if await self._try_start(index) is None:
                logger.info("function worker %d is back", index)

    async def _try_start(self, index: int) -> WorkerStartError | OSError | None:
        """Start the place's worker; on failure the place is down, with the reason calls
        are told (`_why_down`), and the error is returned."""
        try:
            await self._start_worker(index)
        except (WorkerStartError, OSError) as exc:
            self._down[index] = f"{type(exc).__name__}: {exc}"[:300]
            return exc
        self._down.pop(index, None)
        return None

    async def _retire_idle(self) -> None:
        """Warm workers unused for idle_seconds go back to spares (memory, and a fresh tmp)."""
        while True:
            await asyncio.sleep(max(self._idle_seconds / 4, 0.5))
            now = time.monotonic()
            for worker in list(self._slots):
                if (
                    worker is not None
                    and not worker.busy
                    and worker.key is not None
                    and now - worker.last_used > self._idle_seconds
                ):
                    self._replace(worker, "idle")

    @contextlib.contextmanager
    def _waits(self) -> Iterator[None]:
        """Count a call waiting on `_changed` while it waits."""
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1

    def _notify(self) -> None:
        if self._waiting:  # a task per change otherwise: most calls end with nobody waiting
            self._spawn_background(self._notify_now())

    async def _notify_now(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _spawn_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- worker processes ---------------------------------------------------------------------

    def _slot(self, index: int) -> sandbox.Slot:
        return sandbox.Slot(index, self.run_dir / "slots" / str(index))

    def _remove_slots(self) -> None:
        for index in range(self.size):
            self._slot(index).remove()
        shutil.rmtree(self.run_dir / "slots", ignore_errors=True)

    def _relay_dir(self, index: int) -> Path:
        return self.run_dir / "relays" / str(index)

    def _uid(self, index: int) -> int | None:
        return self.uid_base + index if os.geteuid() == 0 else None

    async def _start_worker(self, index: int) -> None:
        slot = self._slot(index)
        uid = self._uid(index)
        unbounded = await asyncio.to_thread(slot.reset, self._kind, uid, self._tmp_bytes)
        if unbounded and not self._tmp_warned:
            self._tmp_warned = True
            logger.warning(
                "function workers' tmp is bounded per file only, not as a whole (no tmpfs: %s)",
                unbounded,
            )
        worker = await WorkerProcess.spawn(
            lambda fds: sandbox.command(
                self._kind, slot, self._relay_dir(index), self._tmp_bytes, fds
            ),
            sandbox.environment(self._kind, slot),
            slot,
            self._setup(slot, uid),
            on_idle_exit=lambda dead: self._replace(dead, "crashed"),
            door=self._relays[index] if self._kind == "fallback" else None,
        )
        self._spawned = {w for w in self._spawned if w.process.returncode is None}
        self._spawned.add(worker)
        try:
            async with asyncio.timeout(self._start_timeout):
                message, _ = await worker.events.get()
        except TimeoutError:
            message = Broken(f"did not report ready in {self._start_timeout:g} s")
        except BaseException:  # cancelled: the pool is closing
            await worker.kill()
            raise
        if not isinstance(message, Ready):
            await worker.kill()
            reason = message.reason if isinstance(message, Broken) else "exited at start"
            tail = "\n".join(worker.tail)
            raise WorkerStartError(f"a function worker {reason}" + (f": {tail}" if tail else ""))
        worker.isolation = message.isolation
        self._started += 1
        if self._closed:
            await worker.kill()
            return
        self._slots[index] = worker
        self._notify()

    def _setup(self, slot: sandbox.Slot, uid: int | None) -> Setup:
        bubblewrap = self._kind == "bubblewrap"
        read, write = ([], []) if bubblewrap else sandbox.fallback_paths(slot)
        # RLIMIT_NPROC counts per uid: it binds a worker apart only under a uid of its own
        # (root) or in a user namespace of its own (bubblewrap without root)
        counted_apart = uid is not None or bubblewrap
        return Setup(
            isolation=self._kind,
            uid=uid,
            max_processes=self._max_processes if counted_apart else 0,
            max_open_files=self._max_open_files,
            max_file_bytes=self._max_file_bytes,
            cpu_seconds=self._cpu_seconds,
            max_output_bytes=self._max_output,
            landlock_read=read,
            landlock_write=write,
            allow_unix_sockets=bubblewrap,
        )


class _Turn:
    """One of the pool's `size` turns, given back once: when its run ends, or earlier by the
    run's watchdog."""

    def __init__(self, turns: asyncio.Semaphore) -> None:
        self._turns: asyncio.Semaphore | None = turns

    def give_back(self) -> None:
        if self._turns is not None:
            self._turns.release()
            self._turns = None


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
