"""Cerbos' JSON answers and Roost's, reduced to what must agree."""

from __future__ import annotations

from typing import Any

import msgspec


def _value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _value(v) for k, v in sorted(value.items())}
    return value


def outputs_agree(theirs: list[tuple[str, str, str]], ours: list[tuple[str, str, str]]) -> bool:
    """Outputs that both emit for one rule and action have the same values.

    Which outputs Cerbos emits, and how often, depends on the order it walks the rows of a
    scope in, and that order changes from one run to the next (Go map iteration): a DENY or
    an ALLOW met first cuts the walk short. Only the values can be held to agreement.
    """
    values: dict[tuple[str, str], set[str]] = {}
    for src, action, value in theirs:
        values.setdefault((src, action), set()).add(value)
    mine: dict[tuple[str, str], set[str]] = {}
    for src, action, value in ours:
        mine.setdefault((src, action), set()).add(value)
    return all(values[key] == mine[key] for key in values.keys() & mine.keys())


def result_view(result: Any) -> dict[str, Any]:
    """Effects, matched policy and scope per action, derived roles and outputs (as a multiset)."""
    data = result if isinstance(result, dict) else msgspec.to_builtins(result)
    meta = data.get("meta") or {}
    actions = meta.get("actions") or {}
    outputs = sorted(
        (o["src"], o["action"], repr(_value(o.get("val")))) for o in data.get("outputs") or []
    )
    return {
        "effects": dict(sorted(data["actions"].items())),
        "policies": {
            a: (m.get("matchedPolicy", ""), m.get("matchedScope", ""))
            for a, m in sorted(actions.items())
        },
        "derived": sorted(meta.get("effectiveDerivedRoles") or []),
        "outputs": outputs,
    }
