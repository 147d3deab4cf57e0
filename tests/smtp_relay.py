"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives: a user's real inbox,
for tests that compare what was delivered with what the outbox keeps."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from tests.conftest import free_port


@dataclass
class Relay:
    """The messages the SMTP server accepted, oldest first."""

    port: int
    received: list[EmailMessage] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?starttls=off"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        self.received.append(message)
        return "250 OK"

    def texts(self) -> list[str]:
        """The plain text body of each message received."""
        return [body_of(message, "plain") for message in self.received]


def body_of(message: EmailMessage, subtype: str) -> str:
    """The text of a message's `text/<subtype>` part (`plain` or `html`)."""
    part = message.get_body((subtype,))
    assert part is not None, f"the message has no text/{subtype} part"
    return str(part.get_content())


@contextmanager
def smtp_relay() -> Iterator[Relay]:
    """An SMTP server on a free loopback port for the duration of the block."""
    relay = Relay(free_port())
    controller = Controller(relay, hostname="127.0.0.1", port=relay.port)
    controller.start()
    try:
        yield relay
    finally:
        controller.stop()
