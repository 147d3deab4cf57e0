"""The multiplexed Redis connection of the hot KV path, against the machine's Redis."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from roost.backends.redis_line import RedisLine, RedisReplyError
from tests.conftest import REDIS_URL, require_redis

pytestmark = pytest.mark.anyio


@pytest.fixture
async def line() -> RedisLine:
    require_redis()
    return RedisLine(REDIS_URL)


async def test_concurrent_commands_get_their_own_replies(line: RedisLine) -> None:
    key = f"line:{secrets.token_hex(4)}"
    counts = await asyncio.gather(*(line.command("INCR", key) for _ in range(200)))
    assert sorted(counts) == list(range(1, 201))  # one connection, each caller its own reply
    echoes = await asyncio.gather(*(line.command("ECHO", f"m{n}") for n in range(50)))
    assert echoes == [f"m{n}" for n in range(50)]
    assert await line.command("DEL", key) == 1
    await line.close()


async def test_error_replies_raise_and_the_line_goes_on(line: RedisLine) -> None:
    key = f"line:{secrets.token_hex(4)}"
    await line.command("SET", key, "not a number")
    with pytest.raises(RedisReplyError, match="not an integer"):
        await line.command("INCR", key)
    assert await line.command("GET", key) == "not a number"
    await line.command("DEL", key)
    await line.close()


async def test_scripts_load_themselves_after_a_flush(line: RedisLine) -> None:
    source = f"return {{KEYS[1], ARGV[1], '{secrets.token_hex(4)}'}}"
    first = await line.script(source, ["k"], ["v"])
    await line.command("SCRIPT", "FLUSH")
    assert await line.script(source, ["k"], ["v"]) == first
    await line.close()


async def test_a_killed_connection_fails_its_calls_and_the_next_call_reconnects(
    line: RedisLine,
) -> None:
    own_id = await line.command("CLIENT", "ID")
    waiting = asyncio.create_task(line.command("BLPOP", f"line:{secrets.token_hex(4)}", 5))
    await asyncio.sleep(0.1)
    killer = RedisLine(REDIS_URL)
    assert await killer.command("CLIENT", "KILL", "ID", own_id) == 1
    with pytest.raises(ConnectionError):
        await waiting
    assert await line.command("PING") == "PONG"
    await line.close()
    await killer.close()
