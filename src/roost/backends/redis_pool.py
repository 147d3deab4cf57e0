"""The Redis client of every store on Redis: its pool waits for a free connection.

redis-py's default pool (`Redis.from_url`) opens at most 100 connections and, past them, fails
a command at once (MaxConnectionsError, which the stores answer as 503): a burst of more than
a hundred concurrent queue publishes, or of rate-limited requests, was refused while Redis
itself was fine. Here a command that finds every connection busy waits its turn, and fails
(503) only after `WAIT` seconds.
"""

from __future__ import annotations

from typing import Any

POOL_SIZE = 64  # connections of one client at most (Redis runs one command at a time anyway)
# seconds a command waits for a free connection before it fails: a burst on a working Redis
# clears in milliseconds, and a hung one must not hold every caller for long before its 503
WAIT = 2.0


def waiting_client(
    url: str,
    *,
    decode_responses: bool = False,
    client_name: str | None = None,
    size: int = POOL_SIZE,
    wait: float | None = WAIT,
) -> Any:
    """A `redis.asyncio.Redis` for `url` on a pool of `size` connections that waits up to
    `wait` seconds (None: as long as it takes) for one; closing the client closes the pool."""
    from redis.asyncio import BlockingConnectionPool, Redis

    named = {"client_name": client_name} if client_name is not None else {}
    pool = BlockingConnectionPool.from_url(
        url, max_connections=size, timeout=wait, decode_responses=decode_responses, **named
    )
    return Redis.from_pool(pool)
