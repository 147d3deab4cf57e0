"""Dominus' `courier` over the native `mail` namespace: its helpers take `from_email` and
Dominus' model keys, and fill Roost's (`link`, `inviter`) from them so that the built-in
templates render."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from roost.compat._async.dominus import AsyncDominus


class AsyncCourier:
    def __init__(self, dominus: AsyncDominus) -> None:
        self._dominus = dominus

    async def send(
        self,
        template_alias: str,
        to: str | list[str],
        from_email: str | None = None,
        model: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Fill a template with `model` and send it: `{"id", "status", "to"}`.

        Example:
            await dominus.courier.send("welcome", "ann@example.com", model={"name": "Ann"})
        """
        return await self._dominus.native.mail.send(template_alias, to, from_email, model)

    async def send_welcome(
        self, to: str, from_email: str | None = None, name: str = "", **model: Any
    ) -> dict[str, Any]:
        """The `welcome` template with `name` and any other model keys (`action_url`,
        `product_name`).

        Example:
            await dominus.courier.send_welcome(to="ann@example.com", name="Ann")
        """
        return await self.send("welcome", to, from_email, {"name": name, **model})

    async def send_password_reset(
        self,
        to: str,
        from_email: str | None = None,
        name: str = "",
        reset_url: str = "",
        **model: Any,
    ) -> dict[str, Any]:
        """The `password_reset` template; `reset_url` is its `link`.

        Example:
            await dominus.courier.send_password_reset(to=email, name="Ann", reset_url=url)
        """
        keys = {"name": name, "reset_url": reset_url, "link": reset_url, **model}
        return await self.send("password_reset", to, from_email, keys)

    async def send_email_verification(
        self,
        to: str,
        from_email: str | None = None,
        name: str = "",
        verify_url: str = "",
        **model: Any,
    ) -> dict[str, Any]:
        """The `email_verification` template; `verify_url` is its `link`.

        Example:
            await dominus.courier.send_email_verification(to=email, name="Ann", verify_url=url)
        """
        keys = {"name": name, "verify_url": verify_url, "link": verify_url, **model}
        return await self.send("email_verification", to, from_email, keys)

    async def send_invitation(
        self,
        to: str,
        from_email: str | None = None,
        name: str = "",
        invite_url: str = "",
        inviter_name: str = "",
        **model: Any,
    ) -> dict[str, Any]:
        """The `invitation` template; `invite_url` is its `link`, `inviter_name` its
        `inviter`.

        Example:
            await dominus.courier.send_invitation(to=email, invite_url=url, inviter_name="Jo")
        """
        keys = {
            "name": name,
            "invite_url": invite_url,
            "link": invite_url,
            "inviter_name": inviter_name,
            "inviter": inviter_name,
            **model,
        }
        return await self.send("invitation", to, from_email, keys)
