"""Where a server reads the time.

Every expiry and age that Roost decides itself (access tokens, sessions, API keys, role grants,
signed links, reset and verification links, log retention, the principal and services' caches,
the limiter's windows) is measured on the `Clock` its platform was built with, and so is the
instant each is counted from. Tests give a server a clock they can move forward
(`tests/clocks.py`) instead of waiting for a lifetime to run out. Record stamps
(`created_at`, `updated_at`) are the machine's time, and the KV, queue and stream stores time
their own entries (on the machine's clock, or Redis' own).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """The machine's clock."""

    def time(self) -> float:
        """Wall time, in seconds since the epoch: for instants that are stored, or shared
        with other replicas."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds that never go back (NTP steps included): for intervals kept in memory."""
        return time.monotonic()

    def now(self) -> datetime:
        """`time()` as an aware UTC datetime, as the tables store instants."""
        return datetime.fromtimestamp(self.time(), UTC)
