"""Mail from templates, per tenant: built-in templates (welcome, password_reset,
email_verification, invitation) that a tenant may replace, its own templates, sending through
the platform's mailer (`backends/mail.py`) and a record of every message (the outbox).

Templates hold `{{ name }}` or `{{ user.name }}` placeholders filled from the model sent with
each message; in the HTML body the values are HTML-escaped. A placeholder the model lacks, a
control character or a message over `ROOST_MAIL_MAX_BYTES` is refused by name before anything
is recorded or sent, so a half-filled (or refused-after-sending) message never leaves.

Each message is recorded ("sending") before the relay sees it, then marked "sent", "outbox" or
"failed". A security mail's one-time token reaches the relay only: its record says
"[redacted]" instead, so `mail:read` never reads a token (see services/mail_render.py for where
such a template may put its link).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from roost.backends.mail import Letter, MailDeliveryError
from roost.backends.sql.tables import mail_messages, mail_templates, utcnow
from roost.errors import NotFoundError, ServiceUnavailableError, ValidationError
from roost.services.context import Context
from roost.services.mail_render import LINK_TEMPLATES, Budget, check_link_placement, render
from roost.services.registry import operation
from roost.services.security import new_id
from roost.wire.common import Done, Empty
from roost.wire.mail import (
    MailMessage,
    MailPreview,
    MailTemplate,
    OutboxQuery,
    PreviewRequest,
    SendMailRequest,
    SentMail,
    Status,
    TemplateRef,
    TemplateSpec,
)

logger = logging.getLogger("roost.mail")

REDACTED = "[redacted]"
_TOKEN = re.compile(r"\b(?:rpr|rev|rml)_[A-Za-z0-9_\-]+")  # see security.make_opaque
_SUBJECT_MAX = 500  # the outbox's column

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
            alias="magic_link",
            subject="Your sign-in link",
            text="Hello {{ name }},\n\nto sign in, open this link:\n{{ link }}\n\n"
            "It works once, for a few minutes. If you did not ask for it, ignore this message.\n",
        ),
        TemplateSpec(
            alias="sign_in_code",
            subject="Your sign-in code",
            text="Hello {{ name }},\n\nyour sign-in code is {{ code }}\n\n"
            "It works once, for a few minutes. If you did not ask for it, ignore this message.\n",
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
    (then the call fails too). A refused request (a bad field, a model that renders too large)
    sends and records nothing."""
    return await send_template(
        ctx, params.template_alias, params.to, params.model, params.from_email
    )


async def send_template(
    ctx: Context,
    alias: str,
    to: list[str],
    model: dict[str, Any],
    sender: str | None = None,
    *,
    secret: str | None = None,
) -> SentMail:
    """Render the tenant's (or the built-in) template `alias`, record it, deliver it and record
    how that went. Everything that can be refused is refused before the record and the relay
    see anything. `secret` (a one-time token) goes to the relay only: the record holds
    "[redacted]" in its place. A relay that refuses raises ServiceUnavailableError after the
    record says so."""
    letter = await _letter(ctx, alias, to, model, sender)
    kept = letter if secret is None else letter.redacted(secret, REDACTED)
    message_id = new_id()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(
            mail_messages.insert().values(
                id=message_id,
                at=utcnow(),
                template=alias,
                sender=kept.sender,
                recipients=kept.to,
                recipient_list="\n" + "\n".join(a.lower() for a in kept.to) + "\n",
                subject=kept.subject,
                text=kept.text,
                html=kept.html,
                status="sending",
            )
        )
    mailer, error = ctx.platform.mailer, None
    try:
        await mailer.deliver(letter)
    except MailDeliveryError as exc:
        error = str(exc)
    status: Status = "failed" if error else ("sent" if mailer.kind == "smtp" else "outbox")
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(
            mail_messages.update()
            .where(mail_messages.c.id == message_id)
            .values(status=status, error=error)
        )
    if error:
        raise ServiceUnavailableError(
            f"the mail relay did not take the message ({error}); it is kept as failed "
            f"(id {message_id}, see mail.outbox)",
            code="mail_not_delivered",
            details={"id": message_id},
        )
    return SentMail(id=message_id, status=status, to=letter.to)


async def _letter(
    ctx: Context, alias: str, to: list[str], model: dict[str, Any], sender: str | None
) -> Letter:
    """The message as it will leave, or the refusal (nothing has happened yet)."""
    template = await _template(ctx, alias)
    if alias in LINK_TEMPLATES and not template.builtin:
        try:
            check_link_placement(template)
        except ValidationError:  # saved before links were checked: the platform's wording
            logger.warning("mail template %r misplaces its link; the built-in one is used", alias)
            template = _as_template(BUILTIN_TEMPLATES[alias], builtin=True, updated_at=None)
    filled = _fill(ctx, template, model)
    return Letter(
        sender=sender or ctx.platform.settings.mail_from,
        to=to,
        subject=filled.subject,
        text=filled.text,
        html=filled.html,
    )


def _fill(
    ctx: Context, template: MailTemplate | TemplateSpec, model: dict[str, Any]
) -> MailPreview:
    """The template's parts filled with `model`, or the refusal naming the field."""
    alias = template.alias
    budget = Budget(ctx.platform.settings.mail_max_bytes, alias)
    subject = " ".join(render(template.subject, model, alias, budget).split())
    if len(subject) > _SUBJECT_MAX:
        raise ValidationError(
            f"template {alias!r} filled with this model has a subject longer than "
            f"{_SUBJECT_MAX} characters",
            details={"field": "model"},
        )
    return MailPreview(
        subject=subject,
        text=render(template.text, model, alias, budget),
        html=render(template.html, model, alias, budget, escape=True) if template.html else None,
    )


@operation("mail.preview", scope="mail:read", read_only=True)
async def preview(ctx: Context, params: PreviewRequest) -> MailPreview:
    """Fill a draft template (not saved) with `model` and answer the message as it would
    leave; nothing is sent or recorded. It refuses what saving the draft and sending it
    would (a misplaced link in a security mail, a missing value, a message too large)."""
    if params.template.alias in LINK_TEMPLATES:
        check_link_placement(params.template)
    return _fill(ctx, params.template, params.model)


@operation("mail.put_template", scope="mail:admin")
async def put_template(ctx: Context, params: TemplateSpec) -> MailTemplate:
    """Create or replace a template (a built-in alias: this tenant's version of it). A
    security mail's template (password_reset, email_verification) places the server's
    `{{ link }}` once, on a line of its own; see services/mail_render.py."""
    if params.alias in LINK_TEMPLATES:
        check_link_placement(params)
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
    return [_as_message(row) for row in rows]


def _as_message(row: RowMapping) -> MailMessage:
    scrub = _scrub if row["template"] in LINK_TEMPLATES else str
    return MailMessage(
        id=row["id"],
        at=row["at"],
        template=row["template"],
        sender=row["sender"],
        to=row["recipients"],
        subject=scrub(row["subject"]),
        text=scrub(row["text"]),
        html=None if row["html"] is None else scrub(row["html"]),
        status=row["status"],
        error=row["error"],
    )


def _scrub(text: str) -> str:
    """`text` with any reset or verification token redacted: a message recorded before tokens
    were redacted as they are sent may still hold one, valid until it expires."""
    return _TOKEN.sub(REDACTED, text)


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
        f"no mail template {alias!r} (mail.templates.list() in the SDK lists them)",
        code="template_not_found",
        details={"field": "template_alias"},
    )
