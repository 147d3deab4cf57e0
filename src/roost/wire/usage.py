"""Types of the metering operation (DotDo metering)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from msgspec import Struct

Period = Literal["hour", "day", "month"]


class UsageQuery(Struct, forbid_unknown_fields=True):
    period: Period = "day"
    since: datetime | None = None  # default: 30 days ago
    until: datetime | None = None  # default: now
    by_api_key: bool = False


class UsageFigures(Struct):
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    function_invocations: int = 0
    function_seconds: float = 0.0


class UsageBucket(Struct):
    start: datetime
    requests: int
    bytes_in: int
    bytes_out: int
    function_invocations: int = 0
    function_seconds: float = 0.0
    api_keys: dict[str, UsageFigures] | None = None  # by API key id; "" for signed-in users


class UsageReport(Struct):
    period: Period
    since: datetime
    until: datetime
    totals: UsageFigures
    buckets: list[UsageBucket]
