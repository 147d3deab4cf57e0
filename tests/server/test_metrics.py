"""`/metrics` (Prometheus text) and the JSON access log, on a real server."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from roost import Client
from tests.conftest import RunningServer, free_port, unique
from tests.waiting import wait_until


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and labels (the parser proves the format)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_calls_by_operation_status_and_door(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server()
    with Client(api_url=server.url) as client:
        admin = client.auth.sign_in_with_password("admin", "admin-password-1")
        admin.auth.whoami()
        queue = unique("jobs")
        admin.queue.publish(queue, {"n": 1})
        admin.queue.publish(queue, {"n": 2})
        token = client.auth.login("admin", "admin-password-1")["access"]
    httpx.post(f"{server.url}/api/v1/auth/whoami")  # refused: no credential
    bearer = {"Authorization": f"Bearer {token}"}
    ws_url = server.url.replace("http://", "ws://") + "/api/v1/ws"
    with connect(ws_url, additional_headers=bearer) as ws:
        scraped = httpx.get(f"{server.url}/metrics", headers=bearer)
        assert samples(scraped.text)[("roost_websocket_connections", frozenset())] == 1
        # calls over the WebSocket are counted too (door "ws"), a caller's own method name
        # never becomes a label: an unknown one is "other", any `fn.<name>` is "function"
        for n, method in enumerate(["auth.whoami", "kv.get", "no.such", "fn." + "x" * 60]):
            params = {"key": "k"} if method == "kv.get" else {}
            ws.send(json.dumps({"id": n, "method": method, "params": params}))
            assert json.loads(ws.recv())["id"] == n
    scraped = httpx.get(f"{server.url}/metrics", headers=bearer)
    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["content-type"].startswith("text/plain")
    found = samples(scraped.text)
    whoami = frozenset({("operation", "auth.whoami"), ("status", "200"), ("door", "rest")})
    assert found[("roost_requests_total", whoami)] >= 1
    refused = frozenset({("operation", "auth.whoami"), ("status", "401"), ("door", "rest")})
    assert found[("roost_requests_total", refused)] == 1
    over_ws = frozenset({("operation", "auth.whoami"), ("status", "200"), ("door", "ws")})
    assert found[("roost_requests_total", over_ws)] == 1
    kv_get = frozenset({("operation", "kv.get"), ("status", "200"), ("door", "ws")})
    assert found[("roost_requests_total", kv_get)] == 1
    other = frozenset({("operation", "other"), ("status", "404"), ("door", "ws")})
    assert found[("roost_requests_total", other)] == 1
    function = frozenset({("operation", "function"), ("door", "ws")})
    assert found[("roost_request_duration_seconds_count", function)] == 1
    assert not any("no.such" in str(labels) or "xxxx" in str(labels) for _, labels in found)
    latency = frozenset({("operation", "auth.whoami"), ("door", "rest")})
    assert found[("roost_request_duration_seconds_count", latency)] >= 1
    ready = frozenset({("tenant", "default"), ("queue", queue), ("state", "ready")})
    assert found[("roost_queue_messages", ready)] == 2


def test_metrics_need_the_scope_in_the_default_tenant(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server()
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    with Client(api_url=server.url) as client:
        admin = client.auth.sign_in_with_password("admin", "admin-password-1")
        narrow = admin.api_keys.create("narrow", ["kv:read"])["key"]
        allowed = admin.api_keys.create("scraper", ["metrics:read"])["key"]
        tenant = unique("t")
        admin.tenants.create(tenant, admin_username="boss", admin_password="x" * 12)
        # a tenant cannot make the platform's scope its own
        assert "metrics:read" in {s["name"] for s in admin.scopes.list() if s["builtin"]}
    refused = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Api-Key {narrow}"})
    assert refused.status_code == 403
    assert refused.json()["error"]["details"] == {"scope": "metrics:read"}
    ok = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Api-Key {allowed}"})
    assert ok.status_code == 200
    with Client(api_url=server.url, tenant=tenant) as client:
        token = client.auth.login("boss", "x" * 12)["access"]
    foreign = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert foreign.status_code == 403


def test_metrics_on_their_own_address_and_access_log_lines(
    make_server: Callable[..., RunningServer],
) -> None:
    port = free_port()
    server = make_server(metrics_listen=f"127.0.0.1:{port}", access_log=True)
    # the server's logging setup gives `roost.access` a handler of its own (bare JSON lines on
    # stdout, not propagated): listen beside it
    records: list[logging.LogRecord] = []

    class Listener(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    listener = Listener()
    access = logging.getLogger("roost.access")
    access.addHandler(listener)
    try:
        answer = httpx.post(
            f"{server.url}/api/v1/health/check", headers={"X-Request-Id": "req-abc-123"}
        )
        httpx.get(f"{server.url}/api/v1/storage/signed/secret-token-value")
        # a line is written once its answer is sent: wait for both
        asyncio.run(wait_until(lambda: len(records) >= 2))
    finally:
        access.removeHandler(listener)
    assert answer.status_code == 200, answer.text
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert scraped.status_code == 200
    assert "roost_requests_total" in scraped.text
    assert httpx.get(f"http://127.0.0.1:{port}/other").status_code == 404
    # the API port does not serve them when they have their own address
    assert httpx.get(f"{server.url}/metrics").status_code == 404
    lines = [json.loads(record.getMessage()) for record in records]
    health = next(line for line in lines if line["request_id"] == "req-abc-123")
    assert (health["operation"], health["status"], health["door"]) == ("health.check", 200, "rest")
    signed = next(line for line in lines if line["door"] == "files")
    assert signed["path"].startswith("/api/v1/storage/signed/")
    assert not any("secret-token-value" in json.dumps(line) for line in lines)


def test_tracing_records_a_span_per_request(make_server: Callable[..., RunningServer]) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: OpenTelemetry allows no reset
    server = make_server(tracing=True)
    assert httpx.get(f"{server.url}/api/v1/health").status_code == 200
    provider.force_flush()
    names = [span.name for span in exporter.get_finished_spans()]
    assert any("/api/v1/health" in name for name in names), names
