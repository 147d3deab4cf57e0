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


def merged_object(
    current: dict[str, Any] | None,
    update: dict[str, Any],
    *,
    replace: bool,
    field: str,
    limit: int,
) -> dict[str, Any]:
    """`update` merged into `current` by top-level key (a None value removes its key), or with
    `replace` taken as it is; refused when its JSON is over `limit` bytes."""
    merged = {} if replace else dict(current or {})
    merged.update(update)
    merged = {key: value for key, value in merged.items() if value is not None}
    json_text(merged, field, limit)
    return merged


def from_json(text: str) -> Any:
    return msgspec.json.decode(text)
