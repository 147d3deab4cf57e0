"""No answer lies in an `if`, against a live server on SQLite and PostgreSQL: a result that says
yes or no is that answer, a result that reports refuses bool() (TypeError naming its fields),
a record is true and None stands for "none" (docs/architecture.md, "Truth values")."""

from __future__ import annotations

from typing import Any

import pytest

from roost import AsyncClient
from tests.conftest import RunningServer, unique

pytestmark = pytest.mark.anyio


def refuses_bool(result: Any, *fields: str) -> None:
    with pytest.raises(TypeError, match="neither true nor false") as caught:
        bool(result)
    for field in fields:
        assert field in str(caught.value)


async def test_setnx_enters_the_if_only_for_the_caller_that_stored_the_key(
    server: RunningServer, admin_token: str
) -> None:
    lock = unique("lock:")
    async with AsyncClient(api_url=server.url) as client:
        kv = (await client.auth.sign_in_with_token(admin_token)).kv
        entered = []
        for worker in ("worker-1", "worker-2"):
            if await kv.setnx(lock, worker, ttl=60):
                entered.append(worker)
        assert entered == ["worker-1"]
        assert (await kv.get(lock)).value == "worker-1"
        assert await kv.setnx(lock, "worker-3") is False
        assert not await kv.set(lock, "worker-3", nx=True)
        assert await kv.set(lock, "worker-3", xx=True)
        assert not await kv.set(unique("absent:"), 1, xx=True)


async def test_kv_reports_have_no_truth_value(server: RunningServer, admin_token: str) -> None:
    ns = unique("truth:")
    async with AsyncClient(api_url=server.url) as client:
        kv = (await client.auth.sign_in_with_token(admin_token)).kv
        await kv.set(ns + "zero", 0)
        found_but_false = await kv.get(ns + "zero")
        assert (found_but_false.found, found_but_false.value) == (True, 0)
        refuses_bool(found_but_false, "found", "value")
        refuses_bool(await kv.get(ns + "missing"), "found")
        refuses_bool(await kv.scan(ns), "keys", "has_more")


async def test_queue_answers_say_what_happened_or_refuse_bool(
    server: RunningServer, admin_token: str
) -> None:
    name = unique("truth")
    async with AsyncClient(api_url=server.url) as client:
        queue = (await client.auth.sign_in_with_token(admin_token)).queue
        refuses_bool(await queue.publish(name, {"n": 1}), "message_id", "position")
        message = await queue.consume(name)
        assert message  # a record: there is a message
        assert await queue.nack(name, message.message_id)  # requeued: success
        refuses_bool(await queue.stats(name), "ready", "dead")
        again = await queue.consume(name)
        assert again is not None
        await queue.ack(name, again.message_id)
        assert await queue.consume(name) is None  # none: None, never a false record


async def test_stream_and_pubsub_publish_reports_refuse_bool(
    server: RunningServer, admin_token: str
) -> None:
    room = unique("truth")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        # reached nobody: a truth value could only have lied one way or the other
        sent = await admin.stream.publish(room, "made", {"n": 1})
        assert sent.subscribers_notified == 0
        refuses_bool(sent, "subscribers_notified")
        history = await admin.stream.history(room)
        refuses_bool(history, "events")
        assert history.events[0]  # an event is a record
        refuses_bool(await admin.pubsub.publish(f"{room}.made", 1), "subscribers_matched")


async def test_a_refused_page_is_false_and_an_allowed_one_true(
    server: RunningServer, admin_token: str
) -> None:
    path = "/" + unique("truth")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.pages.create(path, "Truth", scopes=["users:read"])
        key = await admin.api_keys.create(unique("pages"), ["kv:read"])
        limited = await client.auth.sign_in_with_token(key["key"], "api_key")
        refused = await limited.auth.check_page_access(path)
        assert (refused.allowed, refused.missing_scopes) == (False, ["users:read"])
        assert not refused
        if await limited.auth.check_page_access(path):
            pytest.fail("a refused page entered the if")
        assert await admin.auth.check_page_access(path)
        await admin.pages.delete(path)


async def test_an_invalid_token_is_false_and_a_valid_one_true(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        valid = await client.auth.validate_jwt(admin_token)
        assert valid
        assert valid.user_id is not None
        assert valid.expires_at is not None
        invalid = await client.auth.validate_jwt("not-a-jwt")
        assert not invalid
        assert invalid.reason is not None
        assert await client.auth.verify_token(admin_token) is True
        assert await client.auth.verify_token("not-a-jwt") is False


async def test_health_is_true_when_ok_and_batch_items_when_they_succeeded(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        health = await client.health.check()
        assert health
        assert health.status == "ok"
        assert health.backends["sql"]
        assert not health.backends["functions"]  # this server runs no functions
        admin = await client.auth.sign_in_with_token(admin_token)
        done, failed = await admin.batch(
            [{"command": "auth.me", "payload": {}}, {"command": "nope.nothing"}]
        )
        assert done
        assert not failed
