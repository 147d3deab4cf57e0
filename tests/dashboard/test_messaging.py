"""The dashboard's messaging and administration pages in a real Chromium against a real
server (SQLite): a stream's history and live events, a pub/sub live view, mail templates with
a sandboxed preview and the outbox, usage per API key, settings and pages, queue depths and
trigger deliveries pushed over the realtime WebSocket, and what a principal without the
scopes does not see. One browser, one server and one webhook receiver for the module."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from roost import Client
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, start_server, unique
from tests.dashboard.browser import require_chromium, sign_in
from tests.webhook_receiver import Reply, WebhookReceiver, webhook_receiver


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    require_chromium()
    server = start_server(
        tmp_path_factory.mktemp("dashboard-messaging"),
        webhook_allow="127.0.0.0/8",  # the triggers post to the receiver on loopback
        triggers_tick_seconds=0.05,
        triggers_retry_base=0.3,
        triggers_max_attempts=3,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as made:
        yield made


@pytest.fixture
def sdk(running: RunningServer) -> Iterator[Client]:
    """The SDK signed in as the admin: it makes the data the pages must show."""
    with Client(api_url=running.url) as client:
        yield client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)


def test_a_streams_history_pages_back_and_new_events_arrive_live(
    admin_page: Page, sdk: Client
) -> None:
    page, room = admin_page, unique("chat-")
    for n in range(60):
        sdk.stream.publish(room, "said", {"n": n})
    page.get_by_role("link", name="Streams").click()
    expect(page.get_by_text("Enter a room's name")).to_be_visible()
    page.get_by_label("Room name").fill(room)
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Stream {room}")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(50)  # the newest page
    expect(rows.first.locator("td").first).to_have_text("59")
    page.get_by_role("button", name="Older events").click()
    expect(rows).to_have_count(60)
    expect(rows.last.locator("td").first).to_have_text("0")
    expect(page.get_by_role("button", name="Older events")).to_be_hidden()

    expect(page.get_by_text("Live: new events appear at the top.")).to_be_visible()
    sdk.stream.publish(room, "joined", {"who": "<b>bo</b>"})
    expect(rows).to_have_count(61)
    expect(rows.first).to_contain_text('{"who":"<b>bo</b>"}')  # as text, not markup
    publish = page.get_by_role("form", name="Publish an event")
    publish.get_by_label("Data (JSON)").fill("{not json")
    publish.get_by_role("button", name="Publish").click()
    expect(publish.get_by_role("alert")).to_contain_text("the data is not JSON")
    publish.get_by_label("Event type").fill("typed")
    publish.get_by_label("Data (JSON)").fill('"hello"')
    publish.get_by_role("button", name="Publish").click()
    expect(rows.first).to_contain_text("typed")
    expect(rows).to_have_count(62)
    assert sdk.stream.history(room, from_offset=-1).events[0].data == "hello"


def test_a_pubsub_live_view_shows_matching_messages_and_publishes(
    admin_page: Page, sdk: Client
) -> None:
    page, word = admin_page, unique("orders")
    page.get_by_role("link", name="Pub/sub").click()
    view = page.get_by_role("form", name="Watch topics")
    view.get_by_label("Topic patterns (comma-separated)").fill(f"{word}.*")
    view.get_by_role("button", name="Watch").click()
    expect(page.get_by_text(f"Live: watching {word}.*.")).to_be_visible()
    expect(page.get_by_text("No message yet")).to_be_visible()
    sdk.pubsub.publish(f"{word}.created", {"id": 7})
    sdk.pubsub.publish(f"{word}.x.deep", {"id": 8})  # * is one word: not this view's
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"{word}.created")
    expect(rows.first).to_contain_text('{"id":7}')

    publish = page.get_by_role("form", name="Publish a message")
    publish.get_by_label("Topic").fill(f"{word}.paid")
    publish.get_by_label("Message (JSON)").fill('{"id": 9}')
    publish.get_by_role("button", name="Publish").click()
    expect(
        page.get_by_role("status").filter(has_text="Published to 1 subscription(s)")
    ).to_be_visible()
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(f"{word}.paid")


def test_a_mail_template_is_edited_previewed_in_a_sandbox_and_its_mail_is_in_the_outbox(
    admin_page: Page, sdk: Client
) -> None:
    page, alias, to = admin_page, unique("shipped-"), f"{unique('bo')}@example.com"
    page.get_by_role("link", name="Mail").click()
    expect(page.get_by_role("cell", name="welcome", exact=True)).to_be_visible()  # built-in
    editor = page.get_by_role("form", name="Edit a template")
    editor.get_by_label("Alias").fill(alias)
    editor.get_by_label("Subject").fill("Order {{ order }} shipped")
    editor.get_by_label("Text body").fill("Hi {{ name }}, it is on its way.")
    hostile = (
        "<p>Hi {{ name }}</p>"
        "<script>parent.document.title = 'pwned'; top.pwned = 1</script>"
        "<img src=x onerror=\"parent.document.title = 'pwned'\">"
    )
    editor.get_by_label("HTML body (optional)").fill(hostile)
    editor.get_by_label("Sample data (JSON)").fill('{"name": "<i>Bo</i>"}')
    editor.get_by_role("button", name="Preview").click()
    expect(editor.get_by_role("alert")).to_contain_text("needs model.order")  # the server's
    editor.get_by_label("Sample data (JSON)").fill('{"name": "<i>Bo</i>", "order": 42}')
    editor.get_by_role("button", name="Preview").click()
    preview = page.get_by_role("region", name="Preview")
    expect(preview).to_contain_text("Order 42 shipped")
    expect(preview.locator("pre")).to_have_text("Hi <i>Bo</i>, it is on its way.")
    frame = preview.locator("iframe")
    expect(frame).to_have_attribute("sandbox", "")  # no allow-scripts, no allow-same-origin
    expect(page.frame_locator("iframe.mail-html").locator("p")).to_have_text("Hi <i>Bo</i>")
    assert page.title() == "Roost dashboard"  # the template's script ran nowhere
    assert page.evaluate("window.pwned") is None

    editor.get_by_role("button", name="Save template").click()
    templates = page.get_by_role("table", name=re.compile(r"^\d+ templates$"))
    saved = templates.get_by_role("row").filter(
        has=page.get_by_role("cell", name=alias, exact=True)
    )
    expect(saved).to_contain_text("own")
    assert sdk.mail.templates.get(alias)["html"] == hostile

    sdk.mail.send(alias, to, model={"name": "Bo", "order": 42})
    outbox = page.get_by_role("form", name="Outbox filter")
    outbox.get_by_label("Recipient").fill(to)
    outbox.get_by_role("button", name="Filter").click()
    sent = page.get_by_role("row").filter(has=page.get_by_role("cell", name=to, exact=True))
    expect(sent).to_contain_text("Order 42 shipped")
    expect(sent).to_contain_text("outbox")  # no relay configured
    sent.get_by_role("button", name=re.compile("^Show message")).click()
    expect(page.get_by_role("region", name=re.compile("^Message "))).to_contain_text(
        "Hi Bo, it is on its way."
    )

    page.once("dialog", lambda dialog: dialog.accept())
    saved.get_by_role("button", name=f"Edit {alias}").click()
    editor.get_by_role("button", name="Delete template").click()
    expect(saved).to_have_count(0)


def test_usage_is_charted_per_api_key(
    admin_page: Page, sdk: Client, running: RunningServer
) -> None:
    page, name = admin_page, unique("reporting-")
    made = sdk.api_keys.create(name, ["kv:read"])
    with Client(api_url=running.url) as client:
        keyed = client.auth.sign_in_with_token(made["key"], "api_key")
        for _ in range(3):
            keyed.kv.get(unique("k"))
    page.get_by_role("link", name="Usage").click()
    expect(page.get_by_role("img", name="requests per day")).to_be_visible()
    expect(page.get_by_role("img", name="requests per API key")).to_contain_text(name)
    per_key = page.get_by_role("table", name="Usage per API key over 30 days")
    row = per_key.get_by_role("row").filter(has_text=name)
    expect(row.locator("td").nth(1)).to_have_text("3")  # its requests
    expect(per_key.get_by_role("cell", name="signed-in users")).to_be_visible()
    page.get_by_label("Show the days of").select_option(label=name)
    expect(page.get_by_role("heading", name=f"Requests per day ({name}")).to_be_visible()
    daily = page.get_by_role("table", name=re.compile(r"^Usage per day \("))
    expect(daily.locator("tbody tr").first.locator("td").nth(1)).to_have_text("3")


def test_settings_are_edited_as_json_and_pages_declared_and_deleted(
    admin_page: Page, sdk: Client
) -> None:
    page, path = admin_page, f"/{unique('reports-')}"
    page.get_by_role("link", name="Settings & pages").click()
    settings = page.get_by_role("form", name="Site settings")
    source = settings.get_by_label("Settings (JSON object)")
    source.fill("[1, 2]")
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.get_by_role("alert")).to_contain_text("must be a JSON object")
    source.fill('{"site_name": "Acme", "theme": {"dark": true}}')
    settings.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Settings saved")).to_be_visible()
    assert sdk.settings.get() == {"site_name": "Acme", "theme": {"dark": True}}

    form = page.get_by_role("form", name="New page")
    form.get_by_label("Path").fill("no slash")
    form.get_by_label("Title").fill("Reports")
    form.get_by_role("button", name="Add page").click()
    expect(form.get_by_role("alert")).to_contain_text("(field: path)")
    form.get_by_label("Path").fill(path)
    form.get_by_label("Scopes needed (comma-separated)").fill("kv:read, logs:read")
    form.get_by_role("button", name="Add page").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=path, exact=True))
    expect(row).to_contain_text("kv:read logs:read")
    assert path in [p["path"] for p in sdk.pages.list()]
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Delete page {path}").click()
    expect(row).to_have_count(0)
    assert path not in [p["path"] for p in sdk.pages.list()]


def test_queue_depth_and_trigger_deliveries_update_live(
    admin_page: Page, sdk: Client, receiver: WebhookReceiver
) -> None:
    page, queue = admin_page, unique("jobs")
    page.get_by_role("link", name="Queues").click()
    page.get_by_label("Queue name").fill(queue)
    page.get_by_role("button", name="Open").click()
    depth = page.get_by_label(f"Depth of {queue}")
    expect(depth.locator("div", has_text="ready")).to_contain_text("0")
    expect(page.get_by_text("Live: the depth follows every change.")).to_be_visible()
    sdk.queue.publish(queue, {"n": 1})
    sdk.queue.publish(queue, {"n": 2})
    expect(depth.locator("div", has_text="ready")).to_contain_text("2")
    taken = sdk.queue.consume(queue)
    assert taken is not None
    expect(depth.locator("div", has_text="in flight")).to_contain_text("1")
    sdk.queue.nack(queue, taken.message_id, requeue=False)
    expect(depth.locator("div", has_text="dead")).to_contain_text("1")
    expect(page.get_by_role("cell", name=taken.message_id, exact=True)).to_be_visible()

    table, trigger = unique("orders_"), unique("on-order-")
    sdk.schema.add_table(table, [{"name": "item", "type": "text"}])
    sdk.triggers.create(
        trigger,
        {"kind": "database", "table": table, "events": ["insert"]},
        {"kind": "url", "url": f"{receiver.url}/{trigger}"},
    )
    receiver.reply_on(f"/{trigger}", Reply(status=503))  # delivered on the second attempt
    page.get_by_role("link", name="Triggers").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=trigger, exact=True))
    row.get_by_role("button", name=f"Deliveries of {trigger}").click()
    deliveries = page.get_by_role("region", name=f"Deliveries of {trigger}")
    expect(deliveries.get_by_text("No deliveries yet")).to_be_visible()
    expect(deliveries.get_by_text("Live: deliveries update as they happen.")).to_be_visible()
    sdk.database.create(table, {"item": "tea"})
    delivery = deliveries.locator("tbody tr")
    expect(delivery).to_have_count(1)  # without a refresh
    expect(delivery.locator("td").nth(1)).to_have_text("delivered")
    expect(delivery.locator("td").nth(2)).to_have_text("2")  # attempts
    expect(delivery.locator("td").nth(3)).to_have_text("200")
    expect(deliveries.get_by_text("1 deliveries")).to_be_visible()


def dead_letters(sdk: Client, queue: str, count: int) -> list[str]:
    """`count` messages published to `queue` and dead-lettered: their ids, oldest first."""
    sdk.queue.configure(queue, max_deliveries=1)
    ids = []
    for n in range(count):
        sdk.queue.publish(queue, {"n": n})
        taken = sdk.queue.consume(queue)
        assert taken is not None
        assert sdk.queue.nack(queue, taken.message_id).action == "dead_lettered"
        ids.append(taken.message_id)
    return ids


def test_dead_letters_are_replayed_and_discarded_from_the_queue_page(
    admin_page: Page, running: RunningServer, sdk: Client
) -> None:
    page, queue = admin_page, unique("jobs")
    first, second, third = dead_letters(sdk, queue, 3)
    page.goto(f"{running.url}/_/#/queues/{queue}")
    depth = page.get_by_label(f"Depth of {queue}")
    ready, dead = depth.locator("div", has_text="ready"), depth.locator("div", has_text="dead")
    expect(dead).to_contain_text("3")
    expect(page.get_by_role("cell", name=first, exact=True)).to_be_visible()

    page.once("dialog", lambda dialog: dialog.dismiss())  # asked first: nothing moves
    page.get_by_role("button", name="Replay all").click()
    page.get_by_role("button", name=f"Replay {first}").click()
    expect(ready).to_contain_text("1")
    expect(dead).to_contain_text("2")
    expect(page.get_by_role("cell", name=first, exact=True)).to_have_count(0)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Discard {second}").click()
    expect(dead).to_contain_text("1")
    expect(page.get_by_role("cell", name=second, exact=True)).to_have_count(0)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Replay all").click()
    expect(ready).to_contain_text("2")
    expect(dead).to_contain_text("0")
    expect(page.get_by_text("No dead letters")).to_be_visible()
    stats = sdk.queue.stats(queue)
    assert (stats.ready, stats.in_flight, stats.dead) == (2, 0, 0)
    replayed = [sdk.queue.consume(queue), sdk.queue.consume(queue)]
    assert [(m.message_id, m.retry_count) for m in replayed if m] == [(first, 0), (third, 0)]


def test_dead_letters_without_queue_write_are_shown_but_not_replayable(
    browser: Browser, running: RunningServer, sdk: Client
) -> None:
    role, username, queue = unique("watcher_"), unique("watcher"), unique("jobs")
    (dead,) = dead_letters(sdk, queue, 1)
    sdk.roles.create(role, ["queue:read"])
    sdk.users.create_user(username, "watcher-password-1", roles=[role])
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, running.url, username, "watcher-password-1")
    page.goto(f"{running.url}/_/#/queues/{queue}")
    expect(page.get_by_role("cell", name=dead, exact=True)).to_be_visible()
    for hidden in ("Replay all", "Discard all", f"Replay {dead}", f"Discard {dead}"):
        expect(page.get_by_role("button", name=hidden)).to_have_count(0)
    context.close()
    assert sdk.queue.stats(queue).dead == 1


def test_a_principal_sees_only_the_messaging_pages_its_scopes_allow(
    browser: Browser, running: RunningServer, sdk: Client
) -> None:
    role, username = unique("reader_"), unique("reader")
    sdk.roles.create(role, ["stream:read", "mail:read", "pubsub:write"])
    sdk.users.create_user(username, "reader-password-1", roles=[role])
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = context.new_page()
    sign_in(page, running.url, username, "reader-password-1")
    nav = page.get_by_role("navigation", name="Dashboard").get_by_role("link")
    expect(nav).to_have_text(["Streams", "Pub/sub", "Mail"])

    page.goto(f"{running.url}/_/#/streams/{unique('room')}")
    expect(page.get_by_text("Live: new events appear at the top.")).to_be_visible()
    expect(page.get_by_role("form", name="Publish an event")).to_have_count(0)  # no stream:write

    page.get_by_role("link", name="Pub/sub").click()
    expect(page.get_by_role("form", name="Publish a message")).to_be_visible()
    expect(page.get_by_role("form", name="Watch topics")).to_have_count(0)  # no pubsub:read

    page.get_by_role("link", name="Mail").click()
    expect(page.get_by_role("button", name="Open welcome")).to_be_visible()
    expect(page.get_by_role("button", name="Save template")).to_have_count(0)  # no mail:admin
    expect(page.get_by_role("button", name="Edit welcome")).to_have_count(0)

    for hidden in ("settings", "queues", "triggers", "usage"):
        page.goto(f"{running.url}/_/#/{hidden}")  # not its pages: it lands on its first one
        expect(page.get_by_role("heading", level=1)).to_have_text("Streams")
    context.close()
