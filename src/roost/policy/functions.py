"""Cerbos' CEL extension functions, and the cel-go extensions Cerbos enables, in Python.

The evaluator calls these by name (see `cel.FUNCTIONS`); the rewrite step in `cel.py` renames
calls whose Cerbos meaning differs from the evaluator's builtin (a string's `size` counts code
points, timestamp getters take a time zone) to the names defined here. A function raises to
produce a CEL error value, which makes the condition false, as in Cerbos.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["hierarchy_functions", "standard_functions"]

Fn = Callable[..., Any]


class CelFunctionError(ValueError):
    """A function was called with arguments it does not take (a CEL error value)."""


def _list(value: object) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise CelFunctionError("no such overload")
    return list(value)


def _same(a: object, b: object) -> bool:
    # CEL equality: a bool is never equal to a number (Python says True == 1).
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


def _contains(items: Sequence[object], item: object) -> bool:
    return any(_same(item, other) for other in items)


def except_(a: object, b: object) -> list[Any]:
    right = _list(b)
    return [item for item in _list(a) if not _contains(right, item)]


def intersect(a: object, b: object) -> list[Any]:
    left, right = _list(a), _list(b)
    if len(left) > len(right):
        left, right = right, left
    return [item for item in left if _contains(right, item)]


def is_subset(a: object, b: object) -> bool:
    right = _list(b)
    return all(_contains(right, item) for item in _list(a))


def has_intersection(a: object, b: object) -> bool:
    right = _list(b)
    return any(_contains(right, item) for item in _list(a))


def in_ip_addr_range(ip: object, cidr: object) -> bool:
    if not isinstance(ip, str) or not isinstance(cidr, str):
        raise CelFunctionError("no such overload")
    try:
        address = ipaddress.ip_address(ip)
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise CelFunctionError(str(exc)) from exc
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # Go's net.ParseIP keeps IPv4 in 16 bytes too
    if address.version != network.version:
        return False
    return address in network


# --- hierarchy: Cerbos' dotted-path type, held as a list of segments -----------------------


def hierarchy(value: object, delimiter: object = ".") -> list[str]:
    if isinstance(value, list | tuple):
        if not all(isinstance(part, str) for part in value):
            raise CelFunctionError("hierarchy() takes a list of strings")
        return [str(part) for part in value]
    if not isinstance(value, str) or not isinstance(delimiter, str) or not delimiter:
        raise CelFunctionError("no such overload")
    return value.split(delimiter) if value else []


def _segments(value: object) -> list[str]:
    return hierarchy(value)


def ancestor_of(a: object, b: object) -> bool:
    left, right = _segments(a), _segments(b)
    return len(left) < len(right) and right[: len(left)] == left


def descendent_of(a: object, b: object) -> bool:
    return ancestor_of(b, a)


def immediate_parent_of(a: object, b: object) -> bool:
    left, right = _segments(a), _segments(b)
    return len(left) + 1 == len(right) and right[: len(left)] == left


def immediate_child_of(a: object, b: object) -> bool:
    return immediate_parent_of(b, a)


def common_ancestors(a: object, b: object) -> list[str]:
    left, right = _segments(a), _segments(b)
    common: list[str] = []
    for x, y in zip(left[:-1], right[:-1], strict=False):
        if x != y:
            break
        common.append(x)
    return common


def sibling_of(a: object, b: object) -> bool:
    left, right = _segments(a), _segments(b)
    return len(left) == len(right) and left[:-1] == right[:-1]


def overlaps(a: object, b: object) -> bool:
    left, right = _segments(a), _segments(b)
    return left == right or ancestor_of(left, right) or ancestor_of(right, left)


def hierarchy_functions() -> dict[str, Fn]:
    return {
        "hierarchy": hierarchy,
        "ancestorOf": ancestor_of,
        "descendentOf": descendent_of,
        "immediateParentOf": immediate_parent_of,
        "immediateChildOf": immediate_child_of,
        "commonAncestors": common_ancestors,
        "siblingOf": sibling_of,
        "overlaps": overlaps,
    }


# --- strings (cel-go ext.Strings) ---------------------------------------------------------


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise CelFunctionError("no such overload")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CelFunctionError("no such overload")
    return value


def size(value: object) -> int:
    if isinstance(value, str | bytes | list | tuple | dict):
        return len(value)
    raise CelFunctionError("no such overload")


def char_at(text: object, index: object) -> str:
    s, i = _str(text), _int(index)
    if i < 0 or i > len(s):
        raise CelFunctionError("index out of range")
    return s[i : i + 1]


def index_of(text: object, sub: object, start: object = 0) -> int:
    s, t, i = _str(text), _str(sub), _int(start)
    if i < 0 or i > len(s):
        raise CelFunctionError("index out of range")
    return s.find(t, i)


def last_index_of(text: object, sub: object, end: object = None) -> int:
    s, t = _str(text), _str(sub)
    if end is None:
        return s.rfind(t)
    i = _int(end)
    if i < 0 or i > len(s):
        raise CelFunctionError("index out of range")
    return s.rfind(t, 0, i + len(t))


def lower_ascii(text: object) -> str:
    return "".join(c.lower() if c.isascii() else c for c in _str(text))


def upper_ascii(text: object) -> str:
    return "".join(c.upper() if c.isascii() else c for c in _str(text))


def replace(text: object, old: object, new: object, count: object = -1) -> str:
    n = _int(count)
    return _str(text).replace(_str(old), _str(new), n if n >= 0 else -1)


def split(text: object, sep: object, count: object = -1) -> list[str]:
    s, d, n = _str(text), _str(sep), _int(count)
    if n == 0:
        return []
    if d == "":
        parts = list(s)
        if n > 0 and len(parts) > n:
            parts = [*parts[: n - 1], "".join(parts[n - 1 :])]
        return parts
    return s.split(d, n - 1) if n > 0 else s.split(d)


def substring(text: object, start: object, end: object = None) -> str:
    s, i = _str(text), _int(start)
    j = len(s) if end is None else _int(end)
    if i < 0 or j > len(s) or i > j:
        raise CelFunctionError("index out of range")
    return s[i:j]


def trim(text: object) -> str:
    return _str(text).strip()


def join(items: object, sep: object = "") -> str:
    parts = _list(items)
    return _str(sep).join(_str(part) for part in parts)


def reverse(value: object) -> object:
    if isinstance(value, str):
        return value[::-1]
    return list(reversed(_list(value)))


def quote(text: object) -> str:
    out = ['"']
    for char in _str(text):
        out.append(
            {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, char)
        )
    out.append('"')
    return "".join(out)


# --- math, sets, encoders -------------------------------------------------------------------


def _number(value: object) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CelFunctionError("no such overload")
    return value


def _flatten_args(args: tuple[object, ...]) -> list[float | int]:
    values: list[object] = list(args)
    if len(args) == 1 and isinstance(args[0], list | tuple):
        values = list(args[0])
    if not values:
        raise CelFunctionError("math.greatest() needs at least one argument")
    return [_number(value) for value in values]


def greatest(*args: object) -> float | int:
    return max(_flatten_args(args))


def least(*args: object) -> float | int:
    return min(_flatten_args(args))


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, float):
        raise CelFunctionError("no such overload")
    return value


def math_round(value: object) -> float:
    x = _float(value)
    if math.isnan(x) or math.isinf(x):
        return x
    return float(math.floor(x + 0.5)) if x >= 0 else -float(math.floor(-x + 0.5))


def math_abs(value: object) -> float | int:
    x = _number(value)
    if isinstance(x, int) and x == -(2**63):
        raise CelFunctionError("integer overflow")
    return abs(x)


def math_sign(value: object) -> float | int:
    x = _number(value)
    if isinstance(x, float):
        return x if math.isnan(x) else float((x > 0) - (x < 0))
    return (x > 0) - (x < 0)


def sets_contains(a: object, b: object) -> bool:
    return is_subset(b, a)


def sets_equivalent(a: object, b: object) -> bool:
    return is_subset(a, b) and is_subset(b, a)


def base64_encode(value: object) -> str:
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes):
        raise CelFunctionError("no such overload")
    return base64.b64encode(value).decode("ascii")


def base64_decode(value: object) -> bytes:
    text = _str(value)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError as exc:
        raise CelFunctionError(str(exc)) from exc


# --- time -----------------------------------------------------------------------------------


def _zone(name: object) -> tzinfo:
    text = _str(name)
    sign = text[:1]
    if sign in ("+", "-") and len(text) == 6 and text[3] == ":":
        offset = timedelta(hours=int(text[1:3]), minutes=int(text[4:6]))
        return timezone(offset if sign == "+" else -offset)
    try:
        return ZoneInfo(text)
    except (ValueError, KeyError, OSError) as exc:
        raise CelFunctionError(f"unknown time zone {text!r}") from exc


def _at(ts: object, zone: object) -> datetime:
    if not isinstance(ts, datetime):
        raise CelFunctionError("no such overload")
    return ts.astimezone(_zone(zone))


def _getters() -> dict[str, Fn]:
    parts: dict[str, Callable[[datetime], int]] = {
        "getFullYear": lambda d: d.year,
        "getMonth": lambda d: d.month - 1,
        "getDate": lambda d: d.day,
        "getDayOfMonth": lambda d: d.day - 1,
        "getDayOfWeek": lambda d: (d.weekday() + 1) % 7,
        "getDayOfYear": lambda d: d.timetuple().tm_yday - 1,
        "getHours": lambda d: d.hour,
        "getMinutes": lambda d: d.minute,
        "getSeconds": lambda d: d.second,
        "getMilliseconds": lambda d: d.microsecond // 1000,
    }

    def make(part: Callable[[datetime], int]) -> Fn:
        return lambda ts, zone: part(_at(ts, zone))

    return {f"tz_{name}": make(part) for name, part in parts.items()}


def time_since(now: datetime) -> Fn:
    def since(ts: object) -> timedelta:
        if not isinstance(ts, datetime):
            raise CelFunctionError("no such overload")
        return now - ts

    return since


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


_PARSED: dict[str, datetime] = {}  # RFC 3339 text -> its timestamp (policies repeat them)
_PARSED_LIMIT = 4096


def timestamp(value: object) -> datetime:
    """`timestamp(text)` for RFC 3339 text, `timestamp(int)` for seconds since the epoch."""
    if isinstance(value, str):
        found = _PARSED.get(value)
        if found is None:
            found = _parse_timestamp(value)
            if len(_PARSED) >= _PARSED_LIMIT:
                _PARSED.clear()
            _PARSED[value] = found
        return found
    return _parse_timestamp(value)


def _parse_timestamp(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise CelFunctionError("timestamp out of range") from exc
    text = _str(value)
    match = _RFC3339.match(text)
    if match is None:
        raise CelFunctionError(f"not an RFC 3339 timestamp: {text!r}")
    fraction = match.group(1) or ""
    if len(fraction) > 7:  # Python keeps microseconds; nanoseconds are cut, as they compare
        text = text.replace(fraction, fraction[:7], 1)
    try:
        return datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise CelFunctionError(str(exc)) from exc


def identity(value: object) -> object:
    return value


def standard_functions() -> dict[str, Fn]:
    """Every request-independent function, by the name the rewritten expressions call."""
    functions: dict[str, Fn] = {
        "except": except_,
        "intersect": intersect,
        "isSubset": is_subset,
        "is_subset": is_subset,
        "hasIntersection": has_intersection,
        "has_intersection": has_intersection,
        "inIPAddrRange": in_ip_addr_range,
        "id": identity,
        "cerbos_timestamp": timestamp,
        "cerbos_size": size,
        "charAt": char_at,
        "indexOf": index_of,
        "lastIndexOf": last_index_of,
        "lowerAscii": lower_ascii,
        "upperAscii": upper_ascii,
        "replace": replace,
        "split": split,
        "substring": substring,
        "trim": trim,
        "join": join,
        "reverse": reverse,
        "strings_quote": quote,
        "math_greatest": greatest,
        "math_least": least,
        "math_abs": math_abs,
        "math_sign": math_sign,
        "math_ceil": lambda x: float(math.ceil(_float(x))),
        "math_floor": lambda x: float(math.floor(_float(x))),
        "math_round": math_round,
        "math_trunc": lambda x: float(math.trunc(_float(x))),
        "math_isNaN": lambda x: math.isnan(_float(x)),
        "math_isInf": lambda x: math.isinf(_float(x)),
        "math_isFinite": lambda x: math.isfinite(_float(x)),
        "sets_contains": sets_contains,
        "sets_equivalent": sets_equivalent,
        "sets_intersects": has_intersection,
        "base64_encode": base64_encode,
        "base64_decode": base64_decode,
        **hierarchy_functions(),
        **_getters(),
    }
    return functions


def fixed_now() -> datetime:
    """The one `now()` of a request (Cerbos fixes it once per request)."""
    return datetime.now(UTC)
