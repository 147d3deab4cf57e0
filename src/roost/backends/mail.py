"""Mail delivery: an SMTP relay (`ROOST_SMTP_URL`), or, without one, the outbox.

With the outbox (the development default) nothing leaves the machine: the service records
each message as it always does, with the status "outbox", and the API (`mail.outbox`) and the
CLI (`roost mail outbox`) show it, one-time tokens redacted. The letter itself, tokens and
all, is "delivered" to the server's console: logged at INFO on `roost.mail`, where the
developer (and nobody over the API) reads the links of reset and verification mails.

`smtp://[user:password@]host[:port]` speaks plain SMTP and upgrades with STARTTLS when the
server offers it (`?starttls=require` refuses a server that does not; `?starttls=off` never
asks); `smtps://` is TLS from the first byte (port 465).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from roost.errors import ConfigurationError

logger = logging.getLogger("roost.mail")


@dataclass(frozen=True, slots=True)
class Letter:
    sender: str
    to: list[str]
    subject: str
    text: str
    html: str | None = None

    def redacted(self, secret: str, mark: str) -> Letter:
        """This letter with every occurrence of `secret` replaced by `mark` (to be kept)."""
        return replace(
            self,
            subject=self.subject.replace(secret, mark),
            text=self.text.replace(secret, mark),
            html=None if self.html is None else self.html.replace(secret, mark),
        )

    def as_message(self) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message["Subject"] = self.subject
        message.set_content(self.text)
        if self.html is not None:
            message.add_alternative(self.html, subtype="html")
        return message


class MailDeliveryError(Exception):
    """The relay refused the message or could not be reached."""


class Mailer(Protocol):
    kind: str  # "smtp" or "outbox"

    async def deliver(self, letter: Letter) -> None:
        """Hand the letter to the relay (MailDeliveryError if that fails)."""
        ...


class OutboxMailer:
    kind = "outbox"

    async def deliver(self, letter: Letter) -> None:
        # Nothing leaves the machine: the console is the inbox of development.
        logger.info(
            "mail (no ROOST_SMTP_URL) from %s to %s: %s\n%s",
            letter.sender,
            ", ".join(letter.to),
            letter.subject,
            letter.text,
        )


class SmtpMailer:
    kind = "smtp"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigurationError(
                "ROOST_SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465"
            )
        starttls = parse_qs(parts.query).get("starttls", ["auto"])[0]
        if starttls not in ("auto", "require", "off"):
            raise ConfigurationError("ROOST_SMTP_URL: starttls must be auto, require or off")
        self._tls = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._tls else 587)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._starttls: bool | None = None if starttls == "auto" else starttls == "require"
        if self._tls:
            self._starttls = False

    async def deliver(self, letter: Letter) -> None:
        try:
            await aiosmtplib.send(
                letter.as_message(),
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._tls,
                start_tls=self._starttls,
                timeout=30,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailDeliveryError(str(exc) or type(exc).__name__) from exc


def open_mailer(url: str | None) -> Mailer:
    return SmtpMailer(url) if url else OutboxMailer()
