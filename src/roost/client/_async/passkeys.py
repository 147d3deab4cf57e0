"""`client.auth.passkeys`: the signed-in user's passkeys (WebAuthn). Signing in with one is
`client.auth.passkey_sign_in_options` and `client.auth.sign_in_with_passkey`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncPasskeys(Namespace):
    """A tenant turns passkeys on with the site settings `passkey_rp_id` (the domain) and
    `passkey_origins` (the app's origins); until then each call raises ConflictError
    `passkeys_not_configured`. API keys cannot manage passkeys: sign in as the user."""

    _client: AsyncClient

    async def registration_options(self) -> dict[str, Any]:
        """`{"options", "expires_in"}`: pass `options` to the browser's
        `navigator.credentials.create({publicKey: ...})` (byte fields are base64url, as
        `PublicKeyCredential.parseCreationOptionsFromJSON` reads them), then the credential's
        `toJSON()` to `register`, within `expires_in` seconds. The options work once.

        Example:
            options = (await user.auth.passkeys.registration_options())["options"]
        """
        result: dict[str, Any] = await self._client.call("auth.passkey_registration_options")
        return result

    async def register(self, credential: dict[str, Any], name: str = "") -> dict[str, Any]:
        """Keep the passkey the browser made from `registration_options`:
        `{"id", "name", "created_at", "last_used_at", "backed_up"}`.

        Example:
            passkey = await user.auth.passkeys.register(credential_json, name="laptop")
        """
        params = {"credential": credential, "name": name}
        result: dict[str, Any] = await self._client.call("auth.register_passkey", params)
        return result

    async def list(self) -> list[dict[str, Any]]:
        """Your passkeys, oldest first.

        Example:
            names = [p["name"] for p in await user.auth.passkeys.list()]
        """
        result: list[dict[str, Any]] = await self._client.call(
            "auth.list_passkeys", idempotent=True
        )
        return result

    async def delete(self, passkey_id: str) -> None:
        """Forget one of your passkeys (NotFoundError if you have none with that id).

        Example:
            await user.auth.passkeys.delete(passkey["id"])
        """
        await self._client.call("auth.delete_passkey", {"id": passkey_id})
