"""`services.feeds.Feed`: what a feed holds is let go of once, whether it fails or is closed."""

from __future__ import annotations

import asyncio

import pytest

from roost.services.feeds import Feed


@pytest.mark.anyio
async def test_a_feed_whose_work_fails_lets_go_of_what_it_holds_at_once() -> None:
    released: list[str] = []
    failed = asyncio.Event()
    feed = Feed()
    feed.on_close(lambda: released.append("listener"))

    async def work() -> None:
        failed.set()
        raise RuntimeError("the database went away")

    feed.run(work)
    await failed.wait()
    for _ in range(10):  # the failure is handled on the task's next steps
        await asyncio.sleep(0)
    assert released == ["listener"]  # not only once the client unsubscribes
    await feed.close()
    assert released == ["listener"]  # and never twice


@pytest.mark.anyio
async def test_closing_a_running_feed_ends_its_work_then_releases_in_reverse_order() -> None:
    released: list[str] = []
    feed = Feed()
    feed.on_close(lambda: released.append("first"))
    feed.on_close(lambda: released.append("second"))
    feed.run(asyncio.Event().wait)
    await feed.close()
    await feed.close()
    assert released == ["second", "first"]
