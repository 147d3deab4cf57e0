"""Test helpers of the sign-in factors: TOTP codes at a test server's clock, and the sign-in
mails, which are delivered after the answer (services/auth/passwordless.py) and so waited for
in the development inbox."""

from __future__ import annotations

import re
import time

import pyotp

from tests.conftest import RunningServer
from tests.inbox import Inbox

_STEP = 30


def code_at(server: RunningServer, secret: str, steps: int = 0) -> str:
    """The TOTP code of `secret` at the server's time, `steps` time steps later."""
    return pyotp.TOTP(secret).at(server.clock.time() + steps * _STEP)


def next_step(server: RunningServer) -> None:
    """Move the server's clock to the next time step: a new code, the last one spent."""
    server.clock.advance(_STEP)


def wait_for_mail(inbox: Inbox, address: str, pattern: str) -> str:
    """The first match of `pattern` in the newest letter to `address` the inbox got (waiting
    a few seconds at most for one)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        letters = inbox.to(address)
        if letters:
            found = re.search(pattern, letters[-1])
            assert found, letters[-1]
            return found.group(found.lastindex or 0)
        time.sleep(0.05)
    raise AssertionError(f"no mail reached {address}")
