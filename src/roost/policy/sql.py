"""A PlanResources condition compiled to SQL: the rows a principal may act on, selected by the
database itself (rows are never loaded to be filtered).

The condition is Cerbos' expression tree (`plan.py`): `request.resource.attr.x` is column x,
`request.resource.id` the primary key. Meaning is kept as the engine's check has it, with
SQL's NULL standing for CEL's error: an error (`null < 1`, a missing overload) spreads through
`!` and is absorbed by `false &&` and `true ||` as NULL is, and a row whose condition is
NULL is not selected, as a resource whose condition errs is denied. Equality is two-valued as
in CEL (`null == 1` is false, `null == null` true; values of different types are unequal).
Strings order by code point, as CEL orders them (PostgreSQL compares under the "C" collation).

What cannot be compiled with the same meaning (a timestamp, a nested attribute, arithmetic,
an unknown function, a column that does not exist) raises `PlanNotCompilable`, a 4xx naming
the operator: a query is refused rather than answered with other rows than the check allows.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

import msgspec
from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    cast,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    true,
)

from roost.errors import ValidationError

__all__ = ["PlanNotCompilable", "SqlColumn", "condition_sql"]

Family = Literal["string", "number", "bool", "uuid", "integer_id", "other"]
_ATTR = "request.resource.attr."
_ID = "request.resource.id"
_INT64 = 2**63 - 1
_ORDER = {"lt": "__lt__", "le": "__le__", "gt": "__gt__", "ge": "__ge__"}
_MAX_DEPTH = 64


class PlanNotCompilable(ValidationError):
    """The policies' condition uses something SQL cannot evaluate as the engine does."""

    default_code = "policy_not_compilable"
    default_status = 422


class SqlColumn(msgspec.Struct, frozen=True):
    """A column as conditions see it: the SQL expression and the family of its values."""

    expr: ColumnElement[Any]
    family: Family


class _Column(msgspec.Struct, frozen=True):
    column: SqlColumn
    is_id: bool = False


class _Literal(msgspec.Struct, frozen=True):
    value: Any


_Term = _Column | _Literal


class _Compiler(msgspec.Struct):
    attrs: Mapping[str, SqlColumn]
    id_column: SqlColumn
    dialect: str
    where: str

    def refuse(self, what: str) -> PlanNotCompilable:
        return PlanNotCompilable(
            f"the policies' condition on {self.where} uses {what}, which Roost cannot turn into "
            "SQL with the same meaning; the query is refused rather than answered with other "
            "rows (simplify the condition, or read records one by one with database.get)",
            details={"field": "policy", "operator": what},
        )

    # --- booleans -------------------------------------------------------------------------

    def boolean(self, node: Any, depth: int = 0, mode: bool | None = True) -> ColumnElement[bool]:
        """`node` as SQL. `mode` True (where the result only selects rows: at the top, and
        under and/or from there): true exactly where the check's is, false and NULL alike
        elsewhere; False (under one `not` more): false exactly where the check's is; None:
        exact. The looser modes let `=` and `IN` stand without NULL guards, so indexes serve."""
        if depth > _MAX_DEPTH:
            raise self.refuse("a condition nested too deep")
        if not isinstance(node, dict):
            raise self.refuse("a malformed condition")
        if "value" in node:
            value = node["value"]
            if isinstance(value, bool):
                return true() if value else false()
            return _error()  # a condition that is not a bool errs, as in the check
        if "variable" in node:
            term = self.term(node)
            if isinstance(term, _Column) and term.column.family == "bool":
                return term.column.expr == true()
            raise self.refuse(f"{node['variable']} as a condition")
        expression = node.get("expression")
        if not isinstance(expression, dict):
            raise self.refuse("a malformed condition")
        op = expression.get("operator")
        operands = expression.get("operands")
        if not isinstance(operands, list):
            raise self.refuse("a malformed condition")
        if op in ("and", "or") and len(operands) == 2:
            parts = [self.boolean(item, depth + 1, mode) for item in operands]
            return and_(*parts) if op == "and" else or_(*parts)
        if op == "not" and len(operands) == 1:
            flipped = None if mode is None else not mode
            return not_(self.boolean(operands[0], depth + 1, flipped))
        if op == "holds" and len(operands) == 1:  # a condition's error is false, not NULL
            if mode is True:  # NULL selects no more than false does
                return self.boolean(operands[0], depth + 1, True)
            return func.coalesce(self.boolean(operands[0], depth + 1, None), false())
        if op in ("eq", "ne") and len(operands) == 2:
            left, right = self.term(operands[0]), self.term(operands[1])
            return self.equal(left, right, op == "ne", loose=mode is True)
        if op in _ORDER and len(operands) == 2:
            return self.order(op, self.term(operands[0]), self.term(operands[1]))
        if op == "in" and len(operands) == 2:
            return self.member(self.term(operands[0]), operands[1], loose=mode is True)
        if op in ("startsWith", "endsWith", "contains") and len(operands) == 2:
            return self.text_call(op, self.term(operands[0]), self.term(operands[1]))
        if op == "has" and len(operands) == 2:
            return self.has(operands[0], operands[1])
        raise self.refuse(f"the operator {str(op)[:64]!r}")

    # --- values ---------------------------------------------------------------------------

    def term(self, node: Any) -> _Term:
        if not isinstance(node, dict):
            raise self.refuse("a malformed condition")
        if "value" in node:
            return _Literal(node["value"])
        variable = node.get("variable")
        if isinstance(variable, str):
            if variable == _ID:
                return _Column(self.id_column, is_id=True)
            if variable.startswith(_ATTR):
                name = variable[len(_ATTR) :]
                found = self.attrs.get(name)
                if found is None:
                    raise self.refuse(f"R.attr.{name[:64]} (not a column of {self.where})")
                return _Column(found)
            raise self.refuse(f"the variable {variable[:64]}")
        expression = node.get("expression")
        if isinstance(expression, dict) and expression.get("operator") == "list":
            items = expression.get("operands")
            if isinstance(items, list) and all(isinstance(i, dict) and "value" in i for i in items):
                return _Literal([i["value"] for i in items])
        operator = expression.get("operator") if isinstance(expression, dict) else None
        raise self.refuse(f"the operator {str(operator)[:64]!r} as a value")

    def equal(
        self, left: _Term, right: _Term, negate: bool, *, loose: bool = False
    ) -> ColumnElement[bool]:
        if isinstance(left, _Literal) and isinstance(right, _Literal):
            same = _cel_equal(left.value, right.value)
            return true() if same != negate else false()
        if isinstance(left, _Column) and isinstance(right, _Column):
            if left.column.family != right.column.family or left.is_id or right.is_id:
                raise self.refuse("a comparison of two columns of different types")
            a, b = left.column.expr, right.column.expr
            return a.is_distinct_from(b) if negate else a.is_not_distinct_from(b)
        column, value = (left, right.value) if isinstance(left, _Column) else (right, left.value)  # type: ignore[union-attr]
        assert isinstance(column, _Column)
        if value is None:
            return column.column.expr.is_not(None) if negate else column.column.expr.is_(None)
        bound = self.bind(column, value)
        if bound is None:  # values of different types are unequal
            return true() if negate else false()
        expr = column.column.expr
        if negate:
            return expr.is_distinct_from(bound)
        return expr == bound if loose else expr.is_not_distinct_from(bound)

    def order(self, op: str, left: _Term, right: _Term) -> ColumnElement[bool]:
        if isinstance(left, _Literal) and isinstance(right, _Literal):
            raise self.refuse(f"the operator {op!r} on two values")
        if isinstance(left, _Column) and isinstance(right, _Column):
            if left.column.family != right.column.family or left.column.family not in (
                "string",
                "number",
            ):
                raise self.refuse(f"the operator {op!r} on these columns")
            a, b = self.ordered(left), self.ordered(right)
            return getattr(a, _ORDER[op])(b)  # type: ignore[no-any-return]
        column = left if isinstance(left, _Column) else right
        literal_term = right if isinstance(left, _Column) else left
        assert isinstance(column, _Column)
        assert isinstance(literal_term, _Literal)
        if column.is_id or column.column.family not in ("string", "number"):
            raise self.refuse(f"the operator {op!r} on a column of that type")
        bound = self.bind(column, literal_term.value)
        if bound is None:
            return _error()  # no overload for these types: the check errs
        if column is right:  # value < column is column > value
            op = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}[op]
        return getattr(self.ordered(column), _ORDER[op])(bound)  # type: ignore[no-any-return]

    def ordered(self, column: _Column) -> ColumnElement[Any]:
        expr = column.column.expr
        if column.column.family == "string" and self.dialect == "postgresql":
            return expr.collate("C")
        return expr

    def member(self, needle: _Term, haystack: Any, *, loose: bool = False) -> ColumnElement[bool]:
        items = self.term(haystack)
        if not isinstance(needle, _Column) or not isinstance(items, _Literal):
            raise self.refuse("the operator 'in' on a column's list (JSON arrays)")
        if not isinstance(items.value, list):
            raise self.refuse("the operator 'in' on a value that is not a list")
        bound = [self.bind(needle, v) for v in items.value if v is not None]
        parts: list[ColumnElement[bool]] = []
        values = [b for b in bound if b is not None]
        if values:
            found = needle.column.expr.in_(values)
            parts.append(found if loose else func.coalesce(found, false()))
        if any(v is None for v in items.value):
            parts.append(needle.column.expr.is_(None))
        return or_(*parts) if parts else false()

    def text_call(self, op: str, target: _Term, argument: _Term) -> ColumnElement[bool]:
        if (
            not isinstance(target, _Column)
            or target.is_id
            or target.column.family != "string"
            or not isinstance(argument, _Literal)
        ):
            raise self.refuse(f"{op}() on anything but a text column and a string")
        if not isinstance(argument.value, str):
            return _error()
        expr, text = target.column.expr, literal(argument.value)
        size = func.length(text)
        if op == "startsWith":
            return func.substr(expr, 1, size) == text
        if op == "endsWith":
            start = func.length(expr) - size + 1
            return and_(func.length(expr) >= size, func.substr(expr, start) == text)
        position = func.instr if self.dialect == "sqlite" else func.strpos
        return position(expr, text) > 0

    def has(self, target: Any, field: Any) -> ColumnElement[bool]:
        if target == {"variable": "request.resource.attr"} and isinstance(field, dict):
            name = field.get("value")
            return true() if isinstance(name, str) and name in self.attrs else false()
        raise self.refuse("has() on a nested attribute")

    def bind(self, column: _Column, value: Any) -> Any:
        """`value` as the column holds it; None when no value of the column equals it."""
        family = column.column.family
        if family == "string" and isinstance(value, str):
            return value
        if family == "bool" and isinstance(value, bool):
            return value
        if family == "number" and _is_number(value):
            if isinstance(value, int) and abs(value) > _INT64:
                return float(value)  # past a bound parameter's range; compares the same
            return value
        if family == "uuid" and isinstance(value, str):
            try:
                parsed = uuid.UUID(value)
            except ValueError:
                return None
            return parsed if str(parsed) == value else None  # R.id is the lowercase form
        if family == "integer_id" and isinstance(value, str):
            if value.lstrip("-").isdigit() and str(int(value)) == value:
                number = int(value)
                return number if abs(number) <= _INT64 else None
            return None
        if family in ("string", "bool", "number", "uuid", "integer_id"):
            return None
        raise self.refuse("a column of a type conditions cannot compare in SQL")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _cel_equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    return bool(a == b)


def _error() -> ColumnElement[bool]:
    """SQL NULL as a condition: what a CEL error is to the check (the row is not selected)."""
    return cast(null(), Boolean)


def condition_sql(
    condition: Mapping[str, Any],
    attrs: Mapping[str, SqlColumn],
    id_column: SqlColumn,
    dialect: str,
    where: str,
) -> ColumnElement[bool]:
    """The SQL condition of a KIND_CONDITIONAL plan's `condition` over a table whose
    attributes are `attrs` and whose id is `id_column` (`where` names it in refusals)."""
    return _Compiler(attrs, id_column, dialect, where).boolean(condition)
