"""`client.pages`: the pages of your app and the scopes each needs (Dominus portal). Callers
read their navigation with `client.auth.get_navigation()`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncPages(Namespace):
    """Declare pages (scope `pages:write`) and list them (`pages:read`)."""

    _client: AsyncClient

    async def create(
        self,
        path: str,
        title: str,
        parent: str | None = None,
        scopes: list[str] | None = None,
        position: int = 0,
    ) -> dict[str, Any]:
        """Declare a page under `parent`; callers need all of `scopes` (and those of the pages
        above) to see it in their navigation.

        Example:
            await admin.pages.create("/reports/sales", "Sales", "/reports", ["analytics:run"])
        """
        params = {
            "path": path,
            "title": title,
            "parent": parent,
            "scopes": scopes or [],
            "position": position,
        }
        result: dict[str, Any] = await self._client.call("pages.create", params)
        return result

    async def delete(self, path: str) -> None:
        """Delete a page that has no pages under it.

        Example:
            await admin.pages.delete("/reports/sales")
        """
        await self._client.call("pages.delete", {"path": path})

    async def list(self) -> list[dict[str, Any]]:
        """Every page, by path.

        Example:
            paths = [page["path"] for page in await admin.pages.list()]
        """
        result: list[dict[str, Any]] = await self._client.call("pages.list", idempotent=True)
        return result
