"""`client.scopes`: scopes to give, the platform's and your tenant's own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncScopes(Namespace):
    _client: AsyncClient

    async def create(self, name: str, description: str = "") -> dict[str, Any]:
        """Define a scope for your app, `module:action` (scope `roles:write`).

        Example:
            await admin.scopes.create("reports:export", "download reports as CSV")
        """
        result: dict[str, Any] = await self._client.call(
            "scopes.create", {"name": name, "description": description}
        )
        return result

    async def delete(self, name: str) -> None:
        """Delete a scope your tenant defined (scope `roles:write`).

        Example:
            await admin.scopes.delete("reports:export")
        """
        await self._client.call("scopes.delete", {"name": name})

    async def list(self) -> list[dict[str, Any]]:
        """Every scope there is to give, the platform's (`builtin`) and your own (scope
        `roles:read`).

        Example:
            names = [scope["name"] for scope in await admin.scopes.list()]
        """
        result: list[dict[str, Any]] = await self._client.call("scopes.list", idempotent=True)
        return result
