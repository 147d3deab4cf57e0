"""`client.health`: whether the server and its backends answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from roost.client._core.namespace import Namespace
from roost.client._core.results import HealthReport, decode

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncHealth(Namespace):
    _client: AsyncClient

    async def check(self) -> HealthReport:
        """`HealthReport(status, version, backends)`, true when the status is "ok" (false when
        "degraded"); each of `backends` is true when its own status is "ok". Needs no
        credential.

        Example:
            if not await client.health.check(): ...
        """
        answer = await self._client.call("health.check", idempotent=True, authenticated=False)
        return decode(answer, HealthReport)
