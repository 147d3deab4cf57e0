"""Read policies (YAML or JSON text, multi-document YAML, dicts, folders), validate them as a
set, and compile them into a rule table. Every problem is collected and reported together:
a refused set names each policy, the path inside it and what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from roost.errors import ValidationError
from roost.policy import model
from roost.policy.cel import CelCompileError, Compiled, Scope, compile_expression
from roost.policy.celast import Call
from roost.policy.names import DEFAULT_VERSION, policy_key, sanitize, scope_parents
from roost.policy.ruletable import (
    OVERRIDE,
    Cond,
    DerivedRole,
    Outputs,
    PolicyMeta,
    Row,
    RuleTable,
    consent_rewrite,
)
from roost.policy.schemas import SchemaRefs, SchemaSet, ref_id
from roost.policy.yamlsafe import YamlRefused, load_all
from roost.wire.policy import is_policy_file, schema_document, schema_files

__all__ = ["DecodeError", "Issue", "PolicySet", "PolicyValidationError", "load", "read_documents"]

MAX_POLICIES = 10_000
_SCOPE = re.compile(r"^(?:[0-9A-Za-z][\w\-]*(?:\.[\w\-]+)*)?$")
_NAME = re.compile(r"^[^\x00-\x1f]{1,512}$")


class Issue(msgspec.Struct, frozen=True):
    """One problem in one policy: `policy` names it, `path` points inside it."""

    policy: str
    path: str
    message: str


class PolicyValidationError(ValidationError):
    """A set of policies was refused; `issues` lists every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        lines = [
            f"{i.policy}: {i.path}: {i.message}" if i.path else f"{i.policy}: {i.message}"
            for i in issues[:20]
        ]
        more = f" (and {len(issues) - 20} more)" if len(issues) > 20 else ""
        super().__init__(
            "invalid policies: " + "; ".join(lines) + more,
            code="invalid_policy",
            details={"issues": [msgspec.to_builtins(issue) for issue in issues]},
        )


class Source(msgspec.Struct):
    origin: str  # file name or index, for messages
    data: Any


class PolicySet(msgspec.Struct):
    """Validated policies, compiled: what the engine checks against."""

    documents: list[model.PolicyDocument]
    table: RuleTable
    globals: dict[str, Any]


def read_documents(sources: Any, origin: str = "policy") -> list[Source]:
    """Policies from YAML/JSON text (one or many documents), dicts, paths, or a list of them;
    each named after where it came from (`policy[2]#1`: the second document of the third)."""
    out: list[Source] = []
    _collect(sources, origin, out)
    if len(out) > MAX_POLICIES:
        raise PolicyValidationError([Issue("", "", f"more than {MAX_POLICIES} policies")])
    return out


def _collect(item: Any, origin: str, out: list[Source]) -> None:
    if isinstance(item, Mapping):
        out.append(Source(origin, dict(item)))
    elif isinstance(item, Path):
        if item.is_dir():
            for path in sorted(item.rglob("*")):
                if is_policy_file(path, item):
                    _collect(path.read_text(encoding="utf-8"), str(path), out)
            for path in schema_files(item):
                try:
                    out.append(Source(str(path), schema_document(path, item)))
                except ValueError as exc:
                    out.append(Source(str(path), _Broken(str(exc))))
        else:
            _collect(item.read_text(encoding="utf-8"), str(item), out)
    elif isinstance(item, str | bytes):
        text = item.decode("utf-8") if isinstance(item, bytes) else item
        try:
            docs = load_all(text)
        except YamlRefused as exc:
            out.append(Source(origin, _Broken(str(exc))))
            return
        for index, doc in enumerate(docs):
            out.append(Source(origin if len(docs) == 1 else f"{origin}#{index}", doc))
    elif isinstance(item, Iterable):
        for index, element in enumerate(item):
            _collect(element, f"{origin}[{index}]", out)
    else:
        out.append(Source(origin, _Broken(f"not a policy: {type(item).__name__}")))


class _Broken(msgspec.Struct):
    message: str


class Described(msgspec.Struct, frozen=True):
    """What names a policy: its kind, subject, version and scope, and its key (Cerbos'
    policy id as `matchedPolicy` reports it)."""

    key: str
    kind: str  # resource, principal, role, derived_roles, export_variables, export_constants
    name: str
    version: str
    scope: str


def describe(doc: model.PolicyDocument) -> Described:
    """The names of a decoded policy (which defines exactly one kind)."""
    if doc.resource_policy:
        p = doc.resource_policy
        return _described("resource", p.resource, p.version, p.scope)
    if doc.principal_policy:
        q = doc.principal_policy
        return _described("principal", q.principal, q.version, q.scope)
    if doc.role_policy:
        r = doc.role_policy
        return _described("role", r.role, r.version or DEFAULT_VERSION, r.scope)
    if doc.derived_roles:
        return _described("derived_roles", doc.derived_roles.name, "", "")
    if doc.export_variables:
        return _described("export_variables", doc.export_variables.name, "", "")
    if doc.schema:
        return _described("schema", doc.schema.id, "", "")
    assert doc.export_constants
    return _described("export_constants", doc.export_constants.name, "", "")


def _described(kind: str, name: str, version: str, scope: str) -> Described:
    return Described(policy_key(kind, name, version, scope), kind, name, version, scope)


class DecodeError(ValueError):
    """A source that is not a policy document; `path` points inside it when known."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


def _find_nul(value: Any) -> str | None:
    """The path of the first key or string holding a NUL character (YAML's `\\0` or JSON's
    `\\u0000`), None if there is none. Neither PostgreSQL's text nor its JSON stores one, and
    no Cerbos policy needs one (its CEL parser refuses it too)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path or "."
        elif isinstance(item, Mapping):
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and "\x00" in key:
                    return where
                stack.append((child, where))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None


def decode(source: Source) -> model.PolicyDocument:
    """One source as a policy document; DecodeError saying why it is not one."""
    if isinstance(source.data, _Broken):
        raise DecodeError(source.data.message)
    nul = _find_nul(source.data)
    if nul is not None:
        raise DecodeError(
            "a NUL character (\\u0000) in a string: policies are text without it", nul
        )
    try:
        doc = msgspec.convert(source.data, model.PolicyDocument)
    except msgspec.ValidationError as exc:
        raise DecodeError(str(exc)) from None
    if sum(getattr(doc, kind) is not None for kind in KINDS) != 1:
        raise DecodeError("a policy defines exactly one policy type")
    return doc


def _identity(doc: model.PolicyDocument) -> tuple[str, ...]:
    if doc.resource_policy:
        p = doc.resource_policy
        return ("resource", p.resource, p.version, p.scope)
    if doc.principal_policy:
        q = doc.principal_policy
        return ("principal", q.principal, q.version, q.scope)
    if doc.role_policy:
        r = doc.role_policy
        return ("role", r.role, r.version, r.scope)
    if doc.derived_roles:
        return ("derived_roles", doc.derived_roles.name)
    if doc.export_variables:
        return ("export_variables", doc.export_variables.name)
    if doc.schema:
        return ("schema", doc.schema.id)
    assert doc.export_constants
    return ("export_constants", doc.export_constants.name)


KINDS = (
    "resource_policy",
    "principal_policy",
    "derived_roles",
    "role_policy",
    "export_variables",
    "export_constants",
    "schema",
)


def _decode(sources: list[Source], issues: list[Issue]) -> list[tuple[str, model.PolicyDocument]]:
    docs: list[tuple[str, model.PolicyDocument]] = []
    for source in sources:
        try:
            doc = decode(source)
        except DecodeError as exc:
            issues.append(Issue(source.origin, exc.path, str(exc)))
            continue
        if not doc.disabled:
            docs.append((describe(doc).key, doc))
    return docs


class _Builder:
    """Compiles decoded policies into a rule table, collecting issues on the way."""

    def __init__(
        self, docs: list[tuple[str, model.PolicyDocument]], globals_: dict[str, Any]
    ) -> None:
        self.docs = docs
        self.globals = globals_
        self.issues: list[Issue] = []
        self.table = RuleTable()
        self.derived: dict[str, model.DerivedRolesPolicy] = {}
        self.export_vars: dict[str, dict[str, str]] = {}
        self.export_consts: dict[str, dict[str, Any]] = {}
        self.derived_compiled: dict[tuple[str, str], DerivedRole] = {}
        self.schema_definitions: dict[str, dict[str, Any]] = {}

    def issue(self, policy: str, path: str, message: str) -> None:
        self.issues.append(Issue(policy, path, message))

    def schema_refs(self, name: str, schemas: model.Schemas | None) -> SchemaRefs | None:
        """The schemas a resource policy names, each one the set holds (as Cerbos' compiler
        refuses a policy naming a schema its store does not have)."""
        if schemas is None:
            return None
        found: dict[str, tuple[str, tuple[str, ...]]] = {}
        for label, ref in (
            ("principalSchema", schemas.principal_schema),
            ("resourceSchema", schemas.resource_schema),
        ):
            if ref is None or not ref.ref:
                continue
            if ref_id(ref.ref) not in self.schema_definitions:
                self.issue(name, f"schemas.{label}.ref", f"schema {ref.ref!r} not found")
            ignore = (ref.ignore_when or {}).get("actions") or []
            if not isinstance(ignore, list) or not all(isinstance(a, str) for a in ignore):
                self.issue(name, f"schemas.{label}.ignoreWhen.actions", "a list of actions")
                ignore = []
            found[label] = (ref.ref, tuple(ignore))
        principal = found.get("principalSchema", ("", ()))
        resource = found.get("resourceSchema", ("", ()))
        return SchemaRefs(principal[0], principal[1], resource[0], resource[1])

    def build(self) -> RuleTable:
        seen: dict[tuple[str, ...], str] = {}
        for name, doc in self.docs:
            identity = _identity(doc)
            if identity in seen:
                self.issue(name, "", "duplicate policy: defined more than once")
                continue
            seen[identity] = name
            if doc.derived_roles:
                self.derived[doc.derived_roles.name] = doc.derived_roles
            elif doc.export_variables:
                self.export_vars[doc.export_variables.name] = doc.export_variables.definitions
            elif doc.export_constants:
                self.export_consts[doc.export_constants.name] = doc.export_constants.definitions
            elif doc.schema:
                problems = SchemaSet.problems(doc.schema.id, doc.schema.definition)
                for problem in problems:
                    self.issue(name, "schema.definition", problem)
                if not problems:
                    self.schema_definitions[doc.schema.id] = doc.schema.definition
        self.table.schemas = SchemaSet(self.schema_definitions)
        self.check_scopes()
        for name, doc in self.docs:
            if doc.resource_policy:
                self.resource_policy(name, doc, doc.resource_policy)
            elif doc.principal_policy:
                self.principal_policy(name, doc, doc.principal_policy)
            elif doc.role_policy:
                self.role_policy(name, doc.role_policy)
            elif doc.derived_roles:
                for path, definition in enumerate(doc.derived_roles.definitions):
                    self.derived_role(doc.derived_roles, definition, f"definitions[{path}]")
        return self.table

    # --- scopes ---------------------------------------------------------------------------

    def check_scopes(self) -> None:
        by_kind: set[tuple[str, str, str, str]] = set()
        permissions: dict[str, tuple[str, str]] = {}
        for name, doc in self.docs:
            policy = doc.resource_policy or doc.principal_policy or doc.role_policy
            if policy is None:
                continue
            scope = policy.scope
            if not _SCOPE.match(scope):
                self.issue(name, "scope", f"invalid scope {scope!r}")
            setting: str = policy.scope_permissions
            if doc.role_policy:
                if setting == OVERRIDE:
                    self.issue(
                        name,
                        "scopePermissions",
                        "role policies take "
                        "SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS only",
                    )
                if setting == "SCOPE_PERMISSIONS_UNSPECIFIED":
                    continue
            if setting == "SCOPE_PERMISSIONS_UNSPECIFIED":
                setting = OVERRIDE
            previous = permissions.get(scope)
            if previous is not None and previous[0] != setting:
                self.issue(
                    name,
                    "scopePermissions",
                    f"scope {scope!r} is {previous[0]} in {previous[1]} but {setting} here",
                )
            permissions.setdefault(scope, (setting, name))
            if doc.resource_policy:
                p = doc.resource_policy
                by_kind.add(("resource", p.resource, p.version, p.scope))
            elif doc.principal_policy:
                q = doc.principal_policy
                by_kind.add(("principal", q.principal, q.version, q.scope))
        for kind, subject, version, scope in sorted(by_kind):
            for parent in scope_parents(scope):
                if (kind, subject, version, parent) not in by_kind:
                    name = policy_key(kind, subject, version, scope)
                    missing = policy_key(kind, subject, version, parent)
                    self.issue(name, "scope", f"missing policy for the parent scope: {missing}")
        self.table.scope_permissions = {scope: value for scope, (value, _) in permissions.items()}

    # --- variables and constants ----------------------------------------------------------

    def scope_of(
        self,
        name: str,
        constants: model.Imports | None,
        variables: model.Imports | None,
        legacy: dict[str, str] | None = None,
    ) -> Scope:
        consts: dict[str, Any] = {}
        for imported in constants.import_ if constants else ():
            if imported not in self.export_consts:
                self.issue(name, "constants.import", f"no exportConstants named {imported!r}")
                continue
            for key, value in self.export_consts[imported].items():
                if key in consts:
                    self.issue(name, "constants", f"constant {key!r} defined more than once")
                consts[key] = value
        for key, value in (constants.local if constants else {}).items():
            if key in consts:
                self.issue(name, "constants.local", f"constant {key!r} defined more than once")
            consts[key] = value
        exprs: dict[str, str] = dict(legacy or {})
        for imported in variables.import_ if variables else ():
            if imported not in self.export_vars:
                self.issue(name, "variables.import", f"no exportVariables named {imported!r}")
                continue
            for key, expr in self.export_vars[imported].items():
                if key in exprs:
                    self.issue(name, "variables", f"variable {key!r} defined more than once")
                exprs[key] = expr
        for key, expr in (variables.local if variables else {}).items():
            if key in exprs:
                self.issue(name, "variables.local", f"variable {key!r} defined more than once")
            if not isinstance(expr, str):
                self.issue(name, f"variables.local.{key}", "a variable is a CEL expression")
                continue
            exprs[key] = expr
        scope = Scope.of(consts, exprs, self.globals)
        for key in exprs:  # report each bad variable once, where it is defined
            try:
                scope.variable(key)
            except CelCompileError as exc:
                self.issue(name, f"variables.{key}", str(exc))
                scope.resolved[key] = _ERROR_NODE
        return scope

    def expr(self, name: str, path: str, source: str, scope: Scope) -> Compiled | None:
        try:
            return compile_expression(source, scope)
        except CelCompileError as exc:
            self.issue(name, path, str(exc))
            return None

    def condition(
        self, name: str, path: str, condition: model.Condition | None, scope: Scope
    ) -> Cond | None:
        if condition is None:
            return None
        return self.match(name, f"{path}.match", condition.match, scope)

    def match(self, name: str, path: str, match: model.Match, scope: Scope) -> Cond:
        set_fields = [k for k in ("all", "any", "none", "expr") if getattr(match, k) is not None]
        if len(set_fields) != 1:
            self.issue(name, path, "a match has exactly one of all, any, none, expr")
            return Cond("all")
        op = set_fields[0]
        if op == "expr":
            assert match.expr is not None
            compiled = self.expr(name, f"{path}.expr", match.expr, scope)
            return Cond("expr", expr=compiled) if compiled else Cond("any")
        group: model.MatchList = getattr(match, op)
        if not group.of:
            self.issue(name, f"{path}.{op}.of", "an empty list of conditions")
        items = tuple(
            self.match(name, f"{path}.{op}.of[{i}]", m, scope) for i, m in enumerate(group.of)
        )
        return Cond(op, items=items)  # type: ignore[arg-type]

    def outputs(
        self, name: str, path: str, output: model.Output | None, scope: Scope
    ) -> Outputs | None:
        if output is None:
            return None
        activated_src = output.when.rule_activated if output.when else None
        if activated_src is None:
            activated_src = output.expr
        not_met_src = output.when.condition_not_met if output.when else None
        activated = (
            self.expr(name, f"{path}.when.ruleActivated", activated_src, scope)
            if activated_src
            else None
        )
        not_met = (
            self.expr(name, f"{path}.when.conditionNotMet", not_met_src, scope)
            if not_met_src
            else None
        )
        return Outputs(activated, not_met) if activated or not_met else None

    # --- policies -------------------------------------------------------------------------

    def derived_role(
        self, policy: model.DerivedRolesPolicy, definition: model.RoleDef, path: str
    ) -> DerivedRole:
        key = (policy.name, definition.name)
        if key in self.derived_compiled:
            return self.derived_compiled[key]
        name = policy_key("derived_roles", policy.name, "", "")
        scope = self.scope_of(name, policy.constants, policy.variables)
        cond = self.condition(name, f"{path}.condition", definition.condition, scope)
        role = DerivedRole(definition.name, frozenset(definition.parent_roles), cond)
        self.derived_compiled[key] = role
        return role

    def imported_roles(self, name: str, p: model.ResourcePolicy) -> dict[str, DerivedRole]:
        roles: dict[str, DerivedRole] = {}
        for i, imported in enumerate(p.import_derived_roles):
            policy = self.derived.get(imported)
            if policy is None:
                self.issue(name, f"importDerivedRoles[{i}]", f"no derivedRoles named {imported!r}")
                continue
            for j, definition in enumerate(policy.definitions):
                if definition.name in roles:
                    self.issue(
                        name,
                        f"importDerivedRoles[{i}]",
                        f"derived role {definition.name!r} imported more than once",
                    )
                roles[definition.name] = self.derived_role(policy, definition, f"definitions[{j}]")
        return roles

    def resource_policy(
        self, name: str, doc: model.PolicyDocument, p: model.ResourcePolicy
    ) -> None:
        kind, version = sanitize(p.resource), p.version or DEFAULT_VERSION
        scope = self.scope_of(name, p.constants, p.variables, doc.variables)
        roles = self.imported_roles(name, p)
        used: dict[str, DerivedRole] = {}
        permissions = self.table.scope_permissions.get(p.scope, OVERRIDE)
        for index, rule in enumerate(p.rules):
            path = f"rules[{index}]"
            if not rule.roles and not rule.derived_roles:
                self.issue(name, path, "a rule names roles or derivedRoles")
            if not rule.actions:
                self.issue(name, f"{path}.actions", "a rule names at least one action")
            rule_name = rule.name or f"rule-{index + 1:03d}"
            cond = self.condition(name, f"{path}.condition", rule.condition, scope)
            outputs = self.outputs(name, f"{path}.output", rule.output, scope)
            rule_fqn = f"{name}#{rule_name}"
            row_cond, effect = consent_rewrite(cond, rule.effect, permissions)
            # A rule for every role ("*") is one row, whatever else it names (Cerbos 0.51
            # emits its outputs once per role of the principal, not once per listed role).
            rule_roles = ["*"] if "*" in rule.roles else list(dict.fromkeys(rule.roles))
            for action in dict.fromkeys(rule.actions):
                for role in rule_roles:
                    self.table.add(
                        Row(
                            "resource",
                            name,
                            kind,
                            role,
                            action,
                            effect,
                            p.scope,
                            version,
                            rule_name,
                            rule_fqn,
                            f"{name}#{rule_fqn}",
                            row_cond,
                            outputs=outputs,
                        )
                    )
                for dr_name in dict.fromkeys(rule.derived_roles):
                    derived = roles.get(dr_name)
                    if derived is None:
                        self.issue(
                            name,
                            f"{path}.derivedRoles",
                            f"derived role {dr_name!r} is not defined in any imported derivedRoles",
                        )
                        continue
                    used[dr_name] = derived
                    for parent in sorted(derived.parent_roles):
                        self.table.add(
                            Row(
                                "resource",
                                name,
                                kind,
                                parent,
                                action,
                                effect,
                                p.scope,
                                version,
                                rule_name,
                                rule_fqn,
                                f"derived_roles.{dr_name}#{rule_fqn}",
                                row_cond,
                                derived_role=dr_name,
                                dr_condition=derived.condition,
                                outputs=outputs,
                            )
                        )
        # Cerbos compiles into a policy only the derived roles its rules use: only those
        # can show up in effectiveDerivedRoles.
        meta = PolicyMeta(name, tuple(used.values()), self.schema_refs(name, p.schemas))
        self.table.policies[("resource", kind, version, p.scope)] = meta

    def principal_policy(
        self, name: str, doc: model.PolicyDocument, p: model.PrincipalPolicy
    ) -> None:
        version = p.version or DEFAULT_VERSION
        scope = self.scope_of(name, p.constants, p.variables, doc.variables)
        permissions = self.table.scope_permissions.get(p.scope, OVERRIDE)
        resources: set[str] = set()
        for index, rule in enumerate(p.rules):
            if rule.resource in resources:
                self.issue(
                    name, f"rules[{index}].resource", f"duplicate resource {rule.resource!r}"
                )
            resources.add(rule.resource)
            for number, action in enumerate(rule.actions):
                path = f"rules[{index}].actions[{number}]"
                rule_name = action.name or f"{rule.resource}_rule-{number + 1:03d}"
                cond = self.condition(name, f"{path}.condition", action.condition, scope)
                outputs = self.outputs(name, f"{path}.output", action.output, scope)
                rule_fqn = f"{name}#{rule_name}"
                row_cond, effect = consent_rewrite(cond, action.effect, permissions)
                self.table.add(
                    Row(
                        "principal",
                        name,
                        sanitize(rule.resource),
                        "*",
                        action.action,
                        effect,
                        p.scope,
                        version,
                        rule_name,
                        rule_fqn,
                        f"{name}#{rule_fqn}",
                        row_cond,
                        outputs=outputs,
                        principal=p.principal,
                    )
                )
        self.table.policies[("principal", p.principal, version, p.scope)] = PolicyMeta(name)

    def role_policy(self, name: str, p: model.RolePolicy) -> None:
        scope = self.scope_of(name, p.constants, p.variables)
        for index, rule in enumerate(p.rules):
            path = f"rules[{index}]"
            cond = self.condition(name, f"{path}.condition", rule.condition, scope)
            rule_name = rule.name or f"{p.role}_rule-{index:03d}"
            self.table.add(
                Row(
                    "resource",
                    name,
                    sanitize(rule.resource),
                    p.role,
                    "",
                    "",
                    p.scope,
                    DEFAULT_VERSION,
                    rule_name,
                    f"{name}#{rule_name}",
                    f"{name}#{rule_name}",
                    cond,
                    from_role_policy=True,
                    allow_actions=tuple(rule.allow_actions),
                )
            )
        self.table.parent_roles.setdefault(p.scope, {})[p.role] = tuple(p.parent_roles)


_ERROR_NODE = Call("cerbos_invalid", ())  # stands in for a variable already reported


def load(sources: Any, globals_: Mapping[str, Any] | None = None) -> PolicySet:
    """Validate and compile policies; raise PolicyValidationError listing every problem."""
    issues: list[Issue] = []
    docs = _decode(read_documents(sources), issues)
    builder = _Builder(docs, dict(globals_ or {}))
    table = builder.build()
    issues.extend(builder.issues)
    if issues:
        raise PolicyValidationError(issues)
    return PolicySet([doc for _, doc in docs], table, dict(globals_ or {}))
