"""The worker's side of its pipe to the pool, and what turns `print` and `logging` into `Log`
events of the running job, within the job's output allowance."""

from __future__ import annotations

import io
import logging
import os
import threading
from typing import Final, Literal

import msgspec

from roost.functions.protocol import Log, frame

LINE_MAX: Final = 16 * 1024  # longer lines go out in pieces of this many characters


class OutputLimitExceeded(BaseException):
    """Raised inside the handler once its run has sent all the output it may. A BaseException,
    so that the handler's `except Exception` does not swallow it."""


class Channel:
    """Frames to the pool. Job output (`send_output`) counts against the job's allowance and is
    dropped between jobs; control messages (`send`) are neither."""

    def __init__(self, fd: int, limit: int) -> None:
        self._fd = fd
        self.limit = limit
        self._lock = threading.Lock()  # the handler's threads print too
        self._sent = 0
        self.active = False
        self.exceeded = False
        self._held = b""  # a job's last message, sent with the next control message

    def start_job(self) -> None:
        with self._lock:
            self._sent, self.active, self.exceeded = 0, True, False

    def end_job(self) -> None:
        with self._lock:
            self.active = False

    def send(self, message: msgspec.Struct) -> None:
        """Send a control message, after the job's last one if it is held (`hold`)."""
        data = frame(message)
        with self._lock:
            data, self._held = self._held + data, b""
            _write_all(self._fd, data)

    def hold(self, message: msgspec.Struct, *, output: bool) -> None:
        """Keep a job's last message (Finished or Failed) to go out with the next `send`
        (the worker's Idle, which the pool waits for anyway): one write and one wake-up of
        the pool per call instead of two. `output`: it counts against the allowance."""
        data = frame(message)
        with self._lock:
            if output:
                if not self.active:
                    return
                self.reserve(len(data))
                self._sent += len(data)
            self._held = data

    def reserve(self, size: int) -> None:
        """Refuse output of `size` bytes that cannot fit before making anything of it."""
        if self.exceeded or self._sent + size > self.limit:
            self.exceeded = True
            raise OutputLimitExceeded(self.limit)

    def send_output(self, message: msgspec.Struct) -> None:
        data = frame(message)
        with self._lock:
            if not self.active:
                return
            self.reserve(len(data))
            self._sent += len(data)
            _write_all(self._fd, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class LineWriter(io.TextIOBase):
    """What `sys.stdout` and `sys.stderr` become: each line a `Log` event."""

    def __init__(self, channel: Channel, stream: Literal["stdout", "stderr"], level: str) -> None:
        self._channel = channel
        self._stream: Literal["stdout", "stderr"] = stream
        self._level = level
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not self._channel.active:
            return len(text)
        self._channel.reserve(len(text) + len(self._partial))
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._send(line)
        while len(self._partial) >= LINE_MAX:
            self._send(self._partial[:LINE_MAX])
            self._partial = self._partial[LINE_MAX:]
        return len(text)

    def flush(self) -> None:
        """Send what is left of an unfinished line (at the end of each job)."""
        if self._partial:
            partial, self._partial = self._partial, ""
            self._send(partial)

    def _send(self, line: str) -> None:
        for start in range(0, max(len(line), 1), LINE_MAX):
            self._channel.send_output(
                Log(line[start : start + LINE_MAX], self._stream, self._level)
            )


class LogHandler(logging.Handler):
    """What the root logger gets: each record a `Log` event with its level."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(logging.DEBUG)
        self._channel = channel
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if self._channel.active:
            self._channel.send_output(Log(self.format(record), "logging", record.levelname))
