"""One multiplexed Redis connection for the hot commands (KV get and set).

redis-py spends about 100 µs of CPU per command in its pool, retry and packing layers, more
than the round trip itself on loopback. Here every caller writes its command on one shared
connection and waits for the reply at its place in line (Redis answers in order), and the
commands written during one event-loop turn leave in a single write: concurrent callers are
pipelined without asking. Replies are parsed by hiredis. A lost connection fails the calls
waiting on it (ConnectionError) and the next call connects again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
import msgspec


class RedisReplyError(Exception):
    """Redis answered with an error (WRONGTYPE, NOSCRIPT, ...)."""


class RedisAddress(msgspec.Struct, frozen=True):
    """Where Redis is and how to log in, read from a redis:// or rediss:// URL."""

    host: str
    port: int
    username: str | None
    password: str | None
    db: int
    ssl: bool

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        parts = urlsplit(url)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            db=int(parts.path.strip("/") or 0),
            ssl=parts.scheme == "rediss",
        )


def pack_command(args: Sequence[Any]) -> bytes:
    """One command in the Redis protocol."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    def __init__(self, line: RedisLine) -> None:
        self.line = line
        self.reader = hiredis.Reader(replyError=RedisReplyError, encoding="utf-8")
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.line.waiting
        while (reply := self.reader.gets()) is not False:
            future = waiting.popleft()
            if future.done():
                continue
            if isinstance(reply, RedisReplyError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.line.lost(self)


class RedisLine:
    def __init__(self, url: str) -> None:
        self.address = RedisAddress.parse(url)
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self._outgoing: list[bytes] = []
        self._scripts: dict[str, str] = {}

    async def command(self, *args: Any) -> Any:
        """Send one command and return its reply (RedisReplyError for an error reply)."""
        protocol = self._protocol or await self._connect()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        transport = protocol.transport
        if len(self.waiting) == 1 and transport is not None and not transport.is_closing():
            transport.write(pack_command(args))  # alone on the line: no turn to wait for company
        else:
            if not self._outgoing:
                asyncio.get_running_loop().call_soon(self._flush, protocol)
            self._outgoing.append(pack_command(args))
        return await future

    async def script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA, loading the script on the first NOSCRIPT."""
        sha = self._scripts.get(source)
        if sha is None:
            sha = self._scripts[source] = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324
        try:
            return await self.command("EVALSHA", sha, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self.command("EVAL", source, len(keys), *keys, *args)

    def _flush(self, protocol: _Protocol) -> None:
        data, self._outgoing = b"".join(self._outgoing), []
        if protocol.transport is not None and not protocol.transport.is_closing():
            protocol.transport.write(data)
        else:
            self.lost(protocol)

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None:
                return self._protocol
            loop = asyncio.get_running_loop()
            address = self.address
            _, protocol = await loop.create_connection(
                lambda: _Protocol(self), address.host, address.port, ssl=address.ssl or None
            )
            self._protocol = protocol
            setup: list[tuple[Any, ...]] = []
            if address.password is not None:
                auth = ("AUTH", address.username, address.password) if address.username else None
                setup.append(auth or ("AUTH", address.password))
            if address.db:
                setup.append(("SELECT", address.db))
            for args in setup:
                await self.command(*args)
            return protocol

    def lost(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None
        self._outgoing = []
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError("the connection to Redis was lost"))

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
