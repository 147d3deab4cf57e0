"""CheckResources: the effect of each action on each resource, with Cerbos' precedence.

For each action, principal policies are consulted before resource policies; within a kind of
policy, each of the principal's roles walks the scope chain from the most specific scope up.
In a scope, a DENY that holds ends the walk; an ALLOW ends it in an OVERRIDE_PARENT scope and
asks the parent scope in a REQUIRE_PARENTAL_CONSENT one. Across roles the first role that
reaches ALLOW wins; without one the first decision stands, and no decision is a DENY.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from roost.errors import ValidationError
from roost.policy import loader
from roost.policy.cel import Activation, EvalError, request_lookup
from roost.policy.cost import Budget, CostExceeded
from roost.policy.functions import fixed_now
from roost.policy.model import (
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
from roost.policy.names import (
    DEFAULT_VERSION,
    NO_MATCH,
    NO_MATCH_FOR_SCOPE_PERMISSIONS,
    sanitize,
)
from roost.policy.plan import plan
from roost.policy.ruletable import CONSENT, OVERRIDE, Cond, Kind, Row, RuleTable
from roost.policy.schemas import Enforcement, SchemaRefs
from roost.policy.values import to_json
from roost.wire.policy import MAX_ACTIONS, MAX_RESOURCES

__all__ = ["Engine", "satisfied"]

ALLOW, DENY, NONE = "EFFECT_ALLOW", "EFFECT_DENY", ""
MAX_PLANS = 1024  # plans remembered per engine (per principal, kind, action...)
MAX_PLAN_KEY = 4096  # bytes of a principal's JSON for its plans to be remembered


def satisfied(cond: Cond | None, act: Activation) -> bool:
    """Whether a condition holds; an expression that errs does not hold."""
    if cond is None:
        return True
    op = cond.op
    if op == "expr":
        assert cond.expr is not None
        return act.holds(cond.expr) is True
    if op == "all":  # loops, not all()/any() over generators: this runs for every rule
        for item in cond.items:
            if not satisfied(item, act):
                break
        else:
            return True
        return False
    for item in cond.items:  # any, none
        if satisfied(item, act):
            return op == "any"
    return op == "none"


class _Request(msgspec.Struct):
    """One principal against one resource: values are converted for CEL only when read."""

    principal: Principal
    resource: Resource
    principal_value: Callable[[], Any]
    aux_data: Mapping[str, Any]
    now: datetime
    budget: Budget
    derived_roles: list[str] = msgspec.field(default_factory=list)

    def activation(self) -> Activation:
        return Activation(
            request_lookup(
                self.principal_value(),
                _resource_value(self.resource),
                self.aux_data,
                self.now,
                lambda: self.derived_roles,
            ),
            self.budget,
        )


def _resource_value(resource: Resource) -> dict[str, Any]:
    return {
        "kind": resource.kind,
        "id": resource.id,
        "attr": resource.attr,
        "policyVersion": resource.policy_version,
        "scope": resource.scope,
    }


def principal_value(principal: Principal) -> dict[str, Any]:
    return {
        "id": principal.id,
        "roles": principal.roles,
        "attr": principal.attr,
        "policyVersion": principal.policy_version,
        "scope": principal.scope,
    }


def _scope(value: str) -> str:
    return "" if value == "." else value


class Engine:
    """Checks principals against one validated set of policies (immutable; build a new one to
    change policies or globals)."""

    def __init__(
        self, policies: loader.PolicySet, schema_enforcement: Enforcement = "none"
    ) -> None:
        self.policies = policies
        self.table: RuleTable = policies.table
        self.schema_enforcement = schema_enforcement
        self._plans: dict[tuple[Any, ...], PlanFilter] = {}

    @classmethod
    def from_policies(
        cls,
        sources: Any,
        globals_: Mapping[str, Any] | None = None,
        schema_enforcement: Enforcement = "none",
    ) -> Engine:
        """Validate and compile `sources` (see `loader.read_documents`); `schema_enforcement`
        is Cerbos' `schema.enforcement` (see `schemas.py`)."""
        return cls(loader.load(sources, globals_), schema_enforcement)

    def _schema_refs(self, scopes: list[str], kind: str, version: str) -> SchemaRefs | None:
        """The schemas of the most specific policy of the chain that names any (a scoped
        policy without `schemas:` is checked against its parent's, as in Cerbos)."""
        if self.schema_enforcement == "none":
            return None
        for scope in scopes:
            meta = self.table.policies.get(("resource", kind, version, scope))
            if meta is not None and meta.schemas is not None:
                return meta.schemas
        return None

    # --- PlanResources --------------------------------------------------------------------

    def plan(
        self,
        principal: Principal | Mapping[str, Any],
        resource_kind: str,
        action: str,
        *,
        policy_version: str = "",
        scope: str = "",
        attr: Mapping[str, Any] | None = None,
        aux_data: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        mark_conditions: bool = False,
    ) -> PlanResponse:
        """Cerbos' PlanResources: always allowed, always denied, or the residual condition on
        the resource attributes not given in `attr`. `mark_conditions` (for compilers, not
        Cerbos' shape) wraps each condition's residual in `holds`: see `plan.plan`."""
        if not resource_kind or not action:
            raise _refused(
                "resource_kind and action are required",
                "action" if resource_kind else "resource_kind",
            )
        who = _principal(principal)
        errors: list[dict[str, Any]] = []
        version = policy_version or DEFAULT_VERSION
        kind = sanitize(resource_kind)
        memo: tuple[Any, ...] | None = None
        if (
            attr is None
            and aux_data is None
            and now is None
            and self.schema_enforcement == "none"
            and not self.table.reads_now(kind)
        ):
            # the same answer for the same principal until the policies change (a new
            # engine): bound tables plan each query of each caller
            who_key = msgspec.json.encode(who)
            if len(who_key) <= MAX_PLAN_KEY:  # a large principal is planned every time
                memo = (who_key, resource_kind, action, policy_version, scope, mark_conditions)
                held = self._plans.get(memo)
                if held is not None:
                    return PlanResponse(action, resource_kind, version, held)
        scopes, _ = self.table.scopes("resource", _scope(scope), kind, version)
        refs = self._schema_refs(scopes, kind, version)
        if refs is not None:
            errors = self.table.schemas.validate(refs, who.attr, attr or {}, [action], plan=True)
            if errors and self.schema_enforcement == "reject":
                return PlanResponse(
                    action, resource_kind, version, PlanFilter("KIND_ALWAYS_DENIED"), errors
                )
        try:
            answer = plan(
                self.table,
                who,
                resource_kind,
                action,
                policy_version=policy_version,
                scope=scope,
                attr=attr,
                aux_data=aux_data,
                now=now,
                mark_conditions=mark_conditions,
            )
        except CostExceeded as exc:
            raise _too_costly(str(exc), "principal.attr") from None
        answer.validation_errors = errors
        if memo is not None:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            self._plans[memo] = answer.filter  # shared by the answers: read, never changed
        return answer

    # --- CheckResources -------------------------------------------------------------------

    def check(
        self,
        principal: Principal | Mapping[str, Any],
        resources: Sequence[ResourceEntry | Mapping[str, Any]],
        aux_data: Mapping[str, Any] | None = None,
        *,
        now: datetime | None = None,
    ) -> CheckResponse:
        """Cerbos' CheckResources: one result per resource, in the order given."""
        who = _principal(principal)
        entries = _entries(resources)
        moment = now or fixed_now()
        values = principal_value(who)

        def principal_cel() -> Any:
            return values

        budget = Budget()
        results = []
        for index, entry in enumerate(entries):
            request = _Request(who, entry.resource, principal_cel, aux_data or {}, moment, budget)
            try:
                results.append(self._check_one(request, entry.actions))
            except CostExceeded as exc:
                raise _too_costly(f"resources[{index}]: {exc}", f"resources[{index}]") from None
        return CheckResponse(results)

    def _check_one(self, request: _Request, actions: list[str]) -> CheckResult:
        principal, resource = request.principal, request.resource
        table = self.table
        p_version = principal.policy_version or DEFAULT_VERSION
        r_version = resource.policy_version or DEFAULT_VERSION
        kind = sanitize(resource.kind)
        p_scopes, p_key = table.scopes(
            "principal", _scope(principal.scope), principal.id, p_version
        )
        r_scope = _scope(resource.scope)
        r_scopes, r_key = table.scopes("resource", r_scope, kind, r_version)
        errors: list[dict[str, Any]] = []
        refs = self._schema_refs(r_scopes, kind, r_version)
        if refs is not None:
            errors = table.schemas.validate(refs, principal.attr, resource.attr, actions)
            if errors and self.schema_enforcement == "reject":
                return CheckResult(
                    resource=ResultResource(
                        resource.id, resource.kind, resource.policy_version, resource.scope
                    ),
                    actions={action: "EFFECT_DENY" for action in actions},
                    meta=ResultMeta({action: ActionMeta(r_key) for action in actions}),
                    validation_errors=errors,
                )
        outputs: list[OutputEntry] = []
        effective: set[str] = set()
        result_actions: dict[str, Any] = {}
        meta: dict[str, ActionMeta] = {}
        if p_scopes or r_scopes:
            act = request.activation()
            run = _Run(table, request, act, r_version, kind, r_scope, outputs, effective)
            for action in actions:
                if action not in result_actions:
                    effect, policy, scope = run.action(action, p_scopes, p_key, r_scopes, r_key)
                    result_actions[action] = effect
                    meta[action] = ActionMeta(policy, scope)
        else:
            for action in actions:
                result_actions[action] = DENY
                meta[action] = ActionMeta(NO_MATCH)
        return CheckResult(
            resource=ResultResource(
                resource.id, resource.kind, resource.policy_version, resource.scope
            ),
            actions=result_actions,
            meta=ResultMeta(meta, sorted(effective)),
            outputs=outputs,
            validation_errors=errors,
        )


# What one kind of policy (or one role) decides for an action: effect, policy, scope.
_Decision = tuple[str, str, str]


class _Run(msgspec.Struct):
    """The evaluation of the actions of one resource: caches shared across its actions."""

    table: RuleTable
    request: _Request
    act: Activation
    version: str
    kind: str
    r_scope: str
    outputs: list[OutputEntry]
    effective: set[str]
    conditions: dict[str, bool] = msgspec.field(default_factory=dict)
    derived_by_scope: dict[str, list[str]] = msgspec.field(default_factory=dict)
    all_roles: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.all_roles = self.table.all_roles(self.r_scope, tuple(self.request.principal.roles))

    def action(
        self, action: str, p_scopes: list[str], p_key: str, r_scopes: list[str], r_key: str
    ) -> _Decision:
        effect, policy, scope = NONE, NO_MATCH, ""
        roles = self.request.principal.roles
        passes: tuple[tuple[Kind, list[str], str], ...] = (
            ("principal", p_scopes, p_key),
            ("resource", r_scopes, r_key),
        )
        for kind, scopes, key in passes:
            if not scopes:  # no policy of this kind: every role answers NONE, NO_MATCH
                effect, policy, scope = NONE, NO_MATCH, ""
                continue
            effect = NONE
            for role in roles[:1] if kind == "principal" else roles:
                decided = self.role(action, kind, scopes, key, role)
                if effect == NONE or decided[0] == ALLOW:
                    effect, policy, scope = decided
                    if effect == ALLOW:
                        break
                elif (
                    decided[0] == DENY
                    and policy == NO_MATCH_FOR_SCOPE_PERMISSIONS
                    and decided[1] != NO_MATCH_FOR_SCOPE_PERMISSIONS
                ):
                    effect, policy, scope = decided
            if effect in (ALLOW, DENY):
                break
        return (effect or DENY), policy, scope

    def role(self, action: str, kind: Kind, scopes: list[str], key: str, role: str) -> _Decision:
        """The decision of one role: its decision table walked from the most specific scope.
        In a scope, a DENY that holds ends the walk; an ALLOW ends it in an OVERRIDE_PARENT
        scope and asks the parent scope in a REQUIRE_PARENTAL_CONSENT one."""
        table = self.table
        steps = table.walk(
            self.version,
            self.kind,
            scopes,
            action,
            table.role_with_parents(self.r_scope, role),
            kind,
            self.request.principal.id if kind == "principal" else "",
        )
        derived = kind == "resource"
        has_allow = False
        for scope, rows, permissions in steps:
            if derived and scope not in self.derived_by_scope:
                self.derived_roles(scope)
            for row in rows:
                if not row.plain:
                    holds = self.holds(row)
                    if holds is None:
                        continue
                    if row.outputs is not None:
                        self.output(row, action, activated=holds)
                    if not holds:
                        continue
                if row.effect == ALLOW:
                    has_allow = True
                elif row.effect == DENY:
                    return DENY, (row.origin if row.from_role_policy else key), scope
            if has_allow:
                if permissions == CONSENT:
                    has_allow = False
                elif permissions == OVERRIDE:
                    return ALLOW, key, scope
        return NONE, key, ""

    def holds(self, row: Row) -> bool | None:
        """Whether the row's conditions hold; None when its derived role does not, the first
        time (Cerbos skips the rule then, and reads its cached False afterwards)."""
        cached = self.conditions.get(row.eval_key)
        if cached is not None:
            return cached
        if row.derived_role and not satisfied(row.dr_condition, self.act):
            self.conditions[row.eval_key] = False
            return None
        result = satisfied(row.condition, self.act)
        self.conditions[row.eval_key] = result
        return result

    def output(self, row: Row, action: str, activated: bool) -> None:
        if row.outputs is None:
            return
        expr = row.outputs.activated if activated else row.outputs.not_met
        if expr is None:
            return
        try:
            value = to_json(self.act.evaluate(expr))
        except EvalError:
            value = None
        self.outputs.append(OutputEntry(row.rule_fqn, value, action))

    def derived_roles(self, scope: str) -> None:
        if scope in self.derived_by_scope:
            return
        active: list[str] = []
        for derived in self.table.derived_candidates(
            self.kind, self.version, scope, self.all_roles
        ):
            if satisfied(derived.condition, self.act):
                active.append(derived.name)
                self.effective.add(derived.name)
        self.derived_by_scope[scope] = active
        self.request.derived_roles = active
        self.act.forget("runtime")


def _principal(value: Principal | Mapping[str, Any]) -> Principal:
    if isinstance(value, Principal):
        principal = value
    else:
        try:
            principal = msgspec.convert(dict(value), Principal)
        except msgspec.ValidationError as exc:
            raise _refused(f"principal: {exc}", "principal") from exc
    if not principal.id:
        raise _refused("principal.id is required", "principal.id")
    _check_depth(principal.attr, "principal.attr")
    if not principal.roles:
        raise _refused("principal.roles needs at least one role", "principal.roles")
    return principal


def _entries(values: Sequence[ResourceEntry | Mapping[str, Any]]) -> list[ResourceEntry]:
    if len(values) > MAX_RESOURCES:
        raise _refused(f"more than {MAX_RESOURCES} resources", "resources")
    entries: list[ResourceEntry] = []
    for index, value in enumerate(values):
        where = f"resources[{index}]"
        if isinstance(value, ResourceEntry):
            entry = value
        else:
            try:
                entry = msgspec.convert(dict(value), ResourceEntry)
            except (msgspec.ValidationError, TypeError, ValueError) as exc:
                raise _refused(f"{where}: {exc}", where) from exc
        if not entry.resource.kind:
            raise _refused(f"{where}.resource.kind is required", f"{where}.resource.kind")
        if not entry.actions or len(entry.actions) > MAX_ACTIONS:
            raise _refused(
                f"{where}.actions: between 1 and {MAX_ACTIONS} actions", f"{where}.actions"
            )
        _check_depth(entry.resource.attr, f"{where}.resource.attr")
        entries.append(entry)
    return entries


MAX_DEPTH = 32


def _check_depth(value: Any, field: str) -> None:
    """Refuse attributes nested deeper than MAX_DEPTH (they would only cost time and stack)."""
    if isinstance(value, dict):
        for child in value.values():
            if isinstance(child, dict | list):
                break
        else:
            return  # flat, as most attributes are
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _refused(f"{field}: nested deeper than {MAX_DEPTH} levels", field)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _too_costly(message: str, field: str) -> ValidationError:
    """Cerbos sets no cost limit; Roost refuses the request rather than read a condition over
    the budget as false (which would let a DENY rule's condition that is too costly allow)."""
    return ValidationError(
        f"{message} (attribute lists too large for the policies' conditions)",
        code="policy_cost_exceeded",
        details={"field": field},
    )


def _refused(message: str, field: str) -> ValidationError:
    return ValidationError(message, code="invalid_request", details={"field": field})
