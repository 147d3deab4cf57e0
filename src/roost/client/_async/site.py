"""`client.settings`: the tenant's site settings (Taruvi settings)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncSiteSettings(Namespace):
    """One JSON object per tenant (site name, theme, feature flags): every signed-in caller
    reads it, `settings:write` changes it. Keep secrets in `client.secrets`, not here."""

    _client: AsyncClient

    async def get(self) -> dict[str, Any]:
        """The site settings (an empty object until an admin sets some).

        Example:
            name = (await client.settings.get()).get("site_name", "My app")
        """
        result: dict[str, Any] = await self._client.call("settings.get", idempotent=True)
        return result

    async def update(self, settings: dict[str, Any], *, replace: bool = False) -> dict[str, Any]:
        """Merge keys into the site settings (`None` removes a key), or with `replace` set them
        as given; returns them all.

        Example:
            await admin.settings.update({"site_name": "Acme", "theme": "dark"})
        """
        params = {"settings": settings, "replace": replace}
        result: dict[str, Any] = await self._client.call("settings.update", params, idempotent=True)
        return result
