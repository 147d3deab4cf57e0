"""Checks of an SDK call's arguments made before anything is sent, shared by both clients.

A wrong type found here raises `ValidationError` naming the argument, as the server would for
a field, instead of an `AttributeError` from deep inside the SDK (`"2026-01-01".isoformat()`).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Final, Literal

from roost.errors import ValidationError


class Start(enum.Enum):
    """Where a cursor-paged listing starts when no cursor is given."""

    FIRST = "first"


FIRST: Final = Start.FIRST
"""A listing's default `cursor`: its first page. `None`, which a last page answers as its
`next_cursor`, is refused (`ValidationError`): passing it back must not silently start over
at the first page, nor silently answer nothing to a loop that meant "from the start"."""

Cursor = str | None | Literal[Start.FIRST]


def iso_datetime(name: str, value: datetime | None) -> str | None:
    """`value` as ISO 8601 for the wire; None stays None; anything but a datetime is refused."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValidationError(
            f"{name} must be a datetime, not {type(value).__name__} "
            f"(e.g. datetime.now(UTC) - timedelta(days=1))",
            details={"field": name},
        )
    return value.isoformat()


def cursor_param(cursor: Cursor) -> str | None:
    """The cursor to send: None for the first page (`FIRST`, the default)."""
    if cursor is FIRST:
        return None
    if cursor is None:
        raise ValidationError(
            "cursor is None: the page whose next_cursor it was is the last one (leave cursor "
            "out for the first page; .iter() walks every page)",
            code="no_more_pages",
            details={"field": "cursor"},
        )
    if not isinstance(cursor, str):
        raise ValidationError(
            f"cursor must be a next_cursor string, not {type(cursor).__name__}",
            details={"field": "cursor"},
        )
    return cursor
