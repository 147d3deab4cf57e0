"""`client.auth.providers`: the outside sign-in providers of a tenant (OpenID Connect issuers
and plain OAuth2 servers such as GitHub). Client secrets go in and never come back out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace, add_given

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncProviders(Namespace):
    """Reading needs the scope `auth_providers:read`, changing `auth_providers:write`.

    Register each provider's `callback_url` (in every answer) as the redirect URI of your
    client at the provider.
    """

    _client: AsyncClient

    async def put(
        self,
        name: str,
        *,
        client_id: str,
        client_secret: str,
        issuer: str | None = None,
        authorize_url: str | None = None,
        token_url: str | None = None,
        userinfo_url: str | None = None,
        scopes: list[str] | None = None,
    ) -> dict[str, Any]:
        """Add a provider or replace its settings. Give `issuer` for OpenID Connect (the rest
        is found by discovery), or `authorize_url`, `token_url` and `userinfo_url` for plain
        OAuth2. `scopes` default to `openid email profile` for OpenID Connect, none otherwise.

        Example:
            await admin.auth.providers.put(
                "google",
                client_id="1234.apps.googleusercontent.com",
                client_secret=google_secret,
                issuer="https://accounts.google.com",
            )
            await admin.auth.providers.put(
                "github",
                client_id="Iv1.abc",
                client_secret=github_secret,
                authorize_url="https://github.com/login/oauth/authorize",
                token_url="https://github.com/login/oauth/access_token",
                userinfo_url="https://api.github.com/user",
                scopes=["read:user", "user:email"],
            )
        """
        params: dict[str, Any] = {
            "name": name,
            "client_id": client_id,
            "client_secret": client_secret,
        }
        add_given(
            params,
            issuer=issuer,
            authorize_url=authorize_url,
            token_url=token_url,
            userinfo_url=userinfo_url,
            scopes=scopes,
        )
        result: dict[str, Any] = await self._client.call("auth.put_provider", params)
        return result

    async def list(self) -> list[dict[str, Any]]:
        """The tenant's providers by name, without their secrets.

        Example:
            names = [p["name"] for p in await admin.auth.providers.list()]
        """
        result: list[dict[str, Any]] = await self._client.call("auth.list_providers")
        return result

    async def get(self, name: str) -> dict[str, Any]:
        """One provider, without its secret (NotFoundError if there is none).

        Example:
            callback = (await admin.auth.providers.get("google"))["callback_url"]
        """
        result: dict[str, Any] = await self._client.call("auth.get_provider", {"name": name})
        return result

    async def delete(self, name: str) -> None:
        """Remove a provider; users who signed in with it keep their accounts.

        Example:
            await admin.auth.providers.delete("github")
        """
        await self._client.call("auth.delete_provider", {"name": name})
