"""Policies compiled into rows, one per (rule, action, role), and the index a check queries.

This follows Cerbos' own evaluation model since 0.41 (its "rule table"): a resource rule
becomes a row per action and role, a rule naming a derived role becomes a row per parent role
of that derived role with the derived role's condition attached, principal rules are rows for
any role, and in a `SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS` scope a conditional
ALLOW becomes a DENY when its condition does not hold. Role policies stay allow-lists that a
query turns into DENY rows for the actions they do not allow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import msgspec

from roost.policy.cel import NOW, Compiled
from roost.policy.names import NO_MATCH_FOR_SCOPE_PERMISSIONS, glob_matcher, scope_parents
from roost.policy.schemas import SchemaRefs, SchemaSet

__all__ = ["Cond", "DerivedRole", "PolicyMeta", "Row", "RuleTable"]

Kind = Literal["principal", "resource"]
OVERRIDE = "SCOPE_PERMISSIONS_OVERRIDE_PARENT"
CONSENT = "SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS"


class Cond(msgspec.Struct, frozen=True):
    """A compiled condition: `expr` holds a Compiled, the others a tuple of Cond."""

    op: Literal["expr", "all", "any", "none"]
    expr: Compiled | None = None
    items: tuple[Cond, ...] = ()


class Outputs(msgspec.Struct, frozen=True):
    activated: Compiled | None = None
    not_met: Compiled | None = None


def _matches_nothing(_: str) -> bool:
    """A row's matcher until `Row.__post_init__` makes its own."""
    return False


class Row(msgspec.Struct):
    kind: Kind
    origin: str  # policy key of the policy the row comes from
    resource: str  # a glob
    role: str  # a glob; "*" for principal rows
    action: str  # a glob
    effect: str
    scope: str
    version: str
    name: str
    rule_fqn: str  # `src` of the outputs
    eval_key: str
    condition: Cond | None = None
    derived_role: str = ""
    dr_condition: Cond | None = None
    outputs: Outputs | None = None
    principal: str = ""
    from_role_policy: bool = False
    no_match_for_scope_permissions: bool = False
    allow_actions: tuple[str, ...] = ()
    # made from the globs above by `__post_init__`
    matches_resource: Callable[[str], bool] = _matches_nothing
    matches_role: Callable[[str], bool] = _matches_nothing
    matches_action: Callable[[str], bool] = _matches_nothing
    # holds for every request and has nothing to write: a check needs no evaluation for it
    plain: bool = False

    def __post_init__(self) -> None:
        self.matches_resource = glob_matcher(self.resource)
        self.matches_role = glob_matcher(self.role)
        self.matches_action = glob_matcher(self.action)
        self.plain = self.condition is None and not self.derived_role and self.outputs is None


class DerivedRole(msgspec.Struct, frozen=True):
    name: str
    parent_roles: frozenset[str]
    condition: Cond | None


class PolicyMeta(msgspec.Struct, frozen=True):
    """What a check needs to know of one resource or principal policy besides its rows."""

    key: str
    derived_roles: tuple[DerivedRole, ...] = ()
    schemas: SchemaRefs | None = None  # a resource policy's `schemas:`


# One scope of a walk: the scope, its rows for one (action, role), its scope permissions.
Step = tuple[str, tuple[Row, ...], str]


class RuleTable(msgspec.Struct):
    rows: dict[tuple[str, str], list[Row]] = msgspec.field(default_factory=dict)  # (version, scope)
    # (kind, name, version, scope) -> meta, for every resource and principal policy
    policies: dict[tuple[str, str, str, str], PolicyMeta] = msgspec.field(default_factory=dict)
    scope_permissions: dict[str, str] = msgspec.field(default_factory=dict)
    # scope -> custom role -> parent roles (role policies)
    parent_roles: dict[str, dict[str, tuple[str, ...]]] = msgspec.field(default_factory=dict)
    schemas: SchemaSet = msgspec.field(default_factory=lambda: SchemaSet({}))
    _cache: dict[tuple[Any, ...], tuple[Row, ...]] = msgspec.field(default_factory=dict)
    _scopes: dict[tuple[str, ...], tuple[list[str], str]] = msgspec.field(default_factory=dict)
    _parents: dict[tuple[str, str], tuple[str, ...]] = msgspec.field(default_factory=dict)
    _all_roles: dict[tuple[str, tuple[str, ...]], frozenset[str]] = msgspec.field(
        default_factory=dict
    )
    _walks: dict[tuple[Any, ...], tuple[Step, ...]] = msgspec.field(default_factory=dict)
    _candidates: dict[tuple[Any, ...], tuple[DerivedRole, ...]] = msgspec.field(
        default_factory=dict
    )
    _reads_now: dict[str, bool] = msgspec.field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.setdefault((row.version, row.scope), []).append(row)

    def scopes(self, kind: Kind, scope: str, name: str, version: str) -> tuple[list[str], str]:
        """The chain of scopes that have a policy for (kind, name, version), most specific
        first, and the key of the policy at the requested scope; empty when that policy does
        not exist (Cerbos' strict scope search). Remembered: the table does not change."""
        key = (kind, scope, name, version)
        found = self._scopes.get(key)
        if found is not None:
            return found
        first = self.policies.get((kind, name, version, scope))
        if first is None:
            found = ([], "")
        else:
            chain = [scope]
            chain.extend(
                s for s in scope_parents(scope) if (kind, name, version, s) in self.policies
            )
            found = (chain, first.key)
        if len(self._scopes) > 65536:
            self._scopes.clear()
        self._scopes[key] = found
        return found

    def all_roles(self, scope: str, roles: tuple[str, ...]) -> frozenset[str]:
        """`add_parent_roles(scope, roles)` as a set, remembered."""
        key = (scope, roles)
        found = self._all_roles.get(key)
        if found is None:
            found = frozenset(self.add_parent_roles(scope, list(roles)))
            if len(self._all_roles) > 65536:
                self._all_roles.clear()
            self._all_roles[key] = found
        return found

    def role_with_parents(self, scope: str, role: str) -> tuple[str, ...]:
        """`add_parent_roles(scope, [role])`, remembered."""
        key = (scope, role)
        found = self._parents.get(key)
        if found is None:
            found = tuple(self.add_parent_roles(scope, [role]))
            if len(self._parents) > 65536:
                self._parents.clear()
            self._parents[key] = found
        return found

    def add_parent_roles(self, scope: str, roles: list[str]) -> list[str]:
        """The roles and, recursively, the parent roles that role policies of `scope` give them."""
        table = self.parent_roles.get(scope)
        if not table:
            return list(roles)
        out = list(roles)
        seen: set[str] = set()
        stack = list(roles)
        while stack:
            role = stack.pop()
            if role in seen:
                continue
            seen.add(role)
            for parent in table.get(role, ()):
                if parent not in out:
                    out.append(parent)
                stack.append(parent)
        return out

    def walk(
        self,
        version: str,
        resource: str,
        scopes: list[str],
        action: str,
        roles: tuple[str, ...],
        kind: Kind,
        principal: str,
    ) -> tuple[Step, ...]:
        """The decision table of one (action, role) over a scope chain (`scopes`, as
        `scopes()` answers it): for each scope, most specific first, the candidate rows in
        order and the scope's permissions. Compiled on first use, remembered: the table does
        not change (a new policy set compiles a new table)."""
        key = (version, resource, scopes[0] if scopes else None, action, roles, kind, principal)
        found = self._walks.get(key)
        if found is None:
            found = tuple(
                (
                    scope,
                    self.query(version, resource, scope, action, roles, kind, principal),
                    self.scope_permissions.get(scope, ""),
                )
                for scope in scopes
            )
            if len(self._walks) > 65536:
                self._walks.clear()
            self._walks[key] = found
        return found

    def reads_now(self, resource: str) -> bool:
        """Whether a condition that can decide on resources of kind `resource` (a rule of
        a principal or resource policy, or a derived role of one) reads `now()`."""
        found = self._reads_now.get(resource)
        if found is None:
            conditions = [
                cond
                for rows in self.rows.values()
                for row in rows
                if row.matches_resource(resource)
                for cond in (row.condition, row.dr_condition)
            ]
            conditions.extend(
                derived.condition
                for (kind, name, _, _), meta in self.policies.items()
                if kind == "resource" and name == resource
                for derived in meta.derived_roles
            )
            found = any(_reads(cond, NOW) for cond in conditions)
            if len(self._reads_now) > 65536:
                self._reads_now.clear()
            self._reads_now[resource] = found
        return found

    def derived_candidates(
        self, kind: str, version: str, scope: str, roles: frozenset[str]
    ) -> tuple[DerivedRole, ...]:
        """The derived roles of the resource policy (kind, version, scope) that one of
        `roles` is a parent of, in the policy's order (their conditions decide), remembered."""
        key = (kind, version, scope, roles)
        found = self._candidates.get(key)
        if found is None:
            meta = self.policies.get(("resource", kind, version, scope))
            found = tuple(
                derived
                for derived in (meta.derived_roles if meta else ())
                if any(
                    glob_matcher(parent)(role) for parent in derived.parent_roles for role in roles
                )
            )
            if len(self._candidates) > 65536:
                self._candidates.clear()
            self._candidates[key] = found
        return found

    def query(
        self,
        version: str,
        resource: str,
        scope: str,
        action: str,
        roles: tuple[str, ...],
        kind: Kind,
        principal: str,
    ) -> tuple[Row, ...]:
        key = (version, resource, scope, action, roles, kind, principal)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        found = tuple(self._query(version, resource, scope, action, roles, kind, principal))
        if len(self._cache) > 65536:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _query(
        self,
        version: str,
        resource: str,
        scope: str,
        action: str,
        roles: tuple[str, ...],
        kind: Kind,
        principal: str,
    ) -> list[Row]:
        found: list[Row] = []
        role_rules: dict[str, list[Row]] = {}
        for row in self.rows.get((version, scope), ()):
            if row.kind != kind or not row.matches_resource(resource):
                continue
            if kind == "principal":
                if row.principal != principal or not row.matches_action(action):
                    continue
                found.append(row)
                continue
            if row.from_role_policy:
                if row.role in roles:
                    role_rules.setdefault(row.role, []).append(row)
                continue
            if row.role != "*" and not any(row.matches_role(role) for role in roles):
                continue
            if row.matches_action(action):
                found.append(row)
        for role, rules in role_rules.items():
            found.extend(_role_policy_rows(rules, role, action, resource, scope, version))
        return found


def _reads(cond: Cond | None, name: str) -> bool:
    if cond is None:
        return False
    if cond.expr is not None and name in cond.expr.uses:
        return True
    return any(_reads(item, name) for item in cond.items)


def _role_policy_rows(
    rules: list[Row], role: str, action: str, resource: str, scope: str, version: str
) -> list[Row]:
    """A role policy allows only what it lists: DENY the other actions, and DENY the listed
    ones when their condition does not hold."""
    matched = [rule for rule in rules if any(glob_matcher(a)(action) for a in rule.allow_actions)]
    if not matched:
        origin = rules[0].origin
        return [
            Row(
                kind="resource",
                origin=origin,
                resource=resource,
                role=role,
                action=action,
                effect="EFFECT_DENY",
                scope=scope,
                version=version,
                name="",
                rule_fqn="",
                eval_key=f"{origin}#no-match-{action}",
                from_role_policy=True,
                no_match_for_scope_permissions=True,
            )
        ]
    out: list[Row] = []
    for rule in matched:
        if rule.condition is None:
            continue
        out.append(
            Row(
                kind="resource",
                origin=rule.origin,
                resource=resource,
                role=rule.role,
                action=action,
                effect="EFFECT_DENY",
                scope=scope,
                version=version,
                name=rule.name,
                rule_fqn=rule.rule_fqn,
                eval_key=rule.eval_key,
                condition=Cond("none", items=(rule.condition,)),
                from_role_policy=True,
            )
        )
    return out


def consent_rewrite(
    condition: Cond | None, effect: str, permissions: str
) -> tuple[Cond | None, str]:
    """In a parental-consent scope a conditional ALLOW is a DENY when the condition fails."""
    if permissions == CONSENT and effect == "EFFECT_ALLOW" and condition is not None:
        return Cond("none", items=(condition,)), "EFFECT_DENY"
    return condition, effect


def no_match_policy() -> str:
    return NO_MATCH_FOR_SCOPE_PERMISSIONS


def constants_of(values: Mapping[str, Any]) -> dict[str, Any]:
    return dict(values)
