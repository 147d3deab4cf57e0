"""PlanResources: which resources of a kind a principal may act on, as a condition on them.

The check's decision procedure is run symbolically: every row condition is partially
evaluated (the principal, variables, constants, globals and `now()` are known; the resource's
`attr` and `id` are not, unless given) and the scope walk, DENY-over-ALLOW within a scope and
ALLOW-from-any-role are built as and/or/not of those residuals. What folds to true is
KIND_ALWAYS_ALLOWED, to false KIND_ALWAYS_DENIED; anything else is KIND_CONDITIONAL with the
residual as Cerbos' `{"expression": {"operator", "operands"}}` tree, which stays data so a
caller can compile it (to SQL, for instance).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from roost.policy import celast
from roost.policy.cel import (
    Activation,
    CelCompileError,
    Compiled,
    EvalError,
    compile_tree,
    request_lookup,
)
from roost.policy.celast import (
    Call,
    Comprehension,
    Ident,
    Index,
    ListLit,
    Literal,
    MapLit,
    Node,
    Select,
)
from roost.policy.functions import fixed_now
from roost.policy.model import PlanFilter, PlanResponse, Principal
from roost.policy.names import DEFAULT_VERSION, glob_matcher, sanitize
from roost.policy.ruletable import CONSENT, OVERRIDE, Cond, Kind, Row, RuleTable
from roost.policy.values import to_json

__all__ = ["plan"]

HOLDS = "roost_holds"  # only with mark_conditions: true when the expression is true, else false
TRUE = Literal(True, "bool")
FALSE = Literal(False, "bool")
OPERATORS = {
    "_==_": "eq",
    "_!=_": "ne",
    "_<_": "lt",
    "_<=_": "le",
    "_>_": "gt",
    "_>=_": "ge",
    "@in": "in",
    "_&&_": "and",
    "_||_": "or",
    "!_": "not",
    "_+_": "add",
    "_-_": "sub",
    "_*_": "mult",
    "_/_": "div",
    "_%_": "mod",
    "-_": "neg",
    "_?_:_": "if",
    "cerbos_size": "size",
    "cerbos_timestamp": "timestamp",
    HOLDS: "holds",
}


def _and(a: Node, b: Node) -> Node:
    if a == FALSE or b == FALSE:
        return FALSE
    if a in (TRUE, b):
        return b
    if b == TRUE:
        return a
    both = Call("_&&_", (a, b))
    return FALSE if _contradicts(both) else both


def _or(a: Node, b: Node) -> Node:
    if a == TRUE or b == TRUE:
        return TRUE
    if a in (FALSE, b):
        return b
    if b == FALSE:
        return a
    return Call("_||_", (a, b))


MAX_CONJUNCTS = 64  # a longer conjunction is left as it is (the search is quadratic)


def _conjuncts(node: Node, out: list[Node]) -> None:
    """The parts of a conjunction, `!(x || y)` read as `!x && !y` (De Morgan's laws hold in
    CEL's logic of errors too: both sides err, or not, together)."""
    if len(out) > MAX_CONJUNCTS:
        return
    if isinstance(node, Call) and node.target is None:
        if node.function == "_&&_":
            _conjuncts(node.args[0], out)
            _conjuncts(node.args[1], out)
            return
        inner = node.args[0] if node.function == "!_" else None
        if isinstance(inner, Call) and inner.function == "_||_" and inner.target is None:
            _conjuncts(_not(inner.args[0]), out)
            _conjuncts(_not(inner.args[1]), out)
            return
    out.append(node)


def _contradicts(conjunction: Node) -> bool:
    """Whether the conjunction holds a part and its negation, `x && !(x && y...)` with every
    part of the negated one among its own parts: never true, whatever the resource (if `x`
    errs the whole errs, which does not hold either). Cerbos' planner folds some of these."""
    parts: list[Node] = []
    _conjuncts(conjunction, parts)
    if len(parts) > MAX_CONJUNCTS:
        return False
    for part in parts:
        if isinstance(part, Call) and part.function == "!_" and part.target is None:
            negated: list[Node] = []
            _conjuncts(part.args[0], negated)
            if len(negated) <= MAX_CONJUNCTS and all(n in parts for n in negated):
                return True
    return False


def _not(a: Node) -> Node:
    if a == TRUE:
        return FALSE
    if a == FALSE:
        return TRUE
    if isinstance(a, Call) and a.function == "!_":
        return a.args[0]
    return Call("!_", (a,))


# Known parts of conditions, compiled once: the same parts recur in every plan of a policy set.
_PROGRAMS: dict[str, Compiled | None] = {}


class _Known(msgspec.Struct, frozen=True):
    value: Any
    error: bool = False


class _Partial(msgspec.Struct):
    """Partial evaluation of rewritten expressions against what the plan request knows."""

    act: Activation
    known_attrs: Mapping[str, Any]
    mark_conditions: bool = False
    runtime: Node | None = None  # runtime.effectiveDerivedRoles of the scope being planned

    def unknown(self, node: Node) -> bool:
        """Whether the node reads the resource's attributes or id (not given in the request)."""
        if isinstance(node, Select):
            if isinstance(node.operand, Ident) and node.operand.name == "R":
                return node.field in ("attr", "id")
            if (
                isinstance(node.operand, Select)
                and isinstance(node.operand.operand, Ident)
                and node.operand.operand.name == "R"
                and node.operand.field == "attr"
                and not node.test_only
            ):
                return node.field not in self.known_attrs
            return self.unknown(node.operand)
        if isinstance(node, Ident):
            return node.name == "R"
        if isinstance(node, Index):
            return self.unknown(node.operand) or self.unknown(node.index)
        if isinstance(node, Call):
            target = [node.target] if node.target is not None else []
            return any(self.unknown(arg) for arg in (*target, *node.args))
        if isinstance(node, Comprehension):
            return self.unknown(node.target) or any(self.unknown(a) for a in node.args)
        if isinstance(node, ListLit):
            return any(self.unknown(item) for item in node.items)
        if isinstance(node, MapLit):
            return any(self.unknown(k) or self.unknown(v) for k, v in node.entries)
        return False

    def evaluate(self, node: Node) -> _Known:
        if isinstance(node, Literal):
            return _Known(node.value)
        text = celast.unparse(node)
        if text not in _PROGRAMS:
            if len(_PROGRAMS) > 4096:
                _PROGRAMS.clear()
            try:
                _PROGRAMS[text] = compile_tree(text, node)
            except CelCompileError:
                _PROGRAMS[text] = None
        program = _PROGRAMS[text]
        if program is None:
            return _Known(None, error=True)
        try:
            return _Known(self.act.evaluate(program))
        except EvalError:
            return _Known(None, error=True)

    def residual(self, node: Node) -> Node:
        """The node with every known part evaluated; TRUE/FALSE when it folds entirely."""
        if not self.unknown(node):
            known = self.evaluate(node)
            if known.error:
                if isinstance(node, Select | Index | Ident):
                    raise _Missing
                # Cerbos leaves a call that errs as a residual: the resource query decides.
                return self.structure(node)
            if not isinstance(known.value, bool):
                return FALSE
            return TRUE if known.value else FALSE
        return self.fold(node)

    def fold(self, node: Node) -> Node:
        if isinstance(node, Call) and node.target is None:
            name = node.function
            if name == "_&&_":
                return _and(self.boolean(node.args[0]), self.boolean(node.args[1]))
            if name == "_||_":
                return _or(self.boolean(node.args[0]), self.boolean(node.args[1]))
            if name == "!_":
                return _not(self.boolean(node.args[0]))
            if name == "_?_:_" and not self.unknown(node.args[0]):
                chosen = self.evaluate(node.args[0])
                if not chosen.error and isinstance(chosen.value, bool):
                    return self.fold_value(node.args[1] if chosen.value else node.args[2])
        return self.fold_value(node)

    def boolean(self, node: Node) -> Node:
        return self.residual(node)

    def fold_value(self, node: Node) -> Node:
        """A value-producing node: known parts become literals, the rest stays."""
        if not self.unknown(node):
            known = self.evaluate(node)
            if not known.error:
                return _Value(to_json(known.value))  # type: ignore[return-value]
            if isinstance(node, Select | Index | Ident):
                # Reading a key the request does not have makes the whole expression false,
                # as in Cerbos' planner; a function that errs on known values stays residual.
                raise _Missing
        return self.structure(node)

    def structure(self, node: Node) -> Node:
        if isinstance(node, Call):
            target = self.fold_value(node.target) if node.target is not None else None
            return Call(node.function, tuple(self.fold_value(arg) for arg in node.args), target)
        if isinstance(node, Select):
            return Select(self.fold_value(node.operand), node.field, node.test_only)
        if isinstance(node, Index):
            return Index(self.fold_value(node.operand), self.fold_value(node.index))
        if isinstance(node, ListLit):
            return ListLit(tuple(self.fold_value(item) for item in node.items))
        if isinstance(node, Comprehension):
            return Comprehension(node.macro, self.fold_value(node.target), node.var, node.args)
        return node

    def condition(self, cond: Cond | None) -> Node:
        if cond is None:
            return TRUE
        if cond.op == "expr":
            assert cond.expr is not None
            tree = cond.expr.tree
            if self.runtime is not None and "runtime" in cond.expr.uses:
                tree = _with_runtime(tree, self.runtime)
            try:
                found = self.residual(tree)
            except _Missing:
                return FALSE
            if self.mark_conditions and found not in (TRUE, FALSE):
                # an expression that errs does not hold, whatever surrounds it (a DENY
                # rule's error allows): the boundary a compiler to SQL needs
                return Call(HOLDS, (found,))
            return found
        parts = [self.condition(item) for item in cond.items]
        if cond.op == "all":
            out: Node = TRUE
            for part in parts:
                out = _and(out, part)
            return out
        any_of: Node = FALSE
        for part in parts:
            any_of = _or(any_of, part)
        return any_of if cond.op == "any" else _not(any_of)


class _Missing(Exception):
    """A known part of an expression reads a missing key."""


class _Value(msgspec.Struct, frozen=True):
    """A known value inside a residual."""

    value: Any


_ERROR = Call("cerbos_error", ())


def _tree(node: Any) -> dict[str, Any]:
    """A residual as Cerbos' PlanResources expression tree."""
    if isinstance(node, _Value):
        return {"value": node.value}
    if isinstance(node, Literal):
        return {"value": to_json(node.value)}
    path = _variable(node)
    if path is not None:
        return {"variable": path}
    if isinstance(node, Call):
        operands = [_tree(arg) for arg in node.args]
        if node.target is not None:
            operands.insert(0, _tree(node.target))
        name = OPERATORS.get(node.function, node.function)
        if name.startswith("tz_"):
            name = name[3:]
        return {"expression": {"operator": name, "operands": operands}}
    if isinstance(node, Select):
        operator = "has" if node.test_only else "get"
        return {
            "expression": {
                "operator": operator,
                "operands": [_tree(node.operand), {"value": node.field}],
            }
        }
    if isinstance(node, Index):
        return {
            "expression": {
                "operator": "index",
                "operands": [_tree(node.operand), _tree(node.index)],
            }
        }
    if isinstance(node, ListLit):
        return {"expression": {"operator": "list", "operands": [_tree(i) for i in node.items]}}
    if isinstance(node, Comprehension):
        body = [_tree(arg) for arg in node.args]
        lam = {"expression": {"operator": "lambda", "operands": [*body, {"variable": node.var}]}}
        return {"expression": {"operator": node.macro, "operands": [_tree(node.target), lam]}}
    if isinstance(node, Ident):
        return {"variable": node.name}
    return {"value": celast.unparse(node)}


def _variable(node: Node) -> str | None:
    names: list[str] = []
    while isinstance(node, Select) and not node.test_only:
        names.append(node.field)
        node = node.operand
    if isinstance(node, Ident) and node.name == "R" and names:
        return "request.resource." + ".".join(reversed(names))
    return None


class _Planner(msgspec.Struct):
    table: RuleTable
    partial: _Partial
    principal: Principal
    kind: str
    version: str
    action: str
    r_scope: str

    def runtime_roles(self, scope: str) -> Node:
        """`runtime.effectiveDerivedRoles` in `scope` as an expression, as Cerbos' planner
        has it: `(cond1 ? ["d1"] : []) + ...` over the derived roles the principal's roles
        may take there, so a rule reading it is planned on their conditions."""
        meta = self.table.policies.get(("resource", self.kind, self.version, scope))
        roles = self.table.all_roles(self.r_scope, tuple(self.principal.roles))
        out: Node | None = None
        for derived in meta.derived_roles if meta else ():
            if not any(glob_matcher(p)(role) for p in derived.parent_roles for role in roles):
                continue
            item = Call(
                "_?_:_",
                (
                    _with_runtime(_cond_node(derived.condition), ListLit(())),
                    ListLit((Literal(derived.name, "string"),)),
                    ListLit(()),
                ),
            )
            out = item if out is None else Call("_+_", (out, item))
        return out if out is not None else ListLit(())

    def rows_formula(self, rows: tuple[Row, ...], effect: str, scope: str = "") -> Node:
        self.partial.runtime = self.runtime_roles(scope)
        out: Node = FALSE
        for row in rows:
            if row.effect != effect:
                continue
            cond = self.partial.condition(row.condition)
            if row.derived_role:
                # a derived role's own condition sees no derived roles yet, as in the check
                runtime, self.partial.runtime = self.partial.runtime, ListLit(())
                try:
                    cond = _and(self.partial.condition(row.dr_condition), cond)
                finally:
                    self.partial.runtime = runtime
            out = _or(out, cond)
        return out

    def walk(
        self, kind: Kind, scopes: list[str], roles: tuple[str, ...], principal_id: str
    ) -> tuple[Node, Node]:
        """(allowed, denied) over the scope chain, most specific scope first."""
        if not scopes:
            return FALSE, FALSE
        scope = scopes[0]
        rows = self.table.query(
            self.version, self.kind, scope, self.action, roles, kind, principal_id
        )
        deny = self.rows_formula(rows, "EFFECT_DENY", scope)
        allow = self.rows_formula(rows, "EFFECT_ALLOW", scope)
        allowed_rest, denied_rest = self.walk(kind, scopes[1:], roles, principal_id)
        if self.table.scope_permissions.get(scope, "") == OVERRIDE:
            return (
                _and(_not(deny), _or(allow, allowed_rest)),
                _or(deny, _and(_not(allow), denied_rest)),
            )
        if self.table.scope_permissions.get(scope, "") == CONSENT:
            return _and(_not(deny), allowed_rest), _or(deny, denied_rest)
        return _and(_not(deny), allowed_rest), _or(deny, denied_rest)

    def allowed(self) -> Node:
        p = self.principal
        p_version = p.policy_version or DEFAULT_VERSION
        p_scopes, _ = self.table.scopes("principal", p.scope, p.id, p_version)
        r_scopes, _ = self.table.scopes("resource", self.r_scope, self.kind, self.version)
        p_allowed, p_denied = self.walk("principal", p_scopes, tuple(p.roles[:1]), p.id)
        resource_allowed: Node = FALSE
        for role in p.roles:
            roles = tuple(self.table.add_parent_roles(self.r_scope, [role]))
            allowed, _ = self.walk("resource", r_scopes, roles, "")
            resource_allowed = _or(resource_allowed, allowed)
        return _or(p_allowed, _and(_not(p_denied), resource_allowed))


def _cond_node(cond: Cond | None) -> Node:
    """A compiled condition as one expression tree (an erring part is false in `holds`)."""
    if cond is None:
        return TRUE
    if cond.op == "expr":
        assert cond.expr is not None
        return cond.expr.tree
    parts = [_cond_node(item) for item in cond.items]
    if cond.op == "all":
        out: Node = TRUE
        for part in parts:
            out = part if out == TRUE else Call("_&&_", (out, part))
        return out
    any_of: Node = FALSE
    for part in parts:
        any_of = part if any_of == FALSE else Call("_||_", (any_of, part))
    return any_of if cond.op == "any" else Call("!_", (any_of,))


def _with_runtime(node: Node, roles: Node) -> Node:
    """`node` with `runtime.effectiveDerivedRoles` replaced by `roles`."""
    if (
        isinstance(node, Select)
        and isinstance(node.operand, Ident)
        and node.operand.name == "runtime"
        and node.field == "effectiveDerivedRoles"
        and not node.test_only
    ):
        return roles
    if isinstance(node, Select):
        return Select(_with_runtime(node.operand, roles), node.field, node.test_only)
    if isinstance(node, Index):
        return Index(_with_runtime(node.operand, roles), _with_runtime(node.index, roles))
    if isinstance(node, Call):
        target = _with_runtime(node.target, roles) if node.target is not None else None
        return Call(node.function, tuple(_with_runtime(a, roles) for a in node.args), target)
    if isinstance(node, Comprehension):
        args = tuple(_with_runtime(a, roles) for a in node.args)
        return Comprehension(node.macro, _with_runtime(node.target, roles), node.var, args)
    if isinstance(node, ListLit):
        return ListLit(tuple(_with_runtime(item, roles) for item in node.items))
    if isinstance(node, MapLit):
        return MapLit(
            tuple((_with_runtime(k, roles), _with_runtime(v, roles)) for k, v in node.entries)
        )
    return node


def plan(
    table: RuleTable,
    principal: Principal,
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
    """Cerbos' PlanResources for one action on one resource kind. With `mark_conditions`,
    each condition expression's residual is wrapped in a `holds` operator (not Cerbos'):
    true when the expression is true, false when it is false or errs, as the check has it."""
    version = policy_version or DEFAULT_VERSION
    known_attrs = dict(attr or {})
    resource = {
        "kind": resource_kind,
        "id": "",
        "attr": known_attrs,
        "policyVersion": policy_version,
        "scope": scope,
    }
    principal_value = {
        "id": principal.id,
        "roles": principal.roles,
        "attr": principal.attr,
        "policyVersion": principal.policy_version,
        "scope": principal.scope,
    }
    moment = now or fixed_now()
    act = Activation(request_lookup(principal_value, resource, aux_data or {}, moment, list))
    planner = _Planner(
        table,
        _Partial(act, known_attrs, mark_conditions),
        principal,
        sanitize(resource_kind),
        version,
        action,
        "" if scope == "." else scope,
    )
    formula = planner.allowed()
    if formula == TRUE:
        result = PlanFilter("KIND_ALWAYS_ALLOWED")
    elif formula == FALSE:
        result = PlanFilter("KIND_ALWAYS_DENIED")
    else:
        result = PlanFilter("KIND_CONDITIONAL", _tree(formula))
    return PlanResponse(action, resource_kind, policy_version or DEFAULT_VERSION, result)
