"""A tenant's own tables: their definitions, the DDL that changes them (`schema.*`), and its
record. Reading them under `database:read` is `database.tables` and `database.describe`
(`services/database/tables.py`), on top of `load_schema` and `table_info` here.

Every change runs in one transaction with the registry update (`roost_tables`) and its record
(`roost_schema_migrations`); if any part fails, the schema is as it was. Definitions are cached
per tenant for a few seconds; a change clears the cache of this process at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import MetaData, Table, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateColumn

from roost.backends.sql import CONTROL
from roost.backends.sql.tables import schema_migrations, tenant_categories, user_tables, utcnow
from roost.errors import ConflictError, NotFoundError, ValidationError
from roost.services import tenants
from roost.services.caching import TenantCache
from roost.services.context import Context, Platform
from roost.services.registry import operation
from roost.services.tabledefs import (
    AUTO_COLUMNS,
    ColumnDef,
    IndexDef,
    TableDef,
    build_table,
    check_check,
    check_columns,
    check_identifier,
    parse_column,
    table_from_spec,
    validate_references,
)
from roost.wire.auth import Tenant, TenantRef
from roost.wire.common import Done
from roost.wire.database import (
    AddColumnRequest,
    AddIndexRequest,
    ColumnInfo,
    DropColumnRequest,
    IndexInfo,
    Migration,
    MigrationsRequest,
    ProvisionRequest,
    ReferenceInfo,
    RenameColumnRequest,
    SetSecureRequest,
    TableInfo,
    TableRef,
    TableSpec,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_SCHEMAS = TenantCache["TenantSchema"]("schema.tables", ttl=2.0)


class _Tables(Mapping[str, Table]):
    """The SQLAlchemy tables of a tenant's definitions, each built on first use with the
    tables it references (a foreign key resolves within one `MetaData`).

    Building every table of a tenant on each schema change cost time in the number of its
    tables (a fifth of the CPU of a suite whose tenants hold hundreds); a call touches one or
    two. A schema is shared by threads (servers of one process share `_built`): the lock keeps
    a table from being built twice into the same `MetaData`."""

    def __init__(self, definitions: dict[str, TableDef], dialect: str) -> None:
        self._definitions = definitions
        self._dialect = dialect
        self._metadata = MetaData()
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Table:
        found = self._metadata.tables.get(name)
        if found is not None:
            return found
        if name not in self._definitions:
            raise KeyError(name)
        with self._lock:
            return self._build(name)

    def _build(self, name: str) -> Table:
        found = self._metadata.tables.get(name)
        if found is not None:
            return found
        definition = self._definitions[name]
        for column in definition.columns:  # referenced tables first (a self-reference is in)
            if column.references and column.references.table != name:
                self._build(column.references.table)
        return build_table(definition, self._metadata, self._dialect)

    def __iter__(self) -> Iterator[str]:
        return iter(self._definitions)

    def __len__(self) -> int:
        return len(self._definitions)


class TenantSchema(msgspec.Struct, frozen=True):
    """The user tables of one tenant, as definitions and as SQLAlchemy tables (built when
    first used)."""

    definitions: dict[str, TableDef]
    tables: Mapping[str, Table]

    def definition(self, name: str) -> TableDef:
        check_identifier(name, "table")
        found = self.definitions.get(name)
        if found is None:
            raise NotFoundError(
                f"no table named {name!r}; database.tables() lists them", details={"field": "table"}
            )
        return found

    def table(self, name: str) -> Table:
        self.definition(name)
        return self.tables[name]


def build_schema(definitions: dict[str, TableDef], dialect: str) -> TenantSchema:
    return TenantSchema(definitions, _Tables(definitions, dialect))


async def load_schema(platform: Platform, tenant: str) -> TenantSchema:
    """The tenant's tables, from the cache when it is fresh."""

    async def load() -> TenantSchema:
        async with platform.db.read(tenant) as conn:
            return await _read_schema(conn, platform.db.dialect)

    return await _SCHEMAS.of(platform).get_or_load(tenant, load)


async def _read_schema(conn: AsyncConnection, dialect: str) -> TenantSchema:
    rows = (await conn.execute(select(user_tables.c.definition))).scalars().all()
    # The cache above is re-read every 2 s; building every table again each time was a tenth
    # of the CPU of a busy server. The definitions as stored are the key: a schema is built
    # once per change, and tenants with the same tables share it (it is never mutated).
    return _built(msgspec.json.encode(rows), dialect)


@lru_cache(maxsize=256)
def _built(stored: bytes, dialect: str) -> TenantSchema:
    rows = msgspec.json.decode(stored)
    definitions = {d.name: d for d in (TableDef.from_json(row) for row in rows)}
    return build_schema(definitions, dialect)


# -- reading -------------------------------------------------------------------------------


def table_info(definition: TableDef) -> TableInfo:
    """A table as callers see it: `database.describe` and every `schema.*` change answer this."""
    columns = [
        ColumnInfo(
            name=c.name,
            type=c.type,
            nullable=c.nullable,
            primary_key=c.primary_key,
            unique=c.unique,
            default=c.default,
            check=c.check,
            references=ReferenceInfo(
                c.references.table, c.references.column, c.references.on_delete
            )
            if c.references
            else None,
        )
        for c in definition.columns
    ]
    indexes = [IndexInfo(i.name, list(i.columns), i.unique) for i in definition.indexes]
    return TableInfo(
        name=definition.name,
        columns=columns,
        indexes=indexes,
        secure=definition.secure,
        timestamps=definition.timestamps,
    )


@operation("schema.migrations", scope="schema:admin", read_only=True)
async def migrations(ctx: Context, params: MigrationsRequest) -> list[Migration]:
    """Every recorded schema change, newest first (optionally of one table)."""
    query = select(schema_migrations).order_by(schema_migrations.c.id.desc()).limit(params.limit)
    if params.table:
        query = query.where(schema_migrations.c.table_name == params.table)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [
        Migration(
            id=r["id"],
            operation=r["operation"],
            table=r["table_name"],
            change=r["change"],
            applied_at=r["applied_at"],
            applied_by=r["applied_by"],
        )
        for r in rows
    ]


# -- changing -------------------------------------------------------------------------------


@operation("schema.add_table", scope="schema:admin")
async def add_table(ctx: Context, params: TableSpec) -> TableInfo:
    """Create a table. Without a PRIMARY KEY it gets `id` (bigint, generated); unless
    `timestamps=False` it gets `created_at` and `updated_at`."""
    definition = table_from_spec(params)

    async def change(conn: AsyncConnection, schema: TenantSchema) -> TableDef:
        if definition.name in schema.definitions:
            raise ConflictError(f"table {definition.name!r} exists", details={"field": "name"})
        validate_references(definition, schema.definitions)
        new = build_schema({**schema.definitions, definition.name: definition}, conn.dialect.name)
        await conn.run_sync(lambda sync: new.tables[definition.name].create(sync))
        await ctx.platform.db.confined.grant(
            conn, ctx.tenant, definition.name, secure=definition.secure
        )
        return definition

    return table_info(await _apply(ctx, "add_table", definition.name, _to_dict(params), change))


@operation("schema.add_column", scope="schema:admin")
async def add_column(ctx: Context, params: AddColumnRequest) -> TableInfo:
    """Add a column to a table (a NOT NULL one needs a default when the table has rows)."""
    column = parse_column(_to_dict(params.column), "column")
    if column.primary_key or column.unique:
        raise ValidationError(
            "add_column cannot add a PRIMARY KEY or UNIQUE column; add the "
            "column, then add_index(unique=True)",
            details={"field": "column"},
        )

    async def change(conn: AsyncConnection, schema: TenantSchema) -> TableDef:
        definition = schema.definition(params.table)
        if definition.column(column.name):
            raise ConflictError(
                f"{params.table}.{column.name} exists", details={"field": "column.name"}
            )
        updated = msgspec.structs.replace(definition, columns=(*definition.columns, column))
        check_check(updated, column)
        validate_references(updated, schema.definitions)
        new = build_schema({**schema.definitions, updated.name: updated}, conn.dialect.name)
        await conn.execute(text(_add_column_sql(conn, new.tables[updated.name], column)))
        return updated

    return table_info(await _apply(ctx, "add_column", params.table, _to_dict(params), change))


@operation("schema.drop_column", scope="schema:admin")
async def drop_column(ctx: Context, params: DropColumnRequest) -> TableInfo:
    """Drop a column (and the indexes on it). Keys, references and checks cannot be dropped."""

    async def change(conn: AsyncConnection, schema: TenantSchema) -> TableDef:
        definition = schema.definition(params.table)
        column = definition.require_column(params.column, "column")
        if column.primary_key or column.unique or column.references or column.check:
            raise ValidationError(
                f"{params.table}.{params.column} is a key, a reference or has a check; "
                "it cannot be dropped",
                details={"field": "column"},
            )
        if users := _referencing(schema, params.table, params.column):
            raise ConflictError(
                f"{params.table}.{params.column} is referenced by {', '.join(users)}",
                details={"field": "column"},
            )
        if any(params.column in check_columns(c.check) for c in definition.columns if c.check):
            raise ConflictError(f"a CHECK uses {params.column}", details={"field": "column"})
        quote = conn.dialect.identifier_preparer.quote
        kept = []
        for index in definition.indexes:
            if params.column in index.columns:
                await conn.execute(text(f"DROP INDEX {quote(index.name)}"))
            else:
                kept.append(index)
        await conn.execute(
            text(f"ALTER TABLE {quote(params.table)} DROP COLUMN {quote(params.column)}")
        )
        columns = tuple(c for c in definition.columns if c.name != params.column)
        return msgspec.structs.replace(definition, columns=columns, indexes=tuple(kept))

    return table_info(await _apply(ctx, "drop_column", params.table, _to_dict(params), change))


@operation("schema.rename_column", scope="schema:admin")
async def rename_column(ctx: Context, params: RenameColumnRequest) -> TableInfo:
    """Rename a column; indexes, checks and references to it follow."""
    new_name = check_identifier(params.new_name, "new_name")

    async def change(conn: AsyncConnection, schema: TenantSchema) -> TableDef:
        definition = schema.definition(params.table)
        definition.require_column(params.column, "column")
        if params.column in AUTO_COLUMNS and params.column != "id":
            raise ValidationError(
                f"{params.column} is kept by the platform; it cannot be renamed",
                details={"field": "column"},
            )
        if definition.column(new_name):
            raise ConflictError(f"{params.table}.{new_name} exists", details={"field": "new_name"})
        quote = conn.dialect.identifier_preparer.quote
        await conn.execute(
            text(
                f"ALTER TABLE {quote(params.table)} RENAME COLUMN "
                f"{quote(params.column)} TO {quote(new_name)}"
            )
        )
        for other in schema.definitions.values():  # references from other tables follow
            if other.name != definition.name:
                moved = _renamed_references(other, params.table, params.column, new_name)
                if moved != other:
                    await _store(conn, moved)
        return _renamed_references(
            _renamed(definition, params.column, new_name), params.table, params.column, new_name
        )

    return table_info(await _apply(ctx, "rename_column", params.table, _to_dict(params), change))


@operation("schema.add_index", scope="schema:admin")
async def add_index(ctx: Context, params: AddIndexRequest) -> TableInfo:
    """Index columns of a table; `unique=True` also refuses duplicates from then on."""
    name = params.name or f"ix_{params.table}_{'_'.join(params.columns)}"[:63]
    check_identifier(name, "name")

    async def change(conn: AsyncConnection, schema: TenantSchema) -> TableDef:
        definition = schema.definition(params.table)
        for column in params.columns:
            definition.require_column(column, "columns")
        if any(i.name == name for d in schema.definitions.values() for i in d.indexes):
            raise ConflictError(f"an index named {name!r} exists", details={"field": "name"})
        index = IndexDef(name, tuple(params.columns), params.unique)
        updated = msgspec.structs.replace(definition, indexes=(*definition.indexes, index))
        new = build_schema({**schema.definitions, updated.name: updated}, conn.dialect.name)
        created = next(i for i in new.tables[updated.name].indexes if i.name == name)
        await conn.run_sync(lambda sync: created.create(sync))
        return updated

    return table_info(await _apply(ctx, "add_index", params.table, _to_dict(params), change))


@operation("schema.drop_table", scope="schema:admin")
async def drop_table(ctx: Context, params: TableRef) -> Done:
    """Drop a table and its rows. A table other tables reference cannot be dropped."""

    async def change(conn: AsyncConnection, schema: TenantSchema) -> None:
        definition = schema.definition(params.table)
        referencing = {
            other.name
            for other in schema.definitions.values()
            if other.name != params.table
            for c in other.columns
            if c.references and c.references.table == params.table
        }
        if referencing:
            raise ConflictError(
                f"{', '.join(sorted(referencing))} reference {params.table}; drop those first",
                details={"field": "table"},
            )
        await conn.run_sync(lambda sync: schema.tables[definition.name].drop(sync))
        await conn.execute(user_tables.delete().where(user_tables.c.name == params.table))

    await _apply(ctx, "drop_table", params.table, _to_dict(params), change)
    return Done(count=1)


@operation("schema.set_secure", scope="schema:admin")
async def set_secure(ctx: Context, params: SetSecureRequest) -> TableInfo:
    """Mark a table secure: every access then needs `reason` and `actor`, and is audited."""

    async def change(conn: AsyncConnection, schema: TenantSchema) -> TableDef:
        changed = msgspec.structs.replace(schema.definition(params.table), secure=params.secure)
        # PostgreSQL: the plain analytics role loses (or regains) SELECT on it
        await ctx.platform.db.confined.grant(conn, ctx.tenant, changed.name, secure=changed.secure)
        return changed

    return table_info(await _apply(ctx, "set_secure", params.table, _to_dict(params), change))


# -- the shared steps ------------------------------------------------------------------------


@operation("schema.provision_tenant", scope="tenants:admin")
async def provision_tenant(ctx: Context, params: ProvisionRequest) -> Tenant:
    """Create a tenant with the tables of a category. If a table cannot be created, the tenant
    is removed again: it exists complete or not at all."""
    tenants.require_platform_admin(ctx)
    async with ctx.platform.db.read(CONTROL) as conn:
        found = (
            await conn.execute(
                select(tenant_categories.c.tables).where(
                    tenant_categories.c.name == params.category
                )
            )
        ).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"no category named {params.category!r}", details={"field": "category"})
    tables = msgspec.convert(found, list[TableSpec])
    async with tenants.exclusive(ctx.platform, params.tenant, field="tenant"):
        if not await tenants.provision(ctx.platform, params.tenant, params.display_name):
            raise ConflictError(f"tenant {params.tenant!r} exists", details={"field": "tenant"})
        tenant_ctx = Context(platform=ctx.platform, tenant=params.tenant, principal=ctx.principal)
        try:
            for spec in tables:
                await add_table(tenant_ctx, spec)
        except BaseException:
            await tenants.forget(ctx.platform, params.tenant)
            raise
        return await tenants.get(ctx, TenantRef(name=params.tenant))


async def _apply(
    ctx: Context, operation_name: str, table: str, change_json: dict[str, Any], change: Any
) -> Any:
    """Run `change(conn, schema)` in a transaction with the registry and migration writes."""
    principal = ctx.require_principal()
    try:
        async with ctx.platform.db.write(ctx.tenant) as conn:
            schema = await _read_schema(conn, conn.dialect.name)
            result = await change(conn, schema)
            if isinstance(result, TableDef):
                await _store(conn, result)
            await conn.execute(
                schema_migrations.insert().values(
                    operation=operation_name,
                    table_name=table,
                    change=change_json,
                    applied_by=principal.username,
                )
            )
    except DBAPIError as exc:
        raise ConflictError(
            f"the database refused this change, so nothing changed: {_first_line(exc)}",
            details={"table": table},
        ) from None
    finally:
        _SCHEMAS.of(ctx.platform).pop(ctx.tenant)
    return result


async def _store(conn: AsyncConnection, definition: TableDef) -> None:
    found = (
        await conn.execute(select(user_tables.c.name).where(user_tables.c.name == definition.name))
    ).first()
    if found is None:
        await conn.execute(
            user_tables.insert().values(name=definition.name, definition=definition.to_json())
        )
    else:
        await conn.execute(
            user_tables.update()
            .where(user_tables.c.name == definition.name)
            .values(definition=definition.to_json(), updated_at=utcnow())
        )


def _referencing(schema: TenantSchema, table: str, column: str) -> list[str]:
    return [
        f"{other.name}.{c.name}"
        for other in schema.definitions.values()
        for c in other.columns
        if c.references and c.references.table == table and c.references.column == column
    ]


def _renamed(definition: TableDef, old: str, new: str) -> TableDef:
    def rename_in_check(check: str | None) -> str | None:
        if check is None:
            return None
        import sqlglot  # on first use (see roost.services.tabledefs)
        from sqlglot import exp

        tree = sqlglot.parse_one(check).transform(
            lambda node: (
                exp.column(new) if isinstance(node, exp.Column) and node.name == old else node
            )
        )
        return tree.sql(identify=True)

    columns = tuple(
        msgspec.structs.replace(
            c, name=new if c.name == old else c.name, check=rename_in_check(c.check)
        )
        for c in definition.columns
    )
    indexes = tuple(
        msgspec.structs.replace(i, columns=tuple(new if n == old else n for n in i.columns))
        for i in definition.indexes
    )
    return msgspec.structs.replace(definition, columns=columns, indexes=indexes)


def _renamed_references(definition: TableDef, table: str, old: str, new: str) -> TableDef:
    columns = tuple(
        msgspec.structs.replace(c, references=msgspec.structs.replace(c.references, column=new))
        if c.references and c.references.table == table and c.references.column == old
        else c
        for c in definition.columns
    )
    return msgspec.structs.replace(definition, columns=columns)


def _add_column_sql(conn: AsyncConnection, table: Table, column: ColumnDef) -> str:
    quote = conn.dialect.identifier_preparer.quote
    ddl = str(CreateColumn(table.c[column.name]).compile(dialect=conn.dialect))
    if column.references:
        ref = column.references
        ddl += f" REFERENCES {quote(ref.table)} ({quote(ref.column)})"
        if ref.on_delete != "no action":
            ddl += f" ON DELETE {ref.on_delete.upper()}"
    if column.check:
        import sqlglot  # on first use (see roost.services.tabledefs)

        dialect = "postgres" if conn.dialect.name == "postgresql" else "sqlite"
        ddl += f" CHECK ({sqlglot.transpile(column.check, write=dialect, identify=True)[0]})"
    return f"ALTER TABLE {quote(table.name)} ADD COLUMN {ddl}"


def _to_dict(value: Any) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(value)
    return result


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0][:300] if exc.orig else "unknown error"
