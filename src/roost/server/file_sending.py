"""Files sent from the local blob store: the ASGI zero-copy send extension on uvicorn's HTTP
protocol, served by copying through one buffer per transfer.

uvicorn offers no way to send a file but as bytes the app has read: a 10 MB download was read
into memory a megabyte at a time, each megabyte a new bytes object passed through Starlette's
and uvicorn's layers. `serving.BoundedHttpTools` offers the standard ASGI extension
`http.response.zerocopysend` on every GET (in its scope's `extensions`; no other request is
answered with a file) and answers it with `FileSendingCycle`, which takes the extension's
messages (`file`, `offset`, `count`, `more_body`) and moves the bytes itself.

It moves them with pread(2) into a buffer of the transfer's and write(2) from it, not with
sendfile(2), measured (`benchmarks/vs_pocketbase.py`, a 10 MB download on loopback, 10
alternating turns): sendfile saves the server ~1.3 ms of CPU per download but costs the reader
~4 ms more (19.5 against 15.9 ms of the client's CPU; 45-50 downloads/s against 57-59). Its
socket buffers point into the page cache, which the reader then copies from main memory; a
write leaves freshly copied bytes in the cache the reader copies them from. A reverse proxy on
the same host is that reader, and so is every loopback client.

Each piece (a megabyte) is read and written in a worker thread: a file not in the page cache
is read from the disk inside the call, which must never hold up the event loop. The socket
stays non-blocking (it is uvloop's): a call writes what the socket's buffer takes, and the next
waits until the socket is writable again. The calls go through a duplicate of the socket's
descriptor, so that the number they use cannot be closed and handed to another connection while
a thread holds it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

ZERO_COPY = "http.response.zerocopysend"
PIECE = 1024 * 1024  # bytes read and written by one call in a worker thread


class FileSendingCycle(RequestResponseCycle):
    """uvicorn's request-response cycle that also takes `http.response.zerocopysend`.

    After a disconnect such a message raises ConnectionResetError (an OSError, as the ASGI
    spec asks of a send on a closed connection), so that the app stops sending the rest of the
    file and counts only what went out."""

    buffer: memoryview | None = None  # the transfer's, made by its first piece

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
            if self.buffer is None:  # sized by the whole rest of the answer: every piece fits
                self.buffer = memoryview(bytearray(min(PIECE, self.expected_content_length)))
            await send_file(self.transport, message["file"].fileno(), offset, count, self.buffer)
            self.expected_content_length -= count
        # the end of the response (or not) as uvicorn ends it, with no bytes of its own
        end = {"type": "http.response.body", "body": b"", "more_body": message.get("more_body")}
        await RequestResponseCycle.send(self, end)  # type: ignore[arg-type]


async def send_file(
    transport: asyncio.Transport, fd: int, offset: int, count: int, buffer: memoryview
) -> None:
    """Send `count` bytes of the file `fd` from `offset` on the transport's socket, after what
    the transport holds unsent, through `buffer` a piece at a time. Raises ConnectionResetError
    if the client goes away first, and closes the transport (its response can no longer be
    whole) if the file ends early."""
    loop = asyncio.get_running_loop()
    socket = transport.get_extra_info("socket")
    out = os.dup(socket.fileno())
    piece = _Piece(fd, offset, count, buffer)
    try:
        while not piece.done:
            if transport.is_closing():
                raise ConnectionResetError("the client went away")
            taken = False
            if not transport.get_write_buffer_size():  # the head, or an earlier answer
                try:
                    taken = await asyncio.to_thread(piece.send, out)
                except (BrokenPipeError, ConnectionResetError) as exc:
                    raise ConnectionResetError("the client went away") from exc
                except EOFError:
                    transport.close()
                    raise RuntimeError("the file ended before its Content-Length") from None
            if not taken:
                await _writable(loop, out)
    finally:
        os.close(out)


class _Piece:
    """The sending of `count` bytes of the file `fd` from `offset` through `buffer`, with the
    part of it read but not yet written."""

    def __init__(self, fd: int, offset: int, count: int, buffer: memoryview) -> None:
        self.fd, self.offset, self.left, self.buffer = fd, offset, count, buffer
        self.start = self.end = 0

    @property
    def done(self) -> bool:
        return self.left == 0 and self.start == self.end

    def send(self, out: int) -> bool:
        """Read the next piece if the last one went out, then write it to the socket `out`:
        True if the socket took all of it, False if it is full (wait until it is writable).
        Raises EOFError if the file ends early."""
        if self.start == self.end:
            read = os.preadv(self.fd, [self.buffer[: self.left]], self.offset)
            if read == 0:
                raise EOFError
            self.offset, self.left = self.offset + read, self.left - read
            self.start, self.end = 0, read
        while self.start < self.end:
            try:
                self.start += write(out, self.buffer[self.start : self.end])
            except BlockingIOError:
                return False
        return True


def write(fd: int, data: memoryview) -> int:
    """os.write, by a name of this module's (the tests count what it moves)."""
    return os.write(fd, data)


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
