"""Hand-written policies for each language feature, each answered by Cerbos 0.51 and Roost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from roost.policy import Engine
from tests.policy.cerbos import Cerbos
from tests.policy.compare import outputs_agree, result_view

POLICIES = """
apiVersion: api.cerbos.dev/v1
exportConstants:
  name: shared
  definitions:
    max: 10
    regions: [eu, us]
---
apiVersion: api.cerbos.dev/v1
exportVariables:
  name: common
  definitions:
    is_owner: R.attr.owner == P.id
    small: R.attr.size < C.max
---
apiVersion: api.cerbos.dev/v1
derivedRoles:
  name: people
  variables:
    import: [common]
  constants:
    import: [shared]
  definitions:
    - name: owner
      parentRoles: [user]
      condition:
        match:
          expr: V.is_owner
    - name: regional
      parentRoles: ["*"]
      condition:
        match:
          all:
            of:
              - expr: P.attr.region in C.regions
              - expr: P.attr.region == R.attr.region
---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: leave_request
  version: default
  importDerivedRoles: [people]
  constants:
    import: [shared]
  variables:
    import: [common]
    local:
      pending: R.attr.status == "PENDING"
  rules:
    - actions: [view, "view:*"]
      effect: EFFECT_ALLOW
      derivedRoles: [owner, regional]
      output:
        when:
          ruleActivated: '"seen by " + P.id'
    - actions: [approve]
      effect: EFFECT_ALLOW
      roles: [manager]
      condition:
        match:
          all:
            of:
              - expr: V.pending
              - none:
                  of:
                    - expr: V.is_owner
      output:
        when:
          conditionNotMet: '"not approvable: " + R.attr.status'
    - actions: [approve]
      effect: EFFECT_DENY
      roles: [manager]
      condition:
        match:
          expr: R.attr.size >= G.big
    - actions: [edit]
      effect: EFFECT_ALLOW
      derivedRoles: [owner]
      condition:
        match:
          expr: V.small && V.pending
    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: [admin, acme_admin]
---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: leave_request
  version: default
  scope: acme
  importDerivedRoles: [people]
  rules:
    - actions: [approve]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: timestamp(R.attr.created) < timestamp("2025-01-01T00:00:00Z")
    - actions: [delete]
      effect: EFFECT_DENY
      roles: [admin]
---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: leave_request
  version: default
  scope: acme.hr
  scopePermissions: SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.region == "eu"
    - actions: [edit, archive]
      effect: EFFECT_ALLOW
      roles: [admin]
---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: leave_request
  version: staging
  rules:
    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: [user]
---
apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: daffy
  version: default
  scope: acme
  rules:
    - resource: leave_request
      actions:
        - action: approve
          effect: EFFECT_DENY
          condition:
            match:
              expr: R.attr.size > 5
        - action: "view:*"
          effect: EFFECT_ALLOW
          output:
            when:
              ruleActivated: P.attr.region
---
apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: daffy
  version: default
  rules:
    - resource: "*"
      actions:
        - action: archive
          effect: EFFECT_ALLOW
---
apiVersion: api.cerbos.dev/v1
rolePolicy:
  role: acme_admin
  scope: acme.hr
  scopePermissions: SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS
  parentRoles: [admin]
  rules:
    - resource: leave_request
      allowActions: [view, "view:*", delete]
    - resource: leave_request
      allowActions: [approve]
      condition:
        match:
          expr: R.attr.size < 3
"""
GLOBALS = {"big": 100}

PRINCIPALS: list[dict[str, Any]] = [
    {"id": "u1", "roles": ["user"], "attr": {"region": "eu"}},
    {"id": "u2", "roles": ["user", "manager"], "attr": {"region": "us"}},
    {"id": "daffy", "roles": ["user"], "attr": {"region": "eu"}},
    {"id": "boss", "roles": ["admin"], "attr": {}},
    {"id": "ca", "roles": ["acme_admin"], "attr": {"region": "us"}},
]
ACTIONS = ["view", "view:public", "approve", "edit", "delete", "archive", "other"]
RESOURCES = [
    {
        "kind": "leave_request",
        "id": f"r{n}",
        "scope": scope,
        "policyVersion": version,
        "attr": {
            "owner": owner,
            "status": status,
            "size": size,
            "region": region,
            "created": "2024-05-01T00:00:00Z",
        },
    }
    for n, (scope, version, owner, status, size, region) in enumerate(
        [
            ("", "", "u1", "PENDING", 2, "eu"),
            ("", "", "u2", "PENDING", 200, "us"),
            ("acme", "", "u1", "DONE", 6, "eu"),
            ("acme", "", "daffy", "PENDING", 1, "us"),
            ("acme.hr", "", "u1", "PENDING", 2, "eu"),
            ("acme.hr", "", "u2", "PENDING", 7, "us"),
            ("acme.hr.uk", "", "u1", "PENDING", 2, "eu"),
            (".", "staging", "u1", "DONE", 2, "eu"),
            ("", "v9", "u1", "DONE", 2, "eu"),
        ]
    )
]


@pytest.fixture(scope="module")
def both(cerbos_binary: Path) -> Iterator[tuple[Cerbos, Engine]]:
    docs = list(yaml.safe_load_all(POLICIES))
    cerbos = Cerbos(cerbos_binary, docs, GLOBALS)
    try:
        yield cerbos, Engine.from_policies(POLICIES, GLOBALS)
    finally:
        cerbos.stop()


@pytest.mark.parametrize("principal", PRINCIPALS, ids=[p["id"] for p in PRINCIPALS])
def test_features_agree_with_cerbos(both: tuple[Cerbos, Engine], principal: dict[str, Any]) -> None:
    cerbos, engine = both
    entries = [{"resource": resource, "actions": ACTIONS} for resource in RESOURCES]
    theirs = cerbos.check(principal, entries)["results"]
    ours = engine.check(principal, entries).results
    for entry, their, our in zip(entries, theirs, ours, strict=True):
        expected, actual = result_view(their), result_view(our)
        assert outputs_agree(expected.pop("outputs"), actual.pop("outputs"))
        assert actual == expected, entry["resource"]


@pytest.mark.parametrize("principal", PRINCIPALS, ids=[p["id"] for p in PRINCIPALS])
def test_feature_plans_agree_with_cerbos(
    both: tuple[Cerbos, Engine], principal: dict[str, Any]
) -> None:
    cerbos, engine = both
    for scope in ["", "acme", "acme.hr"]:
        for action in ACTIONS:
            theirs = cerbos.plan(principal, "leave_request", action, scope=scope)["filter"]["kind"]
            ours = engine.plan(principal, "leave_request", action, scope=scope).filter.kind
            assert ours == theirs, (scope, action)
