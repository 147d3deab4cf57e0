"""Attacks on the HTTP layer: huge or countless headers, user files run as pages, logged keys.

- A 32 MB header line, 1000 headers, a WebSocket handshake of either: 431 and the connection
  closes, in `roost serve` (one process and `--workers`) and in the test servers alike; eight
  48 MB headers at once leave the server's peak memory where it was.
- An uploaded `text/html` file downloads as an attachment, `nosniff`, sandboxed; no answer
  names the software that serves it (no `server` header).
- `?api_key=`, `?access_token=` (percent-encoded names and values too) and signed-link tokens
  never reach the server's log; a control character a client sends is escaped there.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    REDIS_URL,
    RunningServer,
    free_port,
    require_redis,
    unique,
)

MB = 1024 * 1024


# -- helpers ---------------------------------------------------------------------------------


def _answer_to(url: str, request: bytes) -> bytes:
    """What the server answers to `request`, read while it is still being sent (a server
    that answers early and stops reading must not leave the reader waiting)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80)) as sock:
        sock.settimeout(60)  # a safety net against a hung test, not a timing assertion

        def send() -> None:
            with contextlib.suppress(OSError):  # the server closed after answering: expected
                sock.sendall(request)

        sender = threading.Thread(target=send)
        sender.start()
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        sender.join()
    return received


def _big_header(size: int) -> bytes:
    return b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"


def _many_headers(count: int) -> bytes:
    lines = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    return b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n"


def _assert_431(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"connection: close" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "headers_too_large"
    assert error["details"]["field"] == "headers"


def _healthy(url: str) -> bool:
    return httpx.get(f"{url}/api/v1/health", timeout=30).status_code == 200


def _sign_in(url: str) -> tuple[str, str]:
    """An access token and a new API key of the admin."""
    with httpx.Client(base_url=url, timeout=30) as http:
        login = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        access = http.post("/api/v1/auth/login", json=login).json()["access"]
        key = http.post(
            "/api/v1/api_keys/create",
            json={"name": unique("k-")},
            headers={"authorization": f"Bearer {access}"},
        ).json()["key"]
    return access, key


@contextmanager
def roost_serve(tmp_path: Path, *args: str, **env: str) -> Iterator[tuple[str, Path, int]]:
    """`roost serve` as users start it, its output in a file: (url, log file, pid)."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    environment = {
        **os.environ,
        "ROOST_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ROOST_SECRET_KEY": secrets.token_urlsafe(40),
        **env,
    }
    command = [sys.executable, "-m", "roost.cli", "serve", "--port", str(port)]
    command += ["--data-dir", str(tmp_path / f"data-{port}"), *args]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if _healthy(url):
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError(f"roost serve did not answer: {log.read_text()}")
        yield url, log, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, int]]:
    """One `roost serve` (a single process, info log) for the tests that watch it from outside."""
    with roost_serve(tmp_path_factory.mktemp("serve"), "--log-level", "info") as running:
        yield running


def _peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


# -- header bounds ---------------------------------------------------------------------------


def test_huge_header_line_and_countless_headers_get_431(server: RunningServer) -> None:
    _assert_431(_answer_to(server.url, _big_header(32 * MB)))
    _assert_431(_answer_to(server.url, _many_headers(1000)))
    # a header block just under the limit (64 KiB), and 90 headers, are fine
    fine = _answer_to(
        server.url, _big_header(60 * 1024).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    )
    assert fine.startswith(b"HTTP/1.1 200 ")
    assert _answer_to(
        server.url, _many_headers(90).replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    ).startswith(b"HTTP/1.1 200 ")
    assert _healthy(server.url)


def test_header_limits_follow_the_settings(make_server: Callable[..., RunningServer]) -> None:
    running = make_server(max_header_count=20, max_header_bytes=8192)
    _assert_431(_answer_to(running.url, _many_headers(25)))
    _assert_431(_answer_to(running.url, _big_header(9000)))
    close = b"Host: x\r\nConnection: close\r\n"
    assert _answer_to(running.url, _many_headers(15).replace(b"Host: x\r\n", close)).startswith(
        b"HTTP/1.1 200 "
    )


def test_websocket_handshake_headers_are_bounded(server: RunningServer) -> None:
    ws_url = server.url.replace("http://", "ws://") + "/api/v1/ws"
    for headers in (
        [(f"x-h{i}", "v") for i in range(1000)],
        [("x-big", "a" * (2 * MB))],
    ):
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, additional_headers=headers, open_timeout=60).close()
        assert refused.value.response.status_code == 431
    assert _healthy(server.url)


def test_concurrent_huge_headers_leave_server_memory_bounded(
    served: tuple[str, Path, int],
) -> None:
    url, _, pid = served
    attack = _big_header(48 * MB)
    _assert_431(_answer_to(url, attack))  # warm: every code path has run once
    before = _peak_rss_bytes(pid)
    answers: list[bytes] = []
    attackers = [
        threading.Thread(target=lambda: answers.append(_answer_to(url, attack))) for _ in range(8)
    ]
    for thread in attackers:
        thread.start()
    for thread in attackers:
        thread.join()
    grown = _peak_rss_bytes(pid) - before
    assert len(answers) == 8
    for answer in answers:
        _assert_431(answer)
    assert _healthy(url)
    # unbounded, 8 x 48 MB grew the server by 500 MB; bounded, by a few buffers at most
    assert grown < 32 * MB, f"the server's peak memory grew by {grown / MB:.0f} MB"


def test_workers_mode_bounds_headers_and_redacts_logs(tmp_path: Path) -> None:
    require_redis()
    with roost_serve(
        tmp_path, "--workers", "2", "--log-level", "info", ROOST_REDIS_URL=REDIS_URL
    ) as (url, log, _):
        _assert_431(_answer_to(url, _big_header(32 * MB)))
        _assert_431(_answer_to(url, _many_headers(1000)))
        assert _healthy(url)
        access, key = _sign_in(url)
        _websocket_with_query_credentials(url, access, key)
        _assert_no_credential_logged(log, access, key)


# -- user files ------------------------------------------------------------------------------


def _upload(http: httpx.Client, bucket: str, name: str, content_type: str, body: bytes) -> None:
    answer = http.put(
        f"/api/v1/storage/buckets/{bucket}/objects/{quote(name)}",
        content=body,
        headers={"content-type": content_type},
    )
    assert answer.status_code == 200, answer.text


def _assert_contained(response: httpx.Response, disposition: str) -> None:
    assert response.headers["content-disposition"].startswith(disposition + ";")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_uploaded_html_downloads_as_a_sandboxed_attachment(server: RunningServer) -> None:
    access, _ = _sign_in(server.url)
    bucket = unique("xss-")
    page = b"<html><script>fetch('/api/v1/auth/whoami')</script></html>"
    auth = {"authorization": f"Bearer {access}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=30) as http:
        assert http.post("/api/v1/storage/create_bucket", json={"name": bucket}).status_code == 200
        _upload(http, bucket, "page.html", "text/html", page)
        _upload(http, bucket, "logo.svg", "image/svg+xml", b"<svg><script>1</script></svg>")
        _upload(http, bucket, "photo.png", "image/png", b"\x89PNG\r\n\x1a\n")
        tricky = 'report "final"\u00e9.html'
        _upload(http, bucket, tricky, "text/html", page)
        for name in ("page.html", "logo.svg"):
            download = http.get(f"/api/v1/storage/buckets/{bucket}/objects/{name}")
            assert download.content.startswith(b"<")
            _assert_contained(download, "attachment")
            head = http.head(f"/api/v1/storage/buckets/{bucket}/objects/{name}")
            _assert_contained(head, "attachment")
        _assert_contained(http.get(f"/api/v1/storage/buckets/{bucket}/objects/photo.png"), "inline")
        named = http.get(f"/api/v1/storage/buckets/{bucket}/objects/{quote(tricky)}")
        assert named.headers["content-disposition"] == (
            'attachment; filename="report _final__.html"; '
            "filename*=UTF-8''report%20%22final%22%C3%A9.html"
        )
        link = http.post(
            "/api/v1/storage/create_signed_url",
            json={"bucket": bucket, "name": "page.html", "expires_in": 60},
        ).json()["signed_url"]
        update = {"name": bucket, "visibility": "public"}
        assert http.post("/api/v1/storage/update_bucket", json=update).status_code == 200
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        _assert_contained(anonymous.get(link), "attachment")
        public = anonymous.get(f"/api/v1/storage/public/default/{bucket}/page.html")
        assert public.status_code == 200
        _assert_contained(public, "attachment")


def test_api_answers_say_nosniff(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for response in (
            http.get("/api/v1/health"),
            http.post("/api/v1/auth/login", json={"username": "x", "password": "wrong-one"}),
            http.get("/api/v1/nothing-here"),
        ):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "server" not in response.headers  # the software serving it is not named


# -- logs ------------------------------------------------------------------------------------


def _websocket_with_query_credentials(url: str, access: str, key: str) -> None:
    ws_url = url.replace("http://", "ws://") + "/api/v1/ws"
    # Starlette percent-decodes names and values: these authenticate as well as the plain ones
    encoded = (
        f"api%5Fkey={key.replace('_', '%5F')}",
        f"access%5Ftoken={access.replace('.', '%2E')}",
    )
    for query in (f"api_key={key}", f"access_token={access}", *encoded):
        with connect(f"{ws_url}?{query}", open_timeout=60) as ws:
            ws.send(json.dumps({"id": 1, "method": "auth.whoami", "params": {}}))
            assert json.loads(ws.recv(timeout=60))["id"] == 1
    httpx.get(f"{url}/api/v1/health?api_key={key}&access_token={access}", timeout=30)


def _assert_no_credential_logged(log: Path, access: str, key: str) -> None:
    expected = (
        "/api/v1/ws?api_key=[redacted]",
        "/api/v1/ws?access_token=[redacted]",
        "/api/v1/health?api_key=[redacted]&access_token=[redacted]",
    )
    # a busy worker may write its lines a little later, and access lines go out in batches
    deadline = time.monotonic() + 15
    while not all(line in (text := log.read_text()) for line in expected):
        assert time.monotonic() < deadline, f"the WebSocket lines were never logged: {text}"
        time.sleep(0.1)
    for secret in (access, access.split(".")[2], key, key.split("_", 3)[3]):
        assert secret not in text
    for secret in (access.replace(".", "%2E"), key.replace("_", "%5F")):
        assert secret not in text


def test_credentials_never_reach_the_log(served: tuple[str, Path, int]) -> None:
    url, log, _ = served
    access, key = _sign_in(url)
    _websocket_with_query_credentials(url, access, key)
    auth = {"authorization": f"Bearer {access}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
        http.post("/api/v1/storage/create_bucket", json={"name": "docs"})
        _upload(http, "docs", "a.txt", "text/plain", b"a")
        link: Any = http.post(
            "/api/v1/storage/create_signed_url",
            json={"bucket": "docs", "name": "a.txt", "expires_in": 60},
        ).json()["signed_url"]
        assert http.get(link).content == b"a"
    _assert_no_credential_logged(log, access, key)
    deadline = time.monotonic() + 15  # access lines are written in batches
    while "/api/v1/storage/signed/[redacted]" not in (text := log.read_text()):
        assert time.monotonic() < deadline, f"the signed link's line was never logged: {text}"
        time.sleep(0.1)
    assert link.rsplit("/", 1)[1] not in text


def test_control_characters_a_client_sends_are_escaped_in_the_log(tmp_path: Path) -> None:
    # at debug level the handshake's headers are logged one a line; a header value may hold a
    # tab (and nothing the HTTP parsers let through may start a line of its own)
    handshake = (
        b"GET /api/v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"X-Forged: a\tINFO:     forged\r\n\r\n"
    )
    with roost_serve(tmp_path, "--log-level", "debug") as (url, log, _):
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname or "", parts.port or 80)) as sock:
            sock.settimeout(60)
            sock.sendall(handshake)
            assert sock.recv(64).startswith(b"HTTP/1.1 101 ")
        deadline = time.monotonic() + 15
        while "x-forged:" not in (text := log.read_text()):
            assert time.monotonic() < deadline, f"the header was never logged: {text}"
            time.sleep(0.1)
    assert "\t" not in text
    assert "x-forged: a\\tINFO:     forged" in text
