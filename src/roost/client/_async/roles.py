"""`client.roles`: roles and their scopes (admins)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncRoles(Namespace):
    _client: AsyncClient

    async def create(
        self, name: str, scopes: list[str] | None = None, description: str = ""
    ) -> dict[str, Any]:
        """Create a role carrying scopes (scope `roles:write`).

        Example:
            await admin.roles.create("auditor", ["users:read"])
        """
        result: dict[str, Any] = await self._client.call(
            "roles.create", {"name": name, "scopes": scopes or [], "description": description}
        )
        return result

    async def update(
        self, name: str, scopes: list[str] | None = None, description: str | None = None
    ) -> dict[str, Any]:
        """Change a role's scopes or description (scope `roles:write`); its users have the
        new scopes at once. The built-in `admin` role cannot change.

        Example:
            await admin.roles.update("member", ["api_keys:read", "api_keys:write", "kv:read"])
        """
        params: dict[str, Any] = {"name": name}
        if scopes is not None:
            params["scopes"] = scopes
        if description is not None:
            params["description"] = description
        result: dict[str, Any] = await self._client.call("roles.update", params, idempotent=True)
        return result

    async def delete(self, name: str) -> None:
        """Delete a role; its users lose it (scope `roles:write`; not a built-in role).

        Example:
            await admin.roles.delete("auditor")
        """
        await self._client.call("roles.delete", {"name": name})

    async def list(self) -> list[dict[str, Any]]:
        """Every role of the tenant (scope `roles:read`).

        Example:
            names = [role["name"] for role in await admin.roles.list()]
        """
        result: list[dict[str, Any]] = await self._client.call("roles.list", idempotent=True)
        return result
