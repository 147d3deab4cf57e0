"""`client.health`: whether the server and its backends answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncHealth(Namespace):
    _client: AsyncClient

    async def check(self) -> dict[str, Any]:
        """`{"status", "version", "backends"}`; needs no credential.

        Example:
            assert (await client.health.check())["status"] == "ok"
        """
        result: dict[str, Any] = await self._client.call(
            "health.check", idempotent=True, authenticated=False
        )
        return result
