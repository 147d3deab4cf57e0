"""`client.api_keys`: API keys of the signed-in user."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from roost.client._core.arguments import iso_datetime
from roost.client._core.namespace import Namespace

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncApiKeys(Namespace):
    _client: AsyncClient

    async def create(
        self,
        name: str,
        scopes: list[str] | None = None,
        *,
        expires_at: datetime | None = None,
        expires_in: int | None = None,
    ) -> dict[str, Any]:
        """Create an API key for the signed-in user. `result["key"]` is shown only here.

        Without `scopes` the key acts with all of its owner's scopes.

        Example:
            key = (await admin.api_keys.create("ci", ["api_keys:read"], expires_in=86400))["key"]
        """
        params: dict[str, Any] = {"name": name, "scopes": scopes or []}
        if expires_at is not None:
            params["expires_at"] = iso_datetime("expires_at", expires_at)
        if expires_in is not None:
            params["expires_in"] = expires_in
        result: dict[str, Any] = await self._client.call("api_keys.create", params)
        return result

    async def list(self) -> list[dict[str, Any]]:
        """The caller's API keys without their secrets, newest first.

        Example:
            names = [key["name"] for key in await admin.api_keys.list()]
        """
        result: list[dict[str, Any]] = await self._client.call("api_keys.list", idempotent=True)
        return result

    async def revoke(self, key_id: str) -> dict[str, Any]:
        """Revoke a key by its id; it is refused from then on.

        Example:
            await admin.api_keys.revoke(key["id"])
        """
        result: dict[str, Any] = await self._client.call("api_keys.revoke", {"id": key_id})
        return result
