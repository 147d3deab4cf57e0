"""What the server accepts from a client beyond the shape of its types.

Every decoded request passes `check_input`, whatever door it came through, so that each value
that reaches a backend is stored alike on SQLite, PostgreSQL and Redis, and reads the same
whether JSON or MessagePack carried it:

- nesting is at most `MAX_DEPTH` levels (msgspec's own limit is Python's recursion limit,
  which a 100k-deep body reaches; past it the decoder raises RecursionError);
- text never holds NUL (U+0000): PostgreSQL text and jsonb cannot store it;
- integers fit in 64 signed bits, the widest integer of SQLite and PostgreSQL, and numbers
  are finite (JSON has no NaN or Infinity);
- free-form values (documents, records, KV values, settings, metadata: anything typed `Any`)
  are JSON values: MessagePack bin, extension types and timestamps are refused there, as JSON
  cannot carry them (datetimes go as RFC 3339 strings, binary data as base64 text), and so are
  map keys other than text (MessagePack may key a map by nil, a boolean or an array);
- a datetime has a UTC form (`0001-01-01T00:00:00+14:00` has none): every backend stores UTC.

Walking a decoded value costs far more than decoding it, so for JSON a cheap scan of the raw
bytes decides first whether a value could break a rule at all; most requests skip the walk.
MessagePack bodies are always walked: a map's non-text key has no byte of its own to scan for.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from functools import cache
from typing import Any, Literal, get_args

import msgspec

MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# JSON: only an escape writes NUL into a string, and only 19 digits or more pass 2**63 - 1
# (found with translate and a substring search: several times faster than a regex).
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_NUMBER = b"0" * 19
# only the first and the last year hold datetimes whose UTC form may fall outside them
_EDGE_YEARS = (b"0001-", b"9999-")
# A JSON document's shape: its quotes and brackets, every other byte dropped.
_NOT_SHAPE = bytes(byte for byte in range(256) if byte not in b'"[]{}')
_NOT_JSON = (bytes, bytearray, memoryview, msgspec.msgpack.Ext, date, time)


class InputRefused(Exception):
    """A value breaks one of the rules; `path` names where (outermost first once raised)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = []

    @property
    def field(self) -> str:
        """The path as msgspec writes it after `$.`: `rows[3].name`."""
        text = ""
        for part in reversed(self.path):
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text.removeprefix(".")


def check_input(value: Any, data: bytes, fmt: Literal["json", "msgpack"]) -> None:
    """Raise InputRefused if `value`, decoded from `data`, breaks a rule of this module."""
    if not passes_screen(data, fmt):
        _walk(value, 0, free=False)


def passes_screen(data: bytes, fmt: Literal["json", "msgpack"]) -> bool:
    """Whether the scan of the raw bytes alone shows that no value in `data` can break a rule.
    Then no part of it can either (a part holds none of the bytes the scan looks for, and nests
    no deeper than the whole): a WebSocket frame that passes needs no check of each call's
    parameters, which are slices of it.

    Every request and WebSocket frame is scanned: the cheapest tests come first, and there is
    no Python loop (a generator over the edge years cost more than the searches themselves)."""
    if fmt == "msgpack":
        return False
    # An escape may write NUL (`\\u0000`) or hide where a string ends: the walk decides.
    if b"\\" in data:
        return False
    if _EDGE_YEARS[0] in data or _EDGE_YEARS[1] in data:
        return False
    # A document cannot nest deeper than it has brackets (inside strings or not): most have
    # far fewer than MAX_DEPTH, and skip the passes of `_json_depth_at_most`.
    # (A body no longer than MAX_DEPTH bytes has no more brackets, nor one shorter than
    # `_LONG_NUMBER` so many digits: most calls' bodies skip those scans.)
    if (
        len(data) > MAX_DEPTH
        and data.count(b"{") + data.count(b"[") > MAX_DEPTH
        and not _json_depth_at_most(data, MAX_DEPTH)
    ):
        return False
    return len(data) < len(_LONG_NUMBER) or _LONG_NUMBER not in data.translate(_DIGITS_AS_ZERO)


def too_deep() -> InputRefused:
    """The refusal for a body nested past what the decoder itself can follow."""
    return InputRefused(f"values are nested deeper than {MAX_DEPTH} levels")


def datetime_refusal(value: datetime) -> str | None:
    """Why `value` cannot be stored (it has no UTC form), or None if it can."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        return f"{value.isoformat()} lies outside years 1-9999 in UTC"
    return None


def _json_depth_at_most(data: bytes, limit: int) -> bool:
    """Whether the JSON document `data` nests at most `limit` deep, told from its brackets
    outside strings: each pass drops the innermost pairs, so a document `d` deep empties in
    `d` passes (a few for a batch of a hundred calls, where counting brackets saw a hundred).
    All of it runs in C (translate, split, replace). A backslash (an escaped quote may hide
    where a string ends) or anything unbalanced answers False: the walk decides."""
    if b"\\" in data:
        return False
    shape = b"".join(data.translate(None, _NOT_SHAPE).split(b'"')[::2])
    for _ in range(limit):
        if not shape:
            return True
        inner = shape.replace(b"{}", b"").replace(b"[]", b"")
        if inner == shape:
            return False
        shape = inner
    return not shape


def _walk(value: Any, depth: int, *, free: bool) -> None:
    """`free`: the value sits where the type says `Any` (or in a list or map), so it must be a
    JSON value."""
    if depth > MAX_DEPTH:
        raise too_deep()
    if isinstance(value, str):
        if "\x00" in value:
            raise InputRefused("text may not contain NUL (U+0000)")
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InputRefused(f"integers must lie between {INT64_MIN} and {INT64_MAX}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InputRefused("numbers must be finite (JSON has no NaN or Infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputRefused(f"map keys must be text, not {type(key).__name__}")
            try:
                _walk(key, depth + 1, free=True)
                _walk(item, depth + 1, free=True)
            except InputRefused as refused:
                refused.path.append(str(key).replace("\x00", "\\0"))
                raise
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            try:
                _walk(item, depth + 1, free=True)
            except InputRefused as refused:
                refused.path.append(index)
                raise
    elif isinstance(value, msgspec.Struct):
        free_fields = _free_fields(type(value))
        for name, wire in zip(value.__struct_fields__, value.__struct_encode_fields__, strict=True):
            try:
                _walk(getattr(value, name), depth + 1, free=name in free_fields)
            except InputRefused as refused:
                refused.path.append(wire)
                raise
    elif isinstance(value, datetime) and not free and value.tzinfo is not None:
        if reason := datetime_refusal(value):
            raise InputRefused(reason)
    elif free and isinstance(value, _NOT_JSON):
        raise InputRefused(
            "only JSON values are accepted here: no MessagePack bin, extension or timestamp "
            "(send datetimes as RFC 3339 strings, binary data as base64 text)"
        )


@cache
def _free_fields(struct: type[msgspec.Struct]) -> frozenset[str]:
    """The fields of a Struct whose declared type admits any value."""
    return frozenset(f.name for f in msgspec.structs.fields(struct) if _admits_any(f.type))


def _admits_any(annotation: Any) -> bool:
    return annotation is Any or any(_admits_any(arg) for arg in get_args(annotation))
