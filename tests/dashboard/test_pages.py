"""The dashboard in a real Chromium against a real server (SQLite): sign in, a table and its
records, a file and its signed link, a user and a key, the live tail of logs while the SDK
writes, and a principal without scopes. One browser and one server for the module."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from roost import Client
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, start_server, unique
from tests.dashboard.browser import chromium, require_chromium, sign_in

# a 1x1 PNG: served inline, so its signed link opens in the browser
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000b49444154789c6360000200000500017a5eab3f0000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    require_chromium()
    server = start_server(tmp_path_factory.mktemp("dashboard"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(running: RunningServer) -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def admin(browser: Browser, running: RunningServer) -> Iterator[BrowserContext]:
    """A browser signed in as the admin once for the module (its cookie in this context)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, running.url, ADMIN_USERNAME, ADMIN_PASSWORD)
    page.close()
    yield context
    context.close()


@pytest.fixture
def admin_page(admin: BrowserContext, running: RunningServer) -> Iterator[Page]:
    page = admin.new_page()
    page.goto(f"{running.url}/_/")
    page.get_by_role("button", name="Sign out").wait_for()
    yield page
    page.close()


def test_sign_in_create_a_table_add_and_filter_records(
    admin_page: Page, running: RunningServer
) -> None:
    page = admin_page
    table = unique("pets")
    page.get_by_role("link", name="Tables").click()
    page.get_by_label("Table name").fill(table)
    page.get_by_role("group", name="Column 1").get_by_label("Name").fill("name")
    page.get_by_role("button", name="Add column").click()
    column2 = page.get_by_role("group", name="Column 2")
    column2.get_by_label("Name").fill("age")
    column2.get_by_label("Type").select_option("integer")
    page.get_by_role("button", name="Create table").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(table)
    expect(page.get_by_text("This table has no records yet.")).to_be_visible()

    page.get_by_text("Add record").click()
    new = page.get_by_role("form", name="New record")
    for name, age in [("rex", 3), ("tom", 7), ("kit", 1)]:
        new.get_by_label("name (text)").fill(name)
        new.get_by_label("age (integer)").fill(str(age))
        new.get_by_role("button", name="Save").click()
        expect(page.get_by_role("cell", name=name, exact=True)).to_be_visible()
    expect(page.get_by_text("3 records")).to_be_visible()

    builder = page.get_by_role("form", name="Filter and sort")
    builder.get_by_label("Field").select_option("age")
    builder.get_by_label("Operator").select_option("gt")
    builder.get_by_label("Value").fill("2")
    builder.get_by_role("button", name="Add filter").click()
    expect(page.get_by_text("2 records")).to_be_visible()
    expect(page.get_by_role("cell", name="kit", exact=True)).to_have_count(0)
    builder.get_by_label("Sort by").select_option("age")
    builder.get_by_label("Direction").select_option("desc")
    rows = page.locator("section tbody tr")
    expect(rows.first).to_contain_text("tom")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=re.compile("^Delete record")).first.click()
    expect(page.get_by_text("1 records")).to_be_visible()

    # live: a record the SDK adds shows up in the grid (through its filter) without a reload
    expect(page.get_by_text("Live: changes by others appear here.")).to_be_visible()
    with Client(api_url=running.url) as client:
        tokens = client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        admin = client.auth.sign_in_with_token(tokens["access"])
        admin.database.bulk_insert(table, [{"name": "max", "age": 9}, {"name": "pip", "age": 0}])
    expect(page.get_by_text("2 records")).to_be_visible()
    expect(page.get_by_role("cell", name="max", exact=True)).to_be_visible()


def test_upload_a_file_and_open_its_signed_link(admin_page: Page, tmp_path: Path) -> None:
    page = admin_page
    bucket = unique("docs")
    page.get_by_role("link", name="Files").click()
    page.get_by_label("Bucket name").fill(bucket)
    page.get_by_role("button", name="Create bucket").click()
    expect(page.get_by_text("This bucket is empty.")).to_be_visible()
    document = tmp_path / "dot.png"
    document.write_bytes(_PNG)
    page.get_by_label("File", exact=True).set_input_files(document)
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("cell", name="dot.png", exact=True)).to_be_visible()
    expect(page.get_by_label("Upload progress")).to_have_attribute("value", "1")

    page.get_by_role("button", name="Signed link for dot.png").click()
    link = page.locator("a.signed")
    expect(link).to_be_visible()
    with page.context.expect_page() as opened:
        link.click()
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url.startswith(f"{page.url.split('/_/')[0]}/api/v1/storage/signed/")
    assert tab.evaluate("document.images[0].naturalWidth") == 1  # the image itself, shown
    tab.close()


def test_create_a_user_and_an_api_key(admin_page: Page, running: RunningServer) -> None:
    page = admin_page
    username = unique("ann")
    page.get_by_role("link", name="Users & keys").click()
    users = page.get_by_role("form", name="New user")
    users.get_by_label("Username").fill(username)
    users.get_by_label("Password").fill("ann-password-1")
    users.get_by_label("Roles (comma-separated)").fill("member")
    users.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("cell", name=username, exact=True)).to_be_visible()

    keys = page.get_by_role("form", name="New API key")
    keys.get_by_label("Key name").fill("ci")
    keys.get_by_label("Scopes (comma-separated)").fill("logs:read")
    keys.get_by_role("button", name="Create key").click()
    key = page.locator("code.key").inner_text()
    answer = httpx.post(
        f"{running.url}/api/v1/auth/whoami", headers={"Authorization": f"Api-Key {key}"}
    )
    assert answer.json()["scopes"] == ["logs:read"]
    expect(page.get_by_role("cell", name="ci", exact=True)).to_be_visible()


def test_tail_logs_while_the_sdk_writes(admin_page: Page, running: RunningServer) -> None:
    """The live tail is the logs.tail subscription on the WebSocket, with the cookie and the
    CSRF token: what the SDK writes appears without a reload, filtered."""
    page = admin_page
    category = unique("tail")
    page.get_by_role("link", name="Logs").click()
    page.get_by_label("Category").fill(category)
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("No log entry matches these filters.")).to_be_visible()
    page.get_by_label("Live tail").check()
    expect(page.get_by_text("Live: new entries appear at the top.")).to_be_visible()
    with Client(api_url=running.url) as client:
        tokens = client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        logs = client.auth.sign_in_with_token(tokens["access"]).logs
        logs.info("first while tailing", category=category)
        expect(page.get_by_role("cell", name="first while tailing")).to_be_visible()
        logs.info("elsewhere", category=unique("other"))  # not this tail's category
        logs.error("second while tailing", category=category)
        expect(page.locator("tbody tr").first).to_contain_text("second while tailing")
    expect(page.locator("tbody tr")).to_have_count(2)
    assert page.evaluate("document.cookie").count("roost_dashboard=") == 0  # httpOnly


def test_kv_queue_depth_and_secrets_shown_only_on_request(
    admin_page: Page, running: RunningServer
) -> None:
    page = admin_page
    key, queue, secret = unique("greeting:"), unique("jobs"), unique("STRIPE_KEY_")
    page.get_by_role("link", name="KV store").click()
    form = page.get_by_role("form", name="Set a key")
    form.get_by_label("Key", exact=True).fill(key)
    form.get_by_label("Value (JSON)").fill('{"hello": "world"}')
    form.get_by_role("button", name="Set").click()
    expect(page.get_by_role("heading", name=key)).to_be_visible()
    expect(page.locator("pre")).to_contain_text('"hello": "world"')

    with Client(api_url=running.url) as client:
        tokens = client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        admin = client.auth.sign_in_with_token(tokens["access"])
        admin.queue.publish(queue, {"n": 1})
        admin.queue.publish(queue, {"n": 2})
    page.get_by_role("link", name="Queues").click()
    page.get_by_label("Queue name").fill(queue)
    page.get_by_role("button", name="Open").click()
    depth = page.get_by_label(f"Depth of {queue}")
    expect(depth.locator("div", has_text="ready")).to_contain_text("2")
    expect(page.get_by_text("No dead letters")).to_be_visible()

    page.get_by_role("link", name="Secrets").click()
    form = page.get_by_role("form", name="Set a secret")
    form.get_by_label("Name").fill(secret)
    form.get_by_label("Value").fill("sk_live_not_shown")
    form.get_by_role("button", name="Set secret").click()
    expect(page.get_by_role("cell", name=secret, exact=True)).to_be_visible()
    assert "sk_live_not_shown" not in page.content()
    page.get_by_role("button", name=f"Show value of {secret}").click()
    expect(page.get_by_text("sk_live_not_shown")).to_be_visible()
    page.get_by_role("button", name="Hide").click()
    expect(page.get_by_text("sk_live_not_shown")).to_have_count(0)


def test_a_principal_without_scopes_sees_nothing_it_may_not(
    browser: Browser, running: RunningServer
) -> None:
    username = unique("nobody")
    with Client(api_url=running.url) as client:
        tokens = client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        admin = client.auth.sign_in_with_token(tokens["access"])
        admin.users.create_user(username, "nobody-password-1")  # a member: own API keys only
        admin.schema.add_table(unique("hidden"), [{"name": "note", "type": "text"}])
        context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
        page = context.new_page()
        sign_in(page, running.url, username, "nobody-password-1")
        nav = page.get_by_role("navigation", name="Dashboard").get_by_role("link")
        expect(nav).to_have_text(["Users & keys"])
        expect(page.get_by_role("heading", name="API keys")).to_be_visible()
        expect(page.get_by_role("heading", name="Users", exact=True)).to_have_count(0)
        expect(page.get_by_role("heading", name="Roles")).to_have_count(0)
        page.goto(f"{running.url}/_/#/tables")  # not one of its pages: it lands on its own
        expect(page.get_by_role("heading", level=1)).to_have_text("Users & keys")

        admin.users.revoke_roles(["member"], [username])
    page.reload()
    expect(page.get_by_role("heading", name="Nothing to show")).to_be_visible()
    expect(nav).to_have_count(0)
    assert "hidden" not in page.content()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Roost")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"].startswith("roost_dashboard")]
    context.close()


def test_the_tables_page_weighs_under_300_kb_on_first_load(
    browser: Browser, running: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Page weight: everything transferred (page, scripts, styles, API answers) for a first
    load of a table's page, with a cold cache. Time to interactive is a figure for
    benchmarks/dashboard.py (100k rows), never an assertion here."""
    table = unique("weigh")
    with Client(api_url=running.url) as client:
        tokens = client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        admin = client.auth.sign_in_with_token(tokens["access"])
        admin.schema.add_table(table, [{"name": "note", "type": "text"}])
        admin.database.bulk_insert(table, [{"note": f"note {n}"} for n in range(100)])
    context = browser.new_context()
    signed = context.request.post(
        f"{running.url}/_/session",
        data={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD},
        headers={"X-Roost-CSRF": "signin"},
    )
    assert signed.ok
    page = context.new_page()
    page.goto(f"{running.url}/_/#/tables/{table}")
    expect(page.get_by_text("100 records")).to_be_visible()
    transferred = page.evaluate(
        """() => performance.getEntriesByType("navigation")
          .concat(performance.getEntriesByType("resource"))
          .reduce((sum, entry) => sum + entry.transferSize, 0)"""
    )
    context.close()
    with capsys.disabled():
        print(f"\ntables page, first load: {transferred / 1024:.1f} KB transferred")
    assert 0 < transferred < 300 * 1024
