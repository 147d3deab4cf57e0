"""The inbox of development: a server without an SMTP relay writes each letter, tokens and all,
to `<data dir>/mail/*.eml`; the outbox (and every log line) keeps them redacted. Tests read the
links a user would find in their mail there, as a developer does."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any


class Inbox:
    """The letters a server kept after the inbox was opened, oldest first."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._before = set(self._files())

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob("*.eml")) if self.folder.is_dir() else []

    @property
    def mails(self) -> list[str]:
        """Each new letter as text: its `To:` line, then its subject and plain body."""
        shown = []
        for path in self._files():
            if path in self._before:
                continue
            letter = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(letter, EmailMessage)
            body = letter.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""
            shown.append(f"To: {letter['To']}\n{letter['Subject']}\n{text}")
        return shown

    def to(self, address: str) -> list[str]:
        """The letters to `address` (compared in any case), oldest first."""
        return [mail for mail in self.mails if address.lower() in mail.split("\n", 1)[0].lower()]

    def token(self, address: str, kind: str) -> str:
        """The `kind` token (`rpr`, `rev`) of the newest letter to `address` that holds one."""
        for mail in reversed(self.to(address)):
            found = re.search(rf"\b{kind}_[A-Za-z0-9_\-]+", mail)
            if found:
                return found.group(0)
        raise AssertionError(f"no {kind} token was mailed to {address}: {self.mails}")


@contextmanager
def mail_inbox(server: Any) -> Iterator[Inbox]:
    """The letters `server` (a RunningServer) keeps while the block runs, and after."""
    yield Inbox(Path(server.settings.data_dir) / "mail")
