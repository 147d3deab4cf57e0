"""`client.analytics`: saved, parameterised read-only queries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncAnalytics(Namespace):
    """Named, saved, parameterised read-only queries."""

    _client: AsyncClient

    async def define(
        self, name: str, sql: str, params: dict[str, str] | None = None, description: str = ""
    ) -> dict[str, Any]:
        """Save a query; `params` maps each `:name` placeholder to str, int, float, bool, date
        or datetime (scope `analytics:define`).

        Example:
            await client.analytics.define("big_orders",
                "SELECT count(*) AS n FROM orders WHERE total >= :min", {"min": "float"})
        """
        result: dict[str, Any] = await self._client.call(
            "analytics.define",
            {"name": name, "sql": sql, "params": params or {}, "description": description},
        )
        return result

    async def execute(
        self,
        name: str,
        params: dict[str, Any] | None = None,
        *,
        limit: int = 10000,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Run a saved query: `{"data": rows}`. A query over a secure table needs `reason`;
        it is audited with you as the actor.

        Example:
            n = (await client.analytics.execute("big_orders", {"min": 100}))["data"][0]["n"]
        """
        body: dict[str, Any] = {"name": name, "params": params or {}, "limit": limit}
        if reason is not None:
            body["reason"] = reason
        result: dict[str, Any] = await self._client.call("analytics.execute", body, idempotent=True)
        return result

    async def list(self) -> list[dict[str, Any]]:
        """Every saved query.

        Example:
            names = [q["name"] for q in await client.analytics.list()]
        """
        result: list[dict[str, Any]] = await self._client.call("analytics.list", idempotent=True)
        return result

    async def delete(self, name: str) -> None:
        """Delete a saved query.

        Example:
            await client.analytics.delete("big_orders")
        """
        await self._client.call("analytics.delete", {"name": name})
