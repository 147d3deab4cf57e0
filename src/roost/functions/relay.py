"""The one way out of a sandbox: connections relayed byte for byte to the server's API.

Functions have no network of their own to reach the API through. Under bubblewrap a Unix
socket bound into the sandbox is the narrowest door (nothing else on the host can be named
from inside its mount namespace). Under the fallback, which has no mount namespace, a socket
the worker could open would reach any local server's socket file, and a TCP connection any
host on the API's port (Landlock's rule names a port, not an address): there the worker may
open no socket at all, and asks for each connection on its door (one end of a socket pair
made by the pool): every request is answered with one end of a new socket pair whose other
end is relayed here, passed over the door (SCM_RIGHTS). Whatever address the function had in
mind, it gets the API. The relay reads nothing of what passes: the function authenticates
with its ROOST_TOKEN like any client, and TLS, when the API URL is https, runs end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from roost.errors import ConfigurationError

_CHUNK: Final = 64 * 1024
GRANTED: Final = b"+"  # an answer on the door that carries a connection
REFUSED: Final = b"-"  # ... that carries none: the worker holds all it may


class Relay:
    """Relays connections to `api_url`: at most `max_connections` at once, from a Unix
    socket it listens on (`listen`) or from a worker's door (`answer`)."""

    def __init__(self, api_url: str, max_connections: int = 64) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"the functions' API URL must be http(s)://host: {api_url}")
        self.path: Path | None = None
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._slots = asyncio.Semaphore(max_connections)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(self, path: Path) -> None:
        """Relay every connection made to the Unix socket `path` (bubblewrap binds it into
        the sandbox)."""
        self.path = _fresh(path)
        self._server = await asyncio.start_unix_server(self._serve, path=str(path))
        # every worker's uid connects; only sandboxes and root can see it
        os.chmod(path, 0o666)  # noqa: S103

    async def answer(self, door: socket.socket) -> None:
        """Answer each request on `door` (our end of a fallback worker's door) with a new
        connection relayed to the API, until the worker closes it. Closes `door`."""
        loop = asyncio.get_running_loop()
        door.setblocking(False)
        with door:
            while await _request(loop, door):
                if self._slots.locked():  # a function hoarding connections gets no more
                    _send(door, REFUSED)
                    continue
                inside, outside = socket.socketpair()
                with inside:
                    sent = _send(door, GRANTED, inside.fileno())
                if not sent:
                    outside.close()
                    continue
                try:
                    reader, writer = await asyncio.open_connection(sock=outside)
                except OSError:
                    outside.close()
                    continue
                self._track(loop.create_task(self._serve(reader, writer)))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def _track(self, task: asyncio.Task[None]) -> None:
        """Keep `task` until it ends, for `close` to cancel."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, inside: asyncio.StreamReader, back: asyncio.StreamWriter) -> None:
        if self._slots.locked():  # a function hoarding connections gets no more
            back.close()
            return
        async with self._slots:
            try:
                upstream, out = await asyncio.open_connection(self._host, self._port)
            except OSError:
                back.close()
                return
            pipes = [
                asyncio.create_task(_pump(inside, out)),
                asyncio.create_task(_pump(upstream, back)),
            ]
            for pipe in pipes:
                self._track(pipe)
            try:
                await asyncio.gather(*pipes)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                for writer in (out, back):
                    writer.close()


def _fresh(path: Path) -> Path:
    """`path`, with nothing there yet, in a folder that every sandbox may enter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o755)  # noqa: S103 - bound into every sandbox
    path.unlink(missing_ok=True)
    return path


async def _request(loop: asyncio.AbstractEventLoop, door: socket.socket) -> bool:
    """Wait for the next request on the door; False once the worker is gone."""
    with contextlib.suppress(ConnectionError):
        return bool(await loop.sock_recv(door, 1))
    return False


def _send(door: socket.socket, answer: bytes, connection: int | None = None) -> bool:
    """One answer on the door; False if it cannot take one now (a worker that asks without
    reading its answers finds its requests dropped, not queued in the server)."""
    try:
        socket.send_fds(door, [answer], [] if connection is None else [connection])
    except (BlockingIOError, ConnectionError):
        return False
    return True


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until the source ends, then pass the end on (half-close), as TCP would. A sink
    that is gone (its peer reset it) ends the copy: uvloop raises RuntimeError on writing to
    a closed transport, where asyncio's own transports say nothing."""
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await source.read(_CHUNK):
            if sink.transport.is_closing():
                return
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof() and not sink.transport.is_closing():
            sink.write_eof()
