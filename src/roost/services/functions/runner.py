"""The consumer of async invocations: takes them from the functions queue and runs them.

Each server runs one while the platform runs (`server/platform.py`, unless
`ROOST_FUNCTIONS_ASYNC_CONCURRENCY=0`), and so does each `roost worker`, which serves no API.
One loop takes a message whenever a place is free (at most `concurrency` runs at once: the
rest stay in the queue for this or another process), waiting on the bus between looks (a
publish wakes it; it looks again each second anyway, for leases that ran out elsewhere). Each
run renews its message's lease every third of it and acks the message when the run is
recorded. A run that fails for a reason of the platform's own (the database went away) is
left unacked: the queue delivers it again when its lease ends, which spaces the tries. On
close, runs under way are stopped and their messages given back at once, so that another
process takes them without waiting for the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from roost.backends.bus import Wakeup
from roost.backends.queue import Delivery
from roost.errors import NotFoundError
from roost.services.context import Platform
from roost.services.functions.queued import decode, queue_name, run_queued, wake_channel
from roost.services.tenants import ensure_exists

logger = logging.getLogger("roost.functions")

_POLL = 1.0  # seconds between looks when nothing wakes the loop
_BACKOFF = 1.0  # seconds before looking again after the queue backend failed


@dataclass(slots=True)
class RunnerStats:
    concurrency: int
    running: int = 0
    taken: int = 0  # messages taken since the runner started
    finished: int = 0  # runs recorded and acked


class AsyncRunner:
    """Runs the deployment's async invocations, at most `concurrency` at once."""

    def __init__(self, platform: Platform, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("a runner runs at least one invocation at a time")
        self._platform = platform
        self._queue = queue_name(platform.settings)
        self._lease = platform.settings.functions_async_lease_seconds
        self._places = asyncio.Semaphore(concurrency)
        self._loop: asyncio.Task[None] | None = None
        self._runs: set[asyncio.Task[None]] = set()
        self.stats = RunnerStats(concurrency)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop().create_task(self._take_forever())

    async def close(self) -> None:
        """Stop taking messages, stop the runs under way and give their messages back."""
        tasks = [*self._runs, *([self._loop] if self._loop else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _take_forever(self) -> None:
        with Wakeup(self._platform.bus, wake_channel(self._queue)) as wakeup:
            while True:
                await self._places.acquire()
                try:
                    delivery = await self._platform.queues.claim(self._queue, self._lease)
                except Exception:
                    self._places.release()
                    logger.warning("could not take async invocations", exc_info=True)
                    await asyncio.sleep(_BACKOFF)
                    continue
                if delivery is None:
                    self._places.release()
                    await wakeup.wait(_POLL)
                    continue
                self.stats.taken += 1
                task = asyncio.get_running_loop().create_task(self._run(delivery))
                self._runs.add(task)
                task.add_done_callback(self._runs.discard)

    async def _run(self, delivery: Delivery) -> None:
        self.stats.running += 1
        renewing = asyncio.get_running_loop().create_task(self._renew(delivery))
        try:
            await self._run_one(delivery)
            await self._platform.queues.ack(self._queue, delivery.id)
            self.stats.finished += 1
        except asyncio.CancelledError:
            await self._give_back(delivery)
            raise
        except Exception:  # the platform's own failure: the queue delivers it again later
            logger.exception("async invocation message %s failed; it will be retried", delivery.id)
        finally:
            renewing.cancel()
            self.stats.running -= 1
            self._places.release()

    async def _run_one(self, delivery: Delivery) -> None:
        message = decode(delivery.body)
        if message is None:
            logger.warning("dropped message %s of the functions queue: not ours", delivery.id)
            return
        try:
            await ensure_exists(self._platform, message.tenant)
        except NotFoundError:  # the tenant was deleted with its invocations
            return
        await run_queued(self._platform, message.tenant, message.id, delivery.retry_count)

    async def _renew(self, delivery: Delivery) -> None:
        """Keep the message leased while the run lasts: only a dead process lets it go."""
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                held = await self._platform.queues.extend(self._queue, delivery.id, self._lease)
            except Exception:
                logger.warning("could not renew the lease of %s", delivery.id, exc_info=True)
                continue
            if not held:  # another process took it after a lapse: both runs end recorded
                logger.warning("async invocation message %s was taken over", delivery.id)
                return

    async def _give_back(self, delivery: Delivery) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                action = await self._platform.queues.nack(self._queue, delivery.id, requeue=True)
                if action == "requeued":
                    await self._platform.bus.publish(wake_channel(self._queue), b"")
