"""Mail from templates, per tenant: built-in templates (welcome, password_reset,
email_verification, invitation) that a tenant may replace, its own templates, sending through
the platform's mailer (`backends/mail.py`) and a record of every message (the outbox).

Templates hold `{{ name }}` or `{{ user.name }}` placeholders filled from the model sent with
each message; in the HTML body the values are HTML-escaped. A placeholder the model lacks is
refused by name, so a half-filled message never leaves.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from roost.backends.mail import Letter, MailDeliveryError
from roost.backends.sql.tables import mail_messages, mail_templates, utcnow
from roost.errors import NotFoundError, ServiceUnavailableError, ValidationError
from roost.services.context import Context
from roost.services.registry import operation
from roost.services.security import new_id
from roost.wire.auth import Done
from roost.wire.common import Empty
from roost.wire.mail import (
    MailMessage,
    MailTemplate,
    OutboxQuery,
    SendMailRequest,
    SentMail,
    Status,
    TemplateRef,
    TemplateSpec,
)

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}")

BUILTIN_TEMPLATES: dict[str, TemplateSpec] = {
    spec.alias: spec
    for spec in (
        TemplateSpec(
            alias="welcome",
            subject="Welcome, {{ name }}",
            text="Hello {{ name }},\n\nyour account is ready. Welcome aboard.\n",
        ),
        TemplateSpec(
            alias="password_reset",
            subject="Reset your password",
            text="Hello {{ name }},\n\nto choose a new password, open this link:\n{{ link }}\n\n"
            "It works once. If you did not ask for it, ignore this message.\n",
        ),
        TemplateSpec(
            alias="email_verification",
            subject="Confirm your email address",
            text="Hello {{ name }},\n\nto confirm this address, open this link:\n{{ link }}\n",
        ),
        TemplateSpec(
            alias="invitation",
            subject="{{ inviter }} invited you",
            text="Hello,\n\n{{ inviter }} invited you to join. To accept, open this link:\n"
            "{{ link }}\n",
        ),
        TemplateSpec(
            alias="account_exists",
            subject="Someone tried to sign up with your address",
            text="Hello {{ name }},\n\nsomeone tried to create an account with this address, "
            "which your account {{ username }} already has. If it was you, sign in, or ask for "
            "a password reset if you forgot it. If not, nothing changed: ignore this message.\n",
        ),
    )
}


@operation("mail.send", scope="mail:send")
async def send(ctx: Context, params: SendMailRequest) -> SentMail:
    """Fill a template with `model` and send it to `to` (every address sees the others). The
    message is recorded whatever happens: "sent", "outbox" (no relay configured) or "failed"
    (then the call fails too)."""
    return await send_template(
        ctx, params.template_alias, params.to, params.model, params.from_email
    )


async def send_template(
    ctx: Context,
    alias: str,
    to: list[str],
    model: dict[str, Any],
    sender: str | None = None,
) -> SentMail:
    """Render the tenant's (or the built-in) template `alias`, deliver it and record it. A
    relay that refuses raises ServiceUnavailableError after the record is written."""
    template = await _template(ctx, alias)
    subject = " ".join(_render(template.subject, model, alias).split())
    letter = Letter(
        sender=sender or ctx.platform.settings.mail_from,
        to=to,
        subject=subject,
        text=_render(template.text, model, alias),
        html=_render(template.html, model, alias, escape=True) if template.html else None,
    )
    mailer, error = ctx.platform.mailer, None
    try:
        await mailer.deliver(letter)
    except MailDeliveryError as exc:
        error = str(exc)
    status: Status = "failed" if error else ("sent" if mailer.kind == "smtp" else "outbox")
    message_id = new_id()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(
            mail_messages.insert().values(
                id=message_id,
                at=utcnow(),
                template=alias,
                sender=letter.sender,
                recipients=letter.to,
                recipient_list="\n" + "\n".join(a.lower() for a in letter.to) + "\n",
                subject=letter.subject,
                text=letter.text,
                html=letter.html,
                status=status,
                error=error,
            )
        )
    if error:
        raise ServiceUnavailableError(
            f"the mail relay did not take the message ({error}); it is kept as failed "
            f"(id {message_id}, see mail.outbox)",
            code="mail_not_delivered",
            details={"id": message_id},
        )
    return SentMail(id=message_id, status=status, to=letter.to)


@operation("mail.put_template", scope="mail:admin")
async def put_template(ctx: Context, params: TemplateSpec) -> MailTemplate:
    """Create or replace a template (a built-in alias: this tenant's version of it)."""
    now = utcnow()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(mail_templates.delete().where(mail_templates.c.alias == params.alias))
        await conn.execute(
            mail_templates.insert().values(
                alias=params.alias,
                subject=params.subject,
                text=params.text,
                html=params.html,
                updated_at=now,
            )
        )
    return _as_template(params, builtin=False, updated_at=now)


@operation("mail.get_template", scope="mail:read", read_only=True)
async def get_template(ctx: Context, params: TemplateRef) -> MailTemplate:
    """A template as it is used now: the tenant's own, else the built-in one."""
    return await _template(ctx, params.alias)


@operation("mail.list_templates", scope="mail:read", read_only=True)
async def list_templates(ctx: Context, params: Empty) -> list[MailTemplate]:
    """Every template this tenant can send, by alias: its own and the built-in ones it has
    not replaced."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(select(mail_templates))).mappings().all()
    own = {row["alias"]: _from_row(row) for row in rows}
    builtin = {
        alias: _as_template(spec, builtin=True, updated_at=None)
        for alias, spec in BUILTIN_TEMPLATES.items()
    }
    return [template for _, template in sorted((builtin | own).items())]


@operation("mail.delete_template", scope="mail:admin")
async def delete_template(ctx: Context, params: TemplateRef) -> Done:
    """Delete the tenant's template (for a built-in alias, the built-in one is used again)."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        result = await conn.execute(
            mail_templates.delete().where(mail_templates.c.alias == params.alias)
        )
    if result.rowcount == 0:
        raise _no_template(params.alias)
    return Done(count=result.rowcount)


@operation("mail.outbox", scope="mail:read", read_only=True)
async def outbox(ctx: Context, params: OutboxQuery) -> list[MailMessage]:
    """Messages sent by this tenant, newest first (all of them: sent, outbox and failed)."""
    statement = select(mail_messages).order_by(mail_messages.c.at.desc()).limit(params.limit)
    if params.to is not None:
        wanted = "\n" + params.to.lower() + "\n"
        statement = statement.where(
            mail_messages.c.recipient_list.contains(wanted, autoescape=True)
        )
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(statement)).mappings().all()
    return [
        MailMessage(
            id=row["id"],
            at=row["at"],
            template=row["template"],
            sender=row["sender"],
            to=row["recipients"],
            subject=row["subject"],
            text=row["text"],
            html=row["html"],
            status=row["status"],
            error=row["error"],
        )
        for row in rows
    ]


async def _template(ctx: Context, alias: str) -> MailTemplate:
    async with ctx.platform.db.read(ctx.tenant) as conn:
        row = (
            (await conn.execute(select(mail_templates).where(mail_templates.c.alias == alias)))
            .mappings()
            .first()
        )
    if row is not None:
        return _from_row(row)
    if alias in BUILTIN_TEMPLATES:
        return _as_template(BUILTIN_TEMPLATES[alias], builtin=True, updated_at=None)
    raise _no_template(alias)


def _render(text: str, model: dict[str, Any], alias: str, *, escape: bool = False) -> str:
    def fill(match: re.Match[str]) -> str:
        value: Any = model
        for part in match.group(1).split("."):
            if not isinstance(value, dict) or part not in value:
                raise ValidationError(
                    f"template {alias!r} needs model.{match.group(1)}",
                    details={"field": "model", "missing": match.group(1)},
                )
            value = value[part]
        shown = value if isinstance(value, str) else msgspec.json.encode(value).decode()
        return html.escape(shown) if escape else shown

    return _PLACEHOLDER.sub(fill, text)


def _from_row(row: RowMapping) -> MailTemplate:
    return MailTemplate(
        alias=row["alias"],
        subject=row["subject"],
        text=row["text"],
        html=row["html"],
        builtin=False,
        updated_at=row["updated_at"],
    )


def _as_template(spec: TemplateSpec, *, builtin: bool, updated_at: datetime | None) -> MailTemplate:
    return MailTemplate(
        alias=spec.alias,
        subject=spec.subject,
        text=spec.text,
        html=spec.html,
        builtin=builtin,
        updated_at=updated_at,
    )


def _no_template(alias: str) -> NotFoundError:
    return NotFoundError(
        f"no mail template {alias!r} (see mail.list_templates)",
        code="template_not_found",
        details={"field": "template_alias"},
    )
