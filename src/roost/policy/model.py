"""The shapes of policies, requests and answers, named and spelled as Cerbos spells them.

Policy documents are decoded into these Structs with unknown fields refused (as Cerbos refuses
them), so a typo in a policy is a validation error naming its path, never a silently ignored
key. Requests and answers follow Cerbos' CheckResources and PlanResources JSON; they are the
wire types (`roost.wire.policy`), re-exported here.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

# The requests and answers are the wire types, one definition shared with the SDK.
from roost.wire.policy import (
    ActionMeta,
    CheckResponse,
    CheckResult,
    OutputEntry,
    PlanFilter,
    PlanResponse,
    Principal,
    Resource,
    ResourceEntry,
    ResultMeta,
    ResultResource,
)

__all__ = [
    "ActionMeta",
    "CheckResult",
    "CheckResponse",
    "Condition",
    "DerivedRolesPolicy",
    "Match",
    "Output",
    "OutputEntry",
    "PlanFilter",
    "PlanResponse",
    "PolicyDocument",
    "Principal",
    "PrincipalPolicy",
    "Resource",
    "ResourceEntry",
    "ResourcePolicy",
    "ResultMeta",
    "ResultResource",
    "RolePolicy",
]

Effect = Literal["EFFECT_ALLOW", "EFFECT_DENY"]
ScopePermissions = Literal[
    "SCOPE_PERMISSIONS_UNSPECIFIED",
    "SCOPE_PERMISSIONS_OVERRIDE_PARENT",
    "SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS",
]


class _Doc(msgspec.Struct, forbid_unknown_fields=True, rename="camel", omit_defaults=True):
    pass


# --- policies -------------------------------------------------------------------------------


class Match(_Doc):
    """One node of a condition: exactly one of `all`, `any`, `none` (each `{of: [...]}`), `expr`."""

    all: MatchList | None = None
    any: MatchList | None = None
    none: MatchList | None = None
    expr: str | None = None


class MatchList(_Doc):
    of: list[Match]


class Condition(_Doc):
    match: Match


class OutputWhen(_Doc):
    rule_activated: str | None = None
    condition_not_met: str | None = None


class Output(_Doc):
    expr: str | None = None  # deprecated form of when.ruleActivated
    when: OutputWhen | None = None


class Imports(_Doc):
    import_: list[str] = msgspec.field(default_factory=list, name="import")
    local: dict[str, Any] = msgspec.field(default_factory=dict)


class Ref(_Doc):
    ref: str
    ignore_when: dict[str, Any] | None = None


class Schemas(_Doc):
    principal_schema: Ref | None = None
    resource_schema: Ref | None = None


class ResourceRule(_Doc):
    actions: list[str]
    effect: Effect
    roles: list[str] = msgspec.field(default_factory=list)
    derived_roles: list[str] = msgspec.field(default_factory=list)
    condition: Condition | None = None
    name: str = ""
    output: Output | None = None


class ResourcePolicy(_Doc):
    resource: str
    version: str
    rules: list[ResourceRule] = msgspec.field(default_factory=list)
    scope: str = ""
    scope_permissions: ScopePermissions = "SCOPE_PERMISSIONS_UNSPECIFIED"
    import_derived_roles: list[str] = msgspec.field(default_factory=list)
    constants: Imports | None = None
    variables: Imports | None = None
    schemas: Schemas | None = None


class PrincipalAction(_Doc):
    action: str
    effect: Effect
    condition: Condition | None = None
    name: str = ""
    output: Output | None = None


class PrincipalRule(_Doc):
    resource: str
    actions: list[PrincipalAction]


class PrincipalPolicy(_Doc):
    principal: str
    version: str
    rules: list[PrincipalRule] = msgspec.field(default_factory=list)
    scope: str = ""
    scope_permissions: ScopePermissions = "SCOPE_PERMISSIONS_UNSPECIFIED"
    constants: Imports | None = None
    variables: Imports | None = None


class RoleDef(_Doc):
    name: str
    parent_roles: list[str]
    condition: Condition | None = None


class DerivedRolesPolicy(_Doc):
    name: str
    definitions: list[RoleDef]
    constants: Imports | None = None
    variables: Imports | None = None


class RoleRule(_Doc):
    resource: str
    allow_actions: list[str]
    condition: Condition | None = None
    name: str = ""
    output: Output | None = None


class RolePolicy(_Doc):
    role: str
    rules: list[RoleRule] = msgspec.field(default_factory=list)
    version: str = "default"
    scope: str = ""
    scope_permissions: ScopePermissions = "SCOPE_PERMISSIONS_UNSPECIFIED"
    parent_roles: list[str] = msgspec.field(default_factory=list)
    constants: Imports | None = None
    variables: Imports | None = None


class ExportVariables(_Doc):
    name: str
    definitions: dict[str, str] = msgspec.field(default_factory=dict)


class ExportConstants(_Doc):
    name: str
    definitions: dict[str, Any] = msgspec.field(default_factory=dict)


class SchemaFile(_Doc):
    """A JSON Schema of the set (Roost's document for a file of Cerbos' `_schemas/`):
    policies name it `cerbos:///<id>`."""

    id: str
    definition: dict[str, Any]


class PolicyDocument(_Doc):
    api_version: Literal["api.cerbos.dev/v1"]
    description: str = ""
    disabled: bool = False
    metadata: dict[str, Any] | None = None
    variables: dict[str, str] | None = None  # deprecated top-level variables
    resource_policy: ResourcePolicy | None = None
    principal_policy: PrincipalPolicy | None = None
    derived_roles: DerivedRolesPolicy | None = None
    role_policy: RolePolicy | None = None
    export_variables: ExportVariables | None = None
    export_constants: ExportConstants | None = None
    schema: SchemaFile | None = None
