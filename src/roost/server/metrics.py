"""`/metrics` (Prometheus text format, `prometheus-client`) and the JSON access log: ONE ASGI
hook around every door, so the doors' hot paths (limits, ws, dispatch) carry no counters; a
WebSocket session counts each call it answers through a function the hook hands it.

Per call the hook does O(1) work: a dict lookup of the path (the REST door's routes name the
operation), the answer's status and X-Request-Id (left in the scope by the REST door, read by
a `send` wrapper for the other doors), and a note of the call in a list, added up into dict
counts in batches (made into Prometheus families only when scraped). Labels are bounded: an
operation is one of the registry's names or a fixed word (`function`, `file`, `other`), never a
caller-chosen string, so no caller can grow the series without bound.

What is measured only at scrape time costs the calls nothing: queue depths (of the queues this
process has served, `services.queue.seen_queues`), backend outages (`backends.errors.OUTAGES`).

With several server processes (`--workers`), each process answers with its own figures: scrape
each replica (the usual Prometheus set-up), or run one worker per container.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roost.backends import errors as backend_errors
from roost.server.responses import ANSWERED
from roost.server.rpc import COUNT_KEY
from roost.services import queue as queue_service
from roost.services.context import Platform
from roost.services.scopes import METRICS_SCOPE

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

__all__ = ["METRICS_SCOPE", "Metrics", "Observed", "metrics_listener"]

access_logger = logging.getLogger("roost.access")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WS_PATH = "/api/v1/ws"
_FUNCTIONS_PREFIX = "/api/v1/fn/"
_FILES_PREFIX = "/api/v1/storage/"
_SIGNED_PREFIX = "/api/v1/storage/signed/"
_BATCH = 256  # requests counted before they are added up (and at every scrape)
_UNANSWERED = (500, "")  # a REST request whose door raised: the server answered 500


class Metrics:
    """The figures of one app (its own registry: two apps in one process never mix).

    Counted in plain dicts and ints per request and connection; prometheus_client (55 ms
    of imports) loads only when the figures are first scraped, never at start-up."""

    def __init__(self) -> None:
        # Per request: plain counts, turned into Prometheus families only when scraped
        # (`_Figures.collect`): prometheus_client's children take a lock and cost
        # ~3 µs a request between them, a sixth of a whole kv.get.
        self.figures = _Figures()
        self._registry: CollectorRegistry | None = None

    async def exposition(self, platform: Platform) -> tuple[bytes, str]:
        """The figures in Prometheus text format and its content type, the scrape-time
        ones read now."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        depths: dict[tuple[str, str, str], int] = {}
        for name in list(queue_service.seen_queues()):
            counts = await platform.queues.counts(name)
            tenant, _, queue = name.partition(":")
            for state in ("ready", "delayed", "in_flight", "dead"):
                depths[(tenant, queue, state)] = getattr(counts, state)
        self.figures.queue_depths = depths
        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=True)
            self._registry.register(self.figures)
        return generate_latest(self._registry), CONTENT_TYPE_LATEST


class _Figures:
    """Requests by (operation, status, door), their latency by (operation, door), function
    invocations by status and WebSocket connections open: counted in dicts per request, read
    as metric families by the registry at scrape time (a prometheus_client custom
    collector), with the queue depths read for the scrape and the backends' outages."""

    def __init__(self) -> None:
        # (operation, door) -> its requests by status and their latency: one lookup a call
        self.series: dict[tuple[str, str], _Series] = {}
        self.invocations: dict[int, int] = {}
        self.websockets = 0
        self.queue_depths: dict[tuple[str, str, str], int] = {}
        self._pending: list[tuple[str, str, int, float]] = []  # counted, not yet added up

    def count(self, operation: str, door: str, status: int, elapsed: float) -> None:
        """Count a request (or a WebSocket call): noted now, added up `_BATCH` at a time.

        Adding each request up at once cost 0.3 us in a loop of its own, but far more in a
        server under load: this and the REST door's unwrapped `send` (below) together saved
        2-3 us of the ~45 of an HTTP whoami (ab.py, 32 connections, four hash seeds).
        Presumably the kernel's networking and the rest of a call push the counters out of
        the CPU's caches between two requests: an append touches one list, and a batch is
        added up while the counters are warm."""
        pending = self._pending
        pending.append((operation, door, status, elapsed))
        if len(pending) >= _BATCH:
            self.add_up()

    def add_up(self) -> None:
        """Add the requests counted since the last time into the figures."""
        pending, self._pending = self._pending, []
        all_series, invocations = self.series, self.invocations
        for operation, door, status, elapsed in pending:
            series = all_series.get((operation, door))
            if series is None:
                series = all_series[(operation, door)] = _Series()
            statuses = series.statuses
            statuses[status] = statuses.get(status, 0) + 1
            cells = series.cells
            cells[bisect.bisect_left(_LATENCY_BUCKETS, elapsed)] += 1
            cells[-1] += elapsed
            if operation in ("function", "functions.execute"):
                invocations[status] = invocations.get(status, 0) + 1

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        requests = CounterMetricFamily(
            "roost_requests",
            "Requests answered, by operation, HTTP status and door.",
            labels=("operation", "status", "door"),
        )
        self.add_up()
        series = list(self.series.items())
        for (operation, door), of in series:
            for status, count in list(of.statuses.items()):
                requests.add_metric((operation, str(status), door), count)
        yield requests
        latency = HistogramMetricFamily(
            "roost_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by operation and door.",
            labels=("operation", "door"),
        )
        bounds = [*map(str, _LATENCY_BUCKETS), "+Inf"]
        for (operation, door), of in series:
            cells = list(of.cells)
            cumulative = list(itertools.accumulate(cells[:-1]))
            latency.add_metric(
                (operation, door), list(zip(bounds, cumulative, strict=True)), cells[-1]
            )
        yield latency
        invocations = CounterMetricFamily(
            "roost_function_invocations",
            "Deployed functions called over HTTP (/api/v1/fn/<name> and functions.execute), "
            "by HTTP status.",
            labels=("status",),
        )
        for status, count in list(self.invocations.items()):
            invocations.add_metric((str(status),), count)
        yield invocations
        yield GaugeMetricFamily(
            "roost_websocket_connections", "WebSocket connections open now.", self.websockets
        )
        depths = GaugeMetricFamily(
            "roost_queue_messages",
            "Messages of a queue by state (ready, delayed, in_flight, dead), for the queues "
            "this process served.",
            labels=("tenant", "queue", "state"),
        )
        for labels, depth in list(self.queue_depths.items()):
            depths.add_metric(labels, depth)
        yield depths
        outages = GaugeMetricFamily(
            "roost_backend_errors",
            "Backend outages met by this process (a driver error answered with 503), by "
            "backend; only grows.",
            labels=("backend",),
        )
        for backend, count in list(backend_errors.OUTAGES.items()):
            outages.add_metric((backend,), count)
        yield outages


class _Series:
    """The requests of one (operation, door): how many by status, and their latency as the
    count in each bucket (the last but one: above every bound) and, last, their sum."""

    __slots__ = ("cells", "statuses")

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.cells = [0.0] * (len(_LATENCY_BUCKETS) + 2)


class Observed:
    """The ASGI hook: counts and times every HTTP request and WebSocket connection of `app`,
    and writes one JSON access-log line per request when `access_log` is on."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        operations: Mapping[str, str],
        *,
        access_log: bool = False,
        door: object = None,
    ) -> None:
        self.app = app
        self.door = door  # the RestDoor inside (tests reach its dispatcher through it)
        self.metrics = metrics
        self.operations = operations  # REST path -> operation name (the REST door's routes)
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The HTTP case is written out here, not in a method of its own: every request runs
        # it, and each coroutine layer costs (as does a coroutine wrapped around `send`).
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        operation = self.operations.get(path)  # an operation's route, as most requests are
        started = time.perf_counter()
        if operation is not None:
            # The REST door leaves its answer's status and request id in the scope
            # (`ANSWERED`): no wrapper around `send` (see `_Figures.count` for what the two
            # saved).
            try:
                await self.app(scope, receive, send)
            finally:
                status, rid = scope.get(ANSWERED, _UNANSWERED)
                elapsed = time.perf_counter() - started
                self.metrics.figures.count(operation, "rest", status, elapsed)
                if self.access_log:
                    self._log(scope, operation, "rest", status, rid, elapsed)
            return
        operation, door = self._classify(path)
        answer = _Answer(send, self.access_log)
        try:
            await self.app(scope, receive, answer)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.figures.count(operation, door, answer.status, elapsed)
            if answer.logged:
                self._log(scope, operation, door, answer.status, answer.request_id, elapsed)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        figures = self.metrics.figures
        figures.websockets += 1
        # the door's session counts each call it answers (`rpc.RpcSession`), door "ws"
        scope[COUNT_KEY] = figures.count
        try:
            await self.app(scope, receive, send)
        finally:
            figures.websockets -= 1

    def _classify(self, path: str) -> tuple[str, str]:
        """The operation and door of a request on no REST route."""
        if path.startswith(_FUNCTIONS_PREFIX):
            return "function", "rest"
        if path.startswith(_FILES_PREFIX):
            return "file", "files"
        return "other", "http"

    def _log(
        self,
        scope: Scope,
        operation: str,
        door: str,
        status: int,
        rid: str,
        elapsed: float,
    ) -> None:
        client = scope.get("client")
        # the path only, never the query string; a signed link's path is its token
        path = scope["path"]
        if path.startswith(_SIGNED_PREFIX):
            path = _SIGNED_PREFIX + "..."
        access_logger.info(
            json.dumps(
                {
                    "request_id": rid,
                    "method": scope.get("method", ""),
                    "path": path[:300],
                    "operation": operation,
                    "door": door,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": client[0] if client else "",
                }
            )
        )


class _Answer:
    """The `send` the app of an HTTP request is handed: passes each message on, noting the
    status of the answer (500 until one starts) and, for the access log only, its request id.

    A plain callable returning `send`'s own awaitable, not a coroutine around it: no coroutine
    layer per message."""

    __slots__ = ("logged", "request_id", "send", "status")

    def __init__(self, send: Send, logged: bool) -> None:
        self.send = send
        self.logged = logged
        self.status = 500
        self.request_id = ""

    def __call__(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if self.logged:  # the request id is read for the log only
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-request-id":
                        self.request_id = value.decode("latin-1")
        return self.send(message)


@contextlib.asynccontextmanager
async def metrics_listener(
    listen: str | None, metrics: Metrics, platform: Platform
) -> AsyncIterator[None]:
    """With `listen` (host:port), serve `GET /metrics` there, without credentials, while the
    block runs. Hand-written on asyncio streams (one request per connection, HTTP/1.0 style)
    because a second uvicorn server in the process would take over its signal handlers, and
    prometheus_client's own server runs in a thread outside the event loop the queue depths
    are read on."""
    if not listen:
        yield
        return
    host, _, port = listen.rpartition(":")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            method, _, rest = head.partition(b" ")
            target = rest.split(b" ", 1)[0]
            if method == b"GET" and target.split(b"?", 1)[0] == b"/metrics":
                status, (body, kind) = "200 OK", await metrics.exposition(platform)
            else:
                status, body, kind = "404 Not Found", b"see /metrics\n", "text/plain"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}"
                "\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that sent no full request head in time, or went away: no answer
        finally:
            writer.close()

    server = await asyncio.start_server(answer, host or "127.0.0.1", int(port))
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
