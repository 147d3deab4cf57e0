"""Filters of the query language as SQL conditions: `[field, operator, value]` triples over a
table's columns (each value coerced like the column), over the top-level fields of documents,
and `compare` for any expression (file listings use it too); `ordered` for sorts that place
NULL alike on every engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, func, literal

from roost.backends.sql.tables import documents
from roost.errors import ValidationError
from roost.services.tabledefs import Coercer, ColumnDef, TableDef, check_identifier
from roost.wire.database import FILTER_OPERATORS as OPERATORS
from roost.wire.database import Filter

_TEXT_OPERATORS = {"contains", "icontains", "startswith", "endswith"}


def compare(
    expr: ColumnElement[Any],
    op: str,
    value: Any,
    convert: Callable[[Any], Any],
    field: str,
    dialect: str = "postgresql",
) -> ColumnElement[bool]:
    """`expr op value`, the value passed through `convert` (the column's own coercion)."""
    if op == "is_null":
        if not isinstance(value, bool):
            raise ValidationError("is_null takes true or false", details={"field": field})
        return expr.is_(None) if value else expr.is_not(None)
    if op in ("in", "not_in"):
        if not isinstance(value, list) or len(value) > 1000:
            raise ValidationError(
                f"{op} takes a list of at most 1000 values", details={"field": field}
            )
        values = [convert(v) for v in value]
        return expr.in_(values) if op == "in" else expr.not_in(values)
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise ValidationError("between takes [low, high]", details={"field": field})
        return and_(expr >= convert(value[0]), expr <= convert(value[1]))
    if op in _TEXT_OPERATORS:
        if not isinstance(value, str):
            raise ValidationError(f"{op} takes text", details={"field": field})
        if op == "icontains":
            return func.lower(expr).contains(value.lower(), autoescape=True)
        if dialect == "sqlite":
            return _sqlite_text_match(expr, op, value)
        method = {"contains": "contains", "startswith": "startswith", "endswith": "endswith"}[op]
        result: ColumnElement[bool] = getattr(expr, method)(value, autoescape=True)
        return result
    if op not in OPERATORS:
        raise ValidationError(
            f"unknown operator {str(op)[:20]!r}; use {', '.join(OPERATORS)}",
            details={"field": field},
        )
    converted = convert(value)
    if converted is None and op in ("eq", "ne"):
        return expr.is_(None) if op == "eq" else expr.is_not(None)
    return {
        "eq": expr.__eq__,
        "ne": expr.__ne__,
        "gt": expr.__gt__,
        "gte": expr.__ge__,
        "lt": expr.__lt__,
        "lte": expr.__le__,
    }[op](converted)


def _sqlite_text_match(expr: ColumnElement[Any], op: str, value: str) -> ColumnElement[bool]:
    # SQLite's LIKE ignores ASCII case; these are case-sensitive, as LIKE is on PostgreSQL
    if op == "contains":
        return func.instr(expr, value) > 0
    if not value:
        return expr.is_not(None)
    if op == "startswith":
        return func.substr(expr, 1, len(value)) == value
    return func.substr(expr, -len(value)) == value


def ordered(expr: Any, direction: str, dialect: str, nullable: bool = True) -> Any:
    """ORDER BY with NULL as the smallest value on every engine. That is SQLite's own order,
    so SQLite gets plain ASC/DESC and can use its indexes; PostgreSQL is told NULLS FIRST/LAST
    (and its indexes made by schema.add_index are built NULLS FIRST to serve it)."""
    if dialect != "postgresql" or not nullable:
        return expr.desc() if direction == "desc" else expr.asc()
    return expr.desc().nulls_last() if direction == "desc" else expr.asc().nulls_first()


def table_conditions(
    definition: TableDef, table: Table, filters: Sequence[Filter], dialect: str
) -> list[ColumnElement[bool]]:
    coercer = Coercer(definition)
    conditions = []
    for index, (name, op, value) in enumerate(filters):
        field = f"filters[{index}]"
        column = definition.require_column(name, field)
        if op in _TEXT_OPERATORS and not column.type.startswith(("text", "varchar")):
            raise ValidationError(
                f"{op} works on text columns; {name} is {column.type}", details={"field": field}
            )
        convert = _converter(coercer, column, field)
        conditions.append(compare(table.c[name], op, value, convert, field, dialect))
    return conditions


def _converter(coercer: Coercer, column: ColumnDef, field: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        return coercer.value(column, value, field)

    return convert


def document_field(name: str, dialect: str) -> Any:
    """A top-level field of the documents' JSON (`id` is the document id)."""
    if name == "id":
        return documents.c.id
    check_identifier(name, "field")
    if dialect == "postgresql":
        return documents.c.data[name]
    return func.json_extract(documents.c.data, f'$."{name}"')


def document_conditions(filters: Sequence[Filter], dialect: str) -> list[ColumnElement[bool]]:
    conditions = []
    for index, (name, op, value) in enumerate(filters):
        field = f"filters[{index}]"
        expr = document_field(name, dialect)
        if name != "id" and dialect == "postgresql":
            if op in _TEXT_OPERATORS:
                expr = documents.c.data.op("->>")(name)
                conditions.append(compare(expr, op, value, lambda v: v, field))
                continue
            conditions.append(compare(expr, op, value, _as_jsonb, field))
        else:
            conditions.append(compare(expr, op, value, lambda v: v, field, dialect))
    return conditions


def _as_jsonb(value: Any) -> Any:
    # a JSONB-typed literal is JSON-encoded once by SQLAlchemy (casting json.dumps() text to
    # JSONB would encode it twice and compare against a string); PostgreSQL only, so its
    # dialect is imported here, not at start (`backends/sql/jsontype.py`)
    from sqlalchemy.dialects.postgresql import JSONB

    return literal(value, type_=JSONB())
