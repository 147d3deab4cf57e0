"""User payloads kept as JSON text (KV values, queue messages, stream events, pub/sub messages)."""

from __future__ import annotations

from typing import Any

import msgspec

from roost.errors import ValidationError


def json_text(value: Any, field: str, limit: int) -> str:
    """`value` as JSON text, refused with a clear error when it is over `limit` bytes."""
    text = msgspec.json.encode(value).decode()
    if len(text) > limit:
        raise ValidationError(
            f"{field} is {len(text)} bytes of JSON; the limit is {limit}",
            details={"field": field, "limit": limit},
        )
    return text


def from_json(text: str) -> Any:
    return msgspec.json.decode(text)
