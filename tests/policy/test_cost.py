"""The CEL cost budget: a condition that would run for seconds on the request's attributes is
refused before it runs (400 `policy_cost_exceeded`, naming the resource), never read as false;
the same condition on ordinary attributes answers as usual."""

from __future__ import annotations

from typing import Any

import pytest

from roost.errors import ValidationError
from roost.policy import Engine
from roost.policy.celast import Call, parse
from roost.policy.cost import COST_LIMIT, Bound, estimate, measure, needs_estimate

USER = {"id": "u1", "roles": ["user"]}
NESTED = "R.attr.a.exists(x, R.attr.a.exists(y, R.attr.a.exists(z, x + y + z == 'never')))"
SPLIT = "R.attr.s.split(',').exists(x, R.attr.s.split(',').exists(y, x == 'q'))"


def _policy(expr: str, effect: str = "EFFECT_ALLOW") -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    if effect == "EFFECT_DENY":
        rules.append({"actions": ["view"], "effect": "EFFECT_ALLOW", "roles": ["*"]})
    rules.append(
        {
            "actions": ["view"],
            "effect": effect,
            "roles": ["user"],
            "condition": {"match": {"expr": expr}},
        }
    )
    return {
        "apiVersion": "api.cerbos.dev/v1",
        "resourcePolicy": {"resource": "doc", "version": "default", "rules": rules},
    }


def _entry(attr: dict[str, Any], name: str = "d") -> dict[str, Any]:
    return {"resource": {"kind": "doc", "id": name, "attr": attr}, "actions": ["view"]}


@pytest.mark.parametrize(
    ("expr", "small", "hostile"),
    [
        (NESTED, {"a": [str(i) for i in range(20)]}, {"a": [str(i) for i in range(200)]}),
        (SPLIT, {"s": ",".join("a" * 50)}, {"s": ",".join("a" * 3000)}),
        (
            "R.attr.a.exists(x, !(x in R.attr.a))",
            {"a": [str(i) for i in range(100)]},
            {"a": [str(i) for i in range(5000)]},
        ),
        (
            "hasIntersection(R.attr.a, R.attr.b)",
            {"a": ["x"] * 100, "b": ["y"] * 100},
            {"a": ["x"] * 5000, "b": ["y"] * 5000},
        ),
    ],
)
def test_a_deny_condition_over_the_budget_refuses_the_check_instead_of_allowing(
    expr: str, small: dict[str, Any], hostile: dict[str, Any]
) -> None:
    # Everyone may view, unless the DENY condition holds: read as false when it errs, an
    # over-budget condition would allow. It refuses the request, naming the resource.
    engine = Engine.from_policies([_policy(expr, "EFFECT_DENY")])
    answer = engine.check(USER, [_entry(small)])
    assert answer.results[0].actions == {"view": "EFFECT_ALLOW"}
    with pytest.raises(ValidationError) as caught:
        engine.check(USER, [_entry(small, "a"), _entry(hostile, "b")])
    assert caught.value.code == "policy_cost_exceeded"
    assert caught.value.details["field"] == "resources[1]"


def test_the_budget_is_per_request_across_resources() -> None:
    # each resource is under the per-expression limit, together they are over the request's
    engine = Engine.from_policies([_policy("R.attr.a.all(x, x in R.attr.a)")])
    attr = {"a": [str(i) for i in range(600)]}
    engine.check(USER, [_entry(attr)])
    with pytest.raises(ValidationError) as caught:
        engine.check(USER, [_entry(attr, str(i)) for i in range(40)])
    assert caught.value.code == "policy_cost_exceeded"


def test_a_plan_whose_known_part_is_over_the_budget_is_refused() -> None:
    expr = "P.attr.g.exists(x, P.attr.g.exists(y, x + y == 'never')) || R.attr.owner == P.id"
    engine = Engine.from_policies([_policy(expr)])
    few = {**USER, "attr": {"g": ["a", "b"]}}
    assert engine.plan(few, "doc", "view").filter.kind == "KIND_CONDITIONAL"
    many = {**USER, "attr": {"g": [str(i) for i in range(3000)]}}
    with pytest.raises(ValidationError) as caught:
        engine.plan(many, "doc", "view")
    assert caught.value.code == "policy_cost_exceeded"


def test_the_estimate_follows_the_sizes_read() -> None:
    tree = parse("R.attr.a.all(x, R.attr.b.exists(y, x == y))")
    sizes = {"R__attr__a": measure(["x"] * 30), "R__attr__b": measure(["y"] * 40)}
    cost = estimate(tree, lambda name: sizes.get(name, Bound(1, 1)))
    assert 30 * 40 <= cost <= 30 * 40 * 10
    sizes["R__attr__b"] = measure(["y"] * 400_000)
    assert estimate(tree, lambda name: sizes.get(name, Bound(1, 1)), limit=10**12) > COST_LIMIT


def test_a_few_concatenations_are_linear_and_a_doubling_chain_is_estimated() -> None:
    # `"seen by " + P.id` (most outputs) builds at most a few times the request: not estimated
    assert not needs_estimate(parse('"seen by " + P.id + " on " + R.attr.owner'))
    # variables inlined as shared subtrees: each level doubles what is written out
    doubled = parse("R.attr.s + R.attr.s")
    for _ in range(3):
        doubled = Call("_+_", (doubled, doubled))
    assert needs_estimate(doubled)  # 15 concatenations: 16 times the attribute
    assert needs_estimate(parse('size(R.attr.s.replace("", R.attr.s)) > 0'))


def test_a_doubling_chain_of_variables_is_refused_over_the_budget() -> None:
    policy = _policy("size(V.d3) > 0")
    policy["resourcePolicy"]["variables"] = {
        "local": {
            "d0": "R.attr.s + R.attr.s",
            "d1": "V.d0 + V.d0",
            "d2": "V.d1 + V.d1",
            "d3": "V.d2 + V.d2",
        }
    }
    engine = Engine.from_policies([policy])
    assert engine.check(USER, [_entry({"s": "ab"})]).results[0].actions == {"view": "EFFECT_ALLOW"}
    with pytest.raises(ValidationError) as caught:
        engine.check(USER, [_entry({"s": "x" * 200_000})])
    assert caught.value.code == "policy_cost_exceeded"
