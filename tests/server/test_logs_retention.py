"""Structured logs are kept `ROOST_LOGS_MAX_AGE` seconds, then swept by later writes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost import AsyncClient
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_entries_past_the_age_limit_are_swept(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    running = make_server(backend, logs_max_age=60)
    async with AsyncClient(api_url=running.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.logs.info("old")
        running.clock.advance(30)
        await admin.logs.info("younger")
        running.clock.advance(31)  # "old" is 61 s old, "younger" 31 s
        await admin.logs.info("new")
        entries = (await admin.logs.query())["entries"]
        assert [e["message"] for e in entries] == ["new", "younger"]
