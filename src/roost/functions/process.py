"""One worker process as the pool sees it: started with its pipes, read by two tasks into one
queue of messages, and killed with everything it started."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from roost.functions.protocol import (
    FRAME_HEADER,
    FromWorker,
    Job,
    Log,
    Setup,
    frame,
    frame_length,
    from_worker_decoder,
)
from roost.functions.sandbox import Slot

logger = logging.getLogger("roost.functions")
KILL_WAIT: Final = 10.0  # seconds a killed worker may take to be gone
TAIL_LINES: Final = 20  # a dead worker's last output lines, for the failure message
Key = tuple[str, str, int, str, int]  # tenant, function, version, code folder, memory_mb


@dataclass(frozen=True)
class Exited:
    """The worker's pipe closed: the process ended."""


@dataclass(frozen=True)
class Overrun:
    """The run sent more than its output allowance (counted as the bytes arrive, so that a
    worker writing past the runtime cannot fill the server's memory)."""


@dataclass(frozen=True)
class Broken:
    """The worker sent what no worker sends (too large, or not a message)."""

    reason: str


Message = FromWorker | Exited | Broken | Overrun


@dataclass(eq=False)
class WorkerProcess:
    """A started worker. `events` holds (message, bytes it took) in the order they came."""

    slot: Slot
    process: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    allowance: int  # bytes one job may send
    on_idle_exit: Callable[[WorkerProcess], None]
    events: asyncio.Queue[tuple[Message, int]] = field(default_factory=asyncio.Queue)
    isolation: str = ""
    key: Key | None = None
    busy: bool = False
    running: bool = False  # a job is under way: its raw output is the job's
    received: int = 0  # bytes the running job sent, frames and raw output together
    last_used: float = field(default_factory=time.monotonic)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    events_transport: asyncio.BaseTransport | None = None  # closed by `kill`

    @classmethod
    async def spawn(
        cls,
        argv: Callable[[tuple[int, int]], list[str]],
        env: dict[str, str],
        slot: Slot,
        setup: Setup,
        on_idle_exit: Callable[[WorkerProcess], None],
    ) -> WorkerProcess:
        """Start `argv((jobs_fd, events_fd))` in a process group of its own and send it
        `setup`; its `Ready` (or its end) is the first message of `events`."""
        loop = asyncio.get_running_loop()
        jobs_read, jobs_write = os.pipe()
        events_read, events_write = os.pipe()
        fds = (jobs_read, events_write)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv(fds),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=fds,
                env=env,
                cwd=slot.root,
                start_new_session=True,  # its own process group: killed as a whole
            )
        except BaseException:
            os.close(events_read)
            os.close(jobs_write)
            raise
        finally:
            os.close(jobs_read)
            os.close(events_write)
        try:
            reader = asyncio.StreamReader(limit=2**16)
            events_transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(events_read, "rb", 0)
            )
            transport, protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, os.fdopen(jobs_write, "wb", 0)
            )
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        worker = cls(slot, process, writer, setup.max_output_bytes, on_idle_exit)
        worker.events_transport = events_transport
        worker.tasks = [
            loop.create_task(worker._read_events(reader)),
            loop.create_task(worker._read_output()),
        ]
        writer.write(frame(setup))
        return worker

    async def send(self, job: Job) -> None:
        """Start a job: what arrives from now on is its."""
        self._drop_stale_lines()
        self.received = 0
        self.running = True
        with contextlib.suppress(ConnectionError):  # a dead worker shows as Exited
            self.writer.write(frame(job))
            await self.writer.drain()

    async def kill(self) -> None:
        """Kill the worker and everything it started (its process group, and under
        bubblewrap its pid namespace), and wait until it is gone."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.writer.close()
        try:
            async with asyncio.timeout(KILL_WAIT):
                await self.process.wait()
        except TimeoutError:  # stuck in the kernel: the pool must not be stuck with it
            logger.error(
                "function worker %d outlived SIGKILL: %s",
                self.process.pid,
                _state(self.process.pid),
            )
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.events_transport is not None:  # uvloop keeps the pipe open until closed
            self.events_transport.close()

    async def death(self, job: Job) -> str:
        """Why the worker ended, in a sentence, with its last output lines."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self.process.wait()
                await asyncio.gather(*self.tasks[1:], return_exceptions=True)  # output read
        number = signal_of(self.process.returncode)
        if number is None:
            cause = f"exit code {self.process.returncode}"
        elif number == signal.SIGXCPU:
            cause = f"SIGXCPU: it used more CPU time than its timeout of {job.timeout:g} s"
        elif number in (signal.SIGKILL, signal.SIGABRT):
            name = signal.Signals(number).name
            cause = f"{name}: it may have run out of memory, its limit is {job.memory_mb} MB"
        else:
            cause = signal.Signals(number).name
        tail = "\n".join(self.tail)
        return f"the function's worker died ({cause})" + (
            f"; its last output:\n{tail}" if tail else ""
        )

    async def _read_events(self, reader: asyncio.StreamReader) -> None:
        largest = self.allowance + 1024 * 1024
        try:
            while True:
                header = await reader.readexactly(FRAME_HEADER)
                length = frame_length(header)
                if length > largest:
                    self.events.put_nowait((Broken(f"sent a message of {length} bytes"), 0))
                    return
                if self.running and self._overran(FRAME_HEADER + length):
                    return
                body = await reader.readexactly(length)
                try:
                    message = from_worker_decoder.decode(body)
                except msgspec.DecodeError:
                    self.events.put_nowait((Broken("sent something that is no message"), 0))
                    return
                self.events.put_nowait((message, FRAME_HEADER + length))
        except (asyncio.IncompleteReadError, ConnectionError):
            self.events.put_nowait((Exited(), 0))
            if not self.busy:  # died waiting for work: replaced before a call meets it
                self.on_idle_exit(self)

    async def _read_output(self) -> None:
        """What reaches the worker's own stdout and stderr (a subprocess of the handler, a C
        library, a dying interpreter): log lines of the running job, and the tail kept for
        the message if the worker dies."""
        stream = self.process.stdout
        assert stream is not None
        partial = b""
        while chunk := await stream.read(65536):
            if self.running and self._overran(len(chunk)):
                return
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()[-65536:]
            for raw in lines:
                line = raw.decode(errors="replace")[:16384]
                self.tail.append(line)
                if self.running:
                    self.events.put_nowait((Log(line, "stdout", "INFO"), len(raw) + 32))

    def _overran(self, size: int) -> bool:
        """Count `size` more bytes of the running job; past the allowance (with room for
        framing) say so once and stop reading: the run ends there and the worker is killed."""
        self.received += size
        if self.received <= self.allowance + 64 * 1024:
            return False
        self.events.put_nowait((Overrun(), 0))
        return True

    def _drop_stale_lines(self) -> None:
        """Forget raw output lines that came after the last run ended (they are nobody's)."""
        kept = []
        while not self.events.empty():
            entry = self.events.get_nowait()
            if not isinstance(entry[0], Log):
                kept.append(entry)
        for entry in kept:
            self.events.put_nowait(entry)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat, open(f"/proc/{pid}/wchan") as wchan:
            return f"{stat.read().split(')')[-1].split()[0]} in {wchan.read()}"
    except OSError as exc:
        return str(exc)


def signal_of(returncode: int | None) -> int | None:
    """The signal that ended a worker: asyncio says -N; bwrap, which outlives its child,
    exits with 128 + N as a shell does."""
    if returncode is None:
        return None
    number = -returncode if returncode < 0 else returncode - 128
    return number if number in signal.valid_signals() and number > 0 else None
