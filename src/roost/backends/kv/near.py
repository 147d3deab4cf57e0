"""KV values read from Redis, kept in the server's memory until Redis says they changed.

A read that Redis answers costs a network round trip; a read answered from memory costs a few
microseconds. What makes the memory safe to answer from is Redis' own key tracking (`CLIENT
TRACKING ... BCAST PREFIX roost:kv:`): on a connection of its own, in RESP3, Redis pushes the
name of every KV key that any client sets, deletes, changes or lets expire, and "everything"
on FLUSHDB/FLUSHALL.

- **Freshness.** Before answering from memory the cache reads whatever Redis has pushed (a
  non-blocking read on that connection, no round trip). Redis pushes an invalidation in the
  same turn of its loop as it answers the write, so once a write has answered, the next read
  on any replica sees it, as long as that replica's link to Redis is not slower than the
  writer's answer going to its client and the client's next request reaching the replica (on
  one machine or one LAN it never is). Writes made through this server also drop their key
  themselves, before and after they run: a replica always reads its own writes.
- **The race between a reply and an invalidation.** A read fills the cache only if no
  invalidation of its key arrived while it was under way (a token per key, taken before the
  read is sent and dropped by any invalidation).
- **Expiry.** A value with a ttl is kept until the ttl runs out, counted from when the read
  was sent (so never past Redis' own expiry).
- **Memory.** At most `capacity` bytes of keys and values; the oldest entries go first.
- **A lost connection** drops everything, and nothing is cached until the connection is back
  (tried again at most once a second). TLS connections (`rediss://`) are not tracked: reads
  then always go to Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import Callable

import hiredis
import msgspec

from roost.backends.kv import NO_EXPIRY, Entry
from roost.backends.redis_line import RedisAddress, RedisReplyError, pack_command

logger = logging.getLogger("roost.kv.near")

_ENTRY_OVERHEAD = 120  # bytes of dict slot, tuple and str headers counted for each entry
_RETRY_SECONDS = 1.0
_CLIENT_NAME = "roost-kv-near-cache"


class _Cached(msgspec.Struct, frozen=True):
    value: str
    expires_at: float  # on the cache's clock; math.inf for a key without ttl
    size: int


class NearCache:
    """The memory in front of one Redis KV store. `lookup` before a read, `reserve` and
    `settle` around a read that went to Redis, `forget` around a write. `clock` (monotonic
    seconds) times expiries and the retries of tracking."""

    def __init__(
        self,
        address: RedisAddress,
        prefix: str,
        capacity: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self._address = address
        self._prefix = prefix
        self.capacity = capacity
        self._entries: dict[str, _Cached] = {}
        self._tokens: dict[str, object] = {}
        self.size = 0
        self._sock: socket.socket | None = None
        self._reader = hiredis.Reader(encoding="utf-8", replyError=RedisReplyError)
        self._connecting: asyncio.Task[None] | None = None
        self._next_try = 0.0

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    @property
    def tracking(self) -> bool:
        """Whether Redis is telling this cache about changes (and so it answers reads)."""
        return self._sock is not None

    def lookup(self, keys: list[str]) -> list[Entry | None]:
        """The value of each key if memory holds it and it is still fresh, else None."""
        if self._sock is None:
            self._start_tracking()
            return [None] * len(keys)
        self._read_invalidations()
        now = self.clock()
        found: list[Entry | None] = []
        for key in keys:
            cached = self._entries.get(key)
            if cached is None or cached.expires_at <= now:
                found.append(None)
                continue
            left = cached.expires_at - now
            found.append(Entry(cached.value, NO_EXPIRY if left == math.inf else round(left)))
        return found

    def reserve(self, keys: list[str]) -> list[object] | None:
        """Tokens for reads of `keys` about to go to Redis (None when not tracking)."""
        if self._sock is None:
            return None
        tokens = [object() for _ in keys]
        self._tokens.update(zip(keys, tokens, strict=True))
        return tokens

    def settle(
        self,
        keys: list[str],
        tokens: list[object] | None,
        found: list[tuple[str, int] | None],
        *,
        sent_at: float,
    ) -> None:
        """Keep what the reads answered (value and PTTL, None for none) unless their key
        changed while they were under way. `sent_at`: when the reads were sent (`clock`)."""
        if tokens is None:
            return
        self._read_invalidations()
        for key, token, answer in zip(keys, tokens, found, strict=True):
            if self._tokens.get(key) is not token:
                continue  # an invalidation (or a newer read) came in between
            del self._tokens[key]
            if answer is not None and self._sock is not None:
                self._keep(key, *answer, sent_at=sent_at)

    def _keep(self, key: str, value: str, ttl_ms: int, *, sent_at: float) -> None:
        size = _ENTRY_OVERHEAD + len(key) + len(value)
        if size > self.capacity // 4:
            return  # one value may not push out most of the others
        self._drop(key)
        expires_at = math.inf if ttl_ms < 0 else sent_at + ttl_ms / 1000
        self._entries[key] = _Cached(value, expires_at, size)
        self.size += size
        while self.size > self.capacity:
            self._drop(next(iter(self._entries)))

    def forget(self, keys: list[str]) -> None:
        """Drop `keys` and any read of them under way (around a write of them)."""
        for key in keys:
            self._drop(key)
            self._tokens.pop(key, None)

    def forget_everything(self) -> None:
        self._entries.clear()
        self._tokens.clear()
        self.size = 0

    def _drop(self, key: str) -> None:
        cached = self._entries.pop(key, None)
        if cached is not None:
            self.size -= cached.size

    def _read_invalidations(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self._lost("the connection was closed")
                return
            self._reader.feed(data)
            if len(data) < 65536:
                break
        while (message := self._reader.gets()) is not False:
            if not (isinstance(message, list) and message and message[0] == "invalidate"):
                continue
            keys = message[1]
            if keys is None:  # FLUSHDB, FLUSHALL
                self.forget_everything()
            else:
                self.forget(keys)

    def _start_tracking(self) -> None:
        if self._address.ssl or self._connecting is not None:
            return
        if self.clock() < self._next_try:
            return
        self._connecting = asyncio.get_running_loop().create_task(self._track())

    async def _track(self) -> None:
        loop = asyncio.get_running_loop()
        address = self._address
        sock: socket.socket | None = None
        try:
            infos = await loop.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
            family, _, _, _, sockaddr = infos[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            await loop.sock_connect(sock, sockaddr)
            hello: list[str] = ["HELLO", "3"]
            if address.password is not None:
                hello += ["AUTH", address.username or "default", address.password]
            commands = [
                hello,
                ["CLIENT", "SETNAME", _CLIENT_NAME],
                ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self._prefix],
            ]
            await loop.sock_sendall(sock, b"".join(pack_command(c) for c in commands))
            reader = hiredis.Reader(encoding="utf-8", replyError=RedisReplyError)
            replies = 0
            while replies < len(commands):
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    raise ConnectionError("Redis closed the connection")
                reader.feed(data)
                while replies < len(commands) and (reply := reader.gets()) is not False:
                    if isinstance(reply, RedisReplyError):
                        raise reply
                    replies += 1
        except BaseException as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, RedisReplyError):  # too old a Redis, or an ACL without CLIENT
                self._next_try = math.inf
                logger.warning("KV near cache off: Redis refused key tracking (%s)", exc)
                return
            self._next_try = self.clock() + _RETRY_SECONDS
            if not isinstance(exc, OSError):
                raise  # cancelled by close()
            logger.warning("KV near cache off for now: no tracking connection (%s)", exc)
            return
        finally:
            self._connecting = None
        self._reader = reader
        self._sock = sock
        loop.add_reader(sock.fileno(), self._read_invalidations)

    def _lost(self, why: str) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
            logger.warning("KV near cache emptied: Redis tracking stopped (%s)", why)
        self.forget_everything()
        self._next_try = self.clock() + _RETRY_SECONDS

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._sock is not None:
            sock, self._sock = self._sock, None
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        self.forget_everything()
