"""A cost budget for CEL conditions, as cel-go's `CostLimit`, estimated before evaluating.

The evaluator (`common-expression-language`, in Rust) offers no cost tracking or interruption,
and it holds the interpreter while it runs: a condition such as
`R.attr.a.all(x, R.attr.a.all(y, ...))` over a few thousand items, or a comprehension that
splits a long string on every iteration, runs for seconds. So before an expression that can
cost more than linear time (one with a comprehension or a set function) is evaluated, its cost
is estimated from the tree and the sizes of the values it actually reads, and an expression
over the budget is not evaluated (`CostExceeded`).

The estimate is an upper bound in cel-go's units (about one per operation and per item or
character handled): a comprehension costs its target's items times its body, a set function
the product of its lists' sizes, other calls the size of their arguments. A value's size is
known exactly for what the request holds; for computed values (a `split`, a `+`, a `map`) it
is bounded from their inputs. Expressions without comprehensions or set functions are linear
in the request, which the request size limits already bound, and are not estimated, unless
they call a function whose answer can outgrow its operands (`GROWING`: `replace`, `+`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

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

__all__ = [
    "COST_LIMIT",
    "REQUEST_COST_LIMIT",
    "Bound",
    "Budget",
    "CostExceeded",
    "estimate",
    "data",
    "measure",
    "needs_estimate",
]

# One unit is roughly 0.2-0.3 µs of the evaluator's time on this kind of work (measured: a
# 1000 x 1000 nested `all` costs ~5e6 units and runs in ~1.3 s), so an expression stops at
# ~0.3 s and one check or plan call, over all its resources, at ~1 s.
COST_LIMIT = 1_000_000
REQUEST_COST_LIMIT = 4_000_000

# Functions whose cost is the product of their lists' sizes (functions.py compares pairs).
QUADRATIC = {
    "except",
    "intersect",
    "isSubset",
    "is_subset",
    "hasIntersection",
    "has_intersection",
    "sets_contains",
    "sets_equivalent",
    "sets_intersects",
}
# Calls whose answer can outgrow their operands together, so that a condition without any
# comprehension is still not linear in the request: `replace` with an empty pattern writes
# the new text between every character (|text| x |new|), and `+` repeated over one request
# value (n terms, balanced to stay shallow) is n times its size.
GROWING = {"replace", "_+_"}
# Calls that do no work of their own on the data (the operands are costed by themselves).
LOGICAL = {"_&&_", "_||_", "!_", "_?_:_"}
# Calls whose result is a scalar (a bool, a number, a timestamp...).
SCALAR = {
    "_==_",
    "_!=_",
    "_<_",
    "_<=_",
    "_>_",
    "_>=_",
    "@in",
    "_-_",
    "_*_",
    "_/_",
    "_%_",
    "-_",
    "!_",
    "_&&_",
    "_||_",
    "cerbos_size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "timestamp",
    "cerbos_timestamp",
    "duration",
    "type",
    "indexOf",
    "lastIndexOf",
    "inIPAddrRange",
    "isSubset",
    "is_subset",
    "hasIntersection",
    "has_intersection",
    "sets_contains",
    "sets_equivalent",
    "sets_intersects",
}
# Calls whose result is no larger than their first operand (or target).
SHRINKING = {"substring", "trim", "lowerAscii", "upperAscii", "reverse", "charAt", "except"}


class CostExceeded(Exception):
    """The expression would cost more than the budget left; the message says how much."""


class Bound(msgspec.Struct, frozen=True):
    """An upper bound of a value's size: `length` its items (or characters), `weight` every
    item and character inside it, `item` a bound of each of its items (None: `weight`)."""

    length: int
    weight: int
    item: Bound | None = None

    def element(self) -> Bound:
        return self.item if self.item is not None else Bound(self.weight, self.weight)


ONE = Bound(1, 1)


def _join(a: Bound | None, b: Bound | None) -> Bound | None:
    if a is None or b is None:
        return None
    return Bound(max(a.length, b.length), max(a.weight, b.weight), _join(a.item, b.item))


def measure(value: Any) -> Bound:
    """The exact bound of a request value (as converted for CEL)."""
    if isinstance(value, str | bytes):
        return Bound(len(value), len(value) + 1)
    if isinstance(value, dict):
        parts: list[Any] = [*value, *value.values()]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        return ONE
    longest = 0  # items that are strings or scalars, measured without a Bound each
    item: Bound | None = None
    weight = 1
    for part in parts:
        if isinstance(part, str | bytes):
            longest = max(longest, len(part))
            weight += len(part) + 1
        elif isinstance(part, dict | list | tuple):
            inner = measure(part)
            item = inner if item is None else _join(item, inner)
            weight += inner.weight
        else:
            longest = max(longest, 1)
            weight += 1
    if item is None:
        item = Bound(longest, longest + 1)
    elif longest:
        item = Bound(max(item.length, longest), max(item.weight, longest + 1), None)
    return Bound(len(value), weight, item)


def data(bound: Bound) -> int:
    """The work of reading or comparing a value: its items, and its characters at a tenth
    of a unit each, as cel-go counts string work."""
    return bound.weight // 10 + (bound.length if bound.item is not None else 1)


# A condition with at most this many `+` (written out: a variable used twice counts twice)
# builds values of at most that many times the request's size, with as many times the work:
# linear, not estimated (the outputs `"seen by " + P.id` of most policies).
LINEAR_CONCATENATIONS = 8


def needs_estimate(tree: Node) -> bool:
    """Whether the expression can cost more than linear time in the request."""
    concatenations: dict[int, int] = {}  # id(node) -> `+` written out in it
    stack: list[tuple[Node, bool]] = [(tree, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in concatenations:
            continue
        if isinstance(node, Comprehension):
            return True
        if isinstance(node, Call) and node.function in QUADRATIC:
            return True
        if isinstance(node, Call) and node.function in GROWING and node.function != "_+_":
            return True
        children = _children(node)
        if not expanded:
            stack.append((node, True))
            stack.extend((child, False) for child in children)
            continue
        own = 1 if isinstance(node, Call) and node.function == "_+_" else 0
        count = own + sum(concatenations[id(child)] for child in children)
        if count > LINEAR_CONCATENATIONS:
            return True
        concatenations[id(node)] = count
    return False


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Call):
        return node.args if node.target is None else (node.target, *node.args)
    if isinstance(node, Select):
        return (node.operand,)
    if isinstance(node, Index):
        return (node.operand, node.index)
    if isinstance(node, ListLit):
        return node.items
    if isinstance(node, MapLit):
        return tuple(part for entry in node.entries for part in entry)
    return ()


class Budget:
    """What one check or plan call may still spend on estimated expressions."""

    __slots__ = ("left",)

    def __init__(self, limit: int = REQUEST_COST_LIMIT) -> None:
        self.left = limit

    def spend(self, cost: int) -> None:
        if cost > self.left:
            raise CostExceeded(
                f"the conditions would cost more than {REQUEST_COST_LIMIT} to evaluate for "
                "this request"
            )
        self.left -= cost


def estimate(tree: Node, value_of: Callable[[str], Bound], limit: int = COST_LIMIT) -> int:
    """The estimated cost of evaluating `tree` (a rewritten condition: `P`, `R` and
    comprehension variables free) with the request values `value_of` bounds by flattened
    name; CostExceeded as soon as it passes `limit`."""
    return _Estimator(value_of, limit).cost(tree, {})[0]


class _Estimator:
    def __init__(self, value_of: Callable[[str], Bound], limit: int) -> None:
        self.value_of = value_of
        self.limit = limit
        self.memo: dict[int, tuple[int, Bound]] = {}

    def cost(self, node: Node, scope: Mapping[str, Bound]) -> tuple[int, Bound]:
        # Variables are inlined as shared subtrees, closed over their own comprehension
        # variables: a node has one estimate wherever it appears.
        found = self.memo.get(id(node))
        if found is None:
            found = self._cost(node, scope)
            if found[0] > self.limit:
                raise CostExceeded(
                    f"the condition would cost more than {self.limit} to evaluate on "
                    "this request's attributes"
                )
            self.memo[id(node)] = found
        return found

    def _cost(self, node: Node, scope: Mapping[str, Bound]) -> tuple[int, Bound]:
        if isinstance(node, Literal):
            if isinstance(node.value, str | bytes):
                return 1, Bound(len(node.value), len(node.value) + 1)
            return 1, ONE
        if isinstance(node, Ident):
            if node.name in scope:
                return 1, scope[node.name]
            return 1, self.value_of(node.name)
        if isinstance(node, Select):
            name = _request_name(node)
            if name is not None:
                return 1, self.value_of(name)
            cost, bound = self.cost(node.operand, scope)
            return cost + 1, (ONE if node.test_only else bound.element())
        if isinstance(node, Index):
            cost, bound = self.cost(node.operand, scope)
            index_cost, _ = self.cost(node.index, scope)
            return cost + index_cost + 1, bound.element()
        if isinstance(node, ListLit | MapLit):
            parts = (
                list(node.items)
                if isinstance(node, ListLit)
                else [part for entry in node.entries for part in entry]
            )
            measured = [self.cost(part, scope) for part in parts]
            item: Bound | None = measured[0][1] if measured else ONE
            for _, other in measured[1:]:
                item = _join(item, other)
            weight = 1 + sum(b.weight for _, b in measured)
            return 1 + sum(c for c, _ in measured), Bound(len(measured), weight, item)
        if isinstance(node, Comprehension):
            return self.comprehension(node, scope)
        return self.call(node, scope)

    def comprehension(self, node: Comprehension, scope: Mapping[str, Bound]) -> tuple[int, Bound]:
        target_cost, target = self.cost(node.target, scope)
        inner = dict(scope)
        inner[node.var] = target.element()
        per_item = 1
        body = ONE
        for arg in node.args:
            cost, body = self.cost(arg, inner)
            per_item += cost
        total = target_cost + target.length * per_item
        if node.macro == "map":
            return total, Bound(target.length, 1 + target.length * body.weight, body)
        if node.macro == "filter":
            return total, target
        return total, ONE

    def call(self, node: Call, scope: Mapping[str, Bound]) -> tuple[int, Bound]:
        operands = ([node.target] if node.target is not None else []) + list(node.args)
        measured = [self.cost(operand, scope) for operand in operands]
        cost = 1 + sum(c for c, _ in measured)
        bounds = [b for _, b in measured]
        name = node.function
        if name not in LOGICAL:
            cost += sum(data(b) for b in bounds)
        if name in QUADRATIC and len(bounds) >= 2:
            cost += bounds[0].length * bounds[1].length
        if name == "_?_:_" and len(bounds) == 3:
            joined = _join(bounds[1], bounds[2])
            return cost, joined if joined is not None else Bound(
                max(bounds[1].length, bounds[2].length), max(bounds[1].weight, bounds[2].weight)
            )
        if name in SCALAR or not bounds:
            return cost, ONE
        if name == "_+_" and len(bounds) == 2:
            a, b = bounds
            return cost, Bound(a.length + b.length, a.weight + b.weight, _join(a.item, b.item))
        if name in SHRINKING:
            return cost, bounds[0]
        if name == "split":
            text = bounds[0].length
            part = Bound(text, text + 1)
            return cost, Bound(text + 1, 2 * text + 2, part)
        if name == "replace" and len(bounds) >= 3:
            text, new = bounds[0].length, bounds[2].length
            size = (text + 1) * (new + 1)
            cost += size
            return cost, Bound(size, size + 1)
        if name == "join" and bounds:
            sep = bounds[1].length if len(bounds) > 1 else 0
            size = bounds[0].weight + bounds[0].length * sep
            cost += size
            return cost, Bound(size, size + 1)
        # Anything else (a conversion, an encoding, `hierarchy`, `dyn`...): no larger than
        # a few times all its operands.
        size = 4 * sum(b.weight for b in bounds) + 32
        item: Bound | None = bounds[0].item
        for other in bounds[1:]:
            item = _join(item, other.item)
        return cost, Bound(size, size, item)


def _request_name(node: Select) -> str | None:
    """The flattened request name a selection reads (`R.attr.x` -> `R__attr__x`), if any."""
    operand = node.operand
    if isinstance(operand, Ident) and operand.name in ("P", "R"):
        return None if node.test_only else f"{operand.name}__{node.field}"
    if (
        isinstance(operand, Select)
        and isinstance(operand.operand, Ident)
        and operand.operand.name in ("P", "R")
        and operand.field == "attr"
        and not operand.test_only
    ):
        if node.test_only:
            return f"{operand.operand.name}__has__{node.field}"
        return f"{operand.operand.name}__attr__{node.field}"
    return None
