"""Fixtures of the SDK tests (`scripts/unasync.py` copies them to the sync tests)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer


@pytest.fixture(scope="module")
def admin_token(server: RunningServer) -> str:
    """An access token of the admin on `server`, signed in once per test module.

    Most tests only need someone allowed to do everything; a sign-in each would open a session
    and hash a password each time. Tests make their client from it with
    `client.auth.sign_in_with_token(admin_token)`. It is an access token only: a shared refresh
    token would be rotated by one test and revoked as reused by the next. It lives for the
    server's access_token_ttl (15 minutes), longer than a module runs. Tests that sign in, sign
    out or refresh, or that run on a server of their own, sign in themselves.
    """
    response = httpx.post(
        f"{server.url}/api/v1/auth/login",
        json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD},
        timeout=60,
    )
    response.raise_for_status()
    return str(response.json()["access"])
