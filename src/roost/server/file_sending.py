"""Files sent from the local blob store: the ASGI zero-copy send extension on uvicorn's HTTP
protocol, served by copying a piece at a time through a buffer.

uvicorn offers no way to send a file but as bytes the app has read: a 10 MB download was read
into memory a megabyte at a time, each megabyte a new bytes object passed through Starlette's
and uvicorn's layers. `serving.BoundedHttpTools` offers the standard ASGI extension
`http.response.zerocopysend` on every GET (in its scope's `extensions`; no other request is
answered with a file) and answers it with `FileSendingCycle`, which takes the extension's
messages (`file`, `offset`, `count`, `more_body`) and moves the bytes itself.

It moves them with pread(2) into a buffer and write(2) from it, not with sendfile(2), as
measured (`benchmarks/vs_pocketbase.py`, a 10 MB download on loopback, 10 alternating turns):
sendfile saves the server ~1.3 ms of CPU per download but costs the reader ~4 ms more (19.5
against 15.9 ms of the client's CPU; 45-50 downloads/s against 57-59). Its socket buffers
point into the page cache, which the reader then copies from main memory; a write leaves
freshly copied bytes in the cache the reader copies them from. A reverse proxy on the same
host is that reader, and so is every loopback client.

Each piece (a megabyte) is read and written in a worker thread: a file not in the page cache
is read from the disk inside the call, which must never hold up the event loop. The socket
stays non-blocking (it is uvloop's): a call writes what the socket's buffer takes, and the next
waits until the socket is writable again, then reads what it did not take again, about as much
as it took last time (the buffer is lent to the call only, `Buffers`). The calls go through a
duplicate of the socket's descriptor, so that the number they use cannot be closed and handed
to another connection while a thread holds it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

ZERO_COPY = "http.response.zerocopysend"
PIECE = 1024 * 1024  # bytes read and written by one call in a worker thread, at most
SMALLEST_READ = 16 * 1024


class FileSendingCycle(RequestResponseCycle):
    """uvicorn's request-response cycle that also takes `http.response.zerocopysend`.

    After a disconnect such a message raises ConnectionResetError (an OSError, as the ASGI
    spec asks of a send on a closed connection), so that the app stops sending the rest of the
    file and counts only what went out."""

    def send(self, message: Any) -> Awaitable[None]:  # type: ignore[override]
        # a plain method returning the awaitable: no coroutine layer for the other messages
        if message["type"] == ZERO_COPY:
            return self._send_file(message)
        return RequestResponseCycle.send(self, message)

    async def _send_file(self, message: Any) -> None:
        if not self.response_started or self.response_complete:
            raise RuntimeError(f"'{ZERO_COPY}' is only sent after the response started")
        if self.chunked_encoding is not False:
            raise RuntimeError(f"'{ZERO_COPY}' needs a response with a Content-Length")
        offset: int = message.get("offset") or 0
        count: int | None = message.get("count")
        if count is None:
            raise RuntimeError(f"'{ZERO_COPY}' needs its count of bytes here")
        if count > self.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        if self.scope["method"] != "HEAD" and count:
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if self.disconnected:
                raise ConnectionResetError("the client went away")
            await send_file(self.transport, message["file"].fileno(), offset, count)
            self.expected_content_length -= count
        # the end of the response (or not) as uvicorn ends it, with no bytes of its own
        end = {"type": "http.response.body", "body": b"", "more_body": message.get("more_body")}
        await RequestResponseCycle.send(self, end)  # type: ignore[arg-type]


async def send_file(transport: asyncio.Transport, fd: int, offset: int, count: int) -> None:
    """Send `count` bytes of the file `fd` from `offset` on the transport's socket, after what
    the transport holds unsent, a piece at a time. Raises ConnectionResetError if the client
    goes away first, and closes the transport (its response can no longer be whole) if the
    file ends early."""
    loop = asyncio.get_running_loop()
    socket = transport.get_extra_info("socket")
    out = os.dup(socket.fileno())
    # bytes to read next: a piece, or about what the socket took last time when it was full
    # (a slow reader's socket takes little at a time, and what it does not take is read again)
    want = PIECE
    try:
        while count > 0:
            if transport.is_closing():
                raise ConnectionResetError("the client went away")
            sent = read = 0
            if not transport.get_write_buffer_size():  # the head, or an earlier answer
                try:
                    sent, read = await asyncio.to_thread(
                        _send_piece, out, fd, offset, min(count, want)
                    )
                except (BrokenPipeError, ConnectionResetError) as exc:
                    raise ConnectionResetError("the client went away") from exc
                except EOFError:
                    transport.close()
                    raise RuntimeError("the file ended before its Content-Length") from None
            offset, count = offset + sent, count - sent
            if sent < read or not read:  # the socket is full
                want = max(sent, SMALLEST_READ)
                await _writable(loop, out)
            else:
                want = min(want * 2, PIECE)
    finally:
        os.close(out)


def _send_piece(out: int, fd: int, offset: int, count: int) -> tuple[int, int]:
    """In a worker thread: read `count` bytes (a piece at most) of the file `fd` from
    `offset` and write them to the socket `out` as far as it takes; (bytes sent, bytes
    read). Raises EOFError if the file ends early."""
    buffer = BUFFERS.take()
    try:
        view = memoryview(buffer)[:count]
        read = read_into(fd, view, offset)
        if read == 0:
            raise EOFError
        sent = 0
        while sent < read:
            try:
                sent += write(out, view[sent:read])
            except BlockingIOError:
                break
        return sent, read
    finally:
        BUFFERS.give_back(buffer)


def read_into(fd: int, view: memoryview, offset: int) -> int:
    """os.preadv into `view`, by a name of this module's (the tests count what it reads)."""
    return os.preadv(fd, [view], offset)


def write(fd: int, data: memoryview) -> int:
    """os.write, by a name of this module's (the tests count what it moves)."""
    return os.write(fd, data)


class Buffers:
    """The pieces' buffers, each lent to one worker thread's call at a time: a transfer holds
    none while it waits for its socket, so a client that stops reading costs no memory (it
    held a megabyte each), and at most `kept` spares stay between calls."""

    def __init__(self, kept: int) -> None:
        self._spares: list[bytearray] = []
        self._kept = kept
        self._lock = threading.Lock()
        self.lent = 0

    def take(self) -> bytearray:
        with self._lock:
            self.lent += 1
            if self._spares:
                return self._spares.pop()
        return bytearray(PIECE)

    def give_back(self, buffer: bytearray) -> None:
        with self._lock:
            self.lent -= 1
            if len(self._spares) < self._kept:
                self._spares.append(buffer)


BUFFERS = Buffers(kept=8)


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Until the socket `fd` can take more (or has failed: the next call says how)."""
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)
