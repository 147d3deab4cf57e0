"""The inbox of development: a server without an SMTP relay "delivers" each mail to its console
(INFO on the `roost.mail` logger), tokens and all; the outbox keeps them redacted. Tests read
the links a user would find in their mail here, as a developer reads the console."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager


class ConsoleInbox(logging.Handler):
    """The mails logged while it is attached, oldest first."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.mails: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.mails.append(record.getMessage())

    def to(self, email: str) -> list[str]:
        """The mails to `email` (compared in any case), oldest first."""
        return [mail for mail in self.mails if email.lower() in mail.split("\n", 1)[0].lower()]

    def token(self, email: str, kind: str) -> str:
        """The `kind` token (`rpr`, `rev`) of the newest mail to `email` that holds one."""
        for mail in reversed(self.to(email)):
            found = re.search(rf"\b{kind}_[A-Za-z0-9_\-]+", mail)
            if found:
                return found.group(0)
        raise AssertionError(f"no {kind} token was mailed to {email}: {self.mails}")


@contextmanager
def console_inbox() -> Iterator[ConsoleInbox]:
    """Listen to the console mail of the servers running in this process."""
    logger = logging.getLogger("roost.mail")
    inbox, level = ConsoleInbox(), logger.level
    logger.addHandler(inbox)
    logger.setLevel(logging.INFO)
    try:
        yield inbox
    finally:
        logger.removeHandler(inbox)
        logger.setLevel(level)
