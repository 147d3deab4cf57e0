"""A params schema as the graph its validation walks, checked at deploy.

Validation applies some subschemas to the same value as the schema holding them (`$ref`,
`$dynamicRef`, `allOf`, `anyOf`, `oneOf`, `not`, `if`/`then`/`else`, `dependentSchemas`: "in
place") and the others to a part of that value (`properties`, `items`, ...). A loop of
in-place steps never reaches a smaller value, so the validator would recurse until the stack
runs out on the first call: such a schema is refused, as is a reference that leads nowhere or
to something that is not one of the schema's own subschemas (an `enum` value, say, that the
meta-schema never checked). The walk also answers every pattern the schema holds, for the
caller to compile.

References are followed as `jsonschema` follows them (`referencing`, from the base URI of the
subschema that holds them; `$dynamicRef` as a plain reference, as jsonschema 4 does).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from roost.errors import ValidationError

_IN_PLACE_ONE: tuple[str, ...] = ("not", "if", "then", "else")
_IN_PLACE_LIST: tuple[str, ...] = ("allOf", "anyOf", "oneOf")
_IN_PLACE_MAP: tuple[str, ...] = ("dependentSchemas",)
_BELOW_ONE: tuple[str, ...] = (
    "additionalProperties",
    "propertyNames",
    "items",
    "contains",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_BELOW_LIST: tuple[str, ...] = ("prefixItems",)
# `$defs` (and the older `definitions`) are applied to nothing: only references reach them
_BELOW_MAP: tuple[str, ...] = ("properties", "patternProperties", "$defs", "definitions")
_REFERENCES = ("$ref", "$dynamicRef")


class Pattern(msgspec.Struct):
    """A regular expression of the schema, and where it is (a JSON pointer)."""

    text: str
    where: str


class Walked(msgspec.Struct):
    """What the walk found: the schema's patterns, and whether it uses
    unevaluatedProperties anywhere."""

    patterns: list[Pattern]
    unevaluated_properties: bool


class _Node(msgspec.Struct):
    schema: dict[str, Any]
    where: str
    resolver: Any  # referencing's Resolver (not exported by name)
    in_place: list[int] = msgspec.field(
        default_factory=list
    )  # ids of the subschemas applied in place


def walk(schema: dict[str, Any]) -> Walked:
    """Refuse a schema whose references lead nowhere, outside its subschemas, or round in a
    loop that checks nothing (ValidationError naming params_schema); answer what it holds."""
    nodes, patterns = _nodes(schema)
    for node in nodes.values():
        _follow_references(node, nodes)
    loop = _in_place_loop(nodes)
    if loop is not None:
        raise _refused(
            f"params_schema loops back on itself at {loop or '/'} without checking anything "
            "(through $ref, allOf, anyOf, oneOf, not, if/then/else or dependentSchemas)"
        )
    unevaluated = any("unevaluatedProperties" in node.schema for node in nodes.values())
    return Walked(patterns, unevaluated)


def _nodes(schema: dict[str, Any]) -> tuple[dict[int, _Node], list[Pattern]]:
    """Every subschema object, by id, with the resolver its references are read with."""
    from referencing import Registry  # on first use, as jsonschema (see schema_validator)
    from referencing.jsonschema import DRAFT202012

    nodes: dict[int, _Node] = {}
    patterns: list[Pattern] = []
    root = Registry().resolver_with_root(DRAFT202012.create_resource(schema))
    pending: list[tuple[Any, str, Any]] = [(schema, "", root)]
    while pending:
        sub, where, outer = pending.pop()
        if not isinstance(sub, dict) or id(sub) in nodes:
            continue  # true and false apply nothing
        resolver = outer.in_subresource(DRAFT202012.create_resource(sub))
        node = nodes[id(sub)] = _Node(sub, where, resolver)
        if isinstance(sub.get("pattern"), str):
            patterns.append(Pattern(sub["pattern"], f"{where}/pattern"))
        for key in sub.get("patternProperties") or {}:
            patterns.append(Pattern(key, f"{where}/patternProperties"))
        for path, child, in_place in _children(sub):
            pending.append((child, f"{where}/{path}", resolver))
            if in_place and isinstance(child, dict):
                node.in_place.append(id(child))
    return nodes, patterns


def _children(schema: dict[str, Any]) -> Iterator[tuple[str, Any, bool]]:
    """(path from the schema, subschema, applied in place) of each subschema it holds (the
    meta-schema was checked first: lists are lists and maps are objects)."""
    for keywords, in_place in ((_IN_PLACE_ONE, True), (_BELOW_ONE, False)):
        for key in keywords:
            if key in schema:
                yield key, schema[key], in_place
    for keywords, in_place in ((_IN_PLACE_LIST, True), (_BELOW_LIST, False)):
        for key in keywords:
            for index, item in enumerate(schema.get(key) or ()):
                yield f"{key}/{index}", item, in_place
    for keywords, in_place in ((_IN_PLACE_MAP, True), (_BELOW_MAP, False)):
        for key in keywords:
            held = schema.get(key)
            if isinstance(held, dict):
                for name, item in held.items():
                    yield f"{key}/{_escaped(name)}", item, in_place


def _follow_references(node: _Node, nodes: dict[int, _Node]) -> None:
    from referencing.exceptions import Unresolvable

    for keyword in _REFERENCES:
        reference = node.schema.get(keyword)
        if not isinstance(reference, str):
            continue
        where = f"{node.where}/{keyword}"
        try:
            target = node.resolver.lookup(reference).contents
        except Unresolvable:
            raise _refused(
                f"params_schema refers to {reference[:200]!r} at {where}, which it does not define"
            ) from None
        if isinstance(target, bool):
            continue
        if not isinstance(target, dict) or id(target) not in nodes:
            raise _refused(
                f"params_schema refers to {reference[:200]!r} at {where}, which is not one of "
                "its subschemas"
            )
        node.in_place.append(id(target))


def _in_place_loop(nodes: dict[int, _Node]) -> str | None:
    """Where a loop of in-place steps comes back (a depth-first search without recursion:
    a schema of 64 KiB nests deeper than Python's stack)."""
    done: set[int] = set()
    for start in nodes:
        if start in done:
            continue
        on_path: set[int] = {start}
        stack: list[tuple[int, Iterator[int]]] = [(start, iter(nodes[start].in_place))]
        while stack:
            current, targets = stack[-1]
            target = next(targets, None)
            if target is None:
                stack.pop()
                on_path.discard(current)
                done.add(current)
            elif target in on_path:
                return nodes[target].where
            elif target not in done:
                on_path.add(target)
                stack.append((target, iter(nodes[target].in_place)))
    return None


def _escaped(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _refused(message: str) -> ValidationError:
    return ValidationError(message, details={"field": "params_schema"})
