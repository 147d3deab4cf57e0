"""`client.audit`: the audit log of secure tables."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from roost.client._core.arguments import iso_datetime
from roost.client._core.namespace import Namespace, add_given

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncAudit(Namespace):
    """The audit log of secure tables (scope `audit:read`)."""

    _client: AsyncClient

    async def query(
        self,
        table: str | None = None,
        *,
        actor: str | None = None,
        operation: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Entries, newest first.

        Example:
            entries = await client.audit.query("patients", actor="dr.smith")
        """
        params: dict[str, Any] = {"limit": limit}
        add_given(
            params,
            table=table,
            actor=actor,
            operation=operation,
            since=iso_datetime("since", since),
            until=iso_datetime("until", until),
        )
        result: list[dict[str, Any]] = await self._client.call(
            "audit.query", params, idempotent=True
        )
        return result
