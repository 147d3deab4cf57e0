"""Types of the mail operations (Dominus courier)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

Alias = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_\-]*$", max_length=100)]
# No control character anywhere in an address or a name: a NUL or a line break in a header is
# refused here, before anything is sent (PostgreSQL cannot even store a NUL).
_PART = r"[^@\s<>,;\"\x00-\x1f\x7f]+"
_ADDRESS = rf"{_PART}@{_PART}\.{_PART}"
Address = Annotated[str, Meta(max_length=254, pattern=rf"^{_ADDRESS}$")]
Sender = Annotated[
    str,
    Meta(
        max_length=320,
        pattern=rf"^([^<>@\"\x00-\x1f\x7f]{{0,200}}<{_ADDRESS}>|{_ADDRESS})$",
        description="an address, or Name <address>",
    ),
]
# Template text: line breaks and tabs, but no NUL and no other control character.
_NO_CONTROLS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
Status = Literal["sending", "sent", "outbox", "failed"]


class SendMailRequest(Struct, forbid_unknown_fields=True):
    template_alias: Alias
    to: Annotated[list[Address], Meta(min_length=1, max_length=50)]
    from_email: Sender | None = None
    model: dict[str, Any] = {}


class SentMail(Struct):
    id: str
    status: Status
    to: list[str]


class TemplateSpec(Struct, forbid_unknown_fields=True):
    alias: Alias
    subject: Annotated[str, Meta(min_length=1, max_length=500, pattern=_NO_CONTROLS)]
    text: Annotated[str, Meta(min_length=1, max_length=100_000, pattern=_NO_CONTROLS)]
    html: Annotated[str, Meta(max_length=500_000, pattern=_NO_CONTROLS)] | None = None


class PreviewRequest(Struct, forbid_unknown_fields=True):
    template: TemplateSpec  # a draft, as `mail.put_template` would take it (not saved)
    model: dict[str, Any] = {}


class MailPreview(Struct):
    """A template filled with a model, as the message would leave (nothing sent)."""

    subject: str
    text: str
    html: str | None


class TemplateRef(Struct, forbid_unknown_fields=True):
    alias: Alias


class MailTemplate(Struct):
    alias: str
    subject: str
    text: str
    html: str | None
    builtin: bool  # the platform's own, not (or no longer) replaced by the tenant
    updated_at: datetime | None


class OutboxQuery(Struct, forbid_unknown_fields=True):
    to: Address | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 50


class MailMessage(Struct):
    id: str
    at: datetime
    template: str
    sender: str
    to: list[str]
    subject: str
    text: str
    html: str | None
    status: Status
    error: str | None
