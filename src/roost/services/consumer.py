"""A consumer of one of the platform's own queues (async invocations, trigger events): the
loop that takes messages and the lease each one is held under, written once for both.

One loop takes a message whenever a place is free (at most `concurrency` at once: the rest
stay in the queue for this or another process), waiting on the bus between looks (a publish
on the queue's wake channel wakes it; it looks again every `poll` seconds anyway, for leases
that ran out elsewhere). Each message's lease is renewed every third of it while `handle`
runs, and the message is acked when `handle` returns. A message whose `handle` fails for a
reason of the platform's own (the database went away) is left unacked: the queue delivers it
again when its lease ends, which spaces the tries. On close, the messages under way are given
back at once, so that another process takes them without waiting for the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod

import msgspec

from roost.backends.bus import Wakeup
from roost.backends.queue import Delivery
from roost.services.context import Platform

logger = logging.getLogger("roost.consumer")

_BACKOFF = 1.0  # seconds before looking again after the queue backend failed


class ConsumerStats(msgspec.Struct):
    concurrency: int
    running: int = 0
    taken: int = 0  # messages taken since the consumer started
    finished: int = 0  # messages handled and acked


class LeasedConsumer(ABC):
    """Takes the messages of `queue` and hands each to `handle`, at most `concurrency` at
    once, each under a lease of `lease` seconds renewed while it runs."""

    what = "messages"  # for log lines: "could not take <what>"

    def __init__(
        self,
        platform: Platform,
        *,
        queue: str,
        wake_channel: str,
        lease: float,
        concurrency: int,
        poll: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"a consumer of {self.what} takes at least one at a time")
        self.platform = platform
        self.queue = queue
        self._wake_channel = wake_channel
        self._lease = lease
        self._poll = poll
        self._places = asyncio.Semaphore(concurrency)
        self._loop: asyncio.Task[None] | None = None
        self._runs: set[asyncio.Task[None]] = set()
        self.stats = ConsumerStats(concurrency)

    @abstractmethod
    async def handle(self, delivery: Delivery) -> None:
        """Do what the message says; raising leaves it for the queue to deliver again."""

    def start(self) -> None:
        self._loop = asyncio.get_running_loop().create_task(self._take_forever())

    async def close(self) -> None:
        """Stop taking messages, stop the ones under way and give them back."""
        tasks = [*self._runs, *([self._loop] if self._loop else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _take_forever(self) -> None:
        queues = self.platform.queues
        with Wakeup(self.platform.bus, self._wake_channel) as wakeup:
            while True:
                await self._places.acquire()
                try:
                    delivery = await queues.claim(self.queue, self._lease)
                except Exception:
                    self._places.release()
                    logger.warning("could not take %s", self.what, exc_info=True)
                    await asyncio.sleep(_BACKOFF)
                    continue
                if delivery is None:
                    self._places.release()
                    await wakeup.wait(self._poll)
                    continue
                self.stats.taken += 1
                task = asyncio.get_running_loop().create_task(self._run(delivery))
                self._runs.add(task)
                task.add_done_callback(self._runs.discard)

    async def _run(self, delivery: Delivery) -> None:
        self.stats.running += 1
        renewing = asyncio.get_running_loop().create_task(self._renew(delivery))
        try:
            await self.handle(delivery)
            await self.platform.queues.ack(self.queue, delivery.id)
            self.stats.finished += 1
        except asyncio.CancelledError:
            await self._give_back(delivery)
            raise
        except Exception:  # the platform's own failure: the queue delivers it again later
            logger.exception("%s message %s failed; it will be retried", self.what, delivery.id)
        finally:
            renewing.cancel()
            self.stats.running -= 1
            self._places.release()

    async def _renew(self, delivery: Delivery) -> None:
        """Keep the message leased while it is handled: only a dead process lets it go."""
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                held = await self.platform.queues.extend(self.queue, delivery.id, self._lease)
            except Exception:
                logger.warning("could not renew the lease of %s", delivery.id, exc_info=True)
                continue
            if not held:  # another process took it after a lapse: both end recorded
                logger.warning("%s message %s was taken over", self.what, delivery.id)
                return

    async def _give_back(self, delivery: Delivery) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                action = await self.platform.queues.nack(self.queue, delivery.id, requeue=True)
                if action == "requeued":
                    await self.platform.bus.publish(self._wake_channel, b"")
