"""An operation that revokes credentials runs to its end even if its call is cancelled: its
last step tells the principal caches what it revoked (`registry.operation(revokes=True)`)."""

from __future__ import annotations

import asyncio
import sys

import msgspec
import pytest

from roost.errors import AuthenticationError
from roost.services.context import Context, to_its_end
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


async def logged_when_failing_after_the_caller_left(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> str:
    """What `roost.auth` logs of a step run `to_its_end` that raises `error` once its caller
    was cancelled."""
    started, gate = asyncio.Event(), asyncio.Event()

    async def step() -> None:
        started.set()
        await gate.wait()
        raise error

    call = asyncio.create_task(to_its_end(step()))
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    with caplog.at_level("ERROR", logger="roost.auth"):
        gate.set()
        for _ in range(3):
            await asyncio.sleep(0)
    return caplog.text


@pytest.mark.anyio
async def test_a_revoking_step_that_fails_after_its_caller_left_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # nobody else would learn that the revocation did not happen
    logged = await logged_when_failing_after_the_caller_left(
        RuntimeError("the database went away"), caplog
    )
    assert "failed after its caller went away: the database went away" in logged


@pytest.mark.anyio
async def test_a_refusal_after_its_caller_left_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # anyone can send `auth.refresh` with a made-up token and cancel it: no ERROR line each
    refusal = AuthenticationError("unknown refresh token")
    assert await logged_when_failing_after_the_caller_left(refusal, caplog) == ""


@pytest.mark.anyio
async def test_a_failure_its_caller_sees_is_not_logged_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def commit() -> None:
        raise RuntimeError("refused")

    with caplog.at_level("ERROR", logger="roost.auth"), pytest.raises(RuntimeError):
        await to_its_end(commit())
    await asyncio.sleep(0)
    assert caplog.text == ""
