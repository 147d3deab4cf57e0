"""The CEL environment of Cerbos conditions, over the `common-expression-language` evaluator.

Each expression is parsed (`celast`), rewritten and compiled once, when the policies load:

- `C.x`/`constants.x` and `G.x`/`globals.x` become literals, and `V.x`/`variables.x` the
  (rewritten) expression of the variable, so a request converts only the principal and the
  resource into evaluator values (conversion, not evaluation, is what costs: ~2 µs a string);
- `request.principal`/`request.resource` become `P`/`R`; `now()` reads the request's one
  timestamp; Cerbos functions whose meaning differs from the evaluator's builtin are renamed to
  the Python ones in `functions.py` (`size` counts code points, getters take a time zone,
  `math.*`, `base64.*`, `sets.*`);
- unknown names, functions and fields of `P`/`R` are validation errors, as Cerbos' type checker
  reports them.

JSON numbers are doubles in Cerbos (protobuf `Value`), so `to_cel` turns every int of a request
into a float: `R.attr.n == 1` holds and `R.attr.n + 1` is an error, as in Cerbos.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from roost.policy import celast, cost
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
from roost.policy.functions import CelFunctionError, standard_functions

if TYPE_CHECKING:
    import cel as _cel
else:

    class _ImportedOnUse:
        """`cel`, imported when first used: the package imports its command line (typer,
        importlib.metadata) with it, ~0.25 s that a server evaluating no policy need not pay
        to start. The first use puts the module itself in its place."""

        def __getattr__(self, name: str) -> Any:
            module = importlib.import_module("cel")
            globals()["_cel"] = module
            return getattr(module, name)

    _cel = _ImportedOnUse()

__all__ = [
    "Activation",
    "CelCompileError",
    "Compiled",
    "Scope",
    "compile_expression",
    "to_cel",
]

FUNCTIONS = standard_functions()

# The evaluator logs each failed function call with its arguments at WARNING; a failed call is
# an ordinary false condition here, and its arguments are request attributes: keep them out.
logging.getLogger("cel").setLevel(logging.CRITICAL)

# The evaluator's own functions that keep their CEL meaning (method or global form).
BUILTINS = {
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "timestamp",
    "duration",
    "dyn",
    "type",
    "getFullYear",
    "getMonth",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
}
GETTERS = {name for name in BUILTINS if name.startswith("get")}
NAMESPACES = {"math", "base64", "sets", "strings"}
KNOWN = BUILTINS | set(FUNCTIONS) | {"now", "timeSince"}
NOW = "cerbos_now"  # the variable holding the request's timestamp
PRINCIPAL_FIELDS = {"id", "roles", "attr", "policyVersion", "scope"}
RESOURCE_FIELDS = {"kind", "id", "attr", "policyVersion", "scope"}
SNAKE = {"policy_version": "policyVersion", "effective_derived_roles": "effectiveDerivedRoles"}


MAX_VARIABLE_CHAIN = 32


class CelCompileError(ValueError):
    """An expression that does not compile; the message says why."""


class Compiled(msgspec.Struct, frozen=True):
    """One rewritten, compiled expression and the request parts it reads."""

    source: str
    tree: Node
    program: _cel.Program
    uses: frozenset[str]  # the request values it reads, by flattened name (see `flatten`)
    functions: frozenset[str] = frozenset()  # the Python functions it calls
    costly: bool = False  # can cost more than linear time: estimated first (cost.py)
    # The text the evaluator compiled: two expressions with the same text have the same value
    # on one request (their constants, globals and variables are written into it), unless
    # they read `runtime`, which changes from scope to scope. "" for those.
    memo_key: str = ""

    def __repr__(self) -> str:
        return f"Compiled({self.source!r})"


class Scope(msgspec.Struct):
    """What an expression may name: a policy's constants and variables, and the globals."""

    constants: Mapping[str, Any]
    variables: Mapping[str, str]
    globals: Mapping[str, Any]
    resolved: dict[str, Node]
    resolving: set[str]
    chain: dict[str, int] = msgspec.field(default_factory=dict)  # variable -> levels of variables
    _levels: list[int] = msgspec.field(default_factory=list)  # of the variables being resolved
    # each variable's text parsed once: a chain too long is walked again from each of its
    # variables, and parsing was all of that walk's cost (3,000 variables: 98k parses, 5 s)
    _parsed: dict[str, Node] = msgspec.field(default_factory=dict)

    @classmethod
    def of(
        cls,
        constants: Mapping[str, Any] | None = None,
        variables: Mapping[str, str] | None = None,
        globals_: Mapping[str, Any] | None = None,
    ) -> Scope:
        return cls(constants or {}, variables or {}, globals_ or {}, {}, set())

    def variable(self, name: str) -> Node:
        if name in self.resolved:
            self._used(self.chain.get(name, 1))
            return self.resolved[name]
        if name not in self.variables:
            raise CelCompileError(f"undefined variable {name!r}")
        if name in self.resolving:
            raise CelCompileError(f"variable {name!r} refers to itself")
        # Each level of a chain of variables is a level of recursion here (parsing and
        # rewriting) and in the tree inlined: chains are held to MAX_VARIABLE_CHAIN levels,
        # whatever order they are resolved in.
        if len(self.resolving) >= MAX_VARIABLE_CHAIN:
            raise _too_long_chain(name)
        self.resolving.add(name)
        self._levels.append(0)
        try:
            parsed = self._parsed.get(name)
            if parsed is None:
                parsed = self._parsed[name] = celast.parse(self.variables[name])
            tree = _Rewriter(self).rewrite(parsed, frozenset())
        except celast.CelSyntaxError as exc:
            raise CelCompileError(f"variable {name!r}: {exc}") from exc
        finally:
            self.resolving.discard(name)
            levels = self._levels.pop() + 1
        if levels > MAX_VARIABLE_CHAIN:
            raise _too_long_chain(name)
        self.resolved[name] = tree
        self.chain[name] = levels
        self._used(levels)
        return tree

    def _used(self, levels: int) -> None:
        if self._levels:
            self._levels[-1] = max(self._levels[-1], levels)


def _too_long_chain(name: str) -> CelCompileError:
    return CelCompileError(
        f"variable {name!r}: variables refer to variables more than {MAX_VARIABLE_CHAIN} deep"
    )


class _Rewriter:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def rewrite(self, node: Node, bound: frozenset[str]) -> Node:
        if isinstance(node, Literal):
            return node
        if isinstance(node, Ident):
            return self.ident(node, bound)
        if isinstance(node, Select):
            return self.select(node, bound)
        if isinstance(node, Index):
            key = node.index
            if (
                isinstance(node.operand, Ident)
                and node.operand.name not in bound
                and isinstance(key, Literal)
                and key.kind == "string"
            ):
                named = self.named(node.operand.name, str(key.value))
                if named is not None:
                    return named
            return Index(self.rewrite(node.operand, bound), self.rewrite(key, bound))
        if isinstance(node, ListLit):
            return ListLit(tuple(self.rewrite(item, bound) for item in node.items))
        if isinstance(node, MapLit):
            return MapLit(
                tuple((self.rewrite(k, bound), self.rewrite(v, bound)) for k, v in node.entries)
            )
        if isinstance(node, Comprehension):
            inner = bound | {node.var}
            return Comprehension(
                node.macro,
                self.rewrite(node.target, bound),
                node.var,
                tuple(self.rewrite(arg, inner) for arg in node.args),
            )
        return self.call(node, bound)

    def ident(self, node: Ident, bound: frozenset[str]) -> Node:
        name = node.name
        if name in bound or name in ("P", "R", "runtime"):
            return node
        if name in ("V", "variables"):
            names = sorted(self.scope.variables)
            entries = tuple((Literal(n, "string"), self.scope.variable(n)) for n in names)
            return MapLit(entries)
        if name in ("C", "constants"):
            return celast.literal_of(dict(self.scope.constants))
        if name in ("G", "globals"):
            return celast.literal_of(dict(self.scope.globals))
        if name == "request":
            raise CelCompileError("`request` is used only as request.principal/resource/aux_data")
        raise CelCompileError(f"undeclared reference to {name!r}")

    def named(self, root: str, name: str) -> Node | None:
        """`V.x`, `C.x`, `G.x` (and their long names) replaced by what they stand for."""
        if root in ("V", "variables"):
            return self.scope.variable(name)
        if root in ("C", "constants"):
            if name not in self.scope.constants:
                raise CelCompileError(f"undefined constant {name!r}")
            return celast.literal_of(self.scope.constants[name])
        if root in ("G", "globals"):
            if name not in self.scope.globals:
                # Cerbos reads globals as a map: a missing key is an error when evaluated.
                return Index(MapLit(()), Literal(name, "string"))
            return celast.literal_of(self.scope.globals[name])
        return None

    def select(self, node: Select, bound: frozenset[str]) -> Node:
        operand, name = node.operand, SNAKE.get(node.field, node.field)
        if isinstance(operand, Ident) and operand.name not in bound:
            root = operand.name
            if root == "request":
                return self.request_field(name, node.test_only)
            if not node.test_only:
                named = self.named(root, name)
                if named is not None:
                    return named
            if root in ("P", "R"):
                allowed = PRINCIPAL_FIELDS if root == "P" else RESOURCE_FIELDS
                if name not in allowed:
                    raise CelCompileError(f"undefined field {name!r} of {root}")
                return Select(operand, name, node.test_only)
            if root == "runtime":
                if name != "effectiveDerivedRoles":
                    raise CelCompileError(f"undefined field {name!r} of runtime")
                return Select(operand, name, node.test_only)
        if (
            isinstance(operand, Select)
            and isinstance(operand.operand, Ident)
            and operand.operand.name == "request"
            and "request" not in bound
        ):
            inner = self.request_field(SNAKE.get(operand.field, operand.field), False)
            return self.select(Select(inner, node.field, node.test_only), bound)
        return Select(self.rewrite(operand, bound), name, node.test_only)

    def request_field(self, name: str, test_only: bool) -> Node:
        if name == "principal":
            return Ident("P")
        if name == "resource":
            return Ident("R")
        if name in ("aux_data", "auxData"):
            return Select(Ident("request"), "aux_data", test_only)
        raise CelCompileError(f"undefined field {name!r} of request")

    def call(self, node: Call, bound: frozenset[str]) -> Node:
        name, target = node.function, node.target
        args = tuple(self.rewrite(arg, bound) for arg in node.args)
        if isinstance(target, Ident) and target.name in NAMESPACES and target.name not in bound:
            flat = f"{target.name}_{name}"
            if flat not in FUNCTIONS:
                raise CelCompileError(f"undeclared reference to '{target.name}.{name}'")
            return Call(flat, args)
        new_target = self.rewrite(target, bound) if target is not None else None
        if name.startswith("_") or name in ("!_", "-_", "@in"):
            return Call(name, args, new_target)
        if name == "now":
            if args or new_target is not None:
                raise CelCompileError("now() takes no arguments")
            return Ident(NOW)
        if name == "timeSince":
            subject = new_target if new_target is not None else (args[0] if args else None)
            if subject is None or (new_target is not None and args):
                raise CelCompileError("timeSince() takes one timestamp")
            return Call("_-_", (Ident(NOW), subject))
        whole = (new_target, *args) if new_target is not None else args
        if name == "size":
            return Call("cerbos_size", whole)
        if name == "timestamp" and new_target is None:
            return _timestamp_literal(whole) or Call("cerbos_timestamp", whole)
        if name in GETTERS and new_target is not None and len(args) <= 1:
            # without a zone, CEL reads the parts of a timestamp in UTC (as Cerbos does), not
            # in the offset it was written with, which the evaluator's own getters would use
            zone = args or (Literal("UTC", "string"),)
            return Call(f"tz_{name}", (new_target, *zone))
        if name not in KNOWN:
            raise CelCompileError(f"undeclared reference to {name!r}")
        if name in FUNCTIONS:
            return Call(name, whole)
        return Call(name, args, new_target)


def _timestamp_literal(args: tuple[Node, ...]) -> Node | None:
    """`timestamp("2025-01-01T00:00:00Z")`, folded: read once here by Cerbos' rules
    (`functions.timestamp`) and written out as the evaluator's own `timestamp` of Python's
    ISO text of it (same instant, same offset), which the evaluator reads in a fraction of
    the time of a call back into Python. None (not folded) when the text does not parse:
    the call errs when run, as before."""
    if len(args) != 1 or not isinstance(args[0], Literal) or args[0].kind != "string":
        return None
    try:
        moment = FUNCTIONS["cerbos_timestamp"](args[0].value)
    except CelFunctionError:
        return None
    return Call("timestamp", (Literal(moment.isoformat(), "string"),))


def _uses(node: Node, found: set[str]) -> None:
    if isinstance(node, Ident):
        found.add(node.name)
    elif isinstance(node, Select):
        _uses(node.operand, found)
    elif isinstance(node, Index):
        _uses(node.operand, found)
        _uses(node.index, found)
    elif isinstance(node, Call):
        if node.target is not None:
            _uses(node.target, found)
        for arg in node.args:
            _uses(arg, found)
    elif isinstance(node, Comprehension):
        _uses(node.target, found)
        for arg in node.args:
            _uses(arg, found)
    elif isinstance(node, ListLit):
        for item in node.items:
            _uses(item, found)
    elif isinstance(node, MapLit):
        for key, value in node.entries:
            _uses(key, found)
            _uses(value, found)


_PLAIN_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
REQUEST_ROOTS = ("P", "R")


def flatten(node: Node) -> Node:
    """`R.attr.owner` -> `R__attr__owner`, `P.id` -> `P__id`, `has(R.attr.x)` -> `R__has__x`:
    one evaluator variable per value read, so a request converts only what its conditions
    read (conversion costs ~2 µs a value). Other uses of `P`/`R` keep the whole value."""
    if isinstance(node, Select) and isinstance(node.operand, Ident):
        root = node.operand.name
        if root in REQUEST_ROOTS and not node.test_only:
            return Ident(f"{root}__{node.field}")
    if (
        isinstance(node, Select)
        and isinstance(node.operand, Select)
        and isinstance(node.operand.operand, Ident)
        and node.operand.operand.name in REQUEST_ROOTS
        and node.operand.field == "attr"
        and not node.operand.test_only
        and _PLAIN_KEY.match(node.field)
    ):
        root = node.operand.operand.name
        kind = "has" if node.test_only else "attr"
        return Ident(f"{root}__{kind}__{node.field}")
    if isinstance(node, Select):
        return Select(flatten(node.operand), node.field, node.test_only)
    if isinstance(node, Index):
        return Index(flatten(node.operand), flatten(node.index))
    if isinstance(node, Call):
        target = flatten(node.target) if node.target is not None else None
        return Call(node.function, tuple(flatten(arg) for arg in node.args), target)
    if isinstance(node, Comprehension):
        args = tuple(flatten(arg) for arg in node.args)
        return Comprehension(node.macro, flatten(node.target), node.var, args)
    if isinstance(node, ListLit):
        return ListLit(tuple(flatten(item) for item in node.items))
    if isinstance(node, MapLit):
        return MapLit(tuple((flatten(k), flatten(v)) for k, v in node.entries))
    return node


def _functions(node: Node, found: set[str]) -> None:
    if isinstance(node, Call):
        if node.function in FUNCTIONS:
            found.add(node.function)
        for child in (node.target, *node.args):
            if child is not None:
                _functions(child, found)
    elif isinstance(node, Select):
        _functions(node.operand, found)
    elif isinstance(node, Index):
        _functions(node.operand, found)
        _functions(node.index, found)
    elif isinstance(node, Comprehension):
        for child in (node.target, *node.args):
            _functions(child, found)
    elif isinstance(node, ListLit):
        for item in node.items:
            _functions(item, found)
    elif isinstance(node, MapLit):
        for key, value in node.entries:
            _functions(key, found)
            _functions(value, found)


def _is_request_value(name: str) -> bool:
    return name in ("P", "R", "request", "runtime", NOW) or name.startswith(("P__", "R__"))


MAX_NODES = 20_000
MAX_TREE_DEPTH = 128


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Select):
        return (node.operand,)
    if isinstance(node, Index):
        return (node.operand, node.index)
    if isinstance(node, Call):
        return node.args if node.target is None else (node.target, *node.args)
    if isinstance(node, Comprehension):
        return (node.target, *node.args)
    if isinstance(node, ListLit):
        return node.items
    if isinstance(node, MapLit):
        return tuple(part for entry in node.entries for part in entry)
    return ()


def check_size(tree: Node) -> None:
    """Refuse a tree too large or deep once written out. Variables are inlined as shared
    subtrees, so a chain of variables that each use the previous one twice stands for 2^n
    nodes in a small policy: everything after this (flattening, the text handed to the
    evaluator) would write them all out, and a deep chain would exhaust the stack."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) written out
    stack: list[tuple[Node, bool]] = [(tree, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in measured:
            continue
        children = _children(node)
        if not expanded and children:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in measured)
            continue
        sizes = [measured[id(child)] for child in children]
        nodes = 1 + sum(size for size, _ in sizes)
        depth = 1 + max((depth for _, depth in sizes), default=0)
        if nodes > MAX_NODES:
            raise CelCompileError(
                f"the expression stands for more than {MAX_NODES} nodes once its variables, "
                "constants and globals are written out"
            )
        if depth > MAX_TREE_DEPTH:
            raise CelCompileError(
                f"the expression is nested deeper than {MAX_TREE_DEPTH} levels once its "
                "variables are written out"
            )
        measured[id(node)] = (nodes, depth)


def compile_tree(source: str, tree: Node) -> Compiled:
    check_size(tree)
    flat = flatten(tree)
    text = celast.unparse(flat)
    try:
        program = _cel.compile(text)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CelCompileError(str(exc).splitlines()[0]) from exc
    found: set[str] = set()
    _uses(flat, found)
    functions: set[str] = set()
    _functions(flat, functions)
    roots = frozenset(name for name in found if _is_request_value(name))
    costly = cost.needs_estimate(tree)
    memo_key = "" if "runtime" in roots else text
    return Compiled(source, tree, program, roots, frozenset(functions), costly, memo_key)


def compile_expression(source: str, scope: Scope) -> Compiled:
    """Parse, rewrite and compile one condition; raise CelCompileError saying what is wrong."""
    try:
        tree = celast.parse(source)
    except celast.CelSyntaxError as exc:
        raise CelCompileError(f"syntax error: {exc}") from exc
    return compile_tree(source, _Rewriter(scope).rewrite(tree, frozenset()))


def rewrite(tree: Node, scope: Scope) -> Node:
    return _Rewriter(scope).rewrite(tree, frozenset())


def to_cel(value: Any, depth: int = 0) -> Any:
    """A JSON value as Cerbos' CEL sees it: every number a double."""
    if depth > 64:
        raise ValueError("attributes nested deeper than 64 levels")
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {str(k): to_cel(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_cel(v, depth + 1) for v in value]
    raise ValueError(f"not a JSON value: {type(value).__name__}")


class EvalError(Exception):
    """An expression evaluated to a CEL error (a missing key, no such overload...)."""


# The evaluator raises these for CEL error values; anything else is a bug and propagates.
CEL_ERRORS = (
    TypeError,
    KeyError,
    ValueError,
    RuntimeError,
    ZeroDivisionError,
    OverflowError,
    IndexError,
    CelFunctionError,
)


class Missing(Exception):
    """The request has no such value (an attribute not sent): reading it is a CEL error."""


_UNKNOWN = object()


class Activation:
    """The values of one request, converted lazily: only what a condition reads.

    `lookup(name)` answers a flattened name (`R__attr__owner`, `P__id`, `R`, `runtime`...)
    with a value ready for CEL, or raises Missing; a missing value stays undefined, so an
    expression reading it errs, as reading a missing key errs in Cerbos.
    """

    __slots__ = ("_bounds", "_budget", "_context", "_functions", "_held", "_loaded", "_lookup")

    def __init__(self, lookup: Callable[[str], Any], budget: cost.Budget | None = None) -> None:
        self._lookup = lookup
        self._loaded: set[str] = set()
        self._functions: set[str] = set()
        self._context = _cel.Context()
        self._budget = budget if budget is not None else cost.Budget()
        self._bounds: dict[str, cost.Bound] = {}
        self._held: dict[str, bool | None] = {}  # `holds` by memo_key: each text runs once

    def set(self, name: str, value: Any) -> None:
        """Replace a value already converted (the derived roles of another scope)."""
        self._context.add_variable(name, value)
        self._loaded.add(name)
        self._bounds.pop(name, None)
        if name != "runtime":  # expressions reading runtime are not remembered
            self._held.clear()

    def forget(self, name: str) -> None:
        self._loaded.discard(name)
        self._bounds.pop(name, None)
        if name != "runtime":
            self._held.clear()

    def evaluate(self, expr: Compiled) -> Any:
        """The value of `expr`, or EvalError when CEL says error; CostExceeded (not a CEL
        error: the caller refuses the request) when it would cost more than the budget."""
        if expr.costly:
            self._budget.spend(cost.estimate(expr.tree, self._bound))
        if not expr.uses <= self._loaded:  # a subset test allocates nothing
            for name in expr.uses - self._loaded:
                self._loaded.add(name)
                try:
                    self._context.add_variable(name, self._lookup(name))
                except Missing:
                    continue
        if not expr.functions <= self._functions:
            for name in expr.functions - self._functions:
                self._functions.add(name)
                self._context.add_function(name, FUNCTIONS[name])
        try:
            return expr.program.execute(self._context)
        except CEL_ERRORS as exc:
            raise EvalError(str(exc)) from exc

    def _bound(self, name: str) -> cost.Bound:
        found = self._bounds.get(name)
        if found is None:
            try:
                found = cost.measure(self._lookup(name))
            except Missing:
                found = cost.ONE
            except (KeyError, ValueError, TypeError):
                found = cost.ONE
            self._bounds[name] = found
        return found

    def holds(self, expr: Compiled) -> bool | None:
        """True or False, or None when the expression errs (a false condition for Cerbos).
        Remembered for the request: rules, derived roles and scopes share conditions."""
        key = expr.memo_key
        if key:
            held = self._held.get(key, _UNKNOWN)
            if held is not _UNKNOWN:
                return held  # type: ignore[return-value]
        try:
            found: bool | None = self.evaluate(expr) is True
        except EvalError:
            found = None
        if key:
            self._held[key] = found
        return found


def _part(values: Mapping[str, Any], rest: str) -> Any:
    if rest[:6] == "attr__":
        key = rest[6:]
        attr = values["attr"]
        if key not in attr:
            raise Missing(key)
        value = attr[key]
        if value.__class__ is str:  # most attributes: nothing to convert
            return value
        return to_cel(value)
    if rest[:5] == "has__":
        return rest[5:] in values["attr"]
    return to_cel(values[rest])


def request_lookup(
    principal: Mapping[str, Any],
    resource: Mapping[str, Any],
    aux_data: Mapping[str, Any],
    now: datetime,
    runtime: Callable[[], list[str]],
) -> Callable[[str], Any]:
    """The `Activation` lookup of one principal and one resource (plain JSON dicts with
    `id`, `roles`/`kind`, `attr`, `policyVersion`, `scope`)."""

    def lookup(name: str) -> Any:
        root = name[:3]
        if root == "R__":
            return _part(resource, name[3:])
        if root == "P__":
            return _part(principal, name[3:])
        if name == NOW:
            return now
        if name == "R":
            return to_cel(dict(resource))
        if name == "P":
            return to_cel(dict(principal))
        if name == "runtime":
            return {"effectiveDerivedRoles": sorted(runtime())}
        if name == "request":
            return {"aux_data": to_cel(dict(aux_data))}
        raise Missing(name)

    return lookup
