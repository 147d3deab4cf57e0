"""Functions' params schemas: what a deploy refuses (references that lead nowhere or loop,
patterns RE2 cannot take), and what a check of params costs at most."""

from __future__ import annotations

from typing import Any

import pytest

from roost.errors import ValidationError
from roost.services.functions.schemas import check_params, check_schema


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for _ in range(depth):
        schema = {"not": schema}
    return schema


REFUSED_SCHEMAS = {
    "a reference to itself": {"$ref": "#"},
    "a loop through $defs": {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}},
    "a loop through anyOf": {"anyOf": [{"type": "string"}, {"$ref": "#"}]},
    "a loop through if/then": {"if": {"type": "object"}, "then": {"$ref": "#"}},
    "a pointer to nowhere": {"$ref": "#/$defs/missing"},
    "an anchor nobody set": {"$dynamicRef": "#nowhere"},
    "a value that is no subschema": {"enum": [{"pattern": "^(a|a)*$"}], "$ref": "#/enum/0"},
    "a lookahead": {"type": "string", "pattern": "^(?=a)"},
    "a backreference": {"patternProperties": {"(a)\\1": {}}},
    "a pattern too long": {"pattern": "a" * 1001},
    "patterns with unevaluatedProperties": {
        "patternProperties": {"^x-": {}},
        "unevaluatedProperties": False,
    },
    "nesting past the stack": _nested(300),
}


@pytest.mark.parametrize("schema", REFUSED_SCHEMAS.values(), ids=REFUSED_SCHEMAS)
def test_a_schema_that_cannot_be_checked_is_refused_at_deploy(schema: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as refused:
        check_schema(schema)
    assert refused.value.details["field"] == "params_schema"


def test_a_recursive_schema_that_goes_down_the_value_is_allowed() -> None:
    tree: dict[str, Any] = {
        "$defs": {
            "node": {
                "$anchor": "node",
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#node"}}},
            }
        },
        "$ref": "#/$defs/node",
    }
    check_schema(tree)
    check_params(tree, {"kids": [{"kids": []}]})
    with pytest.raises(ValidationError) as refused:
        check_params(tree, {"kids": [{"kids": 3}]})
    assert refused.value.details["field"] == "params.kids[0].kids"


def test_patterns_are_matched_in_linear_time() -> None:
    schema = {"type": "string", "pattern": "^(a|a)*$"}
    check_schema(schema)
    check_params(schema, "a" * 10_000)
    with pytest.raises(ValidationError):
        check_params(schema, "a" * 100_000 + "!")  # 2^100000 steps for a backtracking engine


def test_pattern_properties_and_additional_properties_use_the_same_engine() -> None:
    schema = {
        "properties": {"id": {"type": "integer"}},
        "patternProperties": {"^x-(a|a)*$": {"type": "string"}},
        "additionalProperties": False,
    }
    check_schema(schema)
    check_params(schema, {"id": 1, "x-aaa": "ok"})
    with pytest.raises(ValidationError) as refused:
        check_params(schema, {"id": 1, "x-aa": 3})
    assert refused.value.details["field"] == "params.x-aa"
    with pytest.raises(ValidationError, match="additional properties are not allowed"):
        check_params(schema, {"id": 1, "x-" + "a" * 5000 + "!": "x"})


@pytest.mark.parametrize(
    ("items", "unique"),
    [
        ([1, 1.0], False),  # JSON Schema's equality: one number
        ([{"a": 1, "b": [2]}, {"b": [2.0], "a": 1}], False),  # keys in any order
        ([True, 1], True),  # a boolean is no number
        ([0, False, None, "", [], {}], True),
        ([{"n": n} for n in range(100_000)], True),  # hashed, not compared pairwise
    ],
)
def test_unique_items_follows_json_schema_equality(items: list[Any], unique: bool) -> None:
    schema = {"type": "array", "uniqueItems": True}
    if unique:
        check_params(schema, items)
    else:
        with pytest.raises(ValidationError, match="repeats an earlier item"):
            check_params(schema, items)


def test_a_check_that_would_multiply_stops_at_its_budget() -> None:
    branch = {"properties": {"a": {"$ref": "#/$defs/n"}}}
    schema = {
        "$defs": {"n": {"anyOf": [branch | {"required": ["x"]}, branch]}},
        "$ref": "#/$defs/n",
    }
    check_schema(schema)
    value: dict[str, Any] = {}
    for _ in range(40):  # 2^40 evaluations for jsonschema as it is
        value = {"a": value}
    with pytest.raises(ValidationError, match="steps to check") as refused:
        check_params(schema, value)
    assert refused.value.details["field"] == "params"


def test_params_nested_past_the_stack_are_a_400() -> None:
    schema = {"$defs": {"n": {"properties": {"a": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"}
    value: dict[str, Any] = {}
    for _ in range(2000):
        value = {"a": value}
    with pytest.raises(ValidationError) as refused:
        check_params(schema, value)
    assert refused.value.details["field"] == "params"


def test_a_schema_deployed_before_these_checks_is_a_400_naming_it() -> None:
    with pytest.raises(ValidationError) as refused:
        check_params({"$ref": "#/$defs/missing"}, 1)
    assert refused.value.details["field"] == "params_schema"
