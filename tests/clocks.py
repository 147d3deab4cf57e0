"""A clock a test moves forward, instead of waiting for something to expire."""

from __future__ import annotations

from roost.clock import Clock


class ShiftedClock(Clock):
    """The machine's clock plus every `advance` so far. It goes on running, so a wait for
    what keeps its own time (a Redis TTL) still works beside it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        """Move the clock `seconds` forward (never back: nothing Roost times expects that)."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self.offset += seconds

    def time(self) -> float:
        return super().time() + self.offset

    def monotonic(self) -> float:
        return super().monotonic() + self.offset
