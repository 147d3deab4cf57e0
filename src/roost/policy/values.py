"""CEL results as JSON, the way Cerbos writes them into outputs (protobuf `Value`)."""

from __future__ import annotations

import base64
import math
from datetime import datetime, timedelta
from typing import Any

__all__ = ["duration_text", "to_json"]


def duration_text(value: timedelta) -> str:
    """A duration as protobuf JSON writes it: seconds with up to 9 decimals and an `s`."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    if fraction == 0:
        return f"{sign}{seconds}s"
    return f"{sign}{seconds}.{fraction:06d}".rstrip("0") + "s"


def to_json(value: Any) -> Any:
    """Timestamps become RFC 3339 text, durations `"3600s"`, bytes base64, NaN/inf text."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return str(value)
