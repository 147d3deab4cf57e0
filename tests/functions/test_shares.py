"""Each tenant's share of a real pool (two places: one each): a tenant past its share is
refused at once while another tenant is served, its queued (async) runs wait instead, and a
call made by a running function never waits behind a full pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from roost.errors import RateLimitError, ServiceUnavailableError
from roost.functions.pool import WorkerPool
from roost.functions.protocol import Event, Finished, Item
from tests.functions.conftest import Code, call, job

pytestmark = pytest.mark.anyio


async def _holding(pool: WorkerPool, code: Code, tenant: str) -> AsyncGenerator[Event, None]:
    """A streamed run of `tenant`, started and left holding its place."""
    events = pool.run(job(code.plain, "forever", tenant=tenant, stream=True))
    assert isinstance(await anext(events), Item)
    return events


async def test_a_tenant_past_its_share_is_refused_while_another_is_served(
    pool: WorkerPool, code: Code
) -> None:
    assert pool.per_tenant == 1  # half the pool, rounded up
    held = await _holding(pool, code, "acme")
    try:
        with pytest.raises(RateLimitError) as refused:
            await call(pool, code.plain, "twice", 1, tenant="acme")
        assert "ROOST_FUNCTIONS_MAX_RUNS_PER_TENANT" in refused.value.message
        assert refused.value.retry_after == 1.0
        assert refused.value.details["setting"] == "functions_max_runs_per_tenant"
        assert (await call(pool, code.plain, "twice", 2, tenant="globex")).result == 4
    finally:
        await held.aclose()
    assert (await call(pool, code.plain, "twice", 3, tenant="acme")).result == 6


async def test_a_queued_run_waits_for_its_tenants_share(pool: WorkerPool, code: Code) -> None:
    held = await _holding(pool, code, "acme")

    async def queued() -> list[Event]:
        return [e async for e in pool.run(job(code.plain, "twice", 5, tenant="acme"), queued=True)]

    waiting = asyncio.create_task(queued())
    try:
        await asyncio.sleep(0.2)
        assert not waiting.done()  # neither refused nor run: it waits for the share
    finally:
        await held.aclose()
    last = (await waiting)[-1]
    assert isinstance(last, Finished)
    assert last.result == 10


async def test_a_nested_call_is_refused_at_once_when_no_place_is_free(
    pool: WorkerPool, code: Code
) -> None:
    first, second = await _holding(pool, code, "acme"), await _holding(pool, code, "globex")
    try:
        nested = pool.run(job(code.plain, "twice", 1, tenant="initech"), depth=1)
        with pytest.raises(ServiceUnavailableError) as busy:
            await anext(nested)
        assert busy.value.code == "functions_busy"
        # within its chain's allowance a nested call of a tenant at its share is let in
        nested = pool.run(job(code.plain, "twice", 1, tenant="acme"), depth=1)
        with pytest.raises(ServiceUnavailableError):  # no place is free all the same
            await anext(nested)
    finally:
        await first.aclose()
        await second.aclose()
    assert (await call(pool, code.plain, "twice", 4, tenant="initech")).result == 8


async def test_a_run_is_sent_only_once_it_has_a_place(pool: WorkerPool, code: Code) -> None:
    """`on_sent` marks the moment the job (its token, its params) reaches a worker: a call
    stopped while it waits for a place never ran (the service keeps no record of it)."""
    first, second = await _holding(pool, code, "acme"), await _holding(pool, code, "globex")
    sent: list[str] = []
    waits = pool.run(job(code.plain, "twice", 1, tenant="initech"), on_sent=lambda: sent.append(""))
    waiting = asyncio.create_task(anext(waits))
    try:
        await asyncio.sleep(0.2)
        assert not waiting.done()  # no place free: it waits for a turn
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert sent == []
    finally:
        await first.aclose()
        await second.aclose()
    runs = pool.run(job(code.plain, "twice", 2, tenant="initech"), on_sent=lambda: sent.append("r"))
    last = [event async for event in runs][-1]
    assert isinstance(last, Finished)
    assert last.result == 4
    assert sent == ["r"]
