"""When to retry a request, and how long to wait first (exponential backoff, full jitter)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Backoff:
    """`compute(n)`: a random wait of half to all of min(max_delay, base * multiplier**(n-1))."""

    base: float
    multiplier: float
    max_delay: float

    def compute(self, failures: int) -> float:
        ceiling = min(self.max_delay, self.base * self.multiplier ** max(failures - 1, 0))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class Retry:
    """How many times to retry, and the wait before each retry."""

    backoff: Backoff
    retries: int

    def delay(self, failures: int, *, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number `failures`, or None to give up.

        A server's Retry-After is honoured; one longer than the backoff's ceiling gives up at
        once rather than block the caller for minutes.
        """
        if failures > self.retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.backoff.max_delay else None
        return self.backoff.compute(failures)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time(), 0.0)
    except (TypeError, ValueError):
        return None
