"""The dashboard's data features in a real Chromium against a real server (SQLite): the schema
editor and its history, CSV and JSON import (checked in the page first) and export (the
current filters), secure tables with their reason and audit log, image previews (never
another type inline, never an SVG's script), tenant categories and switching tenant in place;
and for each, a principal without the scope does not see it. One browser and one server for
the module."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from roost import Client
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, start_server, unique
from tests.dashboard.browser import require_chromium, sign_in

_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000b49444154789c6360000200000500017a5eab3f0000000049454e44ae426082"
)
# an SVG that would run script if it were opened as a page of the dashboard's origin
_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10" '
    b"onload=\"parent.pwned = 1\"><rect width='20' height='10' fill='red'/>"
    b"<script>parent.pwned = 2; top.pwned = 3;</script></svg>"
)
_HTML = b"<html><body><script>parent.pwned = 4</script><p>hello</p></body></html>"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    require_chromium()
    server = start_server(tmp_path_factory.mktemp("dashboard-data"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sdk(running: RunningServer) -> Iterator[Client]:
    """The platform administrator through the SDK, to make data the pages then show."""
    with Client(api_url=running.url) as client:
        tokens = client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        yield client.auth.sign_in_with_token(tokens["access"])


def _open_table(page: Page, table: str) -> None:
    page.get_by_role("link", name="Tables").click()
    page.get_by_role("link", name=table, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(table)


def test_edit_a_schema_then_read_its_history(admin_page: Page, sdk: Client) -> None:
    page = admin_page
    table = unique("pets")
    sdk.schema.add_table(table, [{"name": "name", "type": "text"}])
    _open_table(page, table)
    page.get_by_role("link", name="Edit the schema and see its history").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Schema of {table}")

    add = page.get_by_role("form", name="Add a column")
    add.get_by_label("Column name").fill("age")
    add.get_by_label("Column type").fill("integr")
    add.get_by_role("button", name="Add column").click()
    expect(add.get_by_role("alert")).to_contain_text("(field: column.type)")  # the server's 422
    add.get_by_label("Column type").fill("integer")
    add.get_by_label("NOT NULL").check()
    add.get_by_label("Default").fill("0")
    add.get_by_label("CHECK").fill("age >= 0")
    add.get_by_role("button", name="Add column").click()
    columns = page.get_by_role("table", name=f"Columns of {table}")
    age = columns.get_by_role("row").filter(has=page.get_by_role("cell", name="age", exact=True))
    expect(age).to_contain_text("integer")
    expect(age).to_contain_text('"age" >= 0')  # as the server re-rendered it

    add = page.get_by_role("form", name="Add a column")
    add.get_by_label("Column name").fill("nickname")
    add.get_by_label("Column type").fill("varchar(40)")
    add.get_by_role("button", name="Add column").click()
    rename = page.get_by_role("form", name="Rename a column")
    rename.get_by_label("Column to rename").select_option("nickname")
    rename.get_by_label("New name").fill("alias")
    rename.get_by_role("button", name="Rename").click()
    expect(columns.get_by_role("cell", name="alias", exact=True)).to_be_visible()
    expect(columns.get_by_role("cell", name="nickname", exact=True)).to_have_count(0)

    index = page.get_by_role("form", name="Add an index")
    index.get_by_role("button", name="Add index").click()
    expect(index.get_by_role("alert")).to_contain_text("choose at least one column")
    index.get_by_label("name", exact=True).check()
    index.get_by_label("Unique (refuses duplicates)").check()
    index.get_by_role("button", name="Add index").click()
    indexes = page.get_by_role("table", name=f"Indexes of {table}")
    expect(indexes).to_contain_text(f"ix_{table}_name")

    # dropping asks first: dismissed, the column stays; accepted, it goes
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Drop column alias").click()
    expect(columns.get_by_role("cell", name="alias", exact=True)).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Drop column alias").click()
    expect(columns.get_by_role("cell", name="alias", exact=True)).to_have_count(0)
    assert [c["name"] for c in sdk.database.describe(table)["columns"]] == [
        "id",
        "name",
        "created_at",
        "updated_at",
        "age",
    ]
    assert not page.get_by_role("button", name="Drop column id").count()  # kept by the platform

    history = page.get_by_role("table", name=re.compile("changes, newest first"))
    expect(history.locator("tbody tr td:nth-child(2)")).to_have_text(
        ["drop_column", "add_index", "rename_column", "add_column", "add_column", "add_table"]
    )
    page.get_by_role("link", name=f"← Records of {table}").click()
    page.get_by_role("link", name="← Tables").click()
    page.get_by_text("Schema history (every table)").click()
    everything = page.get_by_role("table", name=re.compile("changes, newest first"))
    expect(everything.get_by_role("row").filter(has_text=table).first).to_contain_text(
        "drop_column"
    )


def _download(page: Page, button: str) -> str:
    with page.expect_download() as started:
        page.get_by_role("button", name=button).click()
    path = started.value.path()
    return Path(path).read_bytes().decode()  # as written: CSV lines end in CRLF


def test_import_is_checked_first_then_export_follows_the_filters(
    admin_page: Page, sdk: Client, tmp_path: Path
) -> None:
    page = admin_page
    table = unique("people")
    sdk.schema.add_table(
        table,
        [
            {"name": "name", "type": "text", "constraints": ["NOT NULL"]},
            {"name": "age", "type": "integer"},
            {"name": "tags", "type": "json"},
        ],
    )
    _open_table(page, table)
    page.get_by_text("Import and export").click()
    form = page.get_by_role("form", name="Import records")

    broken = tmp_path / "broken.csv"
    broken.write_text("name,age,colour,name\nann,3,red,ann\n,x,blue,\n", encoding="utf-8")
    form.get_by_label("CSV or JSON file").set_input_files(broken)
    form.get_by_role("button", name="Check file").click()
    problems = form.get_by_role("list", name="Import problems")
    expect(problems).to_contain_text('header, column 3: "colour" is not a column')
    expect(problems).to_contain_text("header, column 4: name is named twice")
    expect(problems).to_contain_text("row 2, field age: age wants a whole number")
    expect(problems).to_contain_text("row 2, field name: a value is required")
    expect(form.get_by_role("button", name="Import")).to_be_disabled()

    good = tmp_path / "people.csv"
    good.write_text(
        'name,age,tags,id\r\n"Smith, Ann",30,"[""a"",""b""]",999\r\nbob,7,,\r\n"cy ""c""",41,{},\r\n',
        encoding="utf-8",
    )
    form.get_by_label("CSV or JSON file").set_input_files(good)
    form.get_by_role("button", name="Check file").click()
    expect(form.get_by_text("3 records in people.csv are ready to import.")).to_be_visible()
    expect(form.get_by_text("Ignored (kept by the table): id.")).to_be_visible()
    form.get_by_role("button", name="Import").click()
    expect(form.get_by_text("Imported 3 records.")).to_be_visible()
    expect(page.get_by_label("Import progress")).to_have_attribute("value", "1")
    expect(page.get_by_text("3 records", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="Smith, Ann", exact=True)).to_be_visible()

    as_json = tmp_path / "more.json"
    as_json.write_text(json.dumps([{"name": "dee", "age": 52}, {"name": "eve", "age": "x"}]))
    form.get_by_label("CSV or JSON file").set_input_files(as_json)
    form.get_by_role("button", name="Check file").click()
    expect(problems).to_contain_text("row 2, field age: age wants a whole number")
    as_json.write_text(json.dumps([{"name": "dee", "age": 52, "tags": {"k": [1]}}]))
    form.get_by_label("CSV or JSON file").set_input_files(as_json)
    form.get_by_role("button", name="Check file").click()
    form.get_by_role("button", name="Import").click()
    expect(form.get_by_text("Imported 1 records.")).to_be_visible()
    expect(page.get_by_text("4 records", exact=True)).to_be_visible()

    builder = page.get_by_role("form", name="Filter and sort")
    builder.get_by_label("Field").select_option("age")
    builder.get_by_label("Operator").select_option("gt")
    builder.get_by_label("Value").fill("20")
    builder.get_by_role("button", name="Add filter").click()
    expect(page.get_by_text("3 records", exact=True)).to_be_visible()

    csv = _download(page, "Export CSV")
    lines = csv.strip().split("\r\n")
    assert lines[0] == "id,name,age,tags,created_at,updated_at"
    assert len(lines) == 4  # the three over 20, not bob
    assert lines[1].startswith('1,"Smith, Ann",30,"[""a"",""b""]",20')
    assert lines[2].startswith('2,"cy ""c""",41,{},20')
    rows = json.loads(_download(page, "Export JSON"))
    assert [(r["name"], r["age"], r["tags"]) for r in rows] == [
        ("Smith, Ann", 30, ["a", "b"]),
        ('cy "c"', 41, {}),
        ("dee", 52, {"k": [1]}),
    ]
    expect(page.get_by_text("3 records exported (the current filters).")).to_be_visible()


def test_a_secure_table_needs_a_reason_and_its_accesses_are_audited(
    admin_page: Page, sdk: Client
) -> None:
    page = admin_page
    table = unique("patients")
    sdk.schema.add_table(table, [{"name": "name", "type": "text"}])
    sdk.database.bulk_insert(table, [{"name": "ann"}, {"name": "bob"}])
    _open_table(page, table)
    page.get_by_role("link", name="Edit the schema and see its history").click()
    page.get_by_role("button", name="Make secure").click()
    expect(page.get_by_text(f"{table} is secure", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Make not secure")).to_be_visible()

    page.get_by_role("link", name=f"← Records of {table}").click()
    expect(page.get_by_role("heading", name="This table is secure")).to_be_visible()
    expect(page.get_by_role("cell", name="ann", exact=True)).to_have_count(0)
    assert sdk.audit.query(table=table) == []  # nothing was read without a reason
    page.get_by_label("Reason for this access").fill("ticket 42")
    page.get_by_label("On behalf of (actor)").fill("dr-who")
    page.get_by_role("button", name="Show records").click()
    expect(page.get_by_role("cell", name="ann", exact=True)).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Secure table")).to_contain_text("ticket 42")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=re.compile("^Delete record")).first.click()
    expect(page.get_by_text("1 records")).to_be_visible()

    page.get_by_role("link", name="Audit log").click()
    filters = page.get_by_role("form", name="Audit filters")
    filters.get_by_label("Table").fill(table)
    filters.get_by_role("button", name="Apply").click()
    entries = page.locator("tbody tr")
    expect(entries.first).to_contain_text("query")
    expect(entries.filter(has_text="delete")).to_have_count(1)
    expect(entries.first).to_contain_text("ticket 42")
    expect(entries.first).to_contain_text("dr-who")
    filters.get_by_label("Operation").select_option("delete")
    filters.get_by_role("button", name="Apply").click()
    expect(entries).to_have_count(1)
    filters.get_by_label("Actor").fill("someone-else")
    filters.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("No audit entry matches these filters.")).to_be_visible()


def test_an_image_is_previewed_and_no_other_type_is_shown_inline(
    admin_page: Page, sdk: Client
) -> None:
    page = admin_page
    bucket = unique("pics")
    sdk.storage.create_bucket(bucket)
    sdk.storage.from_(bucket).upload(
        [
            {"file": _PNG, "name": "dot.png", "content_type": "image/png"},
            {"file": _SVG, "name": "logo.svg", "content_type": "image/svg+xml"},
            {"file": _HTML, "name": "page.html", "content_type": "text/html"},
            {"file": _HTML, "name": "fake.png", "content_type": "text/html"},
        ]
    )
    dialogs: list[Dialog] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog))
    page.get_by_role("link", name="Files").click()
    page.get_by_role("link", name=bucket).click()
    expect(page.get_by_role("cell", name="page.html", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Preview page.html")).to_have_count(0)
    expect(page.get_by_role("button", name="Preview fake.png")).to_have_count(0)

    page.get_by_role("button", name="Preview dot.png").click()
    image = page.get_by_role("img", name="Preview of dot.png")
    expect(image).to_be_visible()
    page.wait_for_function("document.querySelector('img.preview').complete")
    assert image.evaluate("img => img.naturalWidth") == 1
    assert (image.get_attribute("src") or "").startswith("/api/v1/storage/signed/")

    page.get_by_role("button", name="Preview logo.svg").click()
    svg = page.get_by_role("img", name="Preview of logo.svg")
    expect(svg).to_be_visible()
    page.wait_for_function("document.querySelector('img.preview').complete")
    assert svg.evaluate("img => img.naturalWidth") == 20  # drawn, as an image
    assert page.evaluate("window.pwned") is None  # its script never ran
    assert page.locator("iframe, object, embed").count() == 0
    page.get_by_role("button", name="Close preview").click()
    expect(svg).to_have_count(0)
    assert not dialogs


def test_tenant_categories_and_switching_tenant_in_place(
    browser: Browser, running: RunningServer, sdk: Client
) -> None:
    """Its own context: switching changes this browser's session."""
    category, tenant, fresh = unique("shop_"), unique("acme-"), unique("kit-")
    member = unique("ops")
    sdk.tenants.create(tenant, admin_username="boss", admin_password="boss-password-1")
    with Client(api_url=running.url, tenant=tenant) as there:
        boss = there.auth.sign_in_with_password("boss", "boss-password-1")
        boss.users.create_user(member, "ops-password-1", roles=["admin"])
        code = boss.users.invite_member(member)["code"]
    sdk.auth.accept_invitation(code)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, running.url, ADMIN_USERNAME, ADMIN_PASSWORD)
    page.get_by_role("link", name="Tenants").click()
    form = page.get_by_role("form", name="New category")
    form.get_by_label("Category name").fill(category)
    form.get_by_label("Tables (JSON)").fill("[{not json")
    form.get_by_role("button", name="Create category").click()
    expect(form.get_by_role("alert")).to_contain_text("(field: tables)")
    form.get_by_label("Tables (JSON)").fill(
        '[{"name": "orders", "columns": [{"name": "total", "type": "money"}]}]'
    )
    form.get_by_role("button", name="Create category").click()
    expect(form.get_by_role("alert")).to_contain_text("money")
    form.get_by_label("Tables (JSON)").fill(
        '[{"name": "orders", "columns": [{"name": "total", "type": "decimal(10,2)"}]}]'
    )
    form.get_by_label("Description").fill("a shop's tables")
    form.get_by_role("button", name="Create category").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=category, exact=True))
    expect(row).to_contain_text("orders")

    provision = page.get_by_role("form", name="Start a tenant from a category")
    provision.get_by_label("Tenant name").fill(fresh)
    provision.get_by_label("Category").select_option(category)
    provision.get_by_role("button", name="Create from category").click()
    expect(page.get_by_role("cell", name=fresh, exact=True)).to_be_visible()
    with Client(api_url=running.url) as client:
        tokens = client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        admin = client.auth.sign_in_with_token(tokens["access"])
        assert admin.tenants.get(fresh)["name"] == fresh

    # a member tenant: switched in place, signed in there as the member account, no password
    listed = page.get_by_role("row").filter(has=page.get_by_role("cell", name=tenant, exact=True))
    expect(listed).to_contain_text("member: switch in place")
    listed.get_by_role("button", name=f"Switch to {tenant}").click()
    expect(page.locator("header .who")).to_have_text(f"{member} · {tenant}")
    expect(page.get_by_role("heading", name="Sign in to Roost")).to_have_count(0)
    # from the member account, the header's switch goes home by signing in there
    switch = page.get_by_label("Tenant to switch to")
    expect(switch).to_have_value(tenant)
    page.once("dialog", lambda dialog: dialog.accept())
    switch.select_option("default")
    page.get_by_role("button", name="Switch tenant").click()
    expect(page.get_by_role("heading", name="Sign in to Roost")).to_be_visible()
    expect(page.get_by_label("Tenant")).to_have_value("default")
    page.get_by_label("Username or email").fill(ADMIN_USERNAME)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("header .who")).to_have_text(f"{ADMIN_USERNAME} · default")
    # the header's switch from home: in place
    page.get_by_label("Tenant to switch to").select_option(tenant)
    page.get_by_role("button", name="Switch tenant").click()
    expect(page.locator("header .who")).to_have_text(f"{member} · {tenant}")
    context.close()


def test_a_principal_without_the_scopes_sees_none_of_it(
    browser: Browser, running: RunningServer, sdk: Client
) -> None:
    """A reader (database:read and storage:read): no schema editor, no history, no import,
    no audit log, no tenants page and no tenant switch."""
    username, role, table = unique("reader"), unique("reader_"), unique("seen")
    sdk.roles.create(role, ["database:read", "storage:read"])
    sdk.users.create_user(username, "reader-password-1", roles=[role])
    sdk.schema.add_table(table, [{"name": "note", "type": "text"}])
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = context.new_page()
    sign_in(page, running.url, username, "reader-password-1")
    nav = page.get_by_role("navigation", name="Dashboard").get_by_role("link")
    expect(nav).to_have_text(["Tables", "Files"])
    expect(page.get_by_text("Schema history (every table)")).to_have_count(0)
    page.get_by_role("link", name=table, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(table)
    expect(page.get_by_role("link", name="Edit the schema and see its history")).to_have_count(0)
    page.get_by_text("Export", exact=True).click()
    expect(page.get_by_role("button", name="Export CSV")).to_be_visible()
    expect(page.get_by_role("form", name="Import records")).to_have_count(0)
    page.goto(f"{running.url}/_/#/tables/{table}/schema")
    expect(page.get_by_text("needs the schema:admin scope")).to_be_visible()
    expect(page.get_by_role("form", name="Add a column")).to_have_count(0)
    page.goto(f"{running.url}/_/#/audit")  # not one of its pages: it lands on its first
    expect(page.get_by_role("heading", level=1)).to_have_text("Tables")
    expect(page.get_by_role("form", name="Switch tenant")).to_have_count(0)
    context.close()
