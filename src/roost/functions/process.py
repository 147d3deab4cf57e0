"""One worker process as the pool sees it: started with its pipes, read into one queue of
messages, and killed with everything it started.

Three pipes (jobs in, events out, and what reaches the worker's own stdout and stderr) and,
under the fallback isolation, a door: one end of a socket pair on which the worker asks for
connections to the API (relay.py), since it may open no socket of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
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
from roost.functions.relay import Relay
from roost.functions.sandbox import Slot

logger = logging.getLogger("roost.functions")
KILL_WAIT: Final = 10.0  # seconds a killed worker may take to be gone
TAIL_LINES: Final = 20  # a dead worker's last output lines, for the failure message
OUTPUT_CHUNK: Final = 65536
OUTPUT_READS: Final = 16  # chunks read at a time: a chatty worker cannot hold the loop
Key = tuple[str, str, int, str, int]  # tenant, function, version, code folder, memory_mb


class Exited(msgspec.Struct, frozen=True):
    """The worker's pipe closed: the process ended."""


class Overrun(msgspec.Struct, frozen=True):
    """The run sent more than its output allowance (counted as the bytes arrive, so that a
    worker writing past the runtime cannot fill the server's memory)."""


class Broken(msgspec.Struct, frozen=True):
    """The worker sent what no worker sends (too large, or not a message)."""

    reason: str


class TimedOut(msgspec.Struct, frozen=True):
    """The run's deadline passed (put by the pool's watchdog, which killed the worker)."""


Message = FromWorker | Exited | Broken | Overrun | TimedOut


class WorkerProcess(msgspec.Struct, eq=False):
    """A started worker. `events` holds (message, bytes it took) in the order they came."""

    slot: Slot
    process: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    allowance: int  # bytes one job may send
    on_idle_exit: Callable[[WorkerProcess], None]
    events: asyncio.Queue[tuple[Message, int]] = msgspec.field(default_factory=asyncio.Queue)
    isolation: str = ""
    key: Key | None = None
    busy: bool = False
    running: bool = False  # a job is under way: its raw output is the job's
    received: int = 0  # bytes the running job sent, frames and raw output together
    last_used: float = msgspec.field(default_factory=time.monotonic)
    tail: deque[str] = msgspec.field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    tasks: list[asyncio.Task[None]] = msgspec.field(default_factory=list)
    events_transport: asyncio.BaseTransport | None = None  # closed by `kill`
    output_fd: int | None = None  # the worker's stdout and stderr; closed by `kill`
    output_poll: select.poll = msgspec.field(default_factory=select.poll)  # whether it has more
    partial: bytes = b""  # an unfinished line of that output
    overran: bool = False  # the run sent too much: what follows is read and dropped
    # every process that could write to the worker's stdout is gone (it is inherited by
    # all the worker starts, so this, not the end of the worker process, ends `kill`)
    output_closed: asyncio.Event = msgspec.field(default_factory=asyncio.Event)

    @classmethod
    async def spawn(
        cls,
        argv: Callable[[tuple[int, ...]], list[str]],
        env: dict[str, str],
        slot: Slot,
        setup: Setup,
        on_idle_exit: Callable[[WorkerProcess], None],
        door: Relay | None = None,
    ) -> WorkerProcess:
        """Start `argv((jobs_fd, events_fd[, door_fd]))` in a process group of its own and
        send it `setup`; its `Ready` (or its end) is the first message of `events`. With a
        `door`, the worker's requests for API connections are answered by that relay."""
        loop = asyncio.get_running_loop()
        ends = _Ends(door is not None)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv(ends.child),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=ends.output_write,
                stderr=ends.output_write,
                pass_fds=ends.child,
                env=env,
                cwd=slot.root,
                start_new_session=True,  # its own process group: killed as a whole
            )
        except BaseException:
            ends.close_our_ends()
            raise
        finally:
            ends.close_child_ends()
        transport: asyncio.WriteTransport | None = None
        try:
            transport, protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, os.fdopen(ends.jobs_write, "wb", 0)
            )
            writer = asyncio.StreamWriter(transport, protocol, None, loop)
            worker = cls(slot, process, writer, setup.max_output_bytes, on_idle_exit)
            worker.events_transport, _ = await loop.connect_read_pipe(
                lambda: _EventsProtocol(worker), os.fdopen(ends.events_read, "rb", 0)
            )
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            if transport is not None:
                transport.close()
            os.close(ends.output_read)
            if ends.door is not None:
                ends.door[0].close()
            raise
        worker.output_fd = ends.output_read
        worker.output_poll.register(ends.output_read, select.POLLIN)
        loop.add_reader(ends.output_read, worker.read_output)
        if door is not None and ends.door is not None:
            worker.tasks.append(loop.create_task(door.answer(ends.door[0])))
        writer.write(frame(setup))
        return worker

    async def send(self, job: Job) -> None:
        """Start a job: what arrives from now on is its (and no line of an earlier run, which
        may have been another caller's, shows in its logs or in the message of its death)."""
        self._drop_stale_lines()
        self.tail.clear()
        self.received = 0
        self.running = True
        with contextlib.suppress(ConnectionError):  # a dead worker shows as Exited
            self.writer.write(frame(job))
            if self.writer.transport.get_write_buffer_size():  # the pipe did not take it all
                await self.writer.drain()

    async def kill(self) -> None:
        """Kill the worker and everything it started (its process group, and under
        bubblewrap its pid namespace), and wait until it is gone."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.writer.close()
        try:
            try:
                async with asyncio.timeout(KILL_WAIT):
                    await self.process.wait()
                    await self.output_closed.wait()
            except TimeoutError:  # stuck in the kernel: the pool must not be stuck with it
                logger.error(
                    "function worker %d outlived SIGKILL: %s",
                    self.process.pid,
                    _state(self.process.pid),
                )
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        finally:  # a kill cancelled while it waits still lets go of the worker's pipes
            for task in self.tasks:
                task.cancel()
            if self.events_transport is not None:  # uvloop keeps the pipe open until closed
                self.events_transport.close()
            if self.output_fd is not None:
                self._stop_output()
                os.close(self.output_fd)
                self.output_fd = None

    def end_run(self) -> None:
        """The run said it is done (Idle): what it wrote to its stdout is in the pipe by now
        (the worker writes Idle after it, and a clean worker has no thread or process left
        to write more), so it is read at once, as nobody's: the next run starts clean."""
        self.running = False
        if self.output_poll.poll(0):  # cheaper than a read that finds nothing
            self.read_output()

    async def death(self, job: Job) -> str:
        """Why the worker ended, in a sentence, with its last output lines."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self.process.wait()
                await self.output_closed.wait()  # its last words read
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

    def _exited(self) -> None:
        """The worker's events pipe closed: the process ended."""
        self.events.put_nowait((Exited(), 0))
        if not self.busy:  # died waiting for work: replaced before a call meets it
            self.on_idle_exit(self)

    def read_output(self) -> None:
        """Read what reached the worker's own stdout and stderr (a subprocess of the handler,
        a C library, a dying interpreter): log lines of the running job, and the tail kept for
        the message if the worker dies. Called by the loop when there is some, and by
        `end_run` and `death` to take all there is now."""
        for _ in range(OUTPUT_READS):
            if self.output_fd is None or self.output_closed.is_set():
                return
            try:
                chunk = os.read(self.output_fd, OUTPUT_CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                self._stop_output()
                return
            if self.overran or (self.running and self._overran(len(chunk))):
                self.overran = True  # the run ends here and the worker is killed
                continue
            lines = (self.partial + chunk).split(b"\n")
            self.partial = lines.pop()[-OUTPUT_CHUNK:]
            for raw in lines:
                line = raw.decode(errors="replace")[:16384]
                self.tail.append(line)
                if self.running:
                    self.events.put_nowait((Log(line, "stdout", "INFO"), len(raw) + 32))

    def _stop_output(self) -> None:
        self.output_closed.set()
        if self.output_fd is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                asyncio.get_running_loop().remove_reader(self.output_fd)

    def _overran(self, size: int) -> bool:
        """Count `size` more bytes of the running job; past the allowance (with room for
        framing) say so: the run ends there and the worker is killed (what it sends until
        then is not kept)."""
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


class _EventsProtocol(asyncio.Protocol):
    """Reads the worker's frames as they arrive and puts each message in its `events` (no
    task of its own: the run waiting on `events` is the one woken). A frame too large, one
    that is no message, or one past the run's allowance ends the reading: nothing more of
    the worker's is read (the pool kills it)."""

    def __init__(self, worker: WorkerProcess) -> None:
        self._worker = worker
        self._buffer = bytearray()
        self._length: int | None = None  # the body length of the frame under way
        self._largest = worker.allowance + 1024 * 1024
        self._stopped = False

    def data_received(self, data: bytes) -> None:
        if self._stopped:
            return
        buffer, worker = self._buffer, self._worker
        buffer += data
        start = 0  # where the next frame begins (what is before it is dropped once, below)
        while True:
            if self._length is None:
                if len(buffer) - start < FRAME_HEADER:
                    break
                length = frame_length(buffer[start : start + FRAME_HEADER])
                if length > self._largest:
                    worker.events.put_nowait((Broken(f"sent a message of {length} bytes"), 0))
                    return self._stop()
                if worker.running and worker._overran(FRAME_HEADER + length):
                    return self._stop()
                self._length = length
            end = start + FRAME_HEADER + self._length
            if len(buffer) < end:
                break
            try:
                message = from_worker_decoder.decode(buffer[start + FRAME_HEADER : end])
            except msgspec.DecodeError:
                worker.events.put_nowait((Broken("sent something that is no message"), 0))
                return self._stop()
            worker.events.put_nowait((message, end - start))
            start, self._length = end, None
        del buffer[:start]

    def eof_received(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._worker._exited()

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof_received()

    def _stop(self) -> None:
        self._stopped = True
        self._buffer.clear()


class _Ends:
    """The pipes (and the door) between the pool and a new worker: the child's ends, passed
    to it and closed here once it started, and ours."""

    def __init__(self, with_door: bool) -> None:
        self.jobs_read, self.jobs_write = os.pipe()
        self.events_read, self.events_write = os.pipe()
        self.output_read, self.output_write = os.pipe()
        os.set_blocking(self.output_read, False)
        # SOCK_SEQPACKET: each request and each answer is one message, never merged
        self.door = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) if with_door else None
        self.child: tuple[int, ...] = (self.jobs_read, self.events_write)
        if self.door is not None:
            self.child += (self.door[1].fileno(),)

    def close_child_ends(self) -> None:
        for fd in (self.jobs_read, self.events_write, self.output_write):
            os.close(fd)
        if self.door is not None:
            self.door[1].close()

    def close_our_ends(self) -> None:
        for fd in (self.jobs_write, self.events_read, self.output_read):
            os.close(fd)
        if self.door is not None:
            self.door[0].close()


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
