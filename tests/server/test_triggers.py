"""Triggers over a real server: table changes POSTed to a real receiver on loopback (signed,
with the old and new record), retries then failure recorded in deliveries, pause, and every
refusal (scope, another tenant, destinations, schedules, bad input)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from roost import Client
from roost.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from roost.webhooks import verify
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    REDIS_URL,
    RunningServer,
    drop_pg_schemas,
    require_postgres,
    require_redis,
    start_server,
    unique,
)
from tests.waiting import eventually
from tests.webhook_receiver import Reply, WebhookReceiver, webhook_receiver

TRIGGER_SETTINGS: dict[str, Any] = {
    "webhook_allow": "127.0.0.0/8",
    "triggers_tick_seconds": 0.05,
    "triggers_retry_base": 0.05,
    "triggers_max_attempts": 3,
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql+redis"])
def trigger_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """Embedded (SQLite, and its SQL queue, stream store and in-process bus), and scaled out
    (PostgreSQL, with queues, streams and the bus on Redis)."""
    backend, *messaging = str(request.param).split("+")
    settings = dict(TRIGGER_SETTINGS)
    if backend == "postgresql":
        require_postgres()
    if messaging:
        require_redis()
        settings["redis_url"] = REDIS_URL
    running = start_server(tmp_path_factory.mktemp("triggers"), backend, **settings)
    yield running
    running.stop()
    if backend == "postgresql":
        drop_pg_schemas(running.settings.pg_schema_prefix)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as made:
        yield made


@pytest.fixture
def admin(trigger_server: RunningServer) -> Iterator[Client]:
    with Client(api_url=trigger_server.url) as client:
        yield client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)


def _table(admin: Client) -> str:
    table = unique("orders_")
    admin.schema.add_table(
        table, [{"name": "item", "type": "text"}, {"name": "qty", "type": "integer"}]
    )
    return table


def test_table_changes_reach_a_url_signed_with_the_old_and_new_record(
    trigger_server: RunningServer, admin: Client, receiver: WebhookReceiver
) -> None:
    table, name = _table(admin), unique("orders-hook")
    path = f"/{name}"
    made = admin.triggers.create(
        name, {"kind": "database", "table": table}, {"kind": "url", "url": receiver.url + path}
    )
    assert made["secret"].startswith("whsec_")
    assert "secret" not in admin.triggers.get(name) or admin.triggers.get(name)["secret"] is None
    row = admin.database.create(table, {"item": "tea", "qty": 1})
    admin.database.update(table, {"qty": 2}, record_id=row["id"])
    admin.database.delete(table, row["id"])
    eventually(lambda: len(receiver.of(path)) == 3)
    order = {"insert": 0, "update": 1, "delete": 2}  # delivered concurrently: in any order
    got = sorted(receiver.of(path), key=lambda r: order[r.json()["type"]])
    assert [r.json()["type"] for r in got] == ["insert", "update", "delete"]
    insert, change, gone = (r.json()["data"] for r in got)
    assert (insert["old"], insert["new"]["qty"]) == (None, 1)
    assert (change["old"]["qty"], change["new"]["qty"]) == (1, 2)
    assert (gone["old"]["item"], gone["new"]) == ("tea", None)
    for request in got:
        # as a receiver checks it, at the time of the server's (shifted) clock
        verify(made["secret"], request.headers, request.body, now=int(trigger_server.clock.time()))
        assert request.headers["webhook-id"] == request.json()["id"]
        assert request.json()["trigger"] == name
        assert request.json()["source"] == "database"
    eventually(lambda: admin.triggers.deliveries(name, status="delivered")["count"] == 3)
    deliveries = admin.triggers.deliveries(name)["results"]
    assert {d["id"] for d in deliveries} == {r.json()["id"] for r in got}
    assert all(d["attempts"] == 1 and d["status_code"] == 200 for d in deliveries)


def test_a_delivery_is_listed_pending_from_the_moment_its_event_is_queued(
    admin: Client, receiver: WebhookReceiver
) -> None:
    table, name = _table(admin), unique("slow")
    path = f"/{name}"
    admin.triggers.create(
        name, {"kind": "database", "table": table}, {"kind": "url", "url": receiver.url + path}
    )
    receiver.reply_on(path, Reply(delay=2))  # the first attempt is under way meanwhile
    admin.database.create(table, {"item": "x", "qty": 1})
    listed = admin.triggers.deliveries(name)  # asked at once: maybe not even attempted yet
    assert [(d["status"], d["attempts"]) for d in listed["results"]] == [("pending", 0)]
    eventually(lambda: len(receiver.of(path)) == 1)
    pending = admin.triggers.deliveries(name)["results"]
    assert [(d["status"], d["attempts"], d["status_code"]) for d in pending] == [
        ("pending", 0, None)
    ]
    assert pending[0]["id"] == receiver.of(path)[0].json()["id"]


def test_a_filter_and_the_events_asked_for_pick_what_fires(
    admin: Client, receiver: WebhookReceiver
) -> None:
    table, name = _table(admin), unique("big-orders")
    path = f"/{name}"
    source = {
        "kind": "database",
        "table": table,
        "events": ["insert", "delete"],
        "filters": [["qty", "gte", 10]],
    }
    admin.triggers.create(name, source, {"kind": "url", "url": receiver.url + path})
    small = admin.database.create(table, {"item": "pen", "qty": 1})
    big = admin.database.create(table, {"item": "desk", "qty": 12})
    admin.database.update(table, {"qty": 13}, record_id=big["id"])  # not asked for
    admin.database.delete(table, small["id"])  # filtered out
    admin.database.delete(table, big["id"])
    eventually(lambda: len(receiver.of(path)) == 2)
    got = {
        (r.json()["type"], (r.json()["data"]["new"] or r.json()["data"]["old"])["item"])
        for r in receiver.of(path)
    }
    assert got == {("insert", "desk"), ("delete", "desk")}


def test_a_failing_receiver_is_retried_with_one_event_id_then_recorded_failed(
    admin: Client, receiver: WebhookReceiver
) -> None:
    table, name = _table(admin), unique("failing")
    path = f"/{name}"
    admin.triggers.create(
        name, {"kind": "database", "table": table}, {"kind": "url", "url": receiver.url + path}
    )
    receiver.reply_on(path, *[Reply(status=500)] * 3)
    admin.database.create(table, {"item": "x", "qty": 1})
    eventually(lambda: admin.triggers.deliveries(name, status="failed")["count"] == 1)
    attempts = receiver.of(path)
    assert len(attempts) == 3
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    failed = admin.triggers.deliveries(name)["results"][0]
    assert (failed["attempts"], failed["status_code"], failed["last_error"]) == (
        3,
        500,
        "HTTP 500",
    )


def test_a_receiver_that_recovers_gets_the_event_on_a_retry(
    admin: Client, receiver: WebhookReceiver
) -> None:
    table, name = _table(admin), unique("recovers")
    path = f"/{name}"
    admin.triggers.create(
        name, {"kind": "database", "table": table}, {"kind": "url", "url": receiver.url + path}
    )
    receiver.reply_on(path, Reply(status=503))
    admin.database.create(table, {"item": "x", "qty": 1})
    eventually(lambda: admin.triggers.deliveries(name, status="delivered")["count"] == 1)
    delivered = admin.triggers.deliveries(name)["results"][0]
    assert (delivered["attempts"], delivered["status_code"]) == (2, 200)


def test_watch_deliveries_pushes_a_delivery_as_it_is_made_and_as_it_changes(
    admin: Client, receiver: WebhookReceiver
) -> None:
    table, name, other = _table(admin), unique("watched"), unique("unwatched")
    for trigger in (name, other):
        target = {"kind": "url", "url": f"{receiver.url}/{trigger}"}
        admin.triggers.create(trigger, {"kind": "database", "table": table}, target)
    receiver.reply_on(f"/{name}", Reply(status=503))  # delivered on the second attempt
    seen: list[dict[str, Any]] = []
    sub = admin.triggers.watch_deliveries(name, seen.append)
    try:
        admin.database.create(table, {"item": "x", "qty": 1})
        eventually(lambda: bool(seen) and seen[-1]["status"] == "delivered")
    finally:
        sub.unsubscribe()
    # each push is the row as read then: pending (0, then 1 attempt), then delivered
    assert {d["id"] for d in seen} == {receiver.of(f"/{name}")[0].json()["id"]}  # not other's
    assert (seen[-1]["attempts"], seen[-1]["status_code"]) == (2, 200)
    attempts = [d["attempts"] for d in seen]
    assert attempts == sorted(attempts)
    assert {d["status"] for d in seen[:-1]} <= {"pending"}
    assert seen[-1] == admin.triggers.deliveries(name)["results"][0]


def test_watching_deliveries_needs_triggers_read_and_a_trigger_of_ones_tenant(
    trigger_server: RunningServer, admin: Client, receiver: WebhookReceiver
) -> None:
    name, tenant = unique("guarded"), unique("t")
    admin.triggers.create(
        name, {"kind": "cron", "schedule": "@daily"}, {"kind": "url", "url": receiver.url}
    )
    with pytest.raises(NotFoundError) as missing:
        admin.triggers.watch_deliveries(unique("never"), print)
    assert missing.value.details["field"] == "name"
    for bad in ("", "Bad Name", "x" * 500, "nul\x00"):
        with pytest.raises(ValidationError) as refused:
            admin.triggers.watch_deliveries(bad, print)
        assert refused.value.details["field"] == "name"
    nobody_key = admin.api_keys.create(unique("nobody"), scopes=["triggers:admin"])["key"]
    with Client(api_url=trigger_server.url) as anonymous:
        nobody = anonymous.auth.sign_in_with_token(nobody_key, token_type="api_key")
        with pytest.raises(AuthorizationError) as denied:
            nobody.triggers.watch_deliveries(name, print)
        assert denied.value.details["scope"] == "triggers:read"
    admin.tenants.create(tenant, admin_username="root", admin_password="root-password-1")
    with Client(api_url=trigger_server.url, tenant=tenant) as other:
        root = other.auth.sign_in_with_password("root", "root-password-1")
        with pytest.raises(NotFoundError):
            root.triggers.watch_deliveries(name, print)


def test_a_paused_trigger_takes_no_events_until_resumed(
    admin: Client, receiver: WebhookReceiver
) -> None:
    table, name = _table(admin), unique("paused")
    path = f"/{name}"
    admin.triggers.create(
        name, {"kind": "database", "table": table}, {"kind": "url", "url": receiver.url + path}
    )
    assert admin.triggers.pause(name)["enabled"] is False
    admin.database.create(table, {"item": "while paused", "qty": 1})
    assert admin.triggers.resume(name)["enabled"] is True
    admin.database.create(table, {"item": "after", "qty": 2})
    eventually(lambda: admin.triggers.deliveries(name, status="delivered")["count"] == 1)
    # the queue hands events out in order: one taken while paused would have been taken,
    # and recorded, first
    assert admin.triggers.deliveries(name)["count"] == 1
    assert [r.json()["data"]["new"]["item"] for r in receiver.of(path)] == ["after"]


def test_list_get_update_and_delete(admin: Client, receiver: WebhookReceiver) -> None:
    name = unique("nightly")
    admin.triggers.create(
        name,
        {"kind": "cron", "schedule": "@daily", "timezone": "Europe/Paris"},
        {"kind": "url", "url": receiver.url + "/n"},
    )
    assert name in [t["name"] for t in admin.triggers.list("cron")]
    assert name not in [t["name"] for t in admin.triggers.list("database")]
    changed = admin.triggers.update(name, source={"kind": "cron", "schedule": "*/5 * * * *"})
    assert changed["source"] == {"kind": "cron", "schedule": "*/5 * * * *", "timezone": "UTC"}
    assert changed["secret"] is None  # the target did not change
    with pytest.raises(ConflictError):
        admin.triggers.create(
            name, {"kind": "cron", "schedule": "@daily"}, {"kind": "url", "url": receiver.url}
        )
    admin.triggers.delete(name)
    with pytest.raises(NotFoundError) as caught:
        admin.triggers.get(name)
    assert caught.value.details["field"] == "name"


# -- refusals -------------------------------------------------------------------------------


def _field_of(caught: pytest.ExceptionInfo[Any]) -> str:
    field: str = caught.value.details["field"]
    return field


@pytest.mark.parametrize(
    ("source", "target", "field"),
    [
        ({"kind": "cron", "schedule": "every day"}, None, "source.schedule"),
        ({"kind": "cron", "schedule": "* * * * * *"}, None, "source.schedule"),
        ({"kind": "cron", "schedule": "61 * * * *"}, None, "source.schedule"),
        ({"kind": "cron", "schedule": "@daily", "timezone": "Mars/Base"}, None, "source.timezone"),
        (
            {"kind": "cron", "schedule": "@daily"},
            {"kind": "url", "url": "http://[::1]/"},
            "target.url",
        ),
        (
            {"kind": "cron", "schedule": "@daily"},
            {"kind": "url", "url": "http://10.1.2.3/"},
            "target.url",
        ),
        (
            {"kind": "cron", "schedule": "@daily"},
            {"kind": "url", "url": "http://169.254.169.254/"},
            "target.url",
        ),
        (
            {"kind": "cron", "schedule": "@daily"},
            {"kind": "url", "url": "file:///etc/passwd"},
            "target.url",
        ),
        (
            {"kind": "cron", "schedule": "@daily"},
            {"kind": "function", "name": "nosuchfn"},
            "target.name",
        ),
        ({"kind": "database", "table": "nosuch"}, None, "source.table"),
        ({"kind": "queue", "queue": "jobs"}, None, "target.kind"),
    ],
)
def test_a_source_or_target_that_cannot_work_is_refused_naming_the_field(
    admin: Client,
    receiver: WebhookReceiver,
    source: dict[str, Any],
    target: dict[str, Any] | None,
    field: str,
) -> None:
    target = target or {"kind": "url", "url": receiver.url}
    with pytest.raises((ValidationError, NotFoundError)) as caught:
        admin.triggers.create(unique("bad"), source, target)
    assert _field_of(caught) == field


def test_a_filter_on_a_column_the_table_lacks_is_refused(
    admin: Client, receiver: WebhookReceiver
) -> None:
    source = {"kind": "database", "table": _table(admin), "filters": [["nosuch", "eq", 1]]}
    with pytest.raises(ValidationError) as caught:
        admin.triggers.create(unique("bad"), source, {"kind": "url", "url": receiver.url})
    assert _field_of(caught).startswith("source.filters")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a\x00b"}, "name"),
        ({"name": "x" * 100}, "name"),
        ({"description": "d" * 5000}, "description"),
        ({"source": {"kind": "cron", "schedule": "s" * 10_000}}, "source.schedule"),
        ({"source": {"kind": "nosuch"}}, "source"),
        ({"target": {"kind": "url", "url": "http://e.com/" + "a" * 5000}}, "target.url"),
    ],
)
def test_nul_and_huge_inputs_are_refused_naming_the_field(
    trigger_server: RunningServer, admin: Client, body: dict[str, Any], field: str
) -> None:
    request = {
        "name": unique("n"),
        "source": {"kind": "cron", "schedule": "@daily"},
        "target": {"kind": "url", "url": "http://127.0.0.1:9/"},
        **body,
    }
    answer = httpx.post(
        f"{trigger_server.url}/api/v1/triggers/create",
        json=request,
        headers=_bearer(trigger_server),
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["details"]["field"].startswith(field)


def _bearer(server: RunningServer) -> dict[str, str]:
    answer = httpx.post(
        f"{server.url}/api/v1/auth/login",
        json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD},
    )
    return {"authorization": f"Bearer {answer.json()['access']}"}


def test_changing_triggers_needs_triggers_admin_and_reading_them_triggers_read(
    trigger_server: RunningServer, admin: Client, receiver: WebhookReceiver
) -> None:
    name = unique("scoped")
    admin.triggers.create(
        name, {"kind": "cron", "schedule": "@daily"}, {"kind": "url", "url": receiver.url}
    )
    reader_key = admin.api_keys.create(unique("reader"), scopes=["triggers:read"])["key"]
    nobody_key = admin.api_keys.create(unique("nobody"), scopes=["kv:read"])["key"]
    with Client(api_url=trigger_server.url) as anonymous:
        reader = anonymous.auth.sign_in_with_token(reader_key, token_type="api_key")
        assert reader.triggers.get(name)["name"] == name
        assert reader.triggers.deliveries(name)["count"] == 0
        for change in (
            lambda: reader.triggers.create(
                unique("x"),
                {"kind": "cron", "schedule": "@daily"},
                {"kind": "url", "url": receiver.url},
            ),
            lambda: reader.triggers.pause(name),
            lambda: reader.triggers.delete(name),
        ):
            with pytest.raises(AuthorizationError):
                change()
    with Client(api_url=trigger_server.url) as anonymous:
        nobody = anonymous.auth.sign_in_with_token(nobody_key, token_type="api_key")
        with pytest.raises(AuthorizationError):
            nobody.triggers.list()
        with pytest.raises(AuthorizationError):
            nobody.triggers.deliveries(name)


def test_a_function_target_needs_functions_execute_held(
    trigger_server: RunningServer, admin: Client, receiver: WebhookReceiver
) -> None:
    key = admin.api_keys.create(unique("trig"), scopes=["triggers:admin"])["key"]
    with Client(api_url=trigger_server.url) as anonymous:
        limited = anonymous.auth.sign_in_with_token(key, token_type="api_key")
        with pytest.raises(AuthorizationError) as caught:
            limited.triggers.create(
                unique("fn"),
                {"kind": "cron", "schedule": "@daily"},
                {"kind": "function", "name": "anything"},
            )
    assert caught.value.code == "missing_scope"


def test_another_tenants_triggers_are_out_of_reach(
    trigger_server: RunningServer, admin: Client, receiver: WebhookReceiver
) -> None:
    name, tenant = unique("mine"), unique("t")
    admin.triggers.create(
        name, {"kind": "cron", "schedule": "@daily"}, {"kind": "url", "url": receiver.url}
    )
    admin.tenants.create(tenant, admin_username="root", admin_password="root-password-1")
    token = _bearer(trigger_server)["authorization"].removeprefix("Bearer ")
    with (
        Client(api_url=trigger_server.url, tenant=tenant) as other,
        pytest.raises(AuthenticationError),  # a credential of default, for another tenant
    ):
        other.auth.sign_in_with_token(token).triggers.get(name)
    with Client(api_url=trigger_server.url, tenant=tenant) as other:
        root = other.auth.sign_in_with_password("root", "root-password-1")
        assert root.triggers.list() == []
        with pytest.raises(NotFoundError):
            root.triggers.get(name)
        with pytest.raises(NotFoundError):
            root.triggers.delete(name)
    assert admin.triggers.get(name)["name"] == name


# -- other sources --------------------------------------------------------------------------


def test_storage_objects_created_and_deleted_under_a_prefix_fire(
    admin: Client, receiver: WebhookReceiver
) -> None:
    bucket, name = unique("docs"), unique("uploads")
    path = f"/{name}"
    admin.storage.create_bucket(bucket)
    source = {"kind": "storage", "bucket": bucket, "prefix": "reports/"}
    admin.triggers.create(name, source, {"kind": "url", "url": receiver.url + path})
    files = admin.storage.from_(bucket)
    files.upload([{"file": b"skipped", "name": "other/a.txt"}])
    files.upload([{"file": b"numbers", "name": "reports/q1.txt", "content_type": "text/plain"}])
    files.delete(["reports/q1.txt", "other/a.txt"])
    eventually(lambda: len(receiver.of(path)) == 2)
    got = {(r.json()["type"], r.json()["data"]["name"]) for r in receiver.of(path)}
    assert got == {("created", "reports/q1.txt"), ("deleted", "reports/q1.txt")}
    created = next(r.json()["data"] for r in receiver.of(path) if r.json()["type"] == "created")
    assert (created["bucket"], created["size"], created["content_type"]) == (
        bucket,
        7,
        "text/plain",
    )


def test_stream_events_after_the_trigger_was_made_fire_once_each(
    admin: Client, receiver: WebhookReceiver
) -> None:
    room, name = unique("room"), unique("on-room")
    path = f"/{name}"
    admin.stream.publish(room, "old", {"n": 0})  # before the trigger: not fired
    admin.triggers.create(
        name, {"kind": "stream", "room": room}, {"kind": "url", "url": receiver.url + path}
    )
    for n in range(1, 4):
        admin.stream.publish(room, "tick", {"n": n})
    eventually(lambda: len(receiver.of(path)) == 3)
    got = sorted(r.json()["data"]["data"]["n"] for r in receiver.of(path))
    assert got == [1, 2, 3]
    assert {r.json()["type"] for r in receiver.of(path)} == {"tick"}


def test_pubsub_messages_on_matching_topics_fire(admin: Client, receiver: WebhookReceiver) -> None:
    name, topic = unique("on-topic"), unique("orders")
    path = f"/{name}"
    admin.triggers.create(
        name,
        {"kind": "pubsub", "pattern": f"{topic}.*.paid"},
        {"kind": "url", "url": receiver.url + path},
    )

    def fired() -> bool:  # the listener starts when the process has read the new trigger
        admin.pubsub.publish(f"{topic}.eu.paid", {"n": 1})
        return bool(receiver.of(path))

    eventually(fired)
    admin.pubsub.publish(f"{topic}.eu.refunded", {"n": 2})
    admin.pubsub.publish(f"{topic}.us.paid", {"n": 3})
    eventually(
        lambda: any(r.json()["data"]["topic"] == f"{topic}.us.paid" for r in receiver.of(path))
    )
    topics = {r.json()["data"]["topic"] for r in receiver.of(path)}
    assert topics == {f"{topic}.eu.paid", f"{topic}.us.paid"}


def test_a_tenant_has_at_most_the_triggers_the_deployment_allows(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(triggers_max_per_tenant=2)
    hook = {"kind": "url", "url": "http://93.184.216.34/"}
    with Client(api_url=running.url) as client:
        admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        for n in range(2):
            admin.triggers.create(f"t{n}", {"kind": "cron", "schedule": "@daily"}, hook)
        with pytest.raises(ValidationError) as caught:
            admin.triggers.create("t2", {"kind": "cron", "schedule": "@daily"}, hook)
        assert caught.value.code == "too_many_triggers"
        admin.triggers.delete("t0")
        admin.triggers.create("t2", {"kind": "cron", "schedule": "@daily"}, hook)


def test_a_cron_tick_fires_once_when_the_clock_passes_it(
    trigger_server: RunningServer, admin: Client, receiver: WebhookReceiver
) -> None:
    name = unique("minutely")
    path = f"/{name}"
    source = {"kind": "cron", "schedule": "* * * * *", "timezone": "Asia/Kolkata"}
    admin.triggers.create(name, source, {"kind": "url", "url": receiver.url + path})
    trigger_server.clock.advance(60)
    eventually(lambda: len(receiver.of(path)) >= 1)
    event = receiver.of(path)[0].json()
    assert (event["type"], event["source"], event["data"]["schedule"]) == (
        "tick",
        "cron",
        "* * * * *",
    )
    assert event["data"]["tick"].endswith(":00+00:00")
    eventually(lambda: admin.triggers.deliveries(name, status="delivered")["count"] >= 1)
