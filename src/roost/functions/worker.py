"""The program inside the sandbox: `python -m roost.functions.worker IN_FD OUT_FD`.

It reads a `Setup`, confines itself (confine.py), says `Ready`, then runs the jobs it is sent,
one at a time, until its input closes. A worker belongs to one function version of one tenant
for its whole life: the pool binds it with the first job and never sends it another version's
or tenant's, so modules, globals and the private tmp of one never meet another's, and a warm
call pays nothing but the call. Between calls of the same version it keeps its module, its
event loop and whatever the handler kept (as warm serverless runtimes do), but never a
process or a thread of a call: one left running would outlive the call's timeout with its
token and see the next calls' environment, so the worker then says it is unclean and the
pool replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import math
import os
import resource
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import msgspec

from roost.functions.capture import Channel, LineWriter, LogHandler, OutputLimitExceeded
from roost.functions.confine import address_space_in_use, confine
from roost.functions.protocol import (
    FRAME_HEADER,
    Failed,
    Finished,
    Idle,
    Item,
    Job,
    Ready,
    Setup,
    frame_length,
    to_worker_decoder,
)

DEFAULT_MODULE: Final = "main"
DOOR_ENV: Final = "ROOST_API_DOOR"  # the fd the SDK asks for API connections on (fallback)
RUNTIME_ENV: Final = ("ROOST_API_SOCKET", DOOR_ENV, "HOME", "TMPDIR", "PATH")  # jobs may not change
# what the environment keeps between two calls: the function version's own identity, the
# same for every caller (the rest of a call's, its token, id and the declared secrets, ends
# with the call; the next call sets its own, and a warm call only what differs)
KEPT_ENV: Final = frozenset(
    {
        "ROOST_API_URL",
        "ROOST_TENANT",
        "ROOST_APP",
        "ROOST_FUNCTION_ID",
        "ROOST_FUNCTION_NAME",
        "ROOST_FUNCTION_VERSION",
        "ROOST_RUNTIME",
    }
)
MESSAGE_MAX: Final = 2000
READ_SIZE: Final = 65536  # bytes asked of the input pipe at a time (its whole buffer)
THREADS_GRACE: Final = 0.1  # seconds threads on their way out (an executor's) may take


class NotSendable(Exception):
    """A result or item that MessagePack cannot carry (an object of the handler's own class,
    say)."""


class Runner:
    """Runs jobs of the one function version this worker is bound to."""

    def __init__(
        self,
        channel: Channel,
        loop: asyncio.AbstractEventLoop,
        idle_bytes: int,
        setup: Setup,
        tasks_fd: int,
    ) -> None:
        self._channel = channel
        self._max_processes = setup.max_processes
        self._loop = loop
        self._tasks_fd = tasks_fd  # /proc/self/task, opened before the sandbox closed
        self._executor = _executor(loop)
        self._idle_bytes = idle_bytes
        self._bound: tuple[str, str, int, str] | None = None
        self._environment = _Environment({k: v for k, v in os.environ.items() if k in RUNTIME_ENV})
        self._memory_mb = 0
        self._handlers: dict[str, Callable[..., Any]] = {}

    def run(self, job: Job) -> bool:
        """Run one job, sending its events; answers whether the worker is still clean."""
        started = time.monotonic()
        clean = True
        self._channel.start_job()
        try:
            self._prepare(job)
            result = self._call(self._handler(job), job)
            self._flush()
            self._send_value(Finished(result, _ms_since(started)), last=True)
        except BaseException as exc:  # the user's code may raise anything, even SystemExit
            clean = isinstance(exc, Exception) and not isinstance(exc, MemoryError | ImportError)
            self._flush_quietly()
            self._channel.end_job()
            self._channel.hold(self._failure(exc, job, started), output=False)
        finally:
            self._channel.end_job()
            self._environment.end()  # the caller's token and the secrets end with the call
        return (
            clean
            and not self._channel.exceeded
            and not _children_left()
            and not self._threads_left()
        )

    def _threads_left(self) -> bool:
        """Whether a thread of the job's still runs (counted by the kernel, so that threads
        started past `threading`, by C code or `_thread`, count too). The idle threads of the
        loop's default executor (asyncio.to_thread, getaddrinfo) are let go first: it is shut
        down and a fresh one takes its place."""
        if self._threads() == 1:
            return False
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = _executor(self._loop)
        deadline = time.monotonic() + THREADS_GRACE  # for threads on their way out
        while self._threads() > 1:
            if time.monotonic() > deadline:
                return True
            time.sleep(0.001)
        return False

    def _threads(self) -> int:
        """The threads of this process, as the kernel counts them: /proc/<pid>/task has a
        link per thread beside its two own (one fstat, cheaper than listing it)."""
        return os.fstat(self._tasks_fd).st_nlink - 2

    def _prepare(self, job: Job) -> None:
        key = (job.tenant, job.function, job.version, job.code_dir)
        if self._bound is None:
            self._bind(job)
            self._bound = key
        elif key != self._bound:
            raise RuntimeError("a worker runs one function version only")
        self._environment.start(job.env)
        current, hard = resource.getrlimit(resource.RLIMIT_CPU)
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = min(math.ceil(used.ru_utime + used.ru_stime + job.timeout) + 1, hard)
        if soft != current:  # whole seconds: warm calls of a few ms mostly find it set
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        asyncio.set_event_loop(self._loop)  # a handler's asyncio.run() unsets it

    def _bind(self, job: Job) -> None:
        self._memory_mb = job.memory_mb
        limit = self._idle_bytes + job.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        sys.path.insert(0, job.code_dir)

    def _handler(self, job: Job) -> Callable[..., Any]:
        """The entrypoint's function, looked up once (a worker runs one version)."""
        handler = self._handlers.get(job.entrypoint)
        if handler is None:
            handler = self._handlers[job.entrypoint] = self._look_up(job)
        return handler

    def _look_up(self, job: Job) -> Callable[..., Any]:
        module_name, _, name = job.entrypoint.rpartition(":")
        module = importlib.import_module(module_name or DEFAULT_MODULE)
        handler = getattr(module, name, None)
        if not callable(handler):
            raise LookupError(f"{module.__name__} has no function {name!r} (the entrypoint)")
        return handler  # type: ignore[no-any-return]

    def _call(self, handler: Callable[..., Any], job: Job) -> Any:
        value = handler(job.params, job.user_data)
        if inspect.isawaitable(value):
            value = self._loop.run_until_complete(_awaited(value))
        if inspect.isasyncgen(value):
            return self._loop.run_until_complete(self._drain_async(value, job.stream))
        if inspect.isgenerator(value):
            return self._drain(value, job.stream)
        return value

    def _drain(self, items: Iterator[Any], stream: bool) -> list[Any] | None:
        if not stream:
            return list(items)
        for item in items:
            self._send_value(Item(item))
        return None

    async def _drain_async(self, items: AsyncIterator[Any], stream: bool) -> list[Any] | None:
        if not stream:
            return [item async for item in items]
        async for item in items:
            self._send_value(Item(item))
        return None

    def _send_value(self, message: Item | Finished, *, last: bool = False) -> None:
        """Send an item, or hold the result (`last`) to go out with Idle."""
        try:
            if last:
                self._channel.hold(message, output=True)
            else:
                self._channel.send_output(message)
        except (TypeError, msgspec.EncodeError) as exc:
            kind = "an item" if isinstance(message, Item) else "the result"
            raise NotSendable(f"{kind} cannot be sent: {exc}") from None

    def _flush(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()

    def _flush_quietly(self) -> None:
        # the run already failed; its last unfinished line is lost with it
        with contextlib.suppress(OutputLimitExceeded, TypeError):
            self._flush()

    def _failure(self, exc: BaseException, job: Job, started: float) -> Failed:
        elapsed = _ms_since(started)
        if self._channel.exceeded or isinstance(exc, OutputLimitExceeded):
            message = (
                f"the run sent more than {self._channel.limit} bytes of output (printed and "
                "logged lines, items and result together)"
            )
            return Failed("FAILURE", message, "", elapsed)
        if isinstance(exc, MemoryError):
            message = f"the function ran out of memory (its limit is {self._memory_mb} MB)"
            return Failed("FAILURE", message, _user_traceback(exc), elapsed)
        if isinstance(exc, NotSendable):
            return Failed("FAILURE", str(exc), "", elapsed)
        if isinstance(exc, SystemExit):
            return Failed("FAILURE", f"the function called sys.exit({exc.code!r})", "", elapsed)
        message = f"{type(exc).__name__}: {exc}"[:MESSAGE_MAX]
        if isinstance(exc, BlockingIOError) and self._max_processes and _children_left():
            message += f" (the limit of {self._max_processes} processes and threads was reached)"
        return Failed("FAILURE", message, _user_traceback(exc), elapsed)


async def _awaited(value: Any) -> Any:
    return await value


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the handler's first frame on (the runtime's own frames dropped)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in _RUNTIME_FILES:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))[-64 * 1024 :]


def _executor(loop: asyncio.AbstractEventLoop) -> ThreadPoolExecutor:
    executor = ThreadPoolExecutor(thread_name_prefix="roost-job")
    loop.set_default_executor(executor)
    return executor


class _Environment:
    """os.environ as each job wants it: the runtime's variables (RUNTIME_ENV, which a job may
    not change), the function version's (KEPT_ENV, kept between jobs), and the call's own
    (the token, the execution id, the declared secrets), which `end` removes.

    Checking every variable through os.environ (each read encodes and decodes, in Python) was
    most of a warm call's time in a sandboxed worker (~40 of its ~65 us). So `start` keeps a
    copy of the bytes CPython holds behind os.environ once it holds the runtime's and the
    version's variables alone; when they are still those (one comparison: the last job and
    its `end` left them so) and the job's version variables are the last job's, it sets the
    call's own alone. Anything else (the first job, a handler that changed the environment)
    checks every variable."""

    def __init__(self, runtime: dict[str, str]) -> None:
        self._runtime = runtime
        self._kept: dict[str, str] | None = None  # the last job's version variables
        self._base: dict[bytes, bytes] | None = None  # os.environ's bytes with those alone
        self._own: list[str] = []  # the running job's own variables

    def start(self, env: dict[str, str]) -> None:
        """Make os.environ what the job with variables `env` wants."""
        kept: dict[str, str] = {}
        own: dict[str, str] = {}
        for key, value in env.items():
            if key in KEPT_ENV:
                kept[key] = value
            elif key not in RUNTIME_ENV:
                own[key] = value
        raw = _raw_environment()
        if raw is None or kept != self._kept or raw != self._base:
            _set_environment(kept | self._runtime)
            self._kept, raw = kept, _raw_environment()
            self._base = None if raw is None else dict(raw)
        for key, value in own.items():
            os.environ[key] = value
        self._own = list(own)

    def end(self) -> None:
        """Remove the job's own variables."""
        for key in self._own:
            os.environ.pop(key, None)
        self._own = []


def _raw_environment() -> dict[bytes, bytes] | None:
    """The bytes CPython keeps behind os.environ (None where it keeps no such dict)."""
    raw = getattr(os.environ, "_data", None)
    return raw if isinstance(raw, dict) else None


def _set_environment(wanted: dict[str, str]) -> None:
    """Make os.environ `wanted`, changing only what differs (each change is a putenv or an
    unsetenv)."""
    for key in [key for key in os.environ if key not in wanted]:
        del os.environ[key]
    for key, value in wanted.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _children_left() -> bool:
    """Reap what the job left exited; answers whether any process of it still runs (the
    worker is a child subreaper, so orphans count too)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


class Frames:
    """The pool's messages from the worker's input pipe: what one read brings is kept, so a
    job's header and body (one write of the pool's) take one read, not two."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def next(self) -> Setup | Job | None:
        """The next message; None once the pipe is closed."""
        header = self._take(FRAME_HEADER)
        if header is None:
            return None
        body = self._take(frame_length(header))
        return None if body is None else to_worker_decoder.decode(body)

    def _take(self, size: int) -> bytes | None:
        chunks, have = [self._buffer], len(self._buffer)
        while have < size:
            chunk = os.read(self._fd, min(max(size - have, READ_SIZE), 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            have += len(chunk)
        data = b"".join(chunks) if len(chunks) > 1 else chunks[0]
        self._buffer = data[size:]
        return data[:size]


def _capture_output(channel: Channel) -> None:
    sys.stdout = LineWriter(channel, "stdout", "INFO")
    sys.stderr = LineWriter(channel, "stderr", "ERROR")
    root = logging.getLogger()
    root.handlers[:] = [LogHandler(channel)]
    root.setLevel(logging.INFO)


_RUNTIME_FILES: Final = frozenset(
    {__file__, importlib.import_module("roost.functions.capture").__file__}
)


def main(argv: list[str]) -> None:
    in_fd, out_fd, *door = (int(arg) for arg in argv[1:4])
    for fd in (in_fd, out_fd, *door):
        os.set_inheritable(fd, False)  # the handler's subprocesses never get them
    if door:
        os.environ[DOOR_ENV] = str(door[0])
    tasks_fd = os.open("/proc/self/task", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    frames = Frames(in_fd)
    setup = frames.next()
    if not isinstance(setup, Setup):
        raise SystemExit("a worker starts with a Setup message")
    channel = Channel(out_fd, setup.max_output_bytes)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    idle_bytes = address_space_in_use()
    isolation = confine(setup)
    channel.send(Ready(isolation, os.getpid(), os.getuid()))
    runner = Runner(channel, loop, idle_bytes, setup, tasks_fd)
    _capture_output(channel)
    while (job := frames.next()) is not None:
        if not isinstance(job, Job):
            raise SystemExit("only jobs follow the Setup")
        clean = runner.run(job)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        channel.send(Idle(clean, usage.ru_utime + usage.ru_stime))


if __name__ == "__main__":
    main(sys.argv)
