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


def test_duplicate_keys_are_refused_naming_the_key_and_its_line() -> None:
    # PyYAML would keep the second `effect`: a DENY rule read as ALLOW
    text = (
        "apiVersion: api.cerbos.dev/v1\n"
        "resourcePolicy:\n"
        "  resource: doc\n"
        "  version: default\n"
        "  rules:\n"
        "    - actions: [view]\n"
        "      effect: EFFECT_DENY\n"
        "      roles: [user]\n"
        "      effect: EFFECT_ALLOW\n"
    )
    with pytest.raises(YamlRefused, match="duplicate key 'effect' at line 9"):
        load_all(text)
    with pytest.raises(PolicyValidationError) as caught:
        Engine.from_policies(text)
    assert "duplicate key 'effect'" in caught.value.issues[0].message
    with pytest.raises(YamlRefused, match="duplicate key 'a'"):
        load_all('{"a": 1, "a": 2}')  # JSON text too
    # a merge key's values are overridden by the keys written out, as YAML says
    assert load_all("x: &x {a: 1, b: 2}\ny: {<<: *x, a: 3}")[0]["y"] == {"a": 3, "b": 2}


@pytest.mark.parametrize(
    ("policy", "path"),
    [
        ('  rules: [{actions: ["vi\\0ew"], effect: EFFECT_ALLOW, roles: [user]}]', "rules[0]"),
        ('  rules: []\n  "sco\\0pe": x', "sco"),
    ],
)
def test_a_nul_character_anywhere_is_a_validation_error_naming_where(
    policy: str, path: str
) -> None:
    head = "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: doc\n  version: default\n"
    text = f"{head}{policy}\n"
    with pytest.raises(PolicyValidationError) as caught:
        Engine.from_policies(text)
    (issue,) = caught.value.issues
    assert "NUL" in issue.message
    assert issue.path.startswith(f"resourcePolicy.{path}")
    with pytest.raises(PolicyValidationError):  # a policy given as data, not text
        Engine.from_policies([{"apiVersion": "api.cerbos.dev/v1", "metadata": {"x\x00": 1}}])
