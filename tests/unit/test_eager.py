"""Eager starts: a coroutine runs at once, and becomes a task only if it has to wait."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from roost.server.eager import Starter, start_eagerly

pytestmark = pytest.mark.anyio

seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="")


async def test_a_coroutine_that_never_waits_finishes_inline() -> None:
    done: list[int] = []

    async def quick() -> None:
        done.append(1)

    assert start_eagerly(quick()) is None
    assert done == [1]


async def test_a_coroutine_that_waits_goes_on_in_a_task_with_its_result() -> None:
    gate = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def slow() -> str:
        steps.append("before")
        value = await gate
        steps.append("after")
        return f"got {value}"

    task = start_eagerly(slow())
    assert task is not None
    assert steps == ["before"]  # ran up to its wait, right away
    gate.set_result(7)
    assert await task == "got 7"
    assert steps == ["before", "after"]


async def test_several_eager_coroutines_may_wait_on_one_future() -> None:
    shared: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def waiter(n: int) -> int:
        return n + await shared

    tasks = [start_eagerly(waiter(n)) for n in range(5)]
    shared.set_result(10)
    assert await asyncio.gather(*[t for t in tasks if t is not None]) == [10, 11, 12, 13, 14]


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    cleaned: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append("finally")

    task = start_eagerly(forever())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]


async def test_errors_after_the_wait_reach_the_task() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise LookupError("boom")

    task = start_eagerly(fails())
    assert task is not None
    with pytest.raises(LookupError, match="boom"):
        await task


async def test_each_coroutine_runs_in_a_context_of_its_own() -> None:
    async def sets(value: str) -> str:
        seen.set(value)
        await asyncio.sleep(0)
        return seen.get()

    task = start_eagerly(sets("mine"))
    assert seen.get() == ""  # the caller's context is untouched
    assert task is not None
    assert await task == "mine"


async def test_the_starter_sends_kinds_that_wait_straight_into_tasks() -> None:
    starter = Starter(probe_every=4)
    eager_runs: list[int] = []

    async def waits(n: int) -> None:
        eager_runs.append(n)  # runs inline only when started eagerly
        await asyncio.sleep(0)

    tasks = [starter.start("slow", waits(n)) for n in range(8)]
    assert eager_runs == [0, 4]  # the first start, then one probe in every 4
    await asyncio.gather(*[t for t in tasks if t is not None])

    async def quick() -> None:
        pass

    assert starter.start("fast", quick()) is None


async def test_a_timeout_entered_eagerly_ends_the_coroutine_not_the_caller() -> None:
    async def waits_too_long() -> None:
        async with asyncio.timeout(0.01):  # entered before the coroutine's first wait
            await asyncio.sleep(3600)

    task = start_eagerly(waits_too_long())
    assert task is not None
    await asyncio.sleep(0.05)  # the caller goes on: it is not the one the timeout cancels
    with pytest.raises(TimeoutError):
        await task


async def test_while_eager_the_current_task_is_not_the_callers() -> None:
    caller = asyncio.current_task()
    seen: list[object] = []

    async def look() -> None:
        seen.append(asyncio.current_task())

    assert start_eagerly(look()) is None
    assert seen[0] is not None
    assert seen[0] is not caller
    assert asyncio.current_task() is caller
