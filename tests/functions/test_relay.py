"""The relay, the sandbox's one way to the API, on the server's event loop (uvloop): what
passes through a worker's door, and how a connection whose far end is gone ends."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import pytest

from roost.client._door import _connection
from roost.functions.relay import Relay, _pump
from tests.conftest import RunningServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("asyncio", {"use_uvloop": True})  # what the server runs on


@pytest.fixture
async def door(api_server: RunningServer) -> AsyncIterator[socket.socket]:
    """A worker's end of a door answered by a relay that allows two connections."""
    relay = Relay(api_server.url, max_connections=2)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    answering = asyncio.get_running_loop().create_task(relay.answer(ours))
    yield theirs
    theirs.close()
    await answering  # the worker's end closed: the relay stops answering
    await relay.close()


async def test_a_door_gives_connections_to_the_api_up_to_the_relays_share(
    door: socket.socket,
) -> None:
    first = await asyncio.to_thread(_connection, door, 5)
    second = await asyncio.to_thread(_connection, door, 5)
    with first, second:
        answer = await asyncio.to_thread(_health, first)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        with pytest.raises(OSError, match="already connected"):  # it cannot be sent elsewhere
            second.connect("/var/run/postgresql/.s.PGSQL.5432")
        with pytest.raises(httpcore.ConnectError, match="refused another connection"):
            await asyncio.to_thread(_connection, door, 5)


def _health(connection: socket.socket) -> bytes:
    connection.sendall(b"GET /api/v1/health HTTP/1.1\r\nhost: roost\r\n\r\n")  # kept alive
    return connection.recv(65536)


async def test_a_pump_whose_sink_is_gone_ends_quietly() -> None:
    """uvloop raises RuntimeError on writing to a closed transport (here: the API reset the
    connection while the function still sends): the copy ends, nothing is logged as an
    unhandled error of the relay."""
    accepted: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda _, writer: accepted.append(writer), "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    _, sink = await asyncio.open_connection(host, port)
    sink.close()
    await sink.wait_closed()
    source = asyncio.StreamReader()
    source.feed_data(b"late bytes")
    source.feed_eof()
    await _pump(source, sink)
    for writer in accepted:
        writer.close()
    server.close()
    await server.wait_closed()
