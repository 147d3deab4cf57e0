"""Mail delivery: an SMTP relay (`ROOST_SMTP_URL`), or, without one, the outbox.

With the outbox (the development default) nothing leaves the machine: the service records
each message as it always does, with the status "outbox", and the API (`mail.outbox`) and the
CLI (`roost mail outbox`) show it, one-time tokens redacted. The letter itself, tokens and
all, is "delivered" to `<data dir>/mail/` as an `.eml` file readable by the server's user
only: there the developer (and nobody over the API, nor any log) reads the links of reset and
verification mails.

`smtp://[user:password@]host[:port]` speaks plain SMTP and upgrades with STARTTLS when the
server offers it (`?starttls=require` refuses a server that does not; `?starttls=off` never
asks); `smtps://` is TLS from the first byte (port 465).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from roost.errors import ConfigurationError

logger = logging.getLogger("roost.mail")


class Letter(msgspec.Struct, frozen=True):
    sender: str
    to: list[str]
    subject: str
    text: str
    html: str | None = None

    def redacted(self, secret: str, mark: str) -> Letter:
        """This letter with every occurrence of `secret` replaced by `mark` (to be kept)."""
        return msgspec.structs.replace(
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
    """Development: nothing leaves the machine. Each letter, tokens and all, is written to
    `folder` as an `.eml` file only the server's user may read (the developer's inbox); the
    log says where, and no log line or API answer carries a token."""

    kind = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def deliver(self, letter: Letter) -> None:
        path = await asyncio.to_thread(self._write, letter)
        logger.info(
            "mail to %s (%s) kept in %s (no ROOST_SMTP_URL)",
            ", ".join(letter.to),
            letter.subject,
            path,
        )

    def _write(self, letter: Letter) -> Path:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # nanoseconds first: the files sort in the order they were written
        path = self.folder / f"{time.time_ns()}-{secrets.token_hex(4)}.eml"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(letter.as_message().as_bytes())
        return path


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
        import aiosmtplib  # here: a server that sends no mail by SMTP never loads it

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


def open_mailer(url: str | None, outbox_folder: Path) -> Mailer:
    """The SMTP relay of `url`, or without one the development outbox in `outbox_folder`."""
    return SmtpMailer(url) if url else OutboxMailer(outbox_folder)
