"""One keep-alive connection of the HTTP door (`server/serving.py`): pipelined requests, a body
that comes in a later read, a head split mid-way, a refusal among them and a call that waits on
the database all answer in order, on a connection that stays open."""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique


def _request(path: str, body: dict[str, Any], token: str | None = None) -> bytes:
    data = json.dumps(body).encode()
    head = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
    ]
    if token:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def _read_answers(sock: socket.socket, count: int) -> list[tuple[int, Any]]:
    """`count` answers off the connection: (status, decoded body) each, in order."""
    buffer, answers = b"", list[tuple[int, Any]]()
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            buffer += _recv(sock)
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in lines
            if line.lower().startswith(b"content-length")
        )
        while len(buffer) < length:
            buffer += _recv(sock)
        body, buffer = buffer[:length], buffer[length:]
        answers.append((int(lines[0].split()[1]), json.loads(body)))
    return answers


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    assert chunk, "the server closed the connection"
    return chunk


def _connect(server: RunningServer) -> socket.socket:
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
    sock.settimeout(60)  # a safety net against a hung test, not a timing assertion
    return sock


def _token(server: RunningServer) -> str:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        login = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        return str(http.post("/api/v1/auth/login", json=login).json()["access"])


def test_pipelined_requests_answer_in_order(server: RunningServer) -> None:
    token = _token(server)
    key = unique("conn-")
    requests = [
        _request("/api/v1/kv/set", {"key": key, "value": {"n": 1}}, token),
        _request("/api/v1/kv/get", {"key": key}, token),
        _request("/api/v1/auth/whoami", {}, token),
        _request("/api/v1/kv/get", {"key": key}),  # no credential: refused, the rest go on
        _request("/api/v1/kv/get", {"key": key}, token),
    ]
    with _connect(server) as sock:
        sock.sendall(b"".join(requests))  # one write: most likely one read of the server
        answers = _read_answers(sock, len(requests))
    statuses = [status for status, _ in answers]
    assert statuses == [200, 200, 200, 401, 200]
    assert answers[1][1]["value"] == {"n": 1}
    assert answers[2][1]["username"] == ADMIN_USERNAME
    assert answers[4][1] == answers[1][1]


def test_a_body_that_comes_in_a_later_read_is_awaited(server: RunningServer) -> None:
    token, key = _token(server), unique("conn-")
    with _connect(server) as sock:
        for n in range(3):
            request = _request("/api/v1/kv/set", {"key": key, "value": {"n": n}}, token)
            head, body = request.split(b"\r\n\r\n", 1)
            sock.sendall(head + b"\r\n\r\n" + body[:10])
            time.sleep(0.05)  # lets the server read the first part alone (if not: no matter)
            sock.sendall(body[10:] + _request("/api/v1/kv/get", {"key": key}, token))
            [(set_status, _), (get_status, answer)] = _read_answers(sock, 2)
            assert (set_status, get_status) == (200, 200), answer
            assert answer["value"] == {"n": n}


def test_a_request_split_mid_head_and_one_that_waits_answer(server: RunningServer) -> None:
    token = _token(server)
    table = unique("conn_")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        headers = {"authorization": f"Bearer {token}"}
        added = http.post(
            "/api/v1/schema/add_table",
            json={"name": table, "columns": [{"name": "name", "type": "text"}]},
            headers=headers,
        )
        assert added.status_code == 200, added.text
    create = _request("/api/v1/database/create", {"table": table, "rows": [{"name": "a"}]}, token)
    whoami = _request("/api/v1/auth/whoami", {}, token)
    with _connect(server) as sock:
        sock.sendall(create + whoami[:20])
        time.sleep(0.05)
        sock.sendall(whoami[20:])
        answers = _read_answers(sock, 2)
    assert [status for status, _ in answers] == [200, 200], answers
    assert answers[0][1]["rows"][0]["name"] == "a"
    assert answers[1][1]["username"] == ADMIN_USERNAME
