"""`database.tables` and `database.describe`: what a caller with `database:read` may know of the
tenant's tables. Changing them is `schema.*` (`services/schema.py`), under `schema:admin`."""

from __future__ import annotations

from roost.services.context import Context
from roost.services.registry import operation
from roost.services.schema import load_schema, table_info
from roost.wire.common import Empty
from roost.wire.database import TableInfo, TableRef, TableSummary


@operation("database.tables", scope="database:read", read_only=True)
async def tables(ctx: Context, params: Empty) -> list[TableSummary]:
    """The tenant's tables with their column names."""
    schema = await load_schema(ctx.platform, ctx.tenant)
    return [
        TableSummary(name=d.name, secure=d.secure, columns=[c.name for c in d.columns])
        for d in sorted(schema.definitions.values(), key=lambda d: d.name)
    ]


@operation("database.describe", scope="database:read", read_only=True)
async def describe(ctx: Context, params: TableRef) -> TableInfo:
    """A table's columns (type, constraints, default, reference), indexes and flags."""
    schema = await load_schema(ctx.platform, ctx.tenant)
    return table_info(schema.definition(params.table))
