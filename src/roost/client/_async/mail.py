"""`client.mail`: mail from templates, the outbox, and `client.mail.templates` (Dominus
courier)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncMail(Namespace):
    """Send mail from templates (`{{ name }}` placeholders filled from `model`). Sending needs
    the scope `mail:send`; the outbox and templates need `mail:read`, changing templates
    `mail:admin`. Without an SMTP relay on the server, mail stays in the outbox."""

    _client: AsyncClient

    @cached_property
    def templates(self) -> AsyncMailTemplates:
        """The tenant's templates and the built-in ones."""
        return AsyncMailTemplates(self._client)

    async def send(
        self,
        template_alias: str,
        to: str | list[str],
        from_email: str | None = None,
        model: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Fill the template with `model` and send it: `{"id", "status", "to"}`, status "sent"
        (or "outbox" where the server has no relay).

        Example:
            await client.mail.send("order_shipped", "ann@example.com", model={"order": 42})
        """
        params = {
            "template_alias": template_alias,
            "to": [to] if isinstance(to, str) else to,
            "from_email": from_email,
            "model": model or {},
        }
        result: dict[str, Any] = await self._client.call("mail.send", params)
        return result

    async def send_welcome(self, to: str, model: dict[str, Any]) -> dict[str, Any]:
        """The built-in (or the tenant's) `welcome` template; the model needs `name`.

        Example:
            await client.mail.send_welcome("ann@example.com", {"name": "Ann"})
        """
        return await self.send("welcome", to, model=model)

    async def send_password_reset(self, to: str, model: dict[str, Any]) -> dict[str, Any]:
        """The `password_reset` template; the model needs `name` and `link`.

        Example:
            await client.mail.send_password_reset(email, {"name": "Ann", "link": url})
        """
        return await self.send("password_reset", to, model=model)

    async def send_email_verification(self, to: str, model: dict[str, Any]) -> dict[str, Any]:
        """The `email_verification` template; the model needs `name` and `link`.

        Example:
            await client.mail.send_email_verification(email, {"name": "Ann", "link": url})
        """
        return await self.send("email_verification", to, model=model)

    async def send_invitation(self, to: str, model: dict[str, Any]) -> dict[str, Any]:
        """The `invitation` template; the model needs `inviter` and `link`.

        Example:
            await client.mail.send_invitation(email, {"inviter": "Bob", "link": url})
        """
        return await self.send("invitation", to, model=model)

    async def outbox(self, to: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Messages sent by the tenant, newest first, each with its `status` ("sending",
        "sent", "outbox" or "failed") and, for a failure, its `error`. One-time tokens of
        reset and verification mails read "[redacted]".

        Example:
            last = (await admin.mail.outbox(to="ann@example.com", limit=1))[0]
        """
        params: dict[str, Any] = {"limit": limit}
        if to is not None:
            params["to"] = to
        result: list[dict[str, Any]] = await self._client.call(
            "mail.outbox", params, idempotent=True
        )
        return result


class AsyncMailTemplates(Namespace):
    """`client.mail.templates`: a tenant's own template replaces the built-in one of the same
    alias (welcome, password_reset, email_verification, invitation)."""

    _client: AsyncClient

    async def put(
        self, alias: str, subject: str, text: str, html: str | None = None
    ) -> dict[str, Any]:
        """Create or replace a template.

        Example:
            await admin.mail.templates.put("order_shipped", "Order {{ order }}", "On its way!")
        """
        params = {"alias": alias, "subject": subject, "text": text, "html": html}
        result: dict[str, Any] = await self._client.call(
            "mail.put_template", params, idempotent=True
        )
        return result

    async def preview(
        self,
        alias: str,
        subject: str,
        text: str,
        html: str | None = None,
        model: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A draft template (not saved) filled with `model`: `{"subject", "text", "html"}` as
        the message would leave. Nothing is sent or recorded.

        Example:
            shown = await admin.mail.templates.preview(
                "hi", "Hi {{ name }}", "Hello {{ name }}!", model={"name": "Ann"}
            )
        """
        template = {"alias": alias, "subject": subject, "text": text, "html": html}
        result: dict[str, Any] = await self._client.call(
            "mail.preview", {"template": template, "model": model or {}}, idempotent=True
        )
        return result

    async def get(self, alias: str) -> dict[str, Any]:
        """A template as it is used now (`builtin` says whose it is).

        Example:
            subject = (await admin.mail.templates.get("welcome"))["subject"]
        """
        result: dict[str, Any] = await self._client.call(
            "mail.get_template", {"alias": alias}, idempotent=True
        )
        return result

    async def delete(self, alias: str) -> None:
        """Delete the tenant's template (a built-in alias falls back to the built-in one).

        Example:
            await admin.mail.templates.delete("order_shipped")
        """
        await self._client.call("mail.delete_template", {"alias": alias})

    async def list(self) -> list[dict[str, Any]]:
        """Every template the tenant can send, by alias.

        Example:
            aliases = [t["alias"] for t in await admin.mail.templates.list()]
        """
        result: list[dict[str, Any]] = await self._client.call(
            "mail.list_templates", idempotent=True
        )
        return result
