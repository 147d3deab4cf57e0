"""`database.query`: one operation behind the Taruvi query builder, the Dominus `filters=` form
and the DotDo collections; filters, sort, pages, counts, `select` and `populate`.
`database.export` streams every matching row of a table, a page at a time. The filters
themselves are `filters.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Connection, Select, Table, func, select

from roost.backends.sql.tables import documents
from roost.errors import ValidationError
from roost.services import audit
from roost.services.context import Context
from roost.services.database import pages
from roost.services.database.filters import (
    document_conditions,
    document_field,
    ordered,
    table_conditions,
)
from roost.services.database.rowpolicy import RowPolicy, row_policy
from roost.services.registry import operation, streamed
from roost.services.schema import TenantSchema, load_schema
from roost.services.tabledefs import TableDef, check_identifier
from roost.wire.database import ExportRequest, Filter, QueryRequest, QueryResult, Row
from roost.wire.limits import INT64_MAX

MAX_PAGE = 1000
DEFAULT_PAGE = 100


class Page(msgspec.Struct, frozen=True):
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
    policy = await row_policy(ctx, definition, table)
    if policy is not None:  # the rows the caller may read, chosen by the database
        conditions = [*conditions, *policy.where("read")]
    guarded = await populated_policies(ctx, schema, definition, params.populate)
    dialect = ctx.platform.db.dialect

    def unpaged() -> Select[Any]:
        columns = _selected(definition, table, params.select, params.populate)
        statement = select(*columns).where(*conditions)
        for index, (name, direction) in enumerate(params.sort):
            column = definition.require_column(name, f"sort[{index}]")
            statement = statement.order_by(
                ordered(table.c[column.name], direction, dialect, column.nullable)
            )
        return statement.order_by(table.c[definition.primary_key.name])

    if dialect == "sqlite" and policy is None and access is None and not params.populate:
        found = _inline(ctx, params, table, page, conditions, unpaged)
        if found is not None:
            return found
    statement = unpaged()

    def work(conn: Connection) -> QueryResult:
        total = _count(conn, table, conditions) if params.count != "none" else None
        rows: list[Row] = []
        if params.count != "only":
            result = conn.execute(statement.limit(page.limit).offset(page.offset))
            rows = [dict(row) for row in result.mappings()]
            rows = populate(
                ctx,
                conn,
                schema,
                definition,
                rows,
                params.populate,
                params.reason,
                params.actor,
                guarded,
            )
        if access is not None:
            ids = [row.get(definition.primary_key.name) for row in rows]
            audit.record(conn, ctx, access, "query", definition.name, ids)
        return QueryResult(
            rows=rows, total=total, page=page.number, page_size=page.limit if page.number else None
        )

    # a read of a secure table writes its audit entry in the same transaction
    return await ctx.platform.db.run(ctx.tenant, work, write=access is not None)


def _inline(
    ctx: Context,
    params: QueryRequest,
    table: Table,
    page: Page,
    conditions: list[ColumnElement[bool]],
    unpaged: Callable[[], Select[Any]],
) -> QueryResult | None:
    """A plain read of a page on SQLite, inline (`pages`); None if it has no short path."""
    key = pages.shape_key(params.filters, params.sort, params.select, params.count)
    if key is None:
        return None
    shape = pages.compiled_shape(table, key, conditions, unpaged, page.limit, page.offset)
    if shape is None:
        return None
    found = pages.read(ctx.platform.db, ctx.tenant, shape, conditions, page.limit, page.offset)
    if found is None:
        pages.too_long(table, key)
        return None
    return QueryResult(
        rows=found.rows,
        total=found.total,
        page=page.number,
        page_size=page.limit if page.number else None,
    )


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
    guarded: Mapping[str, RowPolicy] | None = None,
) -> list[Row]:
    """Replace each reference in `names` by the row it points to: one query per reference.
    A row of a bound table (`guarded`, by table name) the caller may not read is left out
    (the reference reads as None)."""
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
        policy = (guarded or {}).get(target.name)
        if policy is not None:
            readable = policy.allowed("read", found.values())
            found = {k: row for (k, row), ok in zip(found.items(), readable, strict=True) if ok}
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


async def populated_policies(
    ctx: Context, schema: TenantSchema, definition: TableDef, names: Sequence[str]
) -> dict[str, RowPolicy]:
    """The policies of the bound tables that `names` (references of `definition`) point to."""
    found: dict[str, RowPolicy] = {}
    for name in names:
        column = definition.column(name)
        ref = column.references if column is not None else None
        if ref is None or ref.table in found or ref.table not in schema.definitions:
            continue  # populate() itself refuses what is not a reference
        target = schema.definitions[ref.table]
        policy = await row_policy(ctx, target, schema.tables[target.name])
        if policy is not None:
            found[target.name] = policy
    return found


def _document_row(doc_id: str, data: dict[str, Any], chosen: list[str] | None) -> Row:
    row = {"id": doc_id, **data}
    if chosen is not None:
        row = {k: v for k, v in row.items() if k in chosen or k == "id"}
    return row
