"""Types of the policy operations: the managed policies (`policies.*`) and the checks
(`policy.*`, Taruvi policy, Cerbos semantics).

The request and answer shapes of a check are Cerbos' own (CheckResources, PlanResources),
spelled in camelCase as Cerbos spells them (`policyVersion`, `matchedPolicy`,
`effectiveDerivedRoles`); the engine (`roost.policy`) answers with these very Structs, and the
SDK returns them. The operations' own parameters are snake_case like every Roost operation.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from roost.wire.common import NoTruthValue

__all__ = [
    "ActionMeta",
    "AllowedActionsRequest",
    "CheckRequest",
    "CheckResponse",
    "CheckResult",
    "OutputEntry",
    "PlanFilter",
    "PlanRequest",
    "PlanResponse",
    "Policy",
    "PolicyChange",
    "PolicyGlobals",
    "PolicyInfo",
    "PolicyList",
    "PolicyTestCase",
    "PolicyTestData",
    "PolicyTestError",
    "PolicyTestReport",
    "PolicyTestRequest",
    "Principal",
    "PutPoliciesAnswer",
    "Resource",
    "ResourceEntry",
    "ResourcesCheckRequest",
    "ResultMeta",
    "ResultResource",
    "is_policy_file",
]

MAX_RESOURCES = 1000
"""Resources one check may name (Cerbos' default is 50; a page of records fits in 1000)."""
MAX_ACTIONS = 100
"""Actions one resource of a check may name."""
MAX_SOURCES = 1000
"""Policies (texts or documents) one `policies.put` may carry."""
MAX_SOURCE_CHARS = 1024 * 1024
"""Characters of one policy text (YAML or JSON, possibly several documents)."""
MAX_KEY_CHARS = 512
"""Characters of a policy's key (its kind, name, version and scope)."""
MAX_DOCUMENT_BYTES = 256 * 1024
"""Bytes of one policy document, as JSON."""

Effect = Literal["EFFECT_ALLOW", "EFFECT_DENY"]
Name = Annotated[str, Meta(min_length=1, max_length=256)]
Action = Annotated[str, Meta(min_length=1, max_length=256)]
Actions = Annotated[list[Action], Meta(min_length=1, max_length=MAX_ACTIONS)]
Attributes = dict[str, Any]
Version = Annotated[str, Meta(max_length=256)]
ScopeName = Annotated[str, Meta(max_length=256)]


class _Cerbos(Struct, rename="camel", omit_defaults=True):
    """Cerbos' JSON spelling: camelCase, defaults left out."""


class _CerbosInput(_Cerbos, forbid_unknown_fields=True):
    """A request part: a misspelt field is refused, never silently ignored."""


# --- what a check asks about ----------------------------------------------------------------


class Principal(_CerbosInput):
    """Who acts: `id`, `roles` (at least one), `attr`, and optionally `policyVersion` and
    `scope`."""

    id: Annotated[str, Meta(max_length=512)]
    roles: Annotated[list[Name], Meta(max_length=100)]
    attr: Attributes = msgspec.field(default_factory=dict)
    policy_version: Version = ""
    scope: ScopeName = ""


class Resource(_CerbosInput):
    """What is acted on: `kind`, `id`, `attr`, and optionally `policyVersion` and `scope`."""

    kind: Annotated[str, Meta(max_length=256)]
    id: Annotated[str, Meta(max_length=512)] = ""
    attr: Attributes = msgspec.field(default_factory=dict)
    policy_version: Version = ""
    scope: ScopeName = ""


class ResourceEntry(_CerbosInput):
    """One resource of a CheckResources request and the actions asked about it."""

    resource: Resource
    actions: Actions


# --- what a check answers -------------------------------------------------------------------


class ResultResource(_Cerbos):
    id: str
    kind: str
    policy_version: str = ""
    scope: str = ""


class ActionMeta(_Cerbos):
    """Which policy decided an action (`NO_MATCH` when none did), in which scope."""

    matched_policy: str
    matched_scope: str = ""


class ResultMeta(_Cerbos):
    actions: dict[str, ActionMeta]
    effective_derived_roles: list[str] = msgspec.field(default_factory=list)


class OutputEntry(_Cerbos):
    """The output of a rule (`src` names it) for `action`."""

    src: str
    val: Any
    action: str


class CheckResult(_Cerbos, NoTruthValue):
    """The effect of each action on one resource, with why (`meta`) and the rules' outputs."""

    resource: ResultResource
    actions: dict[str, Effect]
    meta: ResultMeta
    outputs: list[OutputEntry] = msgspec.field(default_factory=list)
    validation_errors: list[dict[str, Any]] = msgspec.field(default_factory=list)

    def is_allowed(self, action: str) -> bool:
        """Whether `action` is allowed (an action not asked about is not)."""
        return self.actions.get(action) == "EFFECT_ALLOW"


class CheckResponse(_Cerbos, NoTruthValue):
    """Cerbos' CheckResources answer: one result per resource, in the order asked."""

    results: list[CheckResult]


class PlanFilter(_Cerbos):
    """`KIND_ALWAYS_ALLOWED`, `KIND_ALWAYS_DENIED`, or `KIND_CONDITIONAL` with the residual
    condition as Cerbos' `{"expression": {"operator", "operands"}}` tree."""

    kind: Literal["KIND_ALWAYS_ALLOWED", "KIND_ALWAYS_DENIED", "KIND_CONDITIONAL"]
    condition: dict[str, Any] | None = None


class PlanResponse(_Cerbos, NoTruthValue):
    """Cerbos' PlanResources answer for one action on one kind of resource."""

    action: str
    resource_kind: str
    policy_version: str
    filter: PlanFilter
    validation_errors: list[dict[str, Any]] = msgspec.field(default_factory=list)


# --- the check operations -------------------------------------------------------------------


class CheckRequest(Struct, forbid_unknown_fields=True):
    """`policy.check`: Cerbos' CheckResources. Without `principal` the caller is the
    principal; a `principal` or `aux_data` of one's own choosing needs `policies:read`."""

    resources: Annotated[list[ResourceEntry], Meta(min_length=1, max_length=MAX_RESOURCES)]
    principal: Principal | None = None
    aux_data: Attributes | None = None


class ResourcesCheckRequest(Struct, forbid_unknown_fields=True):
    """`policy.check_resources` and `policy.filter_allowed` (Taruvi): the same actions on
    every resource."""

    resources: Annotated[list[Resource], Meta(min_length=1, max_length=MAX_RESOURCES)]
    actions: Actions
    principal: Principal | None = None
    aux_data: Attributes | None = None


class AllowedActionsRequest(Struct, forbid_unknown_fields=True):
    """`policy.get_allowed_actions` (Taruvi): which of `actions` the principal may do."""

    resource: Resource
    actions: Actions
    principal: Principal | None = None
    aux_data: Attributes | None = None


class PlanRequest(Struct, forbid_unknown_fields=True):
    """`policy.plan`: Cerbos' PlanResources. `attr`: resource attributes already known (they
    are evaluated; the others stay in the residual condition)."""

    resource_kind: Annotated[str, Meta(min_length=1, max_length=256)]
    action: Action
    principal: Principal | None = None
    policy_version: Version = ""
    scope: ScopeName = ""
    attr: Attributes | None = None
    aux_data: Attributes | None = None


# --- the managed policies -------------------------------------------------------------------

PolicyKey = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_KEY_CHARS,
        description="as `policies.list` names it, e.g. resource.leave_request.vdefault/acme",
    ),
]
PolicySource = Annotated[str, Meta(max_length=MAX_SOURCE_CHARS)] | dict[str, Any]


class PutPoliciesRequest(Struct, forbid_unknown_fields=True):
    """Policies as YAML or JSON text (one document or several) or as objects."""

    policies: Annotated[list[PolicySource], Meta(min_length=1, max_length=MAX_SOURCES)]


class PolicyKeys(Struct, forbid_unknown_fields=True):
    keys: Annotated[list[PolicyKey], Meta(min_length=1, max_length=MAX_SOURCES)]


class PolicyRef(Struct, forbid_unknown_fields=True):
    key: PolicyKey


class PolicyVersionsRequest(Struct, forbid_unknown_fields=True):
    """The changes of one policy (`key`), or of all of them and the globals (no `key`),
    newest first; `before`: the `id` of the last change of the previous page."""

    key: PolicyKey | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    before: Annotated[int, Meta(ge=1)] | None = None


class GlobalsRequest(Struct, forbid_unknown_fields=True):
    """The tenant's globals, replacing the ones it had (`{}` clears them)."""

    globals: dict[str, Any]


class PolicyInfo(Struct):
    """A stored policy without its document."""

    key: str
    kind: Literal[
        "resource",
        "principal",
        "role",
        "derived_roles",
        "export_variables",
        "export_constants",
        "schema",
    ]
    name: str  # the resource kind, principal id, role, the set's name, or the schema's id
    version: str  # "" for the kinds that have none
    scope: str
    disabled: bool
    revision: int  # the tenant's policy revision that last changed it
    updated_at: datetime
    updated_by: str


class Policy(PolicyInfo):
    """A stored policy with its document (the Cerbos policy as an object)."""

    document: dict[str, Any]


class PolicyList(Struct):
    """Every stored policy, the tenant's globals and its current policy revision."""

    policies: list[PolicyInfo]
    globals: dict[str, Any]
    revision: int


class PutPoliciesAnswer(Struct, NoTruthValue):
    """What a put changed: keys created, updated, and sent again unchanged (no new version)."""

    revision: int
    created: list[str]
    updated: list[str]
    unchanged: list[str]


class PolicyChange(Struct):
    """One change of the tenant's policies: `put` or `delete` of a policy (`document` is what
    was put, None for a delete), or `globals` (`key` is "" and `document` the new globals)."""

    id: int
    revision: int
    key: str
    change: Literal["put", "delete", "globals"]
    document: dict[str, Any] | None
    at: datetime
    by: str


class PolicyGlobals(Struct):
    """The tenant's own globals, and what conditions see: the server's
    (`ROOST_POLICY_GLOBALS`) with the tenant's over them."""

    globals: dict[str, Any]
    effective: dict[str, Any]
    revision: int


# --- test suites run against the stored policies -------------------------------------------

MAX_SUITE_CHARS = 256 * 1024
"""Characters of a test suite, or of one of its testdata documents, given to `policies.test`."""
MAX_TEST_CASES = 1000
"""Cases (principals x resources x actions, over every test) one `policies.test` may run."""
SuiteText = Annotated[str, Meta(max_length=MAX_SUITE_CHARS)]


class PolicyTestData(Struct, forbid_unknown_fields=True):
    """The shared fixtures a suite folder's `testdata/` holds, one document each (YAML or
    JSON): `principals` (with `principalGroups`), `resources` (with `resourceGroups`),
    `auxdata` (`auxData`). The suite's own fixtures of the same name win."""

    principals: SuiteText = ""
    resources: SuiteText = ""
    auxdata: SuiteText = ""


class PolicyTestRequest(Struct, forbid_unknown_fields=True):
    """A Cerbos test suite (one `*_test.yaml` document) and its testdata, run against the
    tenant's stored policies."""

    suite: Annotated[str, Meta(min_length=1, max_length=MAX_SUITE_CHARS)]
    testdata: PolicyTestData | None = None


class PolicyTestCase(Struct):
    """One action of one principal on one resource in one test: the effect expected, the one
    the policies gave ("" when skipped), and why it failed beyond the effect (`problems`)."""

    suite: str
    test: str
    principal: str
    resource: str
    action: str
    expected: Effect
    actual: Effect | Literal[""]
    status: Literal["passed", "failed", "skipped"]
    passed: bool
    problems: list[str] = msgspec.field(default_factory=list)


class PolicyTestError(Struct):
    """A test that could not run (`where`: the suite and test names), and why."""

    where: str
    message: str


class PolicyTestReport(Struct, NoTruthValue):
    """Every case of a suite run and the counts; `errors`: tests that could not run."""

    cases: list[PolicyTestCase]
    errors: list[PolicyTestError]
    passed: int
    failed: int
    skipped: int

    @property
    def ok(self) -> bool:
        """Whether every case that ran passed and every test could run."""
        return self.failed == 0 and not self.errors


# --- bindings: what the policies guard ------------------------------------------------------

BindingTarget = Literal["table", "bucket", "stream", "queue", "function"]
TargetName = Annotated[str, Meta(min_length=1, max_length=200)]


class BindRequest(Struct, forbid_unknown_fields=True):
    """Guard a table, bucket, stream, queue or function by the policies of `resource_kind`:
    each record (file, event, call) is then a resource of that kind, checked for the caller.
    `policy_version` and `scope` pick the policies as a check's resource would."""

    target: BindingTarget
    name: TargetName
    resource_kind: Annotated[str, Meta(min_length=1, max_length=256, pattern=r"^[^\x00]*$")]
    policy_version: Annotated[Version, Meta(pattern=r"^[^\x00]*$")] = ""
    scope: Annotated[ScopeName, Meta(pattern=r"^[^\x00]*$")] = ""


class BindingRef(Struct, forbid_unknown_fields=True):
    target: BindingTarget
    name: TargetName


class Binding(Struct):
    """A table, bucket, stream, queue or function and the resource kind its policies are."""

    target: BindingTarget
    name: str
    resource_kind: str
    policy_version: str
    scope: str
    updated_at: datetime
    updated_by: str


# --- policy files ---------------------------------------------------------------------------

POLICY_SUFFIXES = (".yaml", ".yml", ".json")


SCHEMAS_FOLDER = "_schemas"


def is_policy_file(path: Path, folder: Path) -> bool:
    """Whether `path` in `folder` is a policy as Cerbos reads a folder: YAML or JSON, not a
    test suite (`*_test.yaml`), nothing under a `testdata` folder or the `_schemas` folder, no
    hidden file or folder."""
    if path.suffix not in POLICY_SUFFIXES or not path.is_file():
        return False
    if path.stem.endswith("_test"):
        return False
    parts = path.relative_to(folder).parts
    if parts[0] == SCHEMAS_FOLDER:
        return False
    return "testdata" not in parts and not any(part.startswith(".") for part in parts)


def schema_files(folder: Path) -> list[Path]:
    """The JSON Schemas of a policy folder: `_schemas/**/*.json`, as Cerbos reads them."""
    root = folder / SCHEMAS_FOLDER
    if not root.is_dir():
        return []
    return sorted(
        path
        for path in root.rglob("*.json")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def schema_document(path: Path, folder: Path) -> dict[str, Any]:
    """A schema file as the policy-set document Roost stores (`schema: {id, definition}`),
    its id the path under `_schemas` (what policies name as `cerbos:///<id>`); ValueError when
    the file is not a JSON object."""
    try:
        definition = msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(definition, dict):
        raise ValueError("a schema is a JSON object")
    schema_id = path.relative_to(folder / SCHEMAS_FOLDER).as_posix()
    return {
        "apiVersion": "api.cerbos.dev/v1",
        "schema": {"id": schema_id, "definition": definition},
    }
