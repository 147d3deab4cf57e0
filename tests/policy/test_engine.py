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


def allowing_each(rules: list[tuple[str, str]]) -> dict[str, Any]:
    """A resource policy of kind doc: each (action, condition) allows the role user."""
    return {
        "apiVersion": "api.cerbos.dev/v1",
        "resourcePolicy": {
            "resource": "doc",
            "version": "default",
            "rules": [
                {
                    "actions": [name],
                    "effect": "EFFECT_ALLOW",
                    "roles": ["user"],
                    "condition": {"match": {"expr": expr}},
                }
                for name, expr in rules
            ],
        },
    }


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


CONTRADICTIONS = """
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: memo
  version: default
  rules:
    - actions: [view, edit, share]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          all:
            of:
              - expr: R.attr.owner == P.id
              - expr: R.attr.n > 2
    - actions: [view]
      effect: EFFECT_DENY
      roles: [user]
      condition:
        match:
          expr: R.attr.owner == P.id
    - actions: [edit]
      effect: EFFECT_DENY
      roles: [user]
      condition:
        match:
          expr: R.attr.owner == P.id && R.attr.n > 2
"""


def test_plans_fold_a_condition_that_contradicts_itself_as_cerbos_does() -> None:
    engine = Engine.from_policies(CONTRADICTIONS)
    user = {"id": "u", "roles": ["user"]}
    # allowed where owner == u && n > 2, denied where owner == u: never
    assert engine.plan(user, "memo", "view").filter.kind == "KIND_ALWAYS_DENIED"
    # denied where the whole of the allowing condition holds: never allowed either
    assert engine.plan(user, "memo", "edit").filter.kind == "KIND_ALWAYS_DENIED"
    assert engine.plan(user, "memo", "share").filter.kind == "KIND_CONDITIONAL"
    mine = {"kind": "memo", "id": "m", "attr": {"owner": "u", "n": 5}}
    entries = [{"resource": mine, "actions": ["view", "edit", "share"]}]
    assert engine.check(user, entries).results[0].actions == {
        "view": "EFFECT_DENY",
        "edit": "EFFECT_DENY",
        "share": "EFFECT_ALLOW",
    }


def test_a_timestamp_literal_is_read_once_and_compares_as_before() -> None:
    # folded when the policies compile (no call back into Python per check): the same
    # instant, offset and precision (microseconds, as Roost reads request timestamps)
    rules = [
        ("before", 'timestamp(R.attr.at) < timestamp("2025-01-01T09:00:00+09:00")'),
        ("fraction", 'timestamp("2025-01-01T09:00:00.1234567+09:00") > timestamp(R.attr.at)'),
        ("same", 'timestamp("2025-01-01T00:00:00Z") == timestamp(R.attr.at)'),
        ("bad", 'timestamp("nope") > timestamp(R.attr.at)'),  # errs when run, as before
    ]
    engine = Engine.from_policies([allowing_each(rules)])
    user = {"id": "u", "roles": ["user"]}
    names = [name for name, _ in rules]
    assert effects(engine, user, {"at": "2024-12-31T23:59:59Z"}, names) == {
        "before": "EFFECT_ALLOW",
        "fraction": "EFFECT_ALLOW",
        "same": "EFFECT_DENY",
        "bad": "EFFECT_DENY",
    }
    assert effects(engine, user, {"at": "2025-01-01T00:00:00Z"}, names) == {
        "before": "EFFECT_DENY",
        "fraction": "EFFECT_ALLOW",
        "same": "EFFECT_ALLOW",
        "bad": "EFFECT_DENY",
    }
    assert effects(engine, user, {"at": "2025-01-01T00:00:00.1234569Z"}, names)["fraction"] == (
        "EFFECT_DENY"  # both cut to 00:00:00.123456
    )


def test_plans_are_remembered_per_principal_and_never_across_now() -> None:
    policy = """
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.owner == P.id
"""
    engine = Engine.from_policies(policy)
    ann, bob = {"id": "ann", "roles": ["user"]}, {"id": "bob", "roles": ["user"]}
    first = engine.plan(ann, "doc", "view").filter
    assert engine.plan(ann, "doc", "view").filter == first
    assert engine.plan(bob, "doc", "view").filter != first  # keyed by the whole principal
    assert engine.plan({**ann, "roles": ["guest"]}, "doc", "view").filter.kind == (
        "KIND_ALWAYS_DENIED"
    )
    assert engine.plan({**ann, "attr": {"x": 1}}, "doc", "view").filter == first
    timed = Engine.from_policies(policy.replace("R.attr.owner == P.id", "R.attr.until > now()"))
    plans = [timed.plan(ann, "doc", "view").filter.condition for _ in range(2)]
    assert plans[0] != plans[1]  # each plan reads its own now()


def test_plans_of_a_large_principal_are_not_remembered() -> None:
    engine = Engine.from_policies(CONTRADICTIONS)
    big = {"id": "u", "roles": ["user"], "attr": {"blob": "x" * 10_000}}
    for _ in range(3):
        assert engine.plan(big, "memo", "share").filter.kind == "KIND_CONDITIONAL"
    assert not engine._plans  # memory a caller could fill is not spent on them
    engine.plan({"id": "u", "roles": ["user"]}, "memo", "share")
    assert len(engine._plans) == 1
    # nor those of a kind some condition reads now() for (DOC's `late`)
    timed = Engine.from_policies(DOC)
    timed.plan({"id": "u", "roles": ["user"]}, "doc", "view")
    assert not timed._plans


def test_timestamp_parts_without_a_zone_are_read_in_utc_as_in_cerbos() -> None:
    # 09:00 in Tokyo is midnight UTC: CEL's getters default to UTC, never to the offset the
    # timestamp was written with (literal or request attribute alike)
    rules = [
        ("literal", 'timestamp("2025-01-01T09:00:00+09:00").getHours() == 0'),
        (
            "attribute",
            "timestamp(R.attr.at).getHours() == 0 && timestamp(R.attr.at).getDate() == 1",
        ),
        ("zoned", 'timestamp(R.attr.at).getHours("Asia/Tokyo") == 9'),
    ]
    engine = Engine.from_policies([allowing_each(rules)])
    user = {"id": "u", "roles": ["user"]}
    names = [name for name, _ in rules]
    assert effects(engine, user, {"at": "2025-01-01T09:00:00+09:00"}, names) == dict.fromkeys(
        names, "EFFECT_ALLOW"
    )
