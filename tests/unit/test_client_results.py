"""SDK results are the wire Structs: a field a newer server adds is ignored, a field that does
not fit raises ResponseError naming it, and none lies in an `if`. Both clients, over
`httpx.MockTransport`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

import roost
from roost import ResponseError
from roost.client._core import results
from roost.client._core.results import TableChange, decode
from roost.wire import auth, common, kv, pages, pubsub, queue, stream
from tests.unit.fake_server import FakeServer, ok, run

pytestmark = pytest.mark.anyio

Connect = Callable[..., Any]
NEW = {"added_by_a_newer_server": {"any": ["shape"]}}
MESSAGE = {
    "message_id": "m1",
    "message": {"to": "a@example.com"},
    "priority": 5,
    "retry_count": 0,
    "headers": {"h": "v"},
    "published_at": 1700000000,
    **NEW,
}
EVENT = {
    "event_id": "e1",
    "offset": 3,
    "event_type": "message",
    "data": {"text": "hi"},
    "metadata": {},
    "timestamp": 1700000000.5,
    "room": "chat-1",
    **NEW,
}


async def test_kv_results_ignore_new_fields(connect: Connect) -> None:
    server = FakeServer()
    server.answer("kv.set", ok({"success": True, **NEW}))
    server.answer("kv.get", ok({"found": True, "value": {"a": 1}, "ttl": 60, **NEW}))
    server.answer("kv.scan", ok({"keys": ["a", "b"], "cursor": "c", "has_more": True, **NEW}))
    client = connect(server)
    assert (await run(client.kv.set("k", 1))).success is True
    got = await run(client.kv.get("k"))
    assert (got.found, got.value, got.ttl) == (True, {"a": 1}, 60)
    assert await run(client.kv.ttl("k")) == 60
    page = await run(client.kv.scan("a"))
    assert (page.keys, page.cursor, page.has_more) == (["a", "b"], "c", True)


async def test_queue_results_ignore_new_fields(connect: Connect) -> None:
    server = FakeServer()
    server.answer("queue.publish", ok({"message_id": "m1", "position": 2, **NEW}))
    server.answer("queue.consume", ok({"message": MESSAGE, **NEW}), ok({"message": None, **NEW}))
    server.answer("queue.nack", ok({"success": True, "action": "requeued", **NEW}))
    stats = {"queue": "q", "ready": 1, "delayed": 2, "in_flight": 3, "dead": 4, **NEW}
    server.answer("queue.stats", ok(stats))
    server.answer("queue.dead_letters", ok({"messages": [MESSAGE], **NEW}))
    client = connect(server)
    published = await run(client.queue.publish("q", {"to": "a@example.com"}))
    assert (published.message_id, published.position) == ("m1", 2)
    message = await run(client.queue.consume("q"))
    assert (message.message_id, message.message, message.headers) == (
        "m1",
        {"to": "a@example.com"},
        {"h": "v"},
    )
    assert message.published_at == 1700000000.0
    assert await run(client.queue.consume("q")) is None
    nacked = await run(client.queue.nack("q", "m1"))
    assert (nacked.success, nacked.action) == (True, "requeued")
    counts = await run(client.queue.stats("q"))
    assert (counts.ready, counts.delayed, counts.in_flight, counts.dead) == (1, 2, 3, 4)
    [dead] = await run(client.queue.dead_letters("q"))
    assert (dead.message_id, dead.retry_count) == ("m1", 0)


async def test_stream_and_pubsub_results_ignore_new_fields(connect: Connect) -> None:
    server = FakeServer()
    server.answer(
        "stream.publish", ok({"event_id": "e1", "offset": 3, "subscribers_notified": 1, **NEW})
    )
    history = {"events": [EVENT], "oldest_offset": 0, "newest_offset": 3, **NEW}
    server.answer("stream.history", ok(history))
    server.answer(
        "pubsub.publish", ok({"message_id": "p1", "topic": "a.b", "subscribers_matched": 2, **NEW})
    )
    client = connect(server)
    sent = await run(client.stream.publish("chat-1", "message", {"text": "hi"}))
    assert (sent.event_id, sent.offset, sent.subscribers_notified) == ("e1", 3, 1)
    page = await run(client.stream.history("chat-1"))
    assert (page.oldest_offset, page.newest_offset) == (0, 3)
    [event] = page.events
    assert (event.offset, event.event_type, event.data, event.room) == (
        3,
        "message",
        {"text": "hi"},
        "chat-1",
    )
    published = await run(client.pubsub.publish("a.b", {"x": 1}))
    assert (published.message_id, published.topic, published.subscribers_matched) == (
        "p1",
        "a.b",
        2,
    )


def test_subscription_events_ignore_new_fields() -> None:
    event = decode(EVENT, roost.StreamEvent)
    assert (event.event_id, event.offset, event.timestamp) == ("e1", 3, 1700000000.5)
    message = {"message_id": "p1", "topic": "a.b", "message": 1, "metadata": {}, "timestamp": 1}
    assert decode({**message, **NEW}, pubsub.PubSubMessage).topic == "a.b"


async def test_an_answer_that_does_not_fit_raises_response_error_naming_the_field(
    connect: Connect,
) -> None:
    server = FakeServer()
    server.answer("kv.get", ok({"found": "yes"}))
    server.answer("queue.consume", ok({"message": {**MESSAGE, "priority": None}}))
    server.answer("stream.history", ok({"events": [EVENT], "oldest_offset": 0}))
    client = connect(server)
    with pytest.raises(ResponseError, match=r"\$\.found"):
        await run(client.kv.get("k"))
    with pytest.raises(ResponseError, match=r"\$\.message\.priority"):
        await run(client.queue.consume("q"))
    with pytest.raises(ResponseError, match="newest_offset"):
        await run(client.stream.history("chat-1"))


def test_result_types_are_the_wire_structs_exported_from_roost() -> None:
    pairs = {
        roost.SetResult: kv.SetAnswer,
        roost.GetResult: kv.GetAnswer,
        roost.ScanResult: kv.ScanAnswer,
        roost.PublishResult: queue.PublishAnswer,
        roost.QueueMessage: queue.QueueMessage,
        roost.NackResult: queue.NackAnswer,
        roost.QueueStats: queue.StatsAnswer,
        roost.StreamEvent: stream.StreamEvent,
        roost.StreamPublishResult: stream.StreamPublishAnswer,
        roost.HistoryResult: stream.HistoryAnswer,
        roost.PubSubPublishResult: pubsub.PubSubPublishAnswer,
        roost.PageAccess: pages.PageAccess,
        roost.VerifyResult: auth.VerifyResult,
        roost.HealthReport: common.HealthReport,
        roost.BackendHealth: common.BackendHealth,
    }
    for public, wire in pairs.items():
        assert public is wire
        assert issubclass(public, msgspec.Struct)
    assert roost.TableChange is TableChange
    # results still build by keyword, as user code and tests do
    assert roost.GetResult(found=False) == kv.GetAnswer(False, None, None)


# Every result type the SDK exports, by what its truth value is (docs/architecture.md, "Truth
# values"). A new result type fails `test_every_exported_result_type_has_a_decided_truth_value`
# until it is placed in one of these.
OUTCOMES: dict[type, tuple[Any, Any]] = {  # a yes or no: (a "yes" answer, a "no" answer)
    roost.SetResult: (roost.SetResult(success=True), roost.SetResult(success=False)),
    roost.NackResult: (
        roost.NackResult(success=True, action="requeued"),
        roost.NackResult(success=False, action="dead_lettered"),
    ),
    roost.PageAccess: (
        roost.PageAccess(path="/a", allowed=True, missing_scopes=[]),
        roost.PageAccess(path="/a", allowed=False, missing_scopes=["users:read"]),
    ),
    roost.VerifyResult: (
        roost.VerifyResult(valid=True, user_id="u1"),
        roost.VerifyResult(valid=False, reason="token_expired"),
    ),
    roost.HealthReport: (
        roost.HealthReport(status="ok", version="1", backends={}),
        roost.HealthReport(status="degraded", version="1", backends={}),
    ),
    roost.BackendHealth: (
        roost.BackendHealth(status="ok", backend="sqlite"),
        roost.BackendHealth(status="down", backend="sqlite", error="gone"),
    ),
    roost.BatchItemResult: (
        roost.BatchItemResult(status="success", payload={}),
        roost.BatchItemResult(status="error", error={"code": "not_found"}),
    ),
}
_AT = "2026-01-01T00:00:00Z"
_POLICY = {
    "key": "resource.doc.vdefault",
    "kind": "resource",
    "name": "doc",
    "version": "default",
    "scope": "",
    "disabled": False,
    "revision": 1,
    "updated_at": _AT,
    "updated_by": "admin",
}
REPORTS: dict[type, Any] = {  # neither: bool() raises TypeError naming the fields
    roost.GetResult: roost.GetResult(found=True, value=0, ttl=-1),
    roost.ScanResult: roost.ScanResult(keys=[], cursor=None, has_more=False),
    roost.PublishResult: roost.PublishResult(message_id="m1", position=0),
    roost.QueueStats: roost.QueueStats(queue="q", ready=0, delayed=0, in_flight=0, dead=0),
    roost.StreamPublishResult: roost.StreamPublishResult(
        event_id="e1", offset=0, subscribers_notified=0
    ),
    roost.HistoryResult: roost.HistoryResult(events=[], oldest_offset=1, newest_offset=0),
    roost.PubSubPublishResult: roost.PubSubPublishResult(
        message_id="p1", topic="a.b", subscribers_matched=0
    ),
    # a check answers per resource and action, a plan may be conditional: no one yes or no
    roost.CheckResponse: roost.CheckResponse(results=[]),
    roost.CheckResult: msgspec.convert(
        {
            "resource": {"id": "r1", "kind": "doc"},
            "actions": {"view": "EFFECT_ALLOW"},
            "meta": {"actions": {}},
        },
        roost.CheckResult,
    ),
    roost.PlanResponse: msgspec.convert(
        {
            "action": "view",
            "resourceKind": "doc",
            "policyVersion": "default",
            "filter": {"kind": "KIND_ALWAYS_ALLOWED"},
        },
        roost.PlanResponse,
    ),
    roost.PutPoliciesResult: roost.PutPoliciesResult(
        revision=1, created=[], updated=[], unchanged=[]
    ),
    roost.PolicyTestReport: roost.PolicyTestReport(
        cases=[], errors=[], passed=0, failed=0, skipped=0
    ),
}
RECORDS: dict[type, Any] = {  # a thing: true (a call answers None when there is none)
    roost.QueueMessage: decode(MESSAGE, roost.QueueMessage),
    roost.StreamEvent: decode(EVENT, roost.StreamEvent),
    roost.TableChange: roost.TableChange("insert", "t", {}, 0, 0.0),
    roost.Policy: msgspec.convert({**_POLICY, "document": {}}, roost.Policy),
    roost.PolicyInfo: msgspec.convert(_POLICY, roost.PolicyInfo),
    roost.PolicyList: roost.PolicyList(policies=[], globals={}, revision=0),
    roost.PolicyChange: msgspec.convert(
        {"id": 1, "revision": 1, "key": "k", "change": "put", "document": {}, "at": _AT, "by": "a"},
        roost.PolicyChange,
    ),
    roost.PolicyGlobals: roost.PolicyGlobals(globals={}, effective={}, revision=0),
    # what a check is asked about, not an answer
    roost.PolicyPrincipal: roost.PolicyPrincipal(id="u1", roles=[]),
    roost.PolicyResource: roost.PolicyResource(kind="doc"),
    roost.ResourceEntry: roost.ResourceEntry(resource=roost.PolicyResource(kind="doc"), actions=[]),
}


def test_every_exported_result_type_has_a_decided_truth_value() -> None:
    exported = {
        getattr(roost, name)
        for name in roost.__all__
        if getattr(results, name, None) is getattr(roost, name)
    }
    exported = {
        cls for cls in exported if isinstance(cls, type) and not issubclass(cls, BaseException)
    }
    decided = [*OUTCOMES, *REPORTS, *RECORDS]
    assert len(decided) == len(set(decided))
    assert exported == set(decided)
    for cls in exported:
        assert issubclass(cls, msgspec.Struct) or dataclasses.is_dataclass(cls)


@pytest.mark.parametrize("cls", list(OUTCOMES), ids=lambda cls: cls.__name__)
def test_a_yes_or_no_result_is_its_answer_in_an_if(cls: type) -> None:
    yes, no = OUTCOMES[cls]
    assert bool(yes) is True
    assert bool(no) is False


@pytest.mark.parametrize("cls", list(REPORTS), ids=lambda cls: cls.__name__)
def test_a_report_refuses_bool_naming_its_fields(cls: type) -> None:
    report = REPORTS[cls]
    with pytest.raises(TypeError, match="neither true nor false") as caught:
        bool(report)
    assert all(field in str(caught.value) for field in report.__struct_fields__)


@pytest.mark.parametrize("cls", list(RECORDS), ids=lambda cls: cls.__name__)
def test_a_record_is_true(cls: type) -> None:
    assert bool(RECORDS[cls]) is True


def test_reports_still_encode_compare_and_print() -> None:
    got = roost.GetResult(found=False)
    assert got == roost.GetResult(found=False, value=None, ttl=None)
    assert msgspec.json.decode(msgspec.json.encode(got)) == {
        "found": False,
        "value": None,
        "ttl": None,
    }
    assert msgspec.to_builtins(got) == {"found": False, "value": None, "ttl": None}
    assert repr(got) == "GetAnswer(found=False, value=None, ttl=None)"
    assert got in [got]  # equality, not truth


async def test_calls_that_say_no_answer_false(connect: Connect) -> None:
    server = FakeServer()
    server.answer("kv.set", ok({"success": False}))
    refused = {"path": "/a", "allowed": False, "missing_scopes": ["users:read"], **NEW}
    server.answer("auth.check_page_access", ok(refused))
    server.answer("auth.verify", ok({"valid": False, "reason": "token_expired", **NEW}))
    degraded = {"status": "degraded", "version": "1", **NEW}
    sql = {"status": "down", "backend": "postgresql", "error": "gone", **NEW}
    server.answer("health.check", ok({**degraded, "backends": {"sql": sql}}))
    client = connect(server)
    assert await run(client.kv.setnx("k", 1)) is False
    assert not await run(client.kv.set("k", 1, nx=True))
    access = await run(client.auth.check_page_access("/a"))
    assert (access.allowed, access.missing_scopes) == (False, ["users:read"])
    assert not access
    claims = await run(client.auth.validate_jwt("t"))
    assert (claims.valid, claims.reason) == (False, "token_expired")
    assert not claims
    assert await run(client.auth.verify_token("t")) is False
    health = await run(client.health.check())
    assert not health
    assert not health.backends["sql"]
    assert health.backends["sql"].error == "gone"


async def test_calls_that_say_yes_answer_true(connect: Connect) -> None:
    server = FakeServer()
    server.answer("kv.set", ok({"success": True}))
    server.answer(
        "auth.check_page_access", ok({"path": "/a", "allowed": True, "missing_scopes": []})
    )
    expires = "2030-01-02T03:04:05Z"
    server.answer("auth.verify", ok({"valid": True, "user_id": "u1", "expires_at": expires}))
    sql = {"status": "ok", "backend": "sqlite", "latency_ms": 0.2}
    server.answer("health.check", ok({"status": "ok", "version": "1", "backends": {"sql": sql}}))
    client = connect(server)
    assert await run(client.kv.setnx("k", 1)) is True
    assert await run(client.auth.check_page_access("/a"))
    claims = await run(client.auth.validate_jwt("t"))
    assert claims
    assert (claims.user_id, claims.expires_at.year) == ("u1", 2030)
    assert await run(client.health.check())
