"""Triggers whose target is a function, on a server that runs functions: the event arrives as
params, the run acts as the trigger's owner, and a failing function is retried then recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from roost import Client
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, start_server, unique
from tests.waiting import eventually


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    running: RunningServer = start_server(
        tmp_path_factory.mktemp("trigger-functions"),
        functions_enabled=True,
        triggers_tick_seconds=0.05,
        triggers_retry_base=0.05,
        triggers_max_attempts=2,
    )
    try:
        with Client(api_url=running.url) as client:
            yield client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
    finally:
        running.stop()


ECHO = """
def main(params, user_data):
    return {"event": params, "as": user_data["username"]}
"""

FAILS = """
def main(params, user_data):
    raise RuntimeError("no thanks")
"""


def test_a_row_inserted_runs_the_function_with_the_event_as_the_owner(admin: Client) -> None:
    function, trigger, table = unique("echo"), unique("on-insert"), unique("notes_")
    admin.functions.deploy(function, ECHO)
    admin.schema.add_table(table, [{"name": "text", "type": "text"}])
    admin.triggers.create(
        trigger,
        {"kind": "database", "table": table, "events": ["insert"]},
        {"kind": "function", "name": function},
    )
    admin.database.create(table, {"text": "hello"})
    eventually(lambda: admin.triggers.deliveries(trigger, status="delivered")["count"] == 1)
    runs = admin.functions.invocations(function)["results"]
    assert [r["status"] for r in runs] == ["SUCCESS"]
    result = admin.functions.get_result(runs[0]["id"])["data"]["result"]
    delivery = admin.triggers.deliveries(trigger)["results"][0]
    assert result["as"] == ADMIN_USERNAME
    assert result["event"]["id"] == delivery["id"]
    assert result["event"]["data"]["new"]["text"] == "hello"
    assert result["event"]["type"] == "insert"


def test_a_failing_function_is_retried_then_recorded_failed(admin: Client) -> None:
    function, trigger, table = unique("fails"), unique("on-insert"), unique("notes_")
    admin.functions.deploy(function, FAILS)
    admin.schema.add_table(table, [{"name": "text", "type": "text"}])
    admin.triggers.create(
        trigger, {"kind": "database", "table": table}, {"kind": "function", "name": function}
    )
    admin.database.create(table, {"text": "hello"})
    eventually(lambda: admin.triggers.deliveries(trigger, status="failed")["count"] == 1)
    failed = admin.triggers.deliveries(trigger)["results"][0]
    assert failed["attempts"] == 2
    assert failed["last_error"].startswith("function_failed")
    assert len(admin.functions.invocations(function)["results"]) == 2


PICKY = """
def main(params, user_data):
    if params["data"]["message"]["ok"] is not True:
        raise ValueError("not ok")
    return "done"
"""


def test_a_queue_consumer_acks_what_succeeds_and_dead_letters_what_keeps_failing(
    admin: Client,
) -> None:
    function, trigger, queue = unique("picky"), unique("jobs"), unique("jobs")
    admin.functions.deploy(function, PICKY)
    admin.queue.configure(queue, max_deliveries=2)
    admin.triggers.create(
        trigger, {"kind": "queue", "queue": queue}, {"kind": "function", "name": function}
    )
    admin.queue.publish(queue, {"ok": True})
    admin.queue.publish(queue, {"ok": False})
    eventually(lambda: len(admin.queue.dead_letters(queue)) == 1)
    assert [m.message for m in admin.queue.dead_letters(queue)] == [{"ok": False}]
    eventually(lambda: admin.queue.stats(queue).in_flight == 0)
    stats = admin.queue.stats(queue)
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 1)
    results = admin.triggers.deliveries(trigger)["results"]
    assert sorted((d["status"], d["attempts"]) for d in results) == [
        ("delivered", 1),
        ("failed", 2),
    ]
