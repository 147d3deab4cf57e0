"""Policy YAML read with bounded size, depth and alias expansion; timestamps kept as text."""

from __future__ import annotations

import pytest

from roost.policy import Engine, PolicyValidationError
from roost.policy.yamlsafe import MAX_DEPTH, YamlRefused, load_all


def test_anchors_within_bounds_read_as_usual_and_timestamps_stay_text() -> None:
    text = "a: &shared {x: 1}\nb: *shared\nwhen: 2024-01-01T00:00:00Z\n---\n---\nc: [1, 2]\n"
    assert load_all(text) == [
        {"a": {"x": 1}, "b": {"x": 1}, "when": "2024-01-01T00:00:00Z"},
        {"c": [1, 2]},
    ]


def test_aliases_that_expand_past_the_limit_are_refused_before_anything_is_built() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    with pytest.raises(YamlRefused, match="aliases are expanded"):
        load_all("\n".join(lines))


@pytest.mark.parametrize(
    "text",
    [
        "".join(" " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 1)) + " " * (MAX_DEPTH + 1) + "v",
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_deep_nesting_is_refused(text: str) -> None:
    with pytest.raises(YamlRefused):
        load_all(text)


def test_variables_that_double_or_chain_past_the_limits_are_validation_errors() -> None:
    def policy(variables: dict[str, str], last: str) -> dict[str, object]:
        rule = {
            "actions": ["view"],
            "effect": "EFFECT_ALLOW",
            "roles": ["user"],
            "condition": {"match": {"expr": f"V.{last} > 0"}},
        }
        return {
            "apiVersion": "api.cerbos.dev/v1",
            "resourcePolicy": {
                "resource": "doc",
                "version": "default",
                "variables": {"local": variables},
                "rules": [rule],
            },
        }

    doubling = {"v0": "R.attr.a"} | {f"v{i}": f"V.v{i - 1} + V.v{i - 1}" for i in range(1, 40)}
    chain = {"v0": "R.attr.a"} | {f"v{i}": f"V.v{i - 1} + 1" for i in range(1, 3000)}
    for variables, last in ((doubling, "v39"), (chain, "v2999")):
        for order in (variables, dict(reversed(list(variables.items())))):
            with pytest.raises(PolicyValidationError):
                Engine.from_policies([policy(order, last)])
    short = {"v0": "R.attr.a"} | {f"v{i}": f"V.v{i - 1} + 1" for i in range(1, 32)}
    for order in (short, dict(reversed(list(short.items())))):
        Engine.from_policies([policy(order, "v31")])  # 32 levels: accepted in any order
