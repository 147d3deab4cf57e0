"""Files handed to the kernel: the ASGI zero-copy send extension on uvicorn's HTTP protocol.

uvicorn offers no way to send a file but as bytes: a 10 MB download was read into memory a
megabyte at a time (a copy from the page cache) and written to the socket (a second copy):
~6 ms of the server's CPU for 10 MB, about a third more than PocketBase spends on the same
download, and ~3 ms this way. `serving.BoundedHttpTools` offers the standard ASGI extension
`http.response.zerocopysend` on every GET (in its scope's `extensions`; no other request is
answered with a file) and answers it with `FileSendingCycle`, which takes the extension's
messages (`file`, `offset`, `count`, `more_body`) and moves the bytes with sendfile(2), from
the page cache to the socket.

Each sendfile runs in a worker thread: a file not in the page cache is read from the disk
inside the call, which must never hold up the event loop. The socket stays non-blocking (it is
uvloop's): a call moves what the socket's buffer takes, and the next waits until the socket is
writable again. The calls go through a duplicate of the socket's descriptor, so that the
number they use cannot be closed and handed to another connection while a thread holds it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

ZERO_COPY = "http.response.zerocopysend"
PIECE = 4 * 1024 * 1024  # bytes asked of one sendfile call (the socket takes what fits)


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
    the transport holds unsent. Raises ConnectionResetError if the client goes away first, and
    closes the transport (its response can no longer be whole) if the file ends early."""
    loop = asyncio.get_running_loop()
    socket = transport.get_extra_info("socket")
    out = os.dup(socket.fileno())
    try:
        while count > 0:
            if transport.is_closing():
                raise ConnectionResetError("the client went away")
            sent = None
            if not transport.get_write_buffer_size():  # the head, or an earlier answer
                try:
                    sent = await asyncio.to_thread(os.sendfile, out, fd, offset, min(count, PIECE))
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError) as exc:
                    raise ConnectionResetError("the client went away") from exc
                if sent == 0:
                    transport.close()
                    raise RuntimeError("the file ended before its Content-Length")
            if sent:
                offset, count = offset + sent, count - sent
            else:
                await _writable(loop, out)
    finally:
        os.close(out)


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
