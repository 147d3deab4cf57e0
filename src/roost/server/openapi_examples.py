"""Example values for the OpenAPI document, made from the wire types' JSON Schemas.

Hand-written because the libraries that make instances of a schema (hypothesis-jsonschema)
draw random ones and belong to the tests; the docs want one small, stable, valid example per
type: a field's default when it has one, else its first enum value or example, else a value of
its type within its bounds. `tests/server/test_openapi.py` checks that each validates.
"""

from __future__ import annotations

import re
from typing import Any

# Strings that satisfy the patterns the wire types use (names, scopes, addresses, links...);
# the first that matches a field's pattern is its example.
_CANDIDATES = (
    "example",
    "orders",
    "orders:read",
    "ann@example.com",
    "https://app.example.com/",
    "text/plain",
    "/reports",
    "123456",
    "0a1b2c3d",
    "EXAMPLE_KEY",
    "fn.hello",
    "e",
)
_FORMATS = {
    "date-time": "2026-01-01T12:00:00Z",
    "date": "2026-01-01",
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
    "email": "ann@example.com",
    "uri": "https://app.example.com/",
    "base64url": "ZXhhbXBsZQ",
    "duration": "P1D",
}


class Examples:
    """One example per schema, over the components the schemas refer to."""

    def __init__(self, components: dict[str, Any]) -> None:
        self._components = components
        self._made: dict[str, Any] = {}
        self._making: set[str] = set()  # a type that holds itself: its inner example is None

    def of(self, schema: Any) -> Any:
        if not isinstance(schema, dict):
            return None
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name in self._making:
                return None
            if name not in self._made:
                self._making.add(name)
                self._made[name] = self.of(self._components.get(name, {}))
                self._making.discard(name)
            return self._made[name]
        for known in ("default", "const"):
            if known in schema:
                return schema[known]
        if schema.get("examples"):
            return schema["examples"][0]
        if schema.get("enum"):
            return schema["enum"][0]
        for choice in ("anyOf", "oneOf"):
            if choice in schema:
                options = [o for o in schema[choice] if o.get("type") != "null"] or schema[choice]
                return self.of(options[0])
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        return self._of_type(kind, schema)

    def _of_type(self, kind: Any, schema: dict[str, Any]) -> Any:
        if kind == "object" or "properties" in schema:
            properties = schema.get("properties", {})
            return {
                name: self.of(properties[name])
                for name in schema.get("required", [])
                if name in properties
            }
        if kind == "array":
            items = schema.get("items", {})
            if items.get("$ref", "").rsplit("/", 1)[-1] in self._making:
                return []  # a tree's children: the example stops at its first level
            count = max(schema.get("minItems", 1), 0)
            return [self.of(items) for _ in range(min(count, 3))]
        if kind == "string":
            return _string(schema)
        if kind == "integer":
            return _number(schema, 1)
        if kind == "number":
            return _number(schema, 1.5)
        if kind == "boolean":
            return True
        return None


def _string(schema: dict[str, Any]) -> str:
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    low: int = schema.get("minLength", 0)
    high: int = schema.get("maxLength", 10_000)
    pattern = schema.get("pattern")
    for candidate in _CANDIDATES:
        if low <= len(candidate) <= high and (
            pattern is None or re.search(pattern, candidate) is not None
        ):
            return candidate
    return "x" * max(low, 1)


def _number(schema: dict[str, Any], fallback: float) -> Any:
    for bound, step in (("minimum", 0), ("exclusiveMinimum", 1)):
        if bound in schema:
            value = schema[bound] + step
            high = schema.get("maximum", schema.get("exclusiveMaximum"))
            return value if high is None or value <= high else high
    if "maximum" in schema and schema["maximum"] < fallback:
        return schema["maximum"]
    return int(fallback) if isinstance(fallback, float) and fallback.is_integer() else fallback
