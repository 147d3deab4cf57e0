"""An operation that revokes credentials runs to its end even if its call is cancelled: its
last step tells the principal caches what it revoked (`registry.operation(revokes=True)`)."""

from __future__ import annotations

import asyncio
import sys

import msgspec
import pytest

from roost.services.context import Context
from roost.services.registry import operation, operations_of

STARTED, GATE, TOLD = asyncio.Event(), asyncio.Event(), asyncio.Event()


class Nothing(msgspec.Struct):
    pass


@operation("testing.revoke_something", revokes=True)
async def revoke_something(ctx: Context, params: Nothing) -> Nothing:
    """Revoke, then tell the caches."""
    STARTED.set()
    await GATE.wait()  # the commit
    TOLD.set()  # forget_principals
    return Nothing()


@pytest.mark.anyio
async def test_a_revoking_operation_goes_on_after_its_call_is_cancelled() -> None:
    for event in (STARTED, GATE, TOLD):
        event.clear()
    (op,) = operations_of(sys.modules[__name__])
    assert op.revokes
    call = asyncio.create_task(op.handler(None, Nothing()))
    await STARTED.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call  # the caller is answered at once
    GATE.set()
    await asyncio.wait_for(TOLD.wait(), 10)  # a safety net, not a timing assertion
