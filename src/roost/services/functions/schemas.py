"""The JSON Schema a function may declare for its params (draft 2020-12, with `jsonschema`).

The schema is checked whole at deploy (`check_schema`): a valid draft 2020-12 schema of at
most 64 KiB, whose references all point inside it (`#...`: validating never fetches
anything) at subschemas of its own and never round in a loop that checks nothing
(`schema_graph`), and whose patterns RE2 compiles. So a deployed schema cannot fail, or
recurse forever, on a call.

Params are checked before the function runs (`check_params`) by the validator of
`schema_validator`: RE2 patterns, uniqueItems by hashing, and a budget of steps in proportion
to the params' size (at most `MAX_STEPS`), so a check takes time linear in the params
whatever the deployer wrote. `check_params_soon` does
it on the event loop only while it is cheap (small params, few steps), else in a thread. A
refusal is a 400 naming the field at fault.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import TYPE_CHECKING, Any

import msgspec
import re2

from roost.errors import ValidationError
from roost.services.functions.schema_graph import walk
from roost.services.functions.schema_validator import TooCostly, budget, regex, validator_class

if TYPE_CHECKING:  # jsonschema loads on first use (see schema_validator)
    from jsonschema.exceptions import ValidationError as SchemaViolation

# A check's budget of steps (keyword evaluations; items and keys gone through), in
# proportion to the params' JSON: a step costs up to ~7 us, so the costliest check of small
# params takes ~0.15 s, and of any params ~7 s (in a thread). A plain check takes far fewer.
BASE_STEPS = 20_000
STEPS_PER_BYTE = 2
MAX_STEPS = 1_000_000
_INLINE_STEPS = 2_000  # what a check may spend on the event loop (~10 ms at most)
_INLINE_BYTES = 64 * 1024  # params larger than this are checked in a thread at once
_MAX_SCHEMA_BYTES = 64 * 1024
_REFERENCES = ("$ref", "$dynamicRef", "$recursiveRef")


def check_schema(schema: dict[str, Any]) -> None:
    """Refuse a schema that is not one, that is too large, that refers outside itself or to
    nothing, that loops, or whose patterns RE2 cannot take."""
    size = len(json.dumps(schema))
    if size > _MAX_SCHEMA_BYTES:
        raise _bad_schema(
            f"params_schema is {size} bytes of JSON; the limit is {_MAX_SCHEMA_BYTES}"
        )
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        raise _bad_schema(
            f"params_schema is not a valid JSON Schema (draft 2020-12): {exc.message}"
            + (f" at {where}" if where else "")
        ) from None
    except RecursionError:
        raise _bad_schema("params_schema nests too deep to be checked") from None
    if outside := _outside_reference(schema):
        raise _bad_schema(
            f"params_schema refers to {outside!r}; only references inside it (#...) are allowed"
        )
    walked = walk(schema)
    for pattern in walked.patterns:
        try:
            regex(pattern.text)
        except re2.error as exc:
            raise _bad_schema(
                f"params_schema has a pattern at {pattern.where} that RE2 cannot take "
                f"({_reason(exc)}): patterns are matched in linear time, without lookaround "
                "or backreferences"
            ) from None
    if walked.patterns and walked.unevaluated_properties:
        raise _bad_schema(
            "params_schema may not use unevaluatedProperties together with patterns "
            "(jsonschema would match them with a backtracking engine when it looks for "
            "evaluated properties)"
        )


def check_params(schema: dict[str, Any], params: Any, *, steps: int | None = None) -> None:
    """Refuse params the schema does not accept, naming the first field at fault, or that
    take more than `steps` steps to check (by default: their share, `steps_for`)."""
    if steps is None:
        steps = steps_for(_size(params))
    try:
        error = _first_error(schema, params, steps)
    except TooCostly:
        raise ValidationError(
            f"params take more than {steps} steps to check against the function's "
            "params_schema; send less, or a simpler shape",
            details={"field": "params"},
        ) from None
    _refuse(error)


async def check_params_soon(schema: dict[str, Any], params: Any) -> None:
    """`check_params`, on the event loop while it is cheap, else in a thread (where the
    budget bounds it too): small params against a plain schema cost no thread hop."""
    size = _size(params)
    if size <= _INLINE_BYTES:
        try:
            error = _first_error(schema, params, _INLINE_STEPS)
        except TooCostly:
            pass
        else:
            _refuse(error)
            return
    await asyncio.to_thread(check_params, schema, params, steps=steps_for(size))


def _size(params: Any) -> int:
    try:
        return len(msgspec.json.encode(params))
    except RecursionError:
        raise _too_deep() from None


def _too_deep() -> ValidationError:
    return ValidationError(
        "params nest too deep to be checked against the function's params_schema",
        details={"field": "params"},
    )


def steps_for(size: int) -> int:
    """The steps a check of `size` bytes of params may take."""
    return min(MAX_STEPS, BASE_STEPS + STEPS_PER_BYTE * size)


def _first_error(schema: dict[str, Any], params: Any, steps: int) -> SchemaViolation | None:
    from referencing.exceptions import Unresolvable

    try:
        with budget(steps):
            validator = _validator(json.dumps(schema, sort_keys=True))
            error: SchemaViolation | None = next(iter(validator.iter_errors(params)), None)
    except RecursionError:
        raise _too_deep() from None
    except (Unresolvable, re2.error) as exc:  # a schema deployed before these were refused
        raise _bad_schema(
            f"the function's params_schema cannot be used ({exc}); deploy it again"[:1000]
        ) from None
    return error


def _refuse(error: SchemaViolation | None) -> None:
    if error is None:
        return
    field = "params" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    )
    raise ValidationError(
        f"{field} does not match the function's params_schema: {error.message}"[:1000],
        details={"field": field},
    )


@functools.lru_cache(maxsize=256)
def _validator(schema: str) -> Any:
    return validator_class()(json.loads(schema))


def _outside_reference(value: Any) -> str | None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _REFERENCES and not (isinstance(item, str) and item.startswith("#")):
                return str(item)[:200]
            if found := _outside_reference(item):
                return found
    elif isinstance(value, list):
        for item in value:
            if found := _outside_reference(item):
                return found
    return None


def _reason(exc: re2.error) -> str:
    reason = exc.args[0] if exc.args else exc
    return (reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason))[:200]


def _bad_schema(message: str) -> ValidationError:
    return ValidationError(message, details={"field": "params_schema"})
