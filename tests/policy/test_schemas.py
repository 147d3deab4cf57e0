"""Attribute schemas (`schemas:` in resource policies, `_schemas/*.json`): validated as Cerbos'
`schema.enforcement` says, compared with the Cerbos binary on paths, sources and effects (the
messages are each JSON Schema library's own)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from roost.policy import Engine, PolicyValidationError
from roost.policy.schemas import Enforcement
from tests.policy.cerbos import Cerbos

PRINCIPAL = {
    "type": "object",
    "properties": {"department": {"type": "string", "enum": ["marketing", "engineering"]}},
    "required": ["department"],
}
RESOURCE = {
    "type": "object",
    "properties": {
        "owner": {"type": "string"},
        "n": {"type": "number", "minimum": 0},
        "tags": {"type": "array", "items": {"$ref": "cerbos:///tag.json"}},
    },
    "required": ["owner"],
    "additionalProperties": False,
}
TAG = {"type": "string", "maxLength": 3}
SCHEMAS: dict[str, dict[str, Any]] = {
    "principal.json": PRINCIPAL,
    "resource.json": RESOURCE,
    "tag.json": TAG,
}


def _policies() -> list[dict[str, Any]]:
    schemas = {
        "principalSchema": {"ref": "cerbos:///principal.json"},
        "resourceSchema": {
            "ref": "cerbos:///resource.json",
            "ignoreWhen": {"actions": ["create", "del*"]},
        },
    }
    rules = [{"actions": ["*"], "effect": "EFFECT_ALLOW", "roles": ["user"]}]
    root = {"resource": "doc", "version": "default", "schemas": schemas, "rules": rules}
    scoped = {"resource": "doc", "version": "default", "scope": "a", "rules": rules}
    return [
        {"apiVersion": "api.cerbos.dev/v1", "resourcePolicy": root},
        {"apiVersion": "api.cerbos.dev/v1", "resourcePolicy": scoped},
    ]


def _schema_docs() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "api.cerbos.dev/v1", "schema": {"id": name, "definition": definition}}
        for name, definition in SCHEMAS.items()
    ]


GOOD_PRINCIPAL = {"id": "u", "roles": ["user"], "attr": {"department": "marketing"}}
BAD_PRINCIPAL = {"id": "u", "roles": ["user"], "attr": {"department": "x"}}
CASES: list[tuple[dict[str, Any], dict[str, Any], list[str]]] = [
    (GOOD_PRINCIPAL, {"owner": "u", "n": 1, "tags": ["a"]}, ["view"]),
    (BAD_PRINCIPAL, {"owner": "u"}, ["view"]),
    (GOOD_PRINCIPAL, {"n": -1, "extra": 1, "tags": ["long", 2]}, ["view", "edit"]),
    (GOOD_PRINCIPAL, {"n": -1}, ["create", "delete"]),  # the resource's schema ignores them
    (GOOD_PRINCIPAL, {"n": -1}, ["create", "view"]),  # not every action ignored: checked
    (BAD_PRINCIPAL, {"n": -1}, ["create"]),
]


def _engine(mode: Enforcement) -> Engine:
    return Engine.from_policies(_policies() + _schema_docs(), schema_enforcement=mode)


def _shape(result: dict[str, Any]) -> tuple[Any, ...]:
    errors = sorted((e["source"], e["path"]) for e in result.get("validationErrors", []))
    policies = {a: m["matchedPolicy"] for a, m in result["meta"]["actions"].items()}
    return result["actions"], errors, policies


def _roost(engine: Engine, principal: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(engine.check(principal, [entry]).results[0])
    return result


@pytest.mark.parametrize("mode", ["none", "warn", "reject"])
def test_enforcement_modes_agree_with_cerbos(cerbos_binary: Path, mode: Enforcement) -> None:
    engine = _engine(mode)
    cerbos = Cerbos(cerbos_binary, _policies(), schemas=SCHEMAS, enforcement=mode)
    try:
        for principal, attr, actions in CASES:
            for scope in ("", "a"):
                resource = {"kind": "doc", "id": "d", "attr": attr, "scope": scope}
                entry = {"resource": resource, "actions": actions}
                theirs = cerbos.check(principal, [entry])["results"][0]
                ours = _roost(engine, principal, entry)
                assert _shape(ours) == _shape(theirs), (mode, principal, attr, actions, scope)
            plan_attr = {"n": -1}
            theirs_plan = cerbos.plan(principal, "doc", "view", attr=plan_attr)
            ours_plan = msgspec.to_builtins(engine.plan(principal, "doc", "view", attr=plan_attr))
            assert ours_plan["filter"]["kind"] == theirs_plan["filter"]["kind"]
            assert sorted(
                (e["source"], e["path"]) for e in ours_plan.get("validationErrors", [])
            ) == sorted((e["source"], e["path"]) for e in theirs_plan.get("validationErrors", []))
    finally:
        cerbos.stop()


def test_reject_denies_every_action_and_names_each_problem() -> None:
    result = _roost(
        _engine("reject"),
        GOOD_PRINCIPAL,
        {"resource": {"kind": "doc", "id": "d", "attr": {"tags": ["toolong"]}}, "actions": ["a"]},
    )
    assert result["actions"] == {"a": "EFFECT_DENY"}
    assert sorted(e["path"] for e in result["validationErrors"]) == ["/", "/tags/0"]
    warned = _roost(
        _engine("warn"),
        GOOD_PRINCIPAL,
        {"resource": {"kind": "doc", "id": "d", "attr": {"tags": ["toolong"]}}, "actions": ["a"]},
    )
    assert warned["actions"] == {"a": "EFFECT_ALLOW"}
    assert len(warned["validationErrors"]) == 2


def test_a_missing_or_invalid_schema_is_a_validation_error() -> None:
    with pytest.raises(PolicyValidationError) as caught:
        Engine.from_policies(_policies())  # no schema documents
    paths = {issue.path for issue in caught.value.issues}
    assert paths == {"schemas.principalSchema.ref", "schemas.resourceSchema.ref"}
    broken = {
        "apiVersion": "api.cerbos.dev/v1",
        "schema": {"id": "x.json", "definition": {"type": 12}},
    }
    with pytest.raises(PolicyValidationError) as caught:
        Engine.from_policies([*_policies(), *_schema_docs(), broken])
    assert caught.value.issues[0].path == "schema.definition"


def test_a_folder_reads_its_schemas_folder(tmp_path: Path) -> None:
    (tmp_path / "_schemas").mkdir()
    for name, definition in SCHEMAS.items():
        (tmp_path / "_schemas" / name).write_text(json.dumps(definition))
    for index, policy in enumerate(_policies()):
        (tmp_path / f"p{index}.json").write_text(json.dumps(policy))
    engine = Engine.from_policies(tmp_path, schema_enforcement="reject")
    entry = {"resource": {"kind": "doc", "id": "d", "attr": {"owner": "u"}}, "actions": ["view"]}
    assert _roost(engine, GOOD_PRINCIPAL, entry)["actions"] == {"view": "EFFECT_ALLOW"}
    assert _roost(engine, BAD_PRINCIPAL, entry)["actions"] == {"view": "EFFECT_DENY"}


def test_schema_patterns_run_in_linear_time_and_others_are_refused() -> None:
    def engine_with(pattern: str) -> Engine:
        resource = {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}}
        docs = [*_policies(), *_schema_docs()]
        docs[-2] = {
            "apiVersion": "api.cerbos.dev/v1",
            "schema": {"id": "resource.json", "definition": resource},
        }
        return Engine.from_policies(docs, schema_enforcement="reject")

    with pytest.raises(PolicyValidationError) as caught:
        engine_with("^(?=a)a$")  # lookaround: RE2 does not take it
    assert "RE2" in caught.value.issues[0].message
    # Python's backtracking `re` would take 2^60 steps here; RE2 answers at once
    entry = {
        "resource": {"kind": "doc", "id": "d", "attr": {"s": "a" * 60 + "!"}},
        "actions": ["v"],
    }
    result = _roost(engine_with("^(a|a)*$"), GOOD_PRINCIPAL, entry)
    assert result["actions"] == {"v": "EFFECT_DENY"}
    assert result["validationErrors"][0]["path"] == "/s"
