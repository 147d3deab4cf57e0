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
  cannot carry them (datetimes go as RFC 3339 strings, binary data as base64 text).

Walking a decoded value costs far more than decoding it, so a cheap scan of the raw bytes
decides first whether a value could break a rule at all; most requests skip the walk.
"""

from __future__ import annotations

import math
from datetime import date, time
from functools import cache
from typing import Any, Literal, get_args

import msgspec

MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# JSON: only an escape writes NUL into a string, and only 19 digits or more pass 2**63 - 1
# (found with translate and a substring search: several times faster than a regex).
_JSON_NUL = b"\\u0000"
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_NUMBER = b"0" * 19
# MessagePack: maps and arrays (fix, 16, 32); and the bytes that may start a str holding NUL
# (its length), a uint64, a float, a bin or an extension. These bytes also occur inside other
# values; that only costs a walk that finds nothing.
_MSGPACK_CONTAINERS = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])
_MSGPACK_SUSPECT = bytes([0x00, *range(0xC4, 0xCC), 0xCF, *range(0xD4, 0xD9)])
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
    if _may_break_rules(data, fmt):
        _walk(value, 0, free=False)


def too_deep() -> InputRefused:
    """The refusal for a body nested past what the decoder itself can follow."""
    return InputRefused(f"values are nested deeper than {MAX_DEPTH} levels")


def _may_break_rules(data: bytes, fmt: Literal["json", "msgpack"]) -> bool:
    if fmt == "json":
        if data.count(b"[") + data.count(b"{") > MAX_DEPTH or _JSON_NUL in data:
            return True
        return _LONG_NUMBER in data.translate(_DIGITS_AS_ZERO)
    size = len(data)
    if len(data.translate(None, _MSGPACK_SUSPECT)) < size:
        return True
    return size - len(data.translate(None, _MSGPACK_CONTAINERS)) > MAX_DEPTH


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
