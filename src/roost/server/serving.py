"""How Roost runs under uvicorn: one config builder for `roost serve` and the tests.

uvicorn's httptools protocol has no limit on a request's head: a 32 MB header line was read
whole, and eight connections sending 48 MB each grew a server by 500 MB. `BoundedHttpTools`
feeds the parser at most `max_header_bytes` of a head (request line and headers; the
WebSocket handshake is such a head too) and counts headers, and past either limit answers 431
and closes: a connection holds at most the limit plus one socket read of a head, however much
it sends, and one head at a time.

Each request runs in a task of its own, as uvicorn runs it. (Running it inline in the read that
brought it, as the WebSocket door runs its calls, was tried: with 8 or 32 connections busy it
cost the server 11-25% more CPU per trivial call than a task, and saved 0-9% with one
connection; see docs/architecture.md, "Doors".)
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httptools
import msgspec
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from roost._startup import resume_collector
from roost.errors import ValidationError
from roost.server.access_lines import access_logger
from roost.server.file_sending import ZERO_COPY, FileSendingCycle
from roost.server.redaction import log_config
from roost.settings import Settings
from roost.wire.codec import JSON

_LINGER = 1.0  # seconds a refused client has to read the 431 before the socket closes


class HeadLimits(msgspec.Struct, frozen=True):
    """How large a request head may be: bytes of the request line and headers, and headers."""

    max_bytes: int = 64 * 1024
    max_count: int = 100


class ServerConfig(uvicorn.Config):
    """uvicorn's Config plus the head limits its protocol reads (picklable, for workers)."""

    def __init__(self, app: Any, *, head_limits: HeadLimits, **options: Any) -> None:
        super().__init__(app, **options)
        self.head_limits = head_limits


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with each request head bounded (431 past the limits)."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = config.head_limits if isinstance(config, ServerConfig) else HeadLimits()
        self.in_head = True  # between requests, or inside a request line and headers
        self.head_bytes = 0
        self.refusal: str | None = None  # why this request is refused, once it is
        self.closer: asyncio.TimerHandle | None = None  # set when the 431 has gone out
        if self.access_log:  # uvicorn's line per request, written in batches
            self.access_logger = access_logger()

    # Every request runs the callbacks below: they call the base class' own by name, as a
    # super() call builds a proxy object each time.

    def data_received(self, data: bytes) -> None:
        # A head reaches the parser at most `max_bytes` at a time, and only until it passes
        # the limit: httptools keeps an unfinished header line whole in memory.
        if (
            self.in_head
            and self.closer is None
            and len(data) <= self.limits.max_bytes - self.head_bytes
            and not self.transport.is_closing()
            and self.transport.get_protocol() is self
        ):
            # the usual case, a whole request in one read: the loop below would feed it as one
            # piece too (no copy of `data[:room]`, no second turn)
            self.head_bytes += len(data)
            self._parse(data)
            return
        while data and not self.transport.is_closing() and self.transport.get_protocol() is self:
            if self.closer is not None:
                return  # refused: read and dropped while the 431 lingers
            if not self.in_head:
                HttpToolsProtocol.data_received(self, data)
                return
            room = self.limits.max_bytes - self.head_bytes
            if room <= 0:
                self.refuse(f"the request line and headers pass {self.limits.max_bytes} bytes")
                return
            piece, data = data[:room], data[room:]
            self.head_bytes += len(piece)
            HttpToolsProtocol.data_received(self, piece)

    def _parse(self, data: bytes) -> None:
        # uvicorn's `data_received`, written out: the whole of it runs for every request
        task = self.timeout_keep_alive_task
        if task is not None:
            task.cancel()
            self.timeout_keep_alive_task = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_header(self, name: bytes, value: bytes) -> None:
        # The headers counted are those kept: uvicorn's list of this request's headers (made
        # anew for each request), which a refused header never joins.
        headers = self.headers
        if len(headers) >= self.limits.max_count:
            self.refusal = f"a request may carry at most {self.limits.max_count} headers"
            return  # refused when the head ends; the parser has the rest of this piece to go
        # uvicorn's own `on_header`, written out: it runs for every header of every request
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.refusal is not None:
            self.refuse(self.refusal)  # and no app, no body, no upgrade for this request
            return
        cycle = self.cycle
        HttpToolsProtocol.on_headers_complete(self)
        if self.cycle is not cycle and self.scope["method"] == "GET":
            # a GET may be answered with a file, which the server then sends (file_sending.py):
            # uvicorn made the request's cycle and its task has not run yet, so the cycle can
            # still become the same object of the subclass that also sends files
            self.scope["extensions"] = {ZERO_COPY: {}}
            if type(self.cycle) is RequestResponseCycle:
                self.cycle.__class__ = FileSendingCycle

    def on_body(self, body: bytes) -> None:
        if self.refusal is not None:
            return
        # uvicorn's own `on_body`, written out (a call less for every request with a body)
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        self.in_head, self.head_bytes = True, 0
        if self.refusal is None:
            HttpToolsProtocol.on_message_complete(self)

    def handle_websocket_upgrade(self) -> None:
        if self.refusal is None:
            HttpToolsProtocol.handle_websocket_upgrade(self)

    def refuse(self, message: str) -> None:
        """Answer 431 and close; what the client still sends meanwhile is read and dropped."""
        if self.closer is not None:
            return
        self.refusal = message
        error = ValidationError(
            message,
            code="headers_too_large",
            status_code=431,
            details={
                "field": "headers",
                "max_bytes": self.limits.max_bytes,
                "max_count": self.limits.max_count,
            },
        )
        body = JSON.encode({"error": error.to_dict()})
        head = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"x-content-type-options: nosniff\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        # closing at once with unread input would reset the connection and could lose the 431
        self.closer = self.loop.call_later(_LINGER, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closer is not None:
            self.closer.cancel()
        super().connection_lost(exc)


def server_config(
    app: Any, settings: Settings, *, host: str, port: int, **options: Any
) -> ServerConfig:
    """The uvicorn config every Roost server runs with (`roost serve` in every mode, and the
    test servers): bounded request heads, redacted logs, the WebSocket implementation."""
    defaults: dict[str, Any] = {
        "http": BoundedHttpTools,
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,  # costs ~27% on small frames; see architecture.md
        "log_config": log_config(),
        "proxy_headers": False,
        "server_header": False,  # no "server: uvicorn": what runs the API is nobody's business
        # a worker answers the supervisor's ping only once spawned and imported; uvicorn's 5 s
        # killed and respawned workers in a loop on a busy machine
        "timeout_worker_healthcheck": 30,
    }
    limits = HeadLimits(settings.max_header_bytes, settings.max_header_count)
    return ServerConfig(app, head_limits=limits, host=host, port=port, **{**defaults, **options})


def serve(config: ServerConfig) -> None:
    """Run the server in this process, or under a supervisor of `config.workers` processes
    (what `uvicorn.run` does, for a config built here)."""
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        if config.workers > 1:
            resume_collector()  # the supervisor runs no app (its workers never paused)
            Multiprocess(config, sockets=[config.bind_socket()]).run()
            return
        server.run()
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
