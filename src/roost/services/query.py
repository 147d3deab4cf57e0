"""`database.query`: one operation behind the Taruvi query builder, the Dominus `filters=` form
and the DotDo collections; filters, sort, pages, counts, `select` and `populate`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table, and_, func, literal, select
from sqlalchemy.dialects.postgresql import JSONB

from roost.backends.sql.tables import documents
from roost.errors import ValidationError
from roost.services import audit
from roost.services.context import Context
from roost.services.registry import operation, streamed
from roost.services.schema import TenantSchema, load_schema
from roost.services.tabledefs import Coercer, ColumnDef, TableDef, check_identifier
from roost.wire.database import FILTER_OPERATORS as OPERATORS
from roost.wire.database import ExportRequest, Filter, QueryRequest, QueryResult, Row
from roost.wire.limits import INT64_MAX

MAX_PAGE = 1000
DEFAULT_PAGE = 100
_TEXT_OPERATORS = {"contains", "icontains", "startswith", "endswith"}


# -- conditions ----------------------------------------------------------------------------


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
    # JSONB would encode it twice and compare against a string)
    return literal(value, type_=JSONB())


# -- the operation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int
    number: int | None


def page_of(params: QueryRequest) -> Page:
    if params.limit is not None or params.offset is not None:
        limit = params.limit or DEFAULT_PAGE
        if limit > MAX_PAGE:
            raise ValidationError(f"limit is at most {MAX_PAGE}", details={"field": "limit"})
        return Page(limit, params.offset or 0, None)
    size = params.page_size or DEFAULT_PAGE
    if size > MAX_PAGE:
        raise ValidationError(f"page_size is at most {MAX_PAGE}", details={"field": "page_size"})
    offset = (params.page - 1) * size
    if offset > INT64_MAX:  # past what SQL can skip: there is no such page
        raise ValidationError(
            f"page {params.page} of {size} rows starts past the last row SQL can count",
            details={"field": "page"},
        )
    return Page(size, offset, params.page)


@operation("database.query", scope="database:read", read_only=True)
async def query(ctx: Context, params: QueryRequest) -> QueryResult:
    """Rows of a table (or documents of a collection) matching every filter, sorted, a page at a
    time; `count="with"` adds the total, `count="only"` returns just the total."""
    if (params.table is None) == (params.collection is None):
        raise ValidationError(
            "name exactly one of table and collection", details={"field": "table"}
        )
    page = page_of(params)
    if params.collection is not None:
        return await _query_documents(ctx, params, page)
    schema = await load_schema(ctx.platform, ctx.tenant)
    definition = schema.definition(params.table or "")
    access = audit.require_access(definition, params.reason, params.actor)
    table = schema.tables[definition.name]
    conditions = table_conditions(definition, table, params.filters, ctx.platform.db.dialect)
    columns = _selected(definition, table, params.select, params.populate)
    statement = select(*columns).where(*conditions)
    dialect = ctx.platform.db.dialect
    for index, (name, direction) in enumerate(params.sort):
        column = definition.require_column(name, f"sort[{index}]")
        statement = statement.order_by(
            ordered(table.c[column.name], direction, dialect, column.nullable)
        )
    statement = statement.order_by(table.c[definition.primary_key.name])

    def work(conn: Connection) -> QueryResult:
        total = _count(conn, table, conditions) if params.count != "none" else None
        rows: list[Row] = []
        if params.count != "only":
            result = conn.execute(statement.limit(page.limit).offset(page.offset))
            rows = [dict(row) for row in result.mappings()]
            rows = populate(
                ctx, conn, schema, definition, rows, params.populate, params.reason, params.actor
            )
        if access is not None:
            ids = [row.get(definition.primary_key.name) for row in rows]
            audit.record(conn, ctx, access, "query", definition.name, ids)
        return QueryResult(
            rows=rows, total=total, page=page.number, page_size=page.limit if page.number else None
        )

    # a read of a secure table writes its audit entry in the same transaction
    return await ctx.platform.db.run(ctx.tenant, work, write=access is not None)


@streamed("database.export", scope="database:read", read_only=True)
async def export(ctx: Context, params: ExportRequest) -> AsyncIterator[Row]:
    """Every row of a table matching the filters, in primary-key order, one item per row: a
    whole table without paging by hand. Rows are read `page_size` at a time, each page when
    the reader is ready for it (a page of a secure table is audited like a query)."""
    schema = await load_schema(ctx.platform, ctx.tenant)
    key = schema.definition(params.table).primary_key.name
    select = params.select
    if select is not None and key not in select:
        select = [*select, key]  # the next page starts after the last key
    after: list[Filter] = []
    while True:
        page = await query(
            ctx,
            QueryRequest(
                table=params.table,
                filters=[*params.filters, *after],
                select=select,
                limit=params.page_size,
                reason=params.reason,
                actor=params.actor,
            ),
        )
        for row in page.rows:
            yield row
        if len(page.rows) < params.page_size:
            return
        after = [(key, "gt", page.rows[-1][key])]


def _selected(
    definition: TableDef, table: Table, chosen: list[str] | None, populated: list[str]
) -> list[Any]:
    if chosen is None:
        return list(table.c)
    names = [definition.require_column(n, "select").name for n in chosen]
    names += [n for n in populated if n not in names]
    return [table.c[n] for n in names]


def _count(conn: Connection, table: Table, conditions: list[ColumnElement[bool]]) -> int:
    statement: Select[Any] = select(func.count()).select_from(table).where(*conditions)
    return int(conn.execute(statement).scalar_one())


def populate(
    ctx: Context,
    conn: Connection,
    schema: TenantSchema,
    definition: TableDef,
    rows: list[Row],
    names: Sequence[str],
    reason: str | None,
    actor: str | None,
) -> list[Row]:
    """Replace each reference in `names` by the row it points to: one query per reference."""
    for name in names:
        column = definition.require_column(name, "populate")
        ref = column.references
        if ref is None:
            raise ValidationError(
                f"{definition.name}.{name} is not a reference (REFERENCES)",
                details={"field": "populate"},
            )
        target = schema.definition(ref.table)
        access = audit.require_access(target, reason, actor)
        keys = list({row[name] for row in rows if row.get(name) is not None})
        found: dict[Any, Row] = {}
        target_table = schema.tables[target.name]
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            result = conn.execute(select(target_table).where(target_table.c[ref.column].in_(chunk)))
            found.update({row[ref.column]: dict(row) for row in result.mappings()})
        for row in rows:
            row[name] = found.get(row.get(name))
        if access is not None and found:
            pk = target.primary_key.name
            audit.record(
                conn, ctx, access, "populate", target.name, [r[pk] for r in found.values()]
            )
    return rows


async def _query_documents(ctx: Context, params: QueryRequest, page: Page) -> QueryResult:
    collection = check_identifier(params.collection or "", "collection")
    if params.populate:
        raise ValidationError(
            "populate works on tables, not collections", details={"field": "populate"}
        )
    dialect = ctx.platform.db.dialect
    conditions = [
        documents.c.collection == collection,
        *document_conditions(params.filters, dialect),
    ]
    statement = select(documents.c.id, documents.c.data).where(*conditions)
    for name, direction in params.sort:
        expr = document_field(name, dialect)
        statement = statement.order_by(ordered(expr, direction, dialect))
    statement = statement.order_by(documents.c.id)

    def work(conn: Connection) -> QueryResult:
        total = _count(conn, documents, conditions) if params.count != "none" else None
        rows: list[Row] = []
        if params.count != "only":
            result = conn.execute(statement.limit(page.limit).offset(page.offset))
            rows = [_document_row(r.id, r.data, params.select) for r in result]
        return QueryResult(
            rows=rows, total=total, page=page.number, page_size=page.limit if page.number else None
        )

    return await ctx.platform.db.run(ctx.tenant, work)


def _document_row(doc_id: str, data: dict[str, Any], chosen: list[str] | None) -> Row:
    row = {"id": doc_id, **data}
    if chosen is not None:
        row = {k: v for k, v in row.items() if k in chosen or k == "id"}
    return row
