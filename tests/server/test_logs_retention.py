"""Structured logs are kept `ROOST_LOGS_MAX_AGE` seconds, then swept by later writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from roost import AsyncClient
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_entries_past_the_age_limit_are_swept(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    running = make_server(backend, logs_max_age=1)
    async with AsyncClient(api_url=running.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.logs.info("old")
        await asyncio.sleep(1.2)
        await admin.logs.info("new")
        assert [e["message"] for e in (await admin.logs.query())["entries"]] == ["new"]
