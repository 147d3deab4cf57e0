"""Downloads handed to the server as files (`server/file_sending.py`): a file on the local blob
store goes to the socket through the transfer's buffer, whole, in order with the answers around
it on a keep-alive connection, as a range, and a client that leaves mid-way costs the server
nothing (no descriptor is left open, the next request is answered)."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import tracemalloc
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from roost.server import file_sending
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.waiting import eventually

SIZE = 3 * 1024 * 1024 + 17  # three pieces of the door's and a few bytes more


@pytest.fixture
def sent_as_file(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The bytes each write of a file sending moved, call by call (the server runs in this
    process, in a thread)."""
    return _counted(monkeypatch, "write")


@pytest.fixture
def read_for_sending(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The bytes each read of a file sending took from the file, call by call."""
    return _counted(monkeypatch, "read_into")


def _counted(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """What each call of `file_sending.<name>` answered (a count of bytes), call by call."""
    counts: list[int] = []
    real: Callable[..., int] = getattr(file_sending, name)

    def counted(*args: Any) -> int:
        count = real(*args)
        counts.append(count)
        return count

    monkeypatch.setattr(file_sending, name, counted)
    return counts


def _stored_file(server: RunningServer, size: int = SIZE) -> tuple[str, str, bytes]:
    """A new bucket holding a file of `size` random bytes: (its path, a token, the bytes)."""
    data = os.urandom(size)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        login = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        token = str(http.post("/api/v1/auth/login", json=login).json()["access"])
        headers = {"Authorization": f"Bearer {token}"}
        bucket = unique("sending-")
        created = http.post("/api/v1/storage/create_bucket", json={"name": bucket}, headers=headers)
        assert created.status_code == 200, created.text
        path = f"/api/v1/storage/buckets/{bucket}/objects/big.bin"
        assert http.put(path, content=data, headers=headers).status_code == 200
    return path, token, data


def _get(path: str, token: str, *extra: str) -> bytes:
    head = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def _post(path: str, token: str) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        "Content-Length: 2",
    ]
    return ("\r\n".join(head) + "\r\n\r\n{}").encode()


class _Reader:
    """Answers off one connection, each read whole by its Content-Length."""

    read_size = 1 << 20

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), headers, body

    def _read(self) -> None:
        chunk = self.sock.recv(self.read_size)
        assert chunk, "the server closed the connection"
        self.buffer += chunk


def _connect(server: RunningServer, receive_buffer: int | None = None) -> socket.socket:
    parts = urlsplit(server.url)
    sock = socket.socket()
    if receive_buffer is not None:  # before connecting: it sets the window offered
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(60)  # a safety net against a hung test, not a timing assertion
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    return sock


def test_a_download_goes_whole_and_in_order_with_the_answers_around_it(
    server: RunningServer, sent_as_file: list[int]
) -> None:
    path, token, data = _stored_file(server)
    with _connect(server) as sock:
        # three requests in one write: the file's answer is not overtaken by the next one
        sock.sendall(_get(path, token) + _post("/api/v1/auth/whoami", token) + _get(path, token))
        reader = _Reader(sock)
        status, headers, body = reader.answer()
        assert (status, headers["content-length"]) == (200, str(SIZE))
        assert body == data
        status, _, who = reader.answer()
        assert status == 200
        assert b'"username"' in who
        assert reader.answer()[2] == data
    # counted by the sending thread just after the bytes left, maybe after they arrived
    eventually(lambda: sum(sent_as_file) == 2 * SIZE)


def test_a_range_is_sent_as_a_file(server: RunningServer, sent_as_file: list[int]) -> None:
    path, token, data = _stored_file(server)
    with _connect(server) as sock:
        sock.sendall(_get(path, token, "Range: bytes=1000-2000999"))
        status, headers, body = _Reader(sock).answer()
    assert status == 206
    assert headers["content-range"] == f"bytes 1000-2000999/{SIZE}"
    assert body == data[1000:2001000]
    eventually(lambda: sum(sent_as_file) == 2_000_000)


def test_a_client_that_leaves_mid_download_leaves_nothing_open(
    server: RunningServer, sent_as_file: list[int]
) -> None:
    path, token, _ = _stored_file(server)
    with _connect(server, receive_buffer=4096) as sock:
        sock.sendall(_get(path, token))
        received = sock.recv(1024)
        assert received.startswith(b"HTTP/1.1 200")
        while len(received) < 100_000:  # some of the file came, as a file
            received += sock.recv(65536)
        server_side = _socket_inode(urlsplit(server.url).port or 80, sock.getsockname()[1])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # reset while the server waits for the socket to take more: it lets go of the file and of
    # its copy of the socket's descriptor (the socket stays only as long as one is open)
    deadline = time.monotonic() + 30  # a safety net, not a timing assertion
    while _held(server_side) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _held(server_side)
    assert 0 < sum(sent_as_file) < SIZE
    with httpx.Client(base_url=server.url, timeout=30) as http:
        whoami = http.post("/api/v1/auth/whoami", headers={"Authorization": f"Bearer {token}"})
    assert whoami.status_code == 200


def test_downloads_whose_clients_stop_reading_hold_no_memory(
    server: RunningServer, sent_as_file: list[int]
) -> None:
    # each transfer waits for its socket holding no buffer (a megabyte each, when it did)
    path, token, _ = _stored_file(server, size=24 * 1024 * 1024)
    tracemalloc.start()  # the server runs in this process: what it allocates from here on
    try:
        with ExitStack() as stack:
            for _ in range(STALLED):
                sock = stack.enter_context(_connect(server, receive_buffer=4096))
                sock.sendall(_get(path, token))
                assert sock.recv(1024).startswith(b"HTTP/1.1 200")  # then never read again
            # every transfer sent what its socket took, and waits for room
            eventually(lambda: len(sent_as_file) >= STALLED and file_sending.BUFFERS.lent == 0)
            held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < STALLED * 1024 * 1024 // 2, f"{held:,} bytes held"


def test_a_slow_reader_costs_reads_of_about_what_it_takes(
    server: RunningServer,
    read_for_sending: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a socket that takes little at a time (a small send buffer, as a slow link's): what it
    # does not take is read again, so each read asks about what it took the last time, not
    # a whole piece each time
    real: Callable[[int, memoryview], int] = file_sending.write

    def into_a_small_buffer(fd: int, data: memoryview) -> int:
        sock = socket.socket(fileno=os.dup(fd))
        with contextlib.closing(sock):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        return real(fd, data)

    monkeypatch.setattr(file_sending, "write", into_a_small_buffer)
    path, token, data = _stored_file(server, size=8 * 1024 * 1024)
    with _connect(server, receive_buffer=4096) as sock:
        sock.sendall(_get(path, token))
        reader = _Reader(sock)
        reader.read_size = 4096
        assert reader.answer()[2] == data
    # each read a whole piece: about nine times the file here
    assert sum(read_for_sending) < 4 * len(data), (sum(read_for_sending), len(read_for_sending))


STALLED = 32


def _socket_inode(local_port: int, remote_port: int) -> str:
    """The inode of this process' TCP socket from `local_port` to `remote_port`."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(part.rsplit(":", 1)[1], 16) for part in fields[1:3])
        if (local, remote) == (local_port, remote_port):
            return fields[9]
    raise AssertionError("the server's side of the connection is not there")


def _held(inode: str) -> bool:
    """Whether a descriptor of this process (the server runs in it) holds the socket `inode`
    or a file of SIZE bytes (the download's)."""
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if os.readlink(fd) == f"socket:[{inode}]" or fd.stat().st_size == SIZE:
                return True
        except OSError:
            continue  # closed meanwhile
    return False
