"""A webhook receiver the tests run on loopback: it records every request and answers as
scripted.

    with webhook_receiver() as receiver:               # http://127.0.0.1:<free port>
        receiver.reply(Reply(status=500), Reply(delay=5))   # the next two requests, in order
        ...POST to receiver.url (or receiver.url_for("/hooks/a"))...
        receiver.received[0].headers["webhook-id"]      # every request, in arrival order
        receiver.events()                               # their bodies, parsed as JSON
        receiver.wait(3)                                # blocks until 3 have arrived (sync)
        receiver.reply_on("/hooks/a", Reply(status=503))  # the next request to that path
        receiver.of("/hooks/a"), receiver.events("/hooks/a")  # that path's requests only

Requests past the scripted replies get `receiver.default` (200, empty body); replies scripted
for a path (`reply_on`) go before the others to requests to that path, so tests sharing one
receiver do not take each other's. A `Reply` can
wait before answering (`delay`, cut short when the receiver stops), add headers (a
`location` for a redirect, `retry-after`), send a body, an endless body (`endless`, as fast
as it is read) or one that drips a byte every `drip` seconds and never ends. Each request is
recorded before its reply starts, so it is in `received` even when the sender gave up.

`webhook_receiver(tls_names=["hooks.test"])` serves https with a certificate for those names
from a test CA (trustme); `receiver.client_tls()` is a context that trusts it.

The server's default ROOST_WEBHOOK_ALLOW refuses loopback: a Roost server under test that
delivers here needs `webhook_allow="127.0.0.1"` (or 127.0.0.0/8). A uvicorn server in a
thread, like tests/oidc_provider.py: usable from sync and async tests alike.
"""

from __future__ import annotations

import asyncio
import collections
import json
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
import uvicorn

from roost.testing import loopback_socket, serve_in_thread

ASGIMessage = dict[str, Any]
_CHUNK = b"x" * 65536


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one request."""

    status: int = 200
    delay: float = 0.0
    """seconds to wait before answering (ends early when the receiver stops)"""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    endless: bool = False
    """after `body`, 64 KiB chunks for as long as the sender reads them"""
    drip: float | None = None
    """after `body`, one byte every `drip` seconds, for as long as the sender waits"""


@dataclass
class Received:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    """lower-case names; a repeated header keeps its last value"""
    body: bytes
    sent: int = 0
    """bytes of the answer's body the receiver handed to the connection"""
    finished: bool = False
    """the whole answer was handed to the connection"""
    disconnected: bool = False
    """the sender closed the connection before the answer ended"""

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """Records requests and answers them as scripted; see the module's docstring."""

    def __init__(self, *, tls_names: Sequence[str] = ()) -> None:
        self._listener = loopback_socket()
        self.port: int = self._listener.getsockname()[1]
        self.scheme = "https" if tls_names else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.received: list[Received] = []
        self.default = Reply()
        self._replies: collections.deque[Reply] = collections.deque()
        self._path_replies: dict[str, collections.deque[Reply]] = {}
        self._stopping = threading.Event()
        self._tls_names = list(tls_names)
        self._ca = trustme.CA() if tls_names else None
        self._folder = tempfile.TemporaryDirectory(prefix="webhook-receiver-")
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def url_for(self, path: str, host: str = "127.0.0.1") -> str:
        """The URL of `path` here, optionally under another host name that resolves here."""
        return f"{self.scheme}://{host}:{self.port}{path}"

    def reply(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, in order (then `default`)."""
        self._replies.extend(replies)

    def reply_on(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to `path` with `replies`, in order (then as any other)."""
        self._path_replies.setdefault(path, collections.deque()).extend(replies)

    def of(self, path: str) -> list[Received]:
        """The requests to `path` so far, in arrival order."""
        return [request for request in list(self.received) if request.path == path]

    def wait(self, count: int, seconds: float = 15) -> list[Received]:
        """Block until `count` requests in all have arrived (for sync tests; an async test
        waits with `tests.waiting.wait_until(lambda: len(receiver.received) >= count)`)."""
        deadline = time.monotonic() + seconds
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} requests arrived, not {count}")
            time.sleep(0.02)
        return self.received

    def events(self, path: str | None = None) -> list[Any]:
        """The bodies received so far (of requests to `path`, if given), parsed as JSON."""
        found = list(self.received) if path is None else self.of(path)
        return [request.json() for request in found]

    def client_tls(self) -> ssl.SSLContext:
        """A verifying client context that trusts this receiver's test CA."""
        assert self._ca is not None, "a receiver started with tls_names"
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context

    def start(self) -> WebhookReceiver:
        options: dict[str, Any] = {}
        if self._ca is not None:
            pem = Path(self._folder.name) / "receiver.pem"
            self._ca.issue_cert(*self._tls_names).private_key_and_cert_chain_pem.write_to_path(
                str(pem)
            )
            options = {"ssl_certfile": str(pem)}
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
            timeout_graceful_shutdown=2,
            **options,
        )
        self._server = uvicorn.Server(config)
        self._thread = serve_in_thread(self._server, self._listener, "the webhook receiver")
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._listener.close()  # the server closes it too; not if it never started
        self._folder.cleanup()

    async def _app(self, scope: ASGIMessage, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        request = Received(
            method=scope["method"],
            path=scope["path"],
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            body=b"".join(chunks),
        )
        self.received.append(request)
        mine = self._path_replies.get(request.path)
        if mine:
            reply = mine.popleft()
        else:
            reply = self._replies.popleft() if self._replies else self.default
        gone = asyncio.Event()
        watcher = asyncio.create_task(self._watch(receive, request, gone))
        try:
            await self._wait(reply.delay, gone)
            if not gone.is_set():
                await self._answer(reply, request, send, gone)
        finally:
            watcher.cancel()

    async def _watch(self, receive: Any, request: Received, gone: asyncio.Event) -> None:
        """uvicorn's `send` goes silent once the sender has gone: watch for it instead."""
        while (await receive())["type"] != "http.disconnect":
            pass
        request.disconnected = not request.finished
        gone.set()

    async def _wait(self, seconds: float, gone: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        # polled: `_stopping` is set from the test's thread, outside this loop
        while loop.time() < until and not gone.is_set() and not self._stopping.is_set():  # noqa: ASYNC110
            await asyncio.sleep(min(0.05, max(until - loop.time(), 0)))

    async def _answer(
        self, reply: Reply, request: Received, send: Any, gone: asyncio.Event
    ) -> None:
        headers = [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        streaming = reply.endless or reply.drip is not None
        await send({"type": "http.response.body", "body": reply.body, "more_body": streaming})
        request.sent += len(reply.body)
        request.finished = not streaming
        while streaming and not gone.is_set() and not self._stopping.is_set():
            if reply.drip is not None:
                await self._wait(reply.drip, gone)
            chunk = _CHUNK if reply.endless else b"."
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            request.sent += len(chunk)
            await asyncio.sleep(0)  # a send that need not wait for the reader never yields
        if streaming and not gone.is_set():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            request.finished = True


@contextmanager
def webhook_receiver(*, tls_names: Sequence[str] = ()) -> Iterator[WebhookReceiver]:
    """A receiver on a free loopback port for the `with` block."""
    receiver = WebhookReceiver(tls_names=tls_names)
    try:
        yield receiver.start()
    finally:
        receiver.stop()
