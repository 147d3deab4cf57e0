"""What every dashboard test module shares: one browser and one admin's signed-in context per
module, over the module's own `running` server (each module starts the server it needs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer
from tests.dashboard.browser import chromium, sign_in


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
    """A new page of the admin's context, on the dashboard, signed in."""
    page = admin.new_page()
    page.goto(f"{running.url}/_/")
    page.get_by_role("button", name="Sign out").wait_for()
    yield page
    page.close()
