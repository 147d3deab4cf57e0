"""A circuit breaker: after repeated failures the SDK stops calling for a while."""

from __future__ import annotations

import time
from collections.abc import Callable

from roost.errors import CircuitOpenError


class CircuitBreaker:
    """Closed → open after `threshold` failures in a row → one trial call after `reset_after`.

    A success closes it; a failed trial opens it again. Shared by every client derived from
    the same one (they talk to the same server).
    """

    def __init__(
        self, threshold: int, reset_after: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.reset_after else "open"

    def before_call(self, target: str) -> None:
        """Raise CircuitOpenError while the circuit is open."""
        if self.state == "open":
            assert self._opened_at is not None
            wait = self.reset_after - (self._clock() - self._opened_at)
            raise CircuitOpenError(
                f"circuit open after {self._failures} failures in a row calling {target}; "
                f"the next attempt is allowed in {wait:.1f} s",
                details={"failures": self._failures, "retry_in": round(wait, 3)},
            )

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        self._failures += 1
        if self._failures >= self.threshold or self._opened_at is not None:
            self._opened_at = self._clock()
