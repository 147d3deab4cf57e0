"""The validator params are checked with: jsonschema's draft 2020-12, less what could take
more than linear time.

- Patterns (`pattern`, `patternProperties`, and those `additionalProperties` consults) are
  matched by RE2, in time linear in the text: `^(a|a)*$` cannot take 2^n steps, as it does
  in Python's backtracking `re`. RE2 has no lookaround and no backreferences; a schema that
  needs them is refused at deploy (`regex`).
- `uniqueItems` hashes each item's canonical JSON (keys sorted, 1.0 written as 1, so that
  JSON Schema's equality is the bytes' equality) where jsonschema compares every pair.
- Every keyword evaluated, and every item or key a keyword goes through, spends a step of
  the check's budget (`budget`); past it the check stops with `TooCostly`, so applicators
  nested in applicators (`anyOf` within `anyOf` along a deep value) cannot multiply into hours.

`unevaluatedProperties` is jsonschema's own, whose search for evaluated keys matches
`patternProperties` with Python's `re`: the two are refused together at deploy.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import msgspec
import re2

Keyword = Callable[[Any, Any, Any, dict[str, Any]], Any]

MAX_PATTERN = 1000  # characters of one pattern (RE2's time is linear in text x pattern)
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the deployer's 400, not a log line
_left: ContextVar[list[int]] = ContextVar("schema_steps_left")


class TooCostly(Exception):
    """The check ran out of its budget of steps."""


@contextlib.contextmanager
def budget(steps: int) -> Iterator[None]:
    """Run the checks inside with `steps` steps to spend, whatever the thread."""
    token = _left.set([steps])
    try:
        yield
    finally:
        _left.reset(token)


@functools.lru_cache(maxsize=1024)
def regex(pattern: str) -> Any:
    """`pattern` compiled by RE2; re2.error says why it cannot be."""
    if len(pattern) > MAX_PATTERN:
        raise re2.error(f"longer than {MAX_PATTERN} characters".encode())
    return re2.compile(pattern, _OPTIONS)


def canonical(value: Any) -> bytes:
    """The canonical JSON of a value: equal bytes for values JSON Schema holds equal."""
    return msgspec.json.encode(_numbers_as_written(value), order="sorted")


def _spend(steps: int) -> None:
    left = _left.get()
    left[0] -= steps
    if left[0] < 0:
        raise TooCostly


def _counted(keyword: Keyword) -> Keyword:
    def counted(validator: Any, value: Any, instance: Any, schema: dict[str, Any]) -> Any:
        _spend(1)
        return keyword(validator, value, instance, schema)

    return counted


def _numbers_as_written(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 1.0 is 1 (and -0.0 is 0)
    if isinstance(value, dict):
        return {key: _numbers_as_written(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers_as_written(item) for item in value]
    return value


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    if validator.is_type(instance, "string") and not regex(pattern).search(instance):
        from jsonschema.exceptions import ValidationError as SchemaViolation

        yield SchemaViolation(f"{instance[:200]!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        _spend(len(instance))
        compiled = regex(pattern)
        for key, value in instance.items():
            if compiled.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: dict[str, Any]
) -> Any:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties") or {}
    patterns = [regex(pattern) for pattern in schema.get("patternProperties") or {}]
    _spend(len(instance) * (1 + len(patterns)))
    extras = sorted(
        key
        for key in instance
        if key not in properties and not any(pattern.search(key) for pattern in patterns)
    )
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        from jsonschema.exceptions import ValidationError as SchemaViolation

        shown = ", ".join(repr(extra[:100]) for extra in extras[:20])
        more = f" and {len(extras) - 20} more" if len(extras) > 20 else ""
        yield SchemaViolation(f"additional properties are not allowed ({shown}{more})")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: dict[str, Any]) -> Any:
    if not unique or not validator.is_type(instance, "array"):
        return
    _spend(len(instance))
    seen: set[bytes] = set()
    for index, item in enumerate(instance):
        key = canonical(item)
        if key in seen:
            from jsonschema.exceptions import ValidationError as SchemaViolation

            yield SchemaViolation(f"item {index} repeats an earlier item (uniqueItems)")
            return
        seen.add(key)


_REPLACED: dict[str, Keyword] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}


@functools.cache
def validator_class() -> Any:
    """jsonschema's draft 2020-12 validator class with the keywords above, each counted
    (made on first use: jsonschema's import is ~0.1 s of a server's start otherwise)."""
    from jsonschema import Draft202012Validator, validators

    return validators.extend(
        Draft202012Validator,
        validators={
            name: _counted(_REPLACED.get(name, keyword))
            for name, keyword in Draft202012Validator.VALIDATORS.items()
        },
    )
