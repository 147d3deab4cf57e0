"""Types shared by the SDK tests (`scripts/unasync.py` copies them to the sync tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

# A call a test makes later to see it refused: SDK calls answer different types, and a list of
# such lambdas needs one type that fits them all (and that the sync tests can call too).
Call: TypeAlias = Callable[[], Awaitable[object]]
