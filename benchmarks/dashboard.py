"""Dashboard figures: the tables page of a table with 100k rows, on first load in Chromium.

    python benchmarks/dashboard.py [--rows 100000]

Prints, from one run on the embedded default with the server in a process of its own: the
bytes transferred on first load (the page, its scripts and styles, and the API answers it
asks for; goal under 300 KB) and the time from navigation until the record grid is shown
(goal under 1 s). Needs /usr/bin/chromium (scripts/ensure-chromium).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_overhead import ADMIN, PASSWORD, start
from playwright.sync_api import sync_playwright

from roost import Client

# Resource Timing's sizes: what crossed the wire (headers and compressed bodies) for the page
# and everything it fetched
_TRANSFERRED = """() => performance.getEntriesByType("navigation")
  .concat(performance.getEntriesByType("resource"))
  .reduce((sum, entry) => sum + entry.transferSize, 0)"""

_WATERFALL = """() => performance.getEntriesByType("navigation")
  .concat(performance.getEntriesByType("resource"))
  .map((e) => [e.name.replace(location.origin, ""), e.startTime, e.responseEnd])"""


def fill(url: str, table: str, rows: int) -> None:
    with Client(api_url=url, timeout=300) as client:
        admin = client.auth.sign_in_with_password(ADMIN, PASSWORD)
        admin.schema.add_table(
            table,
            [
                {"name": "name", "type": "text"},
                {"name": "age", "type": "integer"},
                {"name": "email", "type": "text"},
            ],
        )
        batch = 10_000
        for start_at in range(0, rows, batch):
            admin.database.bulk_insert(
                table,
                [
                    {"name": f"user {n}", "age": n % 90, "email": f"user{n}@example.com"}
                    for n in range(start_at, min(rows, start_at + batch))
                ],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description="Roost dashboard figures")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--waterfall", action="store_true", help="print each request's times")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="roost-bench-"))
    server, url = start("roost", str(work / "data"), secrets.token_urlsafe(40))
    try:
        table = "people"
        begin = time.perf_counter()
        fill(url, table, args.rows)
        print(f"filled {args.rows} rows in {time.perf_counter() - begin:.1f} s")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            signed = context.request.post(
                f"{url}/_/session",
                data={"username": ADMIN, "password": PASSWORD},
                headers={"X-Roost-CSRF": "signin"},
            )
            assert signed.ok, signed.text()
            page = context.new_page()
            page.goto(f"{url}/_/#/tables/{table}")
            page.get_by_text(f"{args.rows} records").wait_for()
            shown_ms = page.evaluate("performance.now()")
            transferred = page.evaluate(_TRANSFERRED)
            if args.waterfall:
                for name, start_ms, end_ms in page.evaluate(_WATERFALL):
                    print(f"  {start_ms:7.0f} .. {end_ms:7.0f} ms  {name}")
            browser.close()
        print(
            f"tables page, {args.rows} rows, first load: {transferred / 1024:.1f} KB "
            f"transferred (goal < 300 KB), grid shown after {shown_ms:.0f} ms (goal < 1000 ms)"
        )
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
