"""Analytics: named, saved, parameterised read-only queries over a tenant's own tables.

A query is checked when it is defined and again when it runs: one SELECT (WITH and UNION
allowed), tables only from the tenant's own (no schema-qualified names, which on PostgreSQL
could reach another tenant, and no platform tables), functions from an allow-list, parameters
as `:name` placeholders that are always bound. What runs is sqlglot's rendering of the checked
tree, in a read-only transaction, under a time limit.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any

import msgspec
import sqlglot
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from roost.backends.sql.tables import analytics_queries
from roost.errors import NotFoundError, ServiceUnavailableError, ValidationError
from roost.services.context import Context
from roost.services.registry import operation
from roost.services.schema import TenantSchema, load_schema
from roost.services.tabledefs import check_identifier
from roost.wire.auth import Done
from roost.wire.common import Empty
from roost.wire.database import (
    AnalyticsQuery,
    AnalyticsRef,
    AnalyticsResult,
    DefineAnalyticsRequest,
    ExecuteAnalyticsRequest,
)

_PARAM_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "date": date,
    "datetime": datetime,
}
_ALLOWED_FUNCTIONS = {
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "coalesce",
    "nullif",
    "lower",
    "upper",
    "length",
    "substring",
    "substr",
    "trim",
    "round",
    "abs",
    "ceil",
    "floor",
    "cast",
    "trycast",
    "concat",
    "replace",
    "greatest",
    "least",
    "if",
    "case",
    "extract",
    "datetrunc",
    "timestamptrunc",
    "date",
    "strftime",
    "timetostr",
    "currentdate",
    "currenttimestamp",
    "countif",
    "stddev",
    "variance",
    "mod",
    "sign",
    "position",
    "strposition",
    "left",
    "right",
    "datediff",
    "dateadd",
    "timestampadd",
    "timestampdiff",
    "totimestamp",
    "tochar",
}


def checked_sql(sql: str, dialect: str, schema: TenantSchema) -> tuple[str, list[str]]:
    """The query rendered for the driver of `dialect` (sqlite3 `:name`, asyncpg `$n`) and its
    placeholder names in `$n` order, if it passes every check."""
    read = "postgres" if dialect == "postgresql" else "sqlite"
    try:
        statements = [s for s in sqlglot.parse(sql, read=read) if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise ValidationError(
            f"cannot parse the query: {str(exc).splitlines()[0][:200]}", details={"field": "sql"}
        ) from None
    if len(statements) != 1 or not isinstance(statements[0], sqlglot.exp.Query):
        raise ValidationError(
            "an analytics query is one SELECT statement", details={"field": "sql"}
        )
    tree = statements[0]
    ctes = {cte.alias_or_name for cte in tree.find_all(sqlglot.exp.CTE)}
    for table in tree.find_all(sqlglot.exp.Table):
        if table.args.get("db") or table.args.get("catalog"):
            raise ValidationError(
                f"{table.sql()} names a schema; use the tenant's own tables",
                details={"field": "sql"},
            )
        if table.name not in ctes and table.name not in schema.definitions:
            raise ValidationError(
                f"no table named {table.name!r} (database.tables() lists them)",
                details={"field": "sql"},
            )
    for function in tree.find_all(sqlglot.exp.Func):
        name = (
            function.name
            if isinstance(function, sqlglot.exp.Anonymous)
            else type(function).__name__
        ).lower()
        if name not in _ALLOWED_FUNCTIONS and not isinstance(function, sqlglot.exp.Connector):
            raise ValidationError(
                f"function {name!r} is not allowed in analytics queries", details={"field": "sql"}
            )
    order: list[str] = []

    def driver_placeholder(node: sqlglot.exp.Expression) -> sqlglot.exp.Expression:
        if not isinstance(node, sqlglot.exp.Placeholder):
            return node
        check_identifier(node.name, "sql")
        if node.name not in order:
            order.append(node.name)
        marker = f"${order.index(node.name) + 1}" if read == "postgres" else f":{node.name}"
        return sqlglot.exp.Var(this=marker)

    return tree.transform(driver_placeholder).sql(dialect=read), order


@operation("analytics.define", scope="analytics:define")
async def define(ctx: Context, params: DefineAnalyticsRequest) -> AnalyticsQuery:
    """Save (or replace) a named query; `params` maps each `:name` placeholder to its type."""
    name = check_identifier(params.name, "name")
    for param in params.params:
        check_identifier(param, "params")
    schema = await load_schema(ctx.platform, ctx.tenant)
    _, placeholders = checked_sql(params.sql, ctx.platform.db.dialect, schema)
    if set(placeholders) != set(params.params):
        raise ValidationError(
            f"the query's placeholders {sorted(placeholders)} and params {sorted(params.params)} "
            "must be the same",
            details={"field": "params"},
        )
    values = {"sql": params.sql, "params": params.params, "description": params.description}
    async with ctx.platform.db.write(ctx.tenant) as conn:
        exists = (
            await conn.execute(
                select(analytics_queries.c.name).where(analytics_queries.c.name == name)
            )
        ).first()
        if exists:
            await conn.execute(
                analytics_queries.update().where(analytics_queries.c.name == name).values(**values)
            )
        else:
            await conn.execute(analytics_queries.insert().values(name=name, **values))
    return await _load(ctx, name)


@operation("analytics.list", scope="analytics:execute", read_only=True)
async def list_queries(ctx: Context, params: Empty) -> list[AnalyticsQuery]:
    """Every saved query."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (
            (await conn.execute(select(analytics_queries).order_by(analytics_queries.c.name)))
            .mappings()
            .all()
        )
    return [_to_wire(row) for row in rows]


@operation("analytics.delete", scope="analytics:define")
async def delete(ctx: Context, params: AnalyticsRef) -> Done:
    """Delete a saved query."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        result = await conn.execute(
            analytics_queries.delete().where(analytics_queries.c.name == params.name)
        )
    if result.rowcount == 0:
        raise NotFoundError(f"no analytics query named {params.name!r}", details={"field": "name"})
    return Done(count=1)


@operation("analytics.execute", scope="analytics:execute", read_only=True)
async def execute(ctx: Context, params: ExecuteAnalyticsRequest) -> AnalyticsResult:
    """Run a saved query with its parameters bound; `{"data": rows}`."""
    saved = await _load(ctx, params.name)
    schema = await load_schema(ctx.platform, ctx.tenant)
    sql, order = checked_sql(saved.sql, ctx.platform.db.dialect, schema)
    bound = _bind(saved.params, params.params)
    driver_params: Any = (
        tuple(bound[name] for name in order) if ctx.platform.db.dialect == "postgresql" else bound
    )
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = await _run_read_only(
            conn, sql, driver_params, params.limit, ctx.platform.settings.analytics_time_limit
        )
    return AnalyticsResult(data=rows)


def _bind(declared: dict[str, str], given: dict[str, Any]) -> dict[str, Any]:
    if unknown := sorted(set(given) - set(declared)):
        raise ValidationError(
            f"unknown parameter {', '.join(unknown)}", details={"field": "params"}
        )
    bound = {}
    for name, type_name in declared.items():
        if name not in given:
            raise ValidationError(
                f"parameter {name} ({type_name}) is missing", details={"field": f"params.{name}"}
            )
        try:
            bound[name] = msgspec.convert(given[name], _PARAM_TYPES[type_name])
        except msgspec.ValidationError as exc:
            raise ValidationError(
                f"parameter {name} must be {type_name}: {exc}", details={"field": f"params.{name}"}
            ) from None
    return bound


async def _run_read_only(
    conn: AsyncConnection, sql: str, bound: Any, limit: int, seconds: float
) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        result = await conn.exec_driver_sql(sql, bound)
        return [dict(row) for row in result.mappings().fetchmany(limit)]

    try:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SET TRANSACTION READ ONLY"))
            await conn.execute(text(f"SET LOCAL statement_timeout = {int(seconds * 1000)}"))
            return await run()
        return await _run_on_sqlite(conn, run, seconds)
    except DBAPIError as exc:
        message = str(exc.orig).strip().splitlines()[0][:300] if exc.orig else ""
        if "timeout" in message or "interrupt" in message or "cancel" in message:
            raise _too_slow(seconds) from None
        raise ValidationError(
            f"the database refused the query: {message}", details={"field": "sql"}
        ) from None


async def _run_on_sqlite(conn: AsyncConnection, run: Any, seconds: float) -> list[dict[str, Any]]:
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    sqlite = driver._conn  # the sqlite3 connection inside aiosqlite's thread
    await conn.exec_driver_sql("PRAGMA query_only = ON")
    # interrupt() is thread-safe; armed on a timer it stops the statement where it runs (a
    # wait_for would first wait for the cancelled call, which waits for the statement)
    timer = asyncio.get_running_loop().call_later(seconds, sqlite.interrupt)
    clean = False
    try:
        rows: list[dict[str, Any]] = await run()
        clean = True
        return rows
    finally:
        timer.cancel()
        # a pooled connection left read-only would break later writes: reset it or drop it
        try:
            if not clean:
                raise RuntimeError("discard")
            await conn.exec_driver_sql("PRAGMA query_only = OFF")
        except Exception:
            await conn.invalidate()


def _too_slow(seconds: float) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"the query ran longer than {seconds:g} s and was stopped; narrow it"
    )


async def _load(ctx: Context, name: str) -> AnalyticsQuery:
    async with ctx.platform.db.read(ctx.tenant) as conn:
        row = (
            (await conn.execute(select(analytics_queries).where(analytics_queries.c.name == name)))
            .mappings()
            .first()
        )
    if row is None:
        raise NotFoundError(f"no analytics query named {name!r}", details={"field": "name"})
    return _to_wire(row)


def _to_wire(row: Any) -> AnalyticsQuery:
    return AnalyticsQuery(
        name=row["name"],
        sql=row["sql"],
        params=row["params"],
        description=row["description"],
        updated_at=row["updated_at"],
    )
