"""`client.usage`: what the tenant's calls cost (DotDo metering)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from roost.client._core.arguments import iso_datetime
from roost.client._core.namespace import Namespace

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncUsage(Namespace):
    """Calls and bytes of the tenant, by hour, day or month (scope `usage:read`)."""

    _client: AsyncClient

    async def get(
        self,
        period: str = "day",
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        by_api_key: bool = False,
    ) -> dict[str, Any]:
        """`{"period", "since", "until", "totals", "buckets"}`: requests, bytes_in and bytes_out
        per period (UTC) from `since` (30 days ago) to `until` (now); with `by_api_key`, each
        bucket's `api_keys` splits it by API key id ("" for signed-in users).

        Example:
            today = (await admin.usage.get("day"))["buckets"][-1]["requests"]
        """
        params: dict[str, Any] = {"period": period, "by_api_key": by_api_key}
        if since is not None:
            params["since"] = iso_datetime("since", since)
        if until is not None:
            params["until"] = iso_datetime("until", until)
        result: dict[str, Any] = await self._client.call("usage.get", params, idempotent=True)
        return result
