"""The JSON Schema a function may declare for its params (draft 2020-12, with `jsonschema`).

The schema itself is checked at deploy: it must be a valid draft 2020-12 schema, and every
`$ref` must point inside it (`#...`), so validating params never fetches anything. Params
are checked before the function runs; a refusal is a 400 naming the field at fault.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from roost.errors import ValidationError

_MAX_SCHEMA_BYTES = 64 * 1024
_REFERENCES = ("$ref", "$dynamicRef", "$recursiveRef")


def check_schema(schema: dict[str, Any]) -> None:
    """Refuse a schema that is not one, that is too large, or that refers outside itself."""
    size = len(json.dumps(schema))
    if size > _MAX_SCHEMA_BYTES:
        raise ValidationError(
            f"params_schema is {size} bytes of JSON; the limit is {_MAX_SCHEMA_BYTES}",
            details={"field": "params_schema"},
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        raise ValidationError(
            f"params_schema is not a valid JSON Schema (draft 2020-12): {exc.message}"
            + (f" at {where}" if where else ""),
            details={"field": "params_schema"},
        ) from None
    if outside := _outside_reference(schema):
        raise ValidationError(
            f"params_schema refers to {outside!r}; only references inside it (#...) are allowed",
            details={"field": "params_schema"},
        )


def check_params(schema: dict[str, Any], params: Any) -> None:
    """Refuse params the schema does not accept, naming the first field at fault."""
    error = next(iter(_validator(json.dumps(schema, sort_keys=True)).iter_errors(params)), None)
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
def _validator(schema: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema))


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
