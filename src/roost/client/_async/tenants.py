"""`client.tenants`: tenants of the platform (platform admins)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncTenants(Namespace):
    _client: AsyncClient

    async def create(
        self,
        name: str,
        display_name: str = "",
        *,
        admin_username: str | None = None,
        admin_password: str | None = None,
        admin_email: str = "",
    ) -> dict[str, Any]:
        """Create a tenant with its own database (platform admins), and optionally its first
        superuser.

        Example:
            await admin.tenants.create("acme", "Acme Corp", admin_username="root",
                                       admin_password="a-long-password")
        """
        params: dict[str, Any] = {
            "name": name,
            "display_name": display_name,
            "admin_email": admin_email,
        }
        if admin_username is not None:
            params["admin_username"] = admin_username
        if admin_password is not None:
            params["admin_password"] = admin_password
        result: dict[str, Any] = await self._client.call("tenants.create", params)
        return result

    async def set_kv_ttl_bounds(
        self, name: str, min_ttl: int | None = None, max_ttl: int | None = None
    ) -> dict[str, Any]:
        """Bound the ttl of a tenant's KV keys (both None: the server's bounds apply again).

        Example:
            await admin.tenants.set_kv_ttl_bounds("acme", min_ttl=60, max_ttl=86400)
        """
        params = {"name": name, "min_ttl": min_ttl, "max_ttl": max_ttl}
        result: dict[str, Any] = await self._client.call(
            "tenants.set_kv_ttl_bounds", params, idempotent=True
        )
        return result

    async def create_category(
        self, name: str, tables: list[dict[str, Any]], description: str = ""
    ) -> dict[str, Any]:
        """Save a template of tables (`[{"name", "columns", ...}]`, as schema.add_table).

        Example:
            await admin.tenants.create_category("clinic", [{"name": "patients", "columns": [
                {"name": "name", "type": "text"}]}])
        """
        result: dict[str, Any] = await self._client.call(
            "tenants.create_category", {"name": name, "tables": tables, "description": description}
        )
        return result

    async def categories(self) -> list[dict[str, Any]]:
        """Every category.

        Example:
            names = [c["name"] for c in await admin.tenants.categories()]
        """
        result: list[dict[str, Any]] = await self._client.call(
            "tenants.categories", idempotent=True
        )
        return result

    async def get(self, name: str) -> dict[str, Any]:
        """One tenant.

        Example:
            acme = await admin.tenants.get("acme")
        """
        result: dict[str, Any] = await self._client.call(
            "tenants.get", {"name": name}, idempotent=True
        )
        return result

    async def list(self) -> list[dict[str, Any]]:
        """Every tenant.

        Example:
            names = [t["name"] for t in await admin.tenants.list()]
        """
        result: list[dict[str, Any]] = await self._client.call("tenants.list", idempotent=True)
        return result

    async def delete(self, name: str) -> dict[str, Any]:
        """Delete a tenant and all its data.

        Example:
            await admin.tenants.delete("acme")
        """
        result: dict[str, Any] = await self._client.call("tenants.delete", {"name": name})
        return result
