"""Debian's Chromium under Playwright, for the dashboard's browser tests and screenshots.

Playwright's own browser download is not reachable here, so it drives `/usr/bin/chromium`
(`scripts/ensure-chromium` installs it). Without it the browser tests skip, unless
`ROOST_REQUIRE_SERVICES` is set (CI), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")

# An assertion waits until its condition holds, so a longer limit costs a passing test
# nothing. Playwright's 5 s was too short on a 2-core machine running the whole suite: a
# policy test run, whose first use in a process loads the policy engine, once answered after
# it (the step takes ~1 s alone).
expect.set_options(timeout=20_000)


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = "no /usr/bin/chromium: run scripts/ensure-chromium"
    if os.environ.get("ROOST_REQUIRE_SERVICES"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium (a browser per test module: starting one costs ~0.5 s)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Page, url: str, username: str, password: str, tenant: str = "default") -> None:
    """Sign in through the dashboard's own form and wait for its navigation."""
    page.goto(f"{url}/_/")
    page.get_by_label("Tenant").fill(tenant)
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()
