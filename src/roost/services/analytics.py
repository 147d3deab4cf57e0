"""Analytics: named, saved, parameterised read-only queries over a tenant's own tables.

A query is checked when it is defined and again when it runs: one SELECT (WITH and UNION
allowed), tables only from the tenant's own (no schema-qualified names, no catalogs, no
platform tables; a CTE shadows a table only within its own WITH), functions from an
allow-list, CASTs to plain value types only (no `reg*`/`oid` catalog lookups), no `(expr).name`
field access (PostgreSQL calls a function that way), parameters as `:name` placeholders
that are always bound. Names resolve as the dialect resolves them (PostgreSQL folds unquoted
ones to lower case, SQLite ignores case), so a CTE named `"SECRET"` is not taken for a table
named `SECRET` that the database reads as `secret`. That check is the
first line only: what runs (sqlglot's rendering of the checked tree) runs where the database
itself confines it to the tenant's tables (`roost.backends.sql.confined`), read-only, under a
time limit, one or two at a time per tenant, with a bounded result. A query over a secure table
needs a reason, is audited, and only then runs where the database lets it read secure tables.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, select

from roost.backends.sql.confined import ReadRefused, ReadTooLarge, ReadTooSlow
from roost.backends.sql.tables import analytics_queries
from roost.errors import (
    AuthorizationError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    ValidationError,
)
from roost.services import audit, guards
from roost.services.context import Context
from roost.services.policystore import policy_guard
from roost.services.registry import operation
from roost.services.schema import TenantSchema, load_schema
from roost.services.tabledefs import check_identifier
from roost.wire.common import Done, Empty
from roost.wire.database import (
    AnalyticsQuery,
    AnalyticsRef,
    AnalyticsResult,
    DefineAnalyticsRequest,
    ExecuteAnalyticsRequest,
)

if TYPE_CHECKING:  # sqlglot is imported on first use: a server that runs no analytics
    from sqlglot import exp  # query never pays its import at start-up

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
_CAST_TYPES = frozenset(  # names of sqlglot exp.DataType.Type members
    # value types only: a cast to regclass, regnamespace, oid and the like looks up catalogs
    {
        "TEXT",
        "VARCHAR",
        "CHAR",
        "INT",
        "BIGINT",
        "SMALLINT",
        "DECIMAL",
        "FLOAT",
        "DOUBLE",
        "BOOLEAN",
        "DATE",
        "TIME",
        "TIMESTAMP",
        "TIMESTAMPTZ",
        "INTERVAL",
        "JSON",
        "JSONB",
    }
)

_CATALOGS = ("pg_", "sqlite_", "information_schema")
_SQLITE_FUNCTIONS = frozenset(
    # what sqlglot renders the functions above as on SQLite, and the operators it calls
    # through functions (LIKE, GLOB); the authorizer refuses any other
    {
        *_ALLOWED_FUNCTIONS,
        "total",
        "ifnull",
        "iif",
        "instr",
        "ltrim",
        "rtrim",
        "ceiling",
        "concat_ws",
        "printf",
        "format",
        "time",
        "datetime",
        "julianday",
        "unixepoch",
        "current_date",
        "current_time",
        "current_timestamp",
        "group_concat",
        "like",
        "glob",
        "typeof",
    }
)


class CheckedQuery(msgspec.Struct, frozen=True):
    """A query that passed the checks, rendered for the driver of its dialect."""

    sql: str
    placeholders: list[str]
    """the `:name` placeholders in driver (`$n`) order"""
    tables: frozenset[str]
    """the tenant's tables it reads (not counting CTEs)"""


def check_query(sql: str, dialect: str, schema: TenantSchema) -> CheckedQuery:
    """The query rendered for the driver of `dialect` (sqlite3 `:name`, asyncpg `$n`), if it
    passes every check. The first line only: the database confines what runs (`confined`)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

    read = "postgres" if dialect == "postgresql" else "sqlite"
    try:
        statements = [s for s in sqlglot.parse(sql, read=read) if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise ValidationError(
            f"cannot parse the query: {str(exc).splitlines()[0][:200]}", details={"field": "sql"}
        ) from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ValidationError(
            "an analytics query is one SELECT statement", details={"field": "sql"}
        )
    # resolve names as the database will, and render what was checked
    tree = normalize_identifiers(statements[0], dialect=read)
    tables = {_checked_table(table, schema) for table in tree.find_all(exp.Table)}
    _check_functions(tree)
    _check_field_access(tree)
    _check_casts(tree)
    order: list[str] = []

    def driver_placeholder(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Placeholder):
            return node
        check_identifier(node.name, "sql")
        if node.name not in order:
            order.append(node.name)
        marker = f"${order.index(node.name) + 1}" if read == "postgres" else f":{node.name}"
        return exp.Var(this=marker)

    rendered = tree.transform(driver_placeholder).sql(dialect=read)
    return CheckedQuery(rendered, order, frozenset(tables) - {""})


def _checked_table(table: exp.Table, schema: TenantSchema) -> str:
    """The tenant table `table` names ("" for a CTE), or a ValidationError."""
    if table.args.get("db") or table.args.get("catalog"):
        raise ValidationError(
            f"{table.sql()} names a schema; use the tenant's own tables", details={"field": "sql"}
        )
    if table.name.lower().startswith(_CATALOGS):
        raise ValidationError(
            f"{table.name} is a database catalog; analytics reads the tenant's own tables",
            details={"field": "sql"},
        )
    if table.name in _ctes_in_scope(table):
        return ""
    if table.name not in schema.definitions:
        raise ValidationError(
            f"no table named {table.name!r} (database.tables() lists them)",
            details={"field": "sql"},
        )
    return table.name


def _ctes_in_scope(node: exp.Expr) -> set[str]:
    """The CTE names a table reference at `node` sees. A CTE shadows a table only within its
    own WITH: in the query the WITH belongs to and in the later CTEs of that WITH (in every
    CTE of a WITH RECURSIVE), never in a sibling subquery outside it."""
    from sqlglot import exp

    names: set[str] = set()
    child: exp.Expr | None = node
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            ctes = parent.expressions
            if parent.args.get("recursive"):
                names.update(cte.alias_or_name for cte in ctes)
            else:
                position = next((i for i, cte in enumerate(ctes) if cte is child), len(ctes))
                names.update(cte.alias_or_name for cte in ctes[:position])
        else:
            with_ = parent.args.get("with_") or parent.args.get("with")
            if isinstance(with_, exp.With) and with_ is not child:
                names.update(cte.alias_or_name for cte in with_.expressions)
        child, parent = parent, parent.parent
    return names


def _check_functions(tree: exp.Expr) -> None:
    from sqlglot import exp

    for function in tree.find_all(exp.Func):
        name = (
            function.name if isinstance(function, exp.Anonymous) else type(function).__name__
        ).lower()
        if name not in _ALLOWED_FUNCTIONS and not isinstance(function, exp.Connector):
            raise ValidationError(
                f"function {name!r} is not allowed in analytics queries", details={"field": "sql"}
            )


def _check_field_access(tree: exp.Expr) -> None:
    """Columns are `column` or `table.column`: PostgreSQL reads `(expr).name` (and a longer
    dotted path) as a call of the function `name`, past the allow-list above."""
    from sqlglot import exp

    for node in tree.find_all(exp.Dot, exp.Column):
        if isinstance(node, exp.Dot) or node.args.get("db") or node.args.get("catalog"):
            raise ValidationError(
                f"{node.sql()[:80]}: field access is not allowed; name a column as "
                "column or table.column",
                details={"field": "sql"},
            )


def _check_casts(tree: exp.Expr) -> None:
    from sqlglot import exp

    for node in tree.find_all(exp.DataType):
        if getattr(node.this, "name", None) not in _CAST_TYPES:
            raise ValidationError(
                f"a cast to {node.sql()[:40]} is not allowed in analytics queries; cast to "
                "text, numbers, boolean, date/time types or json",
                details={"field": "sql"},
            )


@operation("analytics.define", scope="analytics:define")
async def define(ctx: Context, params: DefineAnalyticsRequest) -> AnalyticsQuery:
    """Save (or replace) a named query; `params` maps each `:name` placeholder to its type."""
    name = check_identifier(params.name, "name")
    for param in params.params:
        check_identifier(param, "params")
    schema = await load_schema(ctx.platform, ctx.tenant)
    placeholders = check_query(params.sql, ctx.platform.db.dialect, schema).placeholders
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
    """Run a saved query with its parameters bound; `{"data": rows}`. A query that reads a
    secure table needs `reason`; the caller is the actor, and the read is audited."""
    saved = await _load(ctx, params.name)
    schema = await load_schema(ctx.platform, ctx.tenant)
    checked = check_query(saved.sql, ctx.platform.db.dialect, schema)
    bound = _bind(saved.params, params.params)
    driver_params: Any = (
        tuple(bound[name] for name in checked.placeholders)
        if ctx.platform.db.dialect == "postgresql"
        else bound
    )
    await _unguarded(ctx, checked.tables)
    secure = await _audit_secure_reads(ctx, schema, checked.tables, params.reason)
    seconds = ctx.platform.settings.analytics_time_limit
    try:
        rows = await ctx.platform.db.confined.read(
            ctx.tenant,
            checked.sql,
            driver_params,
            tables=checked.tables,
            secure_tables=frozenset(n for n, d in schema.definitions.items() if d.secure),
            secure=secure,
            functions=_SQLITE_FUNCTIONS,
            limit=params.limit,
            seconds=seconds,
        )
    except ReadTooSlow:
        raise ServiceUnavailableError(
            f"the query ran longer than {seconds:g} s and was stopped; narrow it"
        ) from None
    except ReadTooLarge:
        limit = ctx.platform.settings.analytics_max_result_bytes
        raise PayloadTooLargeError(
            f"the result is larger than analytics_max_result_bytes ({limit}); "
            "narrow the query or lower its limit",
            details={"field": "limit", "setting": "analytics_max_result_bytes"},
        ) from None
    except ReadRefused as exc:
        raise ValidationError(
            f"the database refused the query: {exc}", details={"field": "sql"}
        ) from None
    return AnalyticsResult(data=rows)


async def _unguarded(ctx: Context, tables: frozenset[str]) -> None:
    """Refuse a query over a table bound to policies unless they let the caller read every
    row of it: SQL of the query's author cannot be filtered row by row."""
    for name in sorted(tables):
        guard = await policy_guard(ctx, "table", name)
        if guard is not None and not guards.always_allowed(ctx, guard, "read"):
            raise AuthorizationError(
                f"table {name!r} is bound to policies that do not let you read every row of "
                "it, and an analytics query cannot be filtered row by row; use "
                "database.query",
                code="policy_denied",
                details={"field": "name", "table": name},
            )


async def _audit_secure_reads(
    ctx: Context, schema: TenantSchema, tables: frozenset[str], reason: str | None
) -> bool:
    """Refuse a read of secure tables without a reason; else write it down, before it runs,
    as `database.get` does: one entry per secure table, the caller as the actor. Whether
    it reads any secure table."""
    actor = ctx.require_principal().username
    accesses = [
        (name, audit.require_access(schema.definitions[name], reason, actor))
        for name in sorted(tables)
    ]
    secure = [(name, access) for name, access in accesses if access is not None]
    if not secure:
        return False

    def record(conn: Connection) -> None:
        for name, access in secure:
            audit.record(conn, ctx, access, "analytics", name, [])

    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.run_sync(record)
    return True


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
