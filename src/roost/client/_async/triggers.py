"""`client.triggers`: run a function or call a URL when something happens (cron ticks, table
changes, storage objects, queue messages, stream events, pub/sub messages).

A source is a dict with its `kind` (`{"kind": "cron", "schedule": "*/5 * * * *"}`,
`{"kind": "database", "table": "orders", "events": ["insert"]}`...); a target is
`{"kind": "function", "name": ...}` or `{"kind": "url", "url": ...}`. A URL receives each
event POSTed as JSON and signed (Standard Webhooks): keep the `secret` that `create` answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace
from roost.client._realtime import AsyncSubscription

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncTriggers(Namespace):
    """The tenant's triggers (scopes `triggers:admin` to change them, `triggers:read` to read
    them and their deliveries)."""

    _client: AsyncClient

    async def create(
        self,
        name: str,
        source: dict[str, Any],
        target: dict[str, Any],
        *,
        description: str = "",
        enabled: bool = True,
    ) -> dict[str, Any]:
        """Make a trigger; a URL target's signing secret is in the answer (`secret`), once.

        Example:
            made = await client.triggers.create(
                "new-orders",
                {"kind": "database", "table": "orders", "events": ["insert"]},
                {"kind": "url", "url": "https://hooks.example.com/orders"},
            )
            secret = made["secret"]
        """
        params = {
            "name": name,
            "source": source,
            "target": target,
            "description": description,
            "enabled": enabled,
        }
        answer: dict[str, Any] = await self._client.call("triggers.create", params)
        return answer

    async def list(self, source_kind: str | None = None) -> list[dict[str, Any]]:
        """The triggers, by name (of one source kind, or all).

        Example:
            for trigger in await client.triggers.list("cron"):
                print(trigger["name"], trigger["source"]["schedule"])
        """
        params = {} if source_kind is None else {"source_kind": source_kind}
        answer: list[dict[str, Any]] = await self._client.call(
            "triggers.list", params, idempotent=True
        )
        return answer

    async def get(self, name: str) -> dict[str, Any]:
        """One trigger (NotFoundError if there is none of that name).

        Example:
            trigger = await client.triggers.get("new-orders")
        """
        answer: dict[str, Any] = await self._client.call(
            "triggers.get", {"name": name}, idempotent=True
        )
        return answer

    async def update(
        self,
        name: str,
        *,
        source: dict[str, Any] | None = None,
        target: dict[str, Any] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        """Change what is given; a new URL target gets a new `secret`, in the answer.

        Example:
            await client.triggers.update("nightly", source={"kind": "cron", "schedule": "@daily"})
        """
        params: dict[str, Any] = {"name": name}
        given = {"source": source, "target": target, "description": description}
        params.update({key: value for key, value in given.items() if value is not None})
        if enabled is not None:
            params["enabled"] = enabled
        answer: dict[str, Any] = await self._client.call("triggers.update", params)
        return answer

    async def delete(self, name: str) -> None:
        """Delete a trigger and its deliveries.

        Example:
            await client.triggers.delete("new-orders")
        """
        await self._client.call("triggers.delete", {"name": name})

    async def pause(self, name: str) -> dict[str, Any]:
        """Stop a trigger taking events until `resume`.

        Example:
            await client.triggers.pause("nightly")
        """
        answer: dict[str, Any] = await self._client.call("triggers.pause", {"name": name})
        return answer

    async def resume(self, name: str) -> dict[str, Any]:
        """Take events again (cron ticks count from now).

        Example:
            await client.triggers.resume("nightly")
        """
        answer: dict[str, Any] = await self._client.call("triggers.resume", {"name": name})
        return answer

    async def deliveries(
        self, name: str, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """A trigger's deliveries, newest first: `{"results": [{"id", "status", "attempts",
        "status_code", "last_error", "duration_ms", ...}], "count"}`.

        Example:
            failed = await client.triggers.deliveries("new-orders", status="failed")
        """
        params: dict[str, Any] = {"name": name, "limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        answer: dict[str, Any] = await self._client.call(
            "triggers.deliveries", params, idempotent=True
        )
        return answer

    async def watch_deliveries(
        self, name: str, callback: Callable[[dict[str, Any]], Any]
    ) -> AsyncSubscription:
        """Receive a trigger's deliveries live: each one as it is made, then again each time
        it changes (status, attempts, last error), as `deliveries` lists them. The callback
        may be async.

        Example:
            sub = await client.triggers.watch_deliveries("new-orders", print)
        """
        return await self._client.realtime.subscribe(
            "triggers.watch_deliveries", {"name": name}, callback, name
        )
