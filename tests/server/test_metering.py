"""What a server counted and had not written yet is written when it stops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from roost import AsyncClient
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer

pytestmark = pytest.mark.anyio


async def test_counts_survive_a_restart(
    make_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    data_dir, secret = tmp_path / "metered", "s" * 40
    first = make_server(data_dir=data_dir, secret_key=secret)
    async with AsyncClient(api_url=first.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        for _ in range(7):
            await admin.auth.whoami()
    first.stop()  # well within the flush interval: only the shutdown flush can save them
    again = make_server(data_dir=data_dir, secret_key=secret)
    async with AsyncClient(api_url=again.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        assert (await admin.usage.get())["totals"]["requests"] >= 8  # sign-in and 7 whoami
