"""Cron triggers on two replicas (PostgreSQL and Redis shared, clocks moved together): every
tick fires exactly once, whichever replica claims it, and keeps firing while one is stopped.
A server killed (-9) with an event accepted but not delivered delivers it after a restart,
and so does one killed between a write's commit and the queueing of its event (the outbox)."""

from __future__ import annotations

import base64
import os
import secrets
import signal
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from roost import Client
from roost.errors import NetworkError
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    REDIS_URL,
    RunningServer,
    require_redis,
    unique,
)
from tests.replicas import serve
from tests.waiting import eventually
from tests.webhook_receiver import Reply, WebhookReceiver, webhook_receiver

MINUTE = 60.0


def _ticks_received(receiver: WebhookReceiver, path: str) -> list[float]:
    return [datetime.fromisoformat(e["data"]["tick"]).timestamp() for e in receiver.events(path)]


def _minutes_between(start: float, end: float) -> list[float]:
    first = (start // MINUTE + 1) * MINUTE
    return [first + MINUTE * i for i in range(int((end - first) // MINUTE) + 1) if first <= end]


def test_each_cron_tick_fires_once_across_two_replicas_and_while_one_is_stopped(
    make_server: Callable[..., RunningServer],
) -> None:
    require_redis()
    shared = {
        "redis_url": REDIS_URL,
        "pg_schema_prefix": f"rt{secrets.token_hex(4)}",
        "functions_queue": f"t{secrets.token_hex(6)}",
        "secret_key": secrets.token_urlsafe(40),
        "master_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "webhook_allow": "127.0.0.0/8",
        "triggers_tick_seconds": 0.05,
    }
    first = make_server("postgresql", **shared)
    second = make_server("postgresql", **shared)
    name, path = unique("every-minute"), "/cron"
    with webhook_receiver() as receiver, Client(api_url=first.url) as client:
        admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        made_at = first.clock.time()
        admin.triggers.create(
            name,
            {"kind": "cron", "schedule": "* * * * *"},
            {"kind": "url", "url": receiver.url + path},
        )

        def advance(seconds: float, servers: list[RunningServer]) -> None:
            for running in servers:
                running.clock.advance(seconds)

        def caught_up() -> bool:
            due = _minutes_between(made_at, first.clock.time() - 0.5)
            return set(due) <= set(_ticks_received(receiver, path))

        for _ in range(3):
            advance(MINUTE, [first, second])
            eventually(caught_up)
        second.stop()
        for _ in range(2):
            advance(MINUTE, [first])
            eventually(caught_up)
        received = _ticks_received(receiver, path)
        assert received, "no tick fired"
        repeated = [tick for tick, n in Counter(received).items() if n > 1]
        assert repeated == []
        assert sorted(received) == _minutes_between(made_at, max(received))
        assert len(received) >= 5
        ids = [r.headers["webhook-id"] for r in receiver.of(path)]
        assert len(ids) == len(set(ids))


def _durable_env(tmp_path: Path) -> dict[str, str]:
    return {
        "ROOST_DATA_DIR": str(tmp_path / "data"),
        "ROOST_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ROOST_WEBHOOK_ALLOW": "127.0.0.0/8",
        "ROOST_TRIGGERS_LEASE_SECONDS": "1",
        "ROOST_TRIGGERS_TICK_SECONDS": "0.05",
        "ROOST_FUNCTIONS_ENABLED": "false",
        "ROOST_PASSWORD_HASH_MEMORY_KIB": "1024",  # the admin's password is hashed at start
        "ROOST_PASSWORD_HASH_TIME_COST": "1",
        "ROOST_PASSWORD_HASH_PARALLELISM": "1",
    }


def test_an_event_accepted_before_a_kill_is_delivered_after_the_restart(tmp_path: Path) -> None:
    env = _durable_env(tmp_path)
    with webhook_receiver() as receiver:
        # the first delivery hangs until the server is killed (its connection then closes)
        receiver.reply_on("/durable", Reply(delay=120))
        server = serve(tmp_path, "before", env)
        try:
            with Client(api_url=server.url) as client:
                admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
                table = unique("orders_")
                admin.schema.add_table(table, [{"name": "item", "type": "text"}])
                admin.triggers.create(
                    unique("durable"),
                    {"kind": "database", "table": table},
                    {"kind": "url", "url": receiver.url + "/durable"},
                )
                admin.database.create(table, {"item": "tea"})  # answered: the event is queued
            eventually(lambda: len(receiver.of("/durable")) == 1, seconds=60)
            server.kill()
        finally:
            server.stop()
        first_id = receiver.of("/durable")[0].headers["webhook-id"]
        restarted = serve(tmp_path, "after", env)
        try:
            eventually(lambda: len(receiver.of("/durable")) >= 2, seconds=60)
            again = receiver.of("/durable")[1]
            assert again.headers["webhook-id"] == first_id
            assert again.json()["data"]["new"]["item"] == "tea"
            answer = httpx.get(restarted.url + "/api/v1/health")
            assert answer.status_code == 200
        finally:
            restarted.stop()


def test_a_kill_between_the_commit_and_the_queueing_loses_no_event(tmp_path: Path) -> None:
    """The server dies (SIGKILL, by the test-only setting) once the insert has committed and
    before its event is queued: the restarted server finds it in the outbox and delivers it."""
    env = _durable_env(tmp_path)
    with webhook_receiver() as receiver:
        dying = serve(tmp_path, "dying", {**env, "ROOST_TRIGGERS_TEST_DIE_AFTER_COMMIT": "true"})
        try:
            with Client(api_url=dying.url, max_retries=0) as client:
                admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
                table, name = unique("orders_"), unique("outbox")
                admin.schema.add_table(table, [{"name": "item", "type": "text"}])
                admin.triggers.create(
                    name,
                    {"kind": "database", "table": table},
                    {"kind": "url", "url": receiver.url + "/outbox"},
                )
                with pytest.raises(NetworkError):  # the server died before it answered
                    admin.database.create(table, {"item": "tea"})
            assert dying.process.wait(timeout=30) == -signal.SIGKILL
        finally:
            dying.stop()
        assert receiver.received == []
        restarted = serve(tmp_path, "after", env)
        try:
            eventually(lambda: len(receiver.of("/outbox")) >= 1, seconds=60)
            event = receiver.of("/outbox")[0].json()
            assert (event["type"], event["data"]["new"]["item"]) == ("insert", "tea")
            with Client(api_url=restarted.url) as client:
                admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
                row = admin.database.get(table, record_id=event["data"]["new"]["id"])
                assert row["item"] == "tea"  # the write had committed
                eventually(
                    lambda: admin.triggers.deliveries(name, status="delivered")["count"] == 1
                )
                assert admin.triggers.deliveries(name)["results"][0]["id"] == event["id"]
        finally:
            restarted.stop()
