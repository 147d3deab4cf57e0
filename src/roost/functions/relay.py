"""The one way out of a bubblewrap sandbox: a Unix socket, shown inside every sandbox, whose
connections are relayed byte for byte to the server's API.

Functions have no network namespace of their own to reach the API through; a socket file bound
into the sandbox is the narrowest door (nothing else on the host can be named from inside).
The relay reads nothing of what passes: the function authenticates with its ROOST_TOKEN like
any client, and TLS, when the API URL is https, runs end to end through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from urllib.parse import urlsplit

from roost.errors import ConfigurationError

_CHUNK = 64 * 1024


class Relay:
    """Listens at `path`; each connection gets its own TCP connection to `api_url`."""

    def __init__(self, path: Path, api_url: str, max_connections: int = 64) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"the functions' API URL must be http(s)://host: {api_url}")
        self.path = path
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._slots = asyncio.Semaphore(max_connections)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o755)  # noqa: S103 - bound into every sandbox
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        # every worker's uid connects; only sandboxes and root can see it
        os.chmod(self.path, 0o666)  # noqa: S103

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        self.path.unlink(missing_ok=True)

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
            self._pipes.update(pipes)
            try:
                await asyncio.gather(*pipes)
            finally:
                self._pipes.difference_update(pipes)
                for writer in (out, back):
                    writer.close()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until the source ends, then pass the end on (half-close), as TCP would."""
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await source.read(_CHUNK):
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
