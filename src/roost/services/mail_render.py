"""Filling mail templates: `{{ name }}` placeholders, the bound on a rendered message's size,
and where the link of a security mail may stand.

Security mails (`LINK_TEMPLATES`: password reset, email verification, magic sign-in link)
carry a one-time token inside a link the server builds from `ROOST_AUTH_LINK_URL` (or a magic
link's allowed `redirect_to`). A tenant may reword them, but the template only places
`{{ link }}`, never builds it: the token is not a template value, the plain text holds
`{{ link }}` exactly once on a line of its own (so no URL of the template's can run into it),
and an HTML part holds it exactly once as the whole `href` of an `<a>`, in markup every HTML
parser reads the same way (services/mail_html.py).
"""

from __future__ import annotations

import html
import re
from typing import Any

import msgspec

from roost.errors import PayloadTooLargeError, ValidationError
from roost.services.mail_html import link_markup_problem
from roost.wire.mail import MailTemplate, TemplateSpec

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}")
LINK_TEMPLATES = frozenset({"password_reset", "email_verification", "magic_link"})
LINK_VALUES = frozenset({"name", "username", "link"})
# Whitespace of the kinds a model value may bring into a body; any other control character
# (a NUL above all) is refused.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Budget:
    """The bytes a rendered message (subject, text and html together) may still take."""

    def __init__(self, limit: int, alias: str) -> None:
        self.limit, self.left, self.alias = limit, limit, alias

    def spend(self, text: str) -> None:
        self.left -= len(text.encode())
        if self.left < 0:
            raise PayloadTooLargeError(
                f"template {self.alias!r} filled with this model is larger than "
                f"{self.limit} bytes (ROOST_MAIL_MAX_BYTES); send a smaller model",
                code="mail_too_large",
                details={"field": "model", "limit": self.limit},
            )


def render(
    text: str, model: dict[str, Any], alias: str, budget: Budget, *, escape: bool = False
) -> str:
    """`text` with each placeholder filled from `model` (HTML-escaped with `escape`); a missing
    value, a control character or a message over the budget is refused before it is built."""
    budget.spend(text)

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
        if _CONTROL.search(shown):
            raise ValidationError(
                f"model.{match.group(1)} holds a control character",
                details={"field": f"model.{match.group(1)}"},
            )
        shown = html.escape(shown) if escape else shown
        budget.spend(shown)
        return shown

    return PLACEHOLDER.sub(fill, text)


def check_link_placement(template: TemplateSpec | MailTemplate) -> None:
    """Refuse (ValidationError naming the field) a security template that could carry its
    token anywhere but the server's own link."""
    alias = template.alias
    parts = {"subject": template.subject, "text": template.text, "html": template.html or ""}
    for field, text in parts.items():
        for match in PLACEHOLDER.finditer(text):
            if match.group(1) not in LINK_VALUES:
                raise _misplaced(alias, field, f"may not use {{{{ {match.group(1)} }}}}")
    if _links(template.subject):
        raise _misplaced(alias, "subject", "may not hold {{ link }}")
    lines = [line.strip() for line in template.text.splitlines()]
    if len(_links(template.text)) != 1 or not any(_links(line) == [line] for line in lines):
        raise _misplaced(alias, "text", "must hold {{ link }} once, on a line of its own")
    if template.html is not None:
        _check_html_link(alias, template.html)


def _check_html_link(alias: str, markup: str) -> None:
    if problem := link_markup_problem(markup):
        raise _misplaced(alias, "html", problem)


def _links(text: str) -> list[str]:
    """The `{{ link }}` placeholders in `text`, as written."""
    return [m.group(0) for m in PLACEHOLDER.finditer(text) if m.group(1) == "link"]


def _misplaced(alias: str, field: str, why: str) -> ValidationError:
    return ValidationError(
        f"template {alias!r} carries a one-time link: its {field} {why}",
        code="link_misplaced",
        details={"field": field},
    )
