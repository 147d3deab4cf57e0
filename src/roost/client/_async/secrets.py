"""`client.secrets`: secrets encrypted at rest, versioned, with app overrides (Taruvi secrets,
Dominus secrets). The root shortcuts `client.get(key)` and `client.upsert(key, value)` live on
the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from roost.client._core.arguments import FIRST, Cursor, cursor_param
from roost.client._core.namespace import Namespace
from roost.errors import SecretNotFoundError

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncSecrets(Namespace):
    """A tenant's secrets. Reading needs the scope `secrets:read`, writing `secrets:write`.

    A secret is tenant-wide or an app's own (`app="billing"`); asking for an app's secret falls
    back to the tenant-wide one of the same key (the answer's `inherited` says so).
    """

    _client: AsyncClient

    async def set(
        self,
        key: str,
        value: str,
        secret_type: str = "generic",
        tags: list[str] | None = None,
        comment: str = "",
        app: str | None = None,
    ) -> dict[str, Any]:
        """Create a secret or give it a new value (a new version). Returns it without its value.

        Example:
            await client.secrets.set("STRIPE_KEY", "sk_live_...", "api_key", ["payment"])
        """
        params = {
            "key": key,
            "value": value,
            "secret_type": secret_type,
            "tags": tags or [],
            "comment": comment,
            "app": app,
        }
        # not idempotent: the Idempotency-Key makes a retried set one version, not two
        result: dict[str, Any] = await self._client.call("secrets.set", params)
        return result

    async def update(
        self,
        key: str,
        value: str | None = None,
        *,
        secret_type: str | None = None,
        tags: list[str] | None = None,
        comment: str | None = None,
        app: str | None = None,
    ) -> dict[str, Any]:
        """Change an existing secret (SecretNotFoundError if there is none). A value makes a
        new version; what is left out stays as it is.

        Example:
            await client.secrets.update("API_KEY", value="new_value_here")
        """
        params = {
            "key": key,
            "value": value,
            "secret_type": secret_type,
            "tags": tags,
            "comment": comment,
            "app": app,
        }
        sent = {name: given for name, given in params.items() if given is not None}
        result: dict[str, Any] = await self._client.call("secrets.update", sent)
        return result

    async def get_secret(
        self,
        key: str,
        app: str | None = None,
        tags: list[str] | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        """A secret with its `value`: the app's own if `app` has one, else the tenant-wide one.
        With `tags`, each must be on the secret or ValidationError is raised; with `version`,
        that earlier value.

        Example:
            url = (await client.secrets.get_secret("DATABASE_URL", app="production"))["value"]
        """
        params: dict[str, Any] = {"key": key, "app": app, "tags": tags or []}
        if version is not None:
            params["version"] = version
        result: dict[str, Any] = await self._client.call("secrets.get", params, idempotent=True)
        return result

    async def get_secrets(
        self, keys: list[str], app: str | None = None, *, missing_ok: bool = False
    ) -> dict[str, Any]:
        """Several secrets in one round trip, by key. A key not found (not there, or not this
        app's nor tenant-wide) raises `SecretNotFoundError` naming every such key
        (`details["missing"]`); with `missing_ok=True` the answer leaves them out.

        Example:
            found = await client.secrets.get_secrets(["API_KEY", "DATABASE_URL"])
        """
        params = {"keys": keys, "app": app}
        result: dict[str, Any] = await self._client.call(
            "secrets.get_many", params, idempotent=True
        )
        missing = [key for key in dict.fromkeys(keys) if key not in result]
        if missing and not missing_ok:
            where = f" for app {app!r}" if app else ""
            raise SecretNotFoundError(
                f"no secret {', '.join(map(repr, missing))}{where} "
                "(pass missing_ok=True to get the others)",
                details={"field": "keys", "missing": missing},
            )
        return result

    async def list_secrets(
        self,
        search: str | None = None,
        secret_type: str | None = None,
        tags: str | list[str] | None = None,
        prefix: str | None = None,
        app: str | None = None,
        page_size: int = 100,
        cursor: Cursor = FIRST,
    ) -> dict[str, Any]:
        """Secrets without their values: `{"results": [...], "next_cursor"}`; pass
        `next_cursor` back as `cursor` for the next page (a last page's is None: passing that
        raises ValidationError). `search` matches part of the key in any case; `tags` (one or
        a list) must all be on a secret. `iter()` walks every page.

        Example:
            page = await client.secrets.list_secrets(secret_type="api_key", tags="production")
        """
        params = {
            "search": search,
            "secret_type": secret_type,
            "tags": [tags] if isinstance(tags, str) else tags or [],
            "prefix": prefix,
            "app": app,
            "page_size": page_size,
            "cursor": cursor_param(cursor),
        }
        result: dict[str, Any] = await self._client.call("secrets.list", params, idempotent=True)
        return result

    async def iter(
        self,
        search: str | None = None,
        secret_type: str | None = None,
        tags: str | list[str] | None = None,
        prefix: str | None = None,
        app: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching secret (without its value), by key, `page_size` at a time.

        Example:
            keys = [info["key"] async for info in client.secrets.iter(prefix="STRIPE_")]
        """
        cursor: Cursor = FIRST
        while cursor is not None:
            page = await self.list_secrets(
                search, secret_type, tags, prefix, app, page_size, cursor
            )
            for info in page["results"]:
                yield info
            cursor = page["next_cursor"]

    async def versions(self, key: str, app: str | None = None) -> list[dict[str, Any]]:
        """Every value the secret has had, newest first, without the values.

        Example:
            first = (await client.secrets.versions("API_KEY"))[-1]["version"]
        """
        result: list[dict[str, Any]] = await self._client.call(
            "secrets.versions", {"key": key, "app": app}, idempotent=True
        )
        return result

    async def delete(self, key: str, app: str | None = None) -> None:
        """Delete a secret and its versions (with `app`, that app's own only).

        Example:
            await client.secrets.delete("OLD_KEY")
        """
        await self._client.call("secrets.delete", {"key": key, "app": app})
