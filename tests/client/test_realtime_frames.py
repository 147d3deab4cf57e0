"""Calls made in one event-loop turn leave the SDK together, as one array frame: a call whose
parameters cannot be encoded fails on its own, and the calls beside it are answered."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from roost import AsyncClient
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
async def test_a_call_whose_parameters_cannot_be_sent_fails_alone(
    server: RunningServer, fmt: str
) -> None:
    key = unique("frames")
    async with AsyncClient(api_url=server.url, format=fmt) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        call = admin.realtime.call
        await call("kv.set", {"key": key, "value": 1})
        async with asyncio.timeout(30):  # a safety net (calls left unanswered), no timing test
            answers: tuple[Any, ...] = await asyncio.gather(
                call("kv.get", {"key": key}),
                call("kv.set", {"key": key, "value": object()}),  # no format can carry it
                call("kv.get", {"key": key}),
                return_exceptions=True,
            )
        before, refused, after = answers
        assert isinstance(refused, TypeError | msgspec.EncodeError)
        assert not isinstance(before, BaseException)
        assert not isinstance(after, BaseException)
        assert before["value"] == after["value"] == 1  # nothing was set
