"""Policies the server, SDK, security and CLI tests store: each test names its own resource
kind (tests share a server, and a tenant's policies are one set)."""

from __future__ import annotations

from typing import Any

from tests.conftest import unique


def kind_name() -> str:
    """A resource kind no other test uses."""
    return unique("doc_")


def key_of(kind: str) -> str:
    """The key `policies.list` gives the resource policy of `kind`."""
    return f"resource.{kind}.vdefault"


def owner_policies(kind: str, *, public_view: bool = True) -> str:
    """Two documents in one text: derived roles (`owner`: a user whose id is the resource's
    `owner`) and the resource policy of `kind`: owners view and edit, admins do anything,
    users view public resources (with an output) unless `public_view` is off."""
    public = (
        """
    - actions: [view]
      effect: EFFECT_ALLOW
      roles: [user]
      name: public-view
      condition:
        match:
          expr: R.attr.public == true
      output:
        when:
          ruleActivated: '"public " + R.id'"""
        if public_view
        else ""
    )
    return f"""
apiVersion: api.cerbos.dev/v1
derivedRoles:
  name: {kind}_roles
  definitions:
    - name: owner
      parentRoles: [user, member]
      condition:
        match:
          expr: R.attr.owner == P.id
---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: {kind}
  version: default
  importDerivedRoles: [{kind}_roles]
  rules:
    - actions: [view, edit]
      effect: EFFECT_ALLOW
      derivedRoles: [owner]
    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: [admin]{public}
"""


def resource_policy(kind: str, rules: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A resource policy of `kind` as an object."""
    return {
        "apiVersion": "api.cerbos.dev/v1",
        "resourcePolicy": {"resource": kind, "version": "default", "rules": rules, **extra},
    }


def allow(actions: list[str], roles: list[str], expr: str | None = None) -> dict[str, Any]:
    """A rule that allows `actions` to `roles`, when `expr` holds if given."""
    rule: dict[str, Any] = {"actions": actions, "effect": "EFFECT_ALLOW", "roles": roles}
    if expr is not None:
        rule["condition"] = {"match": {"expr": expr}}
    return rule
