"""The consumer of async invocations: takes them from the functions queue and runs them.

Each server runs one while the platform runs (`server/platform.py`, unless
`ROOST_FUNCTIONS_ASYNC_CONCURRENCY=0`), and so does each `roost worker`, which serves no API.
The taking, leasing and giving back are the platform's one queue consumer
(`services/consumer.py`); a message is acked once its run is recorded.
"""

from __future__ import annotations

import logging

from roost.backends.queue import Delivery
from roost.errors import NotFoundError
from roost.services.consumer import LeasedConsumer
from roost.services.context import Platform
from roost.services.functions.queued import decode, queue_name, run_queued, wake_channel
from roost.services.tenants import ensure_exists

logger = logging.getLogger("roost.functions")


class AsyncRunner(LeasedConsumer):
    """Runs the deployment's async invocations, at most `concurrency` at once."""

    what = "async invocations"

    def __init__(self, platform: Platform, concurrency: int) -> None:
        queue = queue_name(platform.settings)
        super().__init__(
            platform,
            queue=queue,
            wake_channel=wake_channel(queue),
            lease=platform.settings.functions_async_lease_seconds,
            concurrency=concurrency,
        )

    async def handle(self, delivery: Delivery) -> None:
        message = decode(delivery.body)
        if message is None:
            logger.warning("dropped message %s of the functions queue: not ours", delivery.id)
            return
        try:
            await ensure_exists(self.platform, message.tenant)
        except NotFoundError:  # the tenant was deleted with its invocations
            return
        await run_queued(self.platform, message.tenant, message.id, delivery.retry_count)
