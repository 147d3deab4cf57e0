"""The engine on hand-written policies: validation, precedence, CEL semantics, refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from roost.errors import ValidationError
from roost.policy import Engine, PolicyValidationError

DOC = """
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: [admin]
    - actions: [delete]
      effect: EFFECT_DENY
      roles: [admin]
      condition:
        match:
          expr: R.attr.locked
    - actions: [view, "a:*"]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          any:
            of:
              - expr: R.attr.owner == P.id
              - expr: R.attr.n == 1
    - actions: [sum]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.n + 1 == 2.0
    - actions: [late]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: now() > timestamp("2030-01-01T00:00:00Z") && now() == now()
---
apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: boss
  version: default
  rules:
    - resource: doc
      actions:
        - action: delete
          effect: EFFECT_ALLOW
"""


def effects(
    engine: Engine,
    principal: dict[str, Any],
    attr: dict[str, Any],
    actions: list[str],
    **kwargs: Any,
) -> dict[str, str]:
    result = engine.check(
        principal,
        [{"resource": {"kind": "doc", "id": "d", "attr": attr}, "actions": actions}],
        **kwargs,
    )
    return dict(result.results[0].actions)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_policies(DOC)


def test_deny_wins_over_allow_for_one_role(engine: Engine) -> None:
    admin = {"id": "a", "roles": ["admin"]}
    assert effects(engine, admin, {"locked": True}, ["delete", "view"]) == {
        "delete": "EFFECT_DENY",
        "view": "EFFECT_ALLOW",
    }


def test_principal_policy_decides_before_resource_policies(engine: Engine) -> None:
    boss = {"id": "boss", "roles": ["user"]}
    assert effects(engine, boss, {"locked": True}, ["delete"]) == {"delete": "EFFECT_ALLOW"}
    meta = engine.check(boss, [{"resource": {"kind": "doc", "id": "d"}, "actions": ["delete"]}])
    assert meta.results[0].meta.actions["delete"].matched_policy == "principal.boss.vdefault"


def test_wildcard_actions_stop_at_the_colon(engine: Engine) -> None:
    user = {"id": "u", "roles": ["user"]}
    assert effects(engine, user, {"owner": "u"}, ["a:b", "a:b:c", "view"]) == {
        "a:b": "EFFECT_ALLOW",
        "a:b:c": "EFFECT_DENY",
        "view": "EFFECT_ALLOW",
    }


def test_json_numbers_are_doubles_as_in_cerbos(engine: Engine) -> None:
    user = {"id": "u", "roles": ["user"]}
    # 1 == 1.0 holds; double + int is an error, so the condition is false.
    assert effects(engine, user, {"n": 1}, ["view", "sum"]) == {
        "view": "EFFECT_ALLOW",
        "sum": "EFFECT_DENY",
    }


def test_now_is_the_one_given_for_the_request(engine: Engine) -> None:
    user = {"id": "u", "roles": ["user"]}
    later = datetime(2031, 1, 1, tzinfo=UTC)
    assert effects(engine, user, {}, ["late"], now=later) == {"late": "EFFECT_ALLOW"}
    assert effects(engine, user, {}, ["late"], now=datetime(2029, 1, 1, tzinfo=UTC)) == {
        "late": "EFFECT_DENY"
    }


def test_unknown_kind_is_denied_with_no_match(engine: Engine) -> None:
    result = engine.check(
        {"id": "u", "roles": ["user"]},
        [{"resource": {"kind": "other", "id": "x"}, "actions": ["view"]}],
    )
    assert result.results[0].actions == {"view": "EFFECT_DENY"}
    assert result.results[0].meta.actions["view"].matched_policy == "NO_MATCH"


def test_plan_leaves_the_resource_part_as_residual(engine: Engine) -> None:
    user = {"id": "u", "roles": ["user"]}
    plan = engine.plan(user, "doc", "view").filter
    assert plan.kind == "KIND_CONDITIONAL"
    assert plan.condition == {
        "expression": {
            "operator": "or",
            "operands": [
                {
                    "expression": {
                        "operator": "eq",
                        "operands": [{"variable": "request.resource.attr.owner"}, {"value": "u"}],
                    }
                },
                {
                    "expression": {
                        "operator": "eq",
                        "operands": [{"variable": "request.resource.attr.n"}, {"value": 1}],
                    }
                },
            ],
        }
    }
    assert engine.plan({"id": "a", "roles": ["admin"]}, "doc", "view").filter.kind == (
        "KIND_ALWAYS_ALLOWED"
    )
    assert engine.plan(user, "doc", "edit").filter.kind == "KIND_ALWAYS_DENIED"


def test_a_refused_set_lists_every_problem() -> None:
    bad = """
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  scope: acme.hr
  importDerivedRoles: [nowhere]
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.x ==
    - actions: [edit]
      effect: EFFECT_ALLOW
      derivedRoles: [ghost]
      condition:
        match:
          expr: undefinedFn(P.id) && V.nope
---
apiVersion: api.cerbos.dev/v1
exportVariables:
  name: common
  definitions:
    a: "1 +"
---
apiVersion: api.cerbos.dev/v1
exportVariables:
  name: common
  definitions: {}
---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  typo: 1
"""
    with pytest.raises(PolicyValidationError) as caught:
        Engine.from_policies(bad)
    messages = [(issue.path, issue.message) for issue in caught.value.issues]
    text = str(messages)
    assert "importDerivedRoles[0]" in text  # missing import
    assert "rules[0].condition.match.expr" in text  # syntax error, with its path
    assert "undeclared reference to 'undefinedFn'" in text
    assert "derived role 'ghost'" in text
    assert "duplicate policy" in text
    assert "missing policy for the parent scope" in text
    assert "typo" in text  # unknown field
    assert caught.value.status_code == 400
    assert len(caught.value.issues) >= 7


@pytest.mark.parametrize(
    ("principal", "resources"),
    [
        ({"id": "u", "roles": []}, [{"resource": {"kind": "doc"}, "actions": ["v"]}]),
        ({"id": "", "roles": ["u"]}, [{"resource": {"kind": "doc"}, "actions": ["v"]}]),
        ({"id": "u", "roles": ["u"]}, [{"resource": {"kind": ""}, "actions": ["v"]}]),
        ({"id": "u", "roles": ["u"]}, [{"resource": {"kind": "doc"}, "actions": []}]),
        ({"id": "u", "roles": "u"}, [{"resource": {"kind": "doc"}, "actions": ["v"]}]),
        ({"id": "u", "roles": ["u"]}, [{"resource": {"kind": "doc"}}]),
        ({"id": "u", "roles": ["u"]}, [{"resource": {"kind": "doc"}, "actions": ["v"]}] * 1001),
    ],
)
def test_bad_requests_are_refused_with_a_400(
    engine: Engine, principal: dict[str, Any], resources: list[dict[str, Any]]
) -> None:
    with pytest.raises(ValidationError) as caught:
        engine.check(principal, resources)
    assert caught.value.status_code == 400


def test_deeply_nested_attributes_are_refused(engine: Engine) -> None:
    deep: dict[str, Any] = {}
    for _ in range(200):
        deep = {"x": deep}
    with pytest.raises(ValidationError):
        engine.check(
            {"id": "u", "roles": ["user"], "attr": deep},
            [{"resource": {"kind": "doc", "id": "d"}, "actions": ["view"]}],
        )


def test_expressions_with_nul_or_huge_nesting_are_validation_errors() -> None:
    for expr in ["R.attr.x == '\\x00'" + "\x00", "(" * 300 + "1" + ")" * 300]:
        policy = {
            "apiVersion": "api.cerbos.dev/v1",
            "resourcePolicy": {
                "resource": "doc",
                "version": "default",
                "rules": [
                    {
                        "actions": ["v"],
                        "effect": "EFFECT_ALLOW",
                        "roles": ["u"],
                        "condition": {"match": {"expr": expr}},
                    }
                ],
            },
        }
        with pytest.raises(PolicyValidationError):
            Engine.from_policies([policy])
