"""Records of a tenant's tables: get, create (one or many, in one transaction), update, delete.

Writes are plain functions of a connection, run by `changes.write_with_changes`: on SQLite
those that arrive together share one transaction (group commit), each in a savepoint of its
own, so a create that breaks a unique constraint fails alone. On SQLite a create of one row
and an update by id of a plain table have a twin written for the driver (`prebuilt.py`),
which `write_with_changes` runs instead when the table has no follower.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, Select, Table, bindparam, delete, func, select, update

from roost.errors import NotFoundError, ValidationError
from roost.services import audit
from roost.services.context import Context
from roost.services.database.changes import write_with_changes
from roost.services.database.filters import table_conditions
from roost.services.database.prebuilt import insert_on_driver, update_on_driver
from roost.services.database.query import populate, populated_policies
from roost.services.database.rowpolicy import RowPolicy, row_policy
from roost.services.database.sqlerrors import database_errors
from roost.services.registry import operation
from roost.services.schema import load_schema
from roost.services.tabledefs import Coercer, TableDef
from roost.wire.common import Done
from roost.wire.database import (
    CreateRecordsRequest,
    DeleteRecordsRequest,
    GetRecordRequest,
    RecordsResult,
    Row,
    UpdateRecordsRequest,
)

_PLATFORM_KEPT = ("created_at", "updated_at")


@operation("database.get", scope="database:read", read_only=True)
async def get(ctx: Context, params: GetRecordRequest) -> Row:
    """One record by its primary key."""
    schema = await load_schema(ctx.platform, ctx.tenant)
    definition = schema.definition(params.table)
    access = audit.require_access(definition, params.reason, params.actor)
    table = schema.tables[definition.name]
    key = _key(definition, params.id, "id")
    names = {c.name for c in table.c}
    if params.select is not None:
        names = {definition.require_column(n, "select").name for n in params.select}
        names |= set(params.populate)
    policy = await row_policy(ctx, definition, table)
    if policy is None and access is None and not params.populate:
        # the common case, a plain lookup: one statement built once per table and columns
        statement = _by_key(definition, table, [c for c in table.c if c.name in names])
        found = await ctx.platform.db.first_record(ctx.tenant, statement, {"key": key})
        if found is None:
            raise NotFoundError(
                f"no row of {definition.name} with id {params.id!r}", details={"field": "id"}
            )
        return found
    guarded = await populated_policies(ctx, schema, definition, params.populate)
    # the policies see the whole record, whatever the caller selects
    columns = list(table.c) if policy is not None else [c for c in table.c if c.name in names]

    def work(conn: Connection) -> Row:
        found = (
            conn.execute(select(*columns).where(_pk(definition, table) == key)).mappings().first()
        )
        if found is None or (policy is not None and not policy.allowed("read", [dict(found)])[0]):
            # a row the caller may not read is one they cannot tell from a missing one
            raise NotFoundError(
                f"no row of {definition.name} with id {params.id!r}", details={"field": "id"}
            )
        row = populate(
            ctx,
            conn,
            schema,
            definition,
            [{k: v for k, v in found.items() if k in names}],
            params.populate,
            params.reason,
            params.actor,
            guarded,
        )[0]
        if access is not None:
            audit.record(conn, ctx, access, "get", definition.name, [key])
        return row

    return await ctx.platform.db.run(ctx.tenant, work, write=access is not None)


@operation("database.create", scope="database:write", answered_in_write=True)
async def create(ctx: Context, params: CreateRecordsRequest) -> RecordsResult:
    """Insert rows in one transaction (all or none) and return them as stored."""
    schema = await load_schema(ctx.platform, ctx.tenant)
    definition = schema.definition(params.table)
    access = audit.require_access(definition, params.reason, params.actor)
    table = schema.tables[definition.name]
    coercer = Coercer(definition)
    values = [_values(coercer, row, f"rows[{i}]") for i, row in enumerate(params.rows)]
    pk = definition.primary_key
    if pk.default == "uuid()":  # known keys let the rows be matched to what the database returns
        for row in values:
            row.setdefault(pk.name, uuid.uuid4())
    # executemany needs one key set per statement: insert rows grouped by their keys
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, row in enumerate(values):
        groups.setdefault(tuple(sorted(row)), []).append(index)
    policy = await row_policy(ctx, definition, table)
    given_ids = pk.autoincrement and any(pk.name in row for row in values)

    on_driver = None
    if ctx.platform.db.dialect == "sqlite" and policy is None and access is None:
        on_driver = insert_on_driver(table, values)

    def work(conn: Connection) -> list[Row]:
        stored: list[Row | None] = [None] * len(values)
        for indexes in groups.values():
            inserted = _insert_group(conn, table, pk.name, [values[i] for i in indexes])
            for index, row in zip(indexes, inserted, strict=True):
                stored[index] = row
        rows = [row for row in stored if row is not None]
        if given_ids and conn.dialect.name == "postgresql":
            _sequence_past(conn, table, pk.name)
        if policy is not None:  # checked as stored (defaults filled in); refused: rolled back
            policy.require("create", rows)
        if access is not None:
            ids = [r[pk.name] for r in rows]
            audit.record(conn, ctx, access, "create", definition.name, ids)
        return rows

    with database_errors():
        rows = await write_with_changes(
            ctx,
            definition,
            "insert",
            work,
            small=_small(values),
            on_driver=on_driver,
            answer=_records_result,
        )
    return _records_result(rows)


@operation("database.update", scope="database:write", answered_in_write=True)
async def update_records(ctx: Context, params: UpdateRecordsRequest) -> RecordsResult:
    """Change rows: one by `id` with `data`, several by `rows` carrying their ids, or those
    matching `filters` with `data`. Returns the rows as stored."""
    schema = await load_schema(ctx.platform, ctx.tenant)
    definition = schema.definition(params.table)
    access = audit.require_access(definition, params.reason, params.actor)
    table = schema.tables[definition.name]
    changes = _changes(definition, table, params, ctx.platform.db.dialect)
    policy = await row_policy(ctx, definition, table)
    by_filters = policy.where("update") if policy is not None and params.filters else []

    pk = _pk(definition, table)

    def work(conn: Connection) -> list[Row]:
        rows: list[Row] = []
        for change in changes:
            where, must_exist = change.where(pk), change.conditions is None
            if policy is not None and must_exist:  # one row by id: checked as it is now
                _require_one(conn, policy, "update", where)
            statement = (
                update(table).where(*where, *by_filters).values(change.data).returning(*table.c)
            )
            found = [dict(r) for r in conn.execute(statement).mappings()]
            if must_exist and not found:
                raise NotFoundError(
                    f"no row of {definition.name} with that id; nothing was changed",
                    details={"field": "id"},
                )
            rows.extend(found)
        if policy is not None:  # and as it would be: no row handed to what the caller can't
            policy.require("update", rows)
        if access is not None:
            ids = [r[definition.primary_key.name] for r in rows]
            audit.record(conn, ctx, access, "update", definition.name, ids)
        return rows

    def before(conn: Connection) -> list[Row]:
        rows: list[Row] = []
        for change in changes:
            query = select(table).where(*change.where(pk), *by_filters)
            rows.extend(dict(r) for r in conn.execute(query).mappings())
        return rows

    small = params.id is not None and _small([changes[0].data])
    on_driver = None
    by_id = params.id is not None and len(changes) == 1
    if ctx.platform.db.dialect == "sqlite" and policy is None and access is None and by_id:
        on_driver = update_on_driver(definition, table, changes[0].data, changes[0].key)
    with database_errors():
        rows = await write_with_changes(
            ctx,
            definition,
            "update",
            work,
            before,
            small=small,
            on_driver=on_driver,
            answer=_records_result,
        )
    return _records_result(rows)


@operation("database.delete", scope="database:write", answered_in_write=True)
async def delete_records(ctx: Context, params: DeleteRecordsRequest) -> Done:
    """Delete by `id`, by `ids` or by `filters`; every row only with `all=True`."""
    schema = await load_schema(ctx.platform, ctx.tenant)
    definition = schema.definition(params.table)
    access = audit.require_access(definition, params.reason, params.actor)
    table = schema.tables[definition.name]
    pk = _pk(definition, table)
    chosen = [params.id is not None, params.ids is not None, bool(params.filters)]
    if sum(chosen) > 1:
        raise ValidationError("give one of id, ids and filters", details={"field": "id"})
    if params.id is not None:
        where = [pk == _key(definition, params.id, "id")]
    elif params.ids is not None:
        where = [pk.in_([_key(definition, v, f"ids[{i}]") for i, v in enumerate(params.ids)])]
    elif params.filters:
        where = table_conditions(definition, table, params.filters, ctx.platform.db.dialect)
    elif params.all:
        where = []
    else:
        raise ValidationError(
            "deleting every row needs all=True; or give id, ids or filters",
            details={"field": "filters"},
        )
    pk_name = definition.primary_key.name
    policy = await row_policy(ctx, definition, table)
    named = params.id is not None or params.ids is not None
    if policy is not None and not named:
        where = [*where, *policy.where("delete")]

    def work(conn: Connection) -> list[Row]:
        if policy is not None and named:  # rows named by id: each checked as it is
            _require_rows(conn, policy, "delete", where, single=params.id is not None)
        # a bound table's delete events carry the deleted record: its feed's subscribers
        # are checked against it
        returned = list(table.c) if policy is not None else [pk]
        found = [
            dict(r)
            for r in conn.execute(delete(table).where(*where).returning(*returned)).mappings()
        ]
        deleted = [row[pk_name] for row in found]
        if params.id is not None and not deleted:
            raise NotFoundError(
                f"no row of {definition.name} with id {params.id!r}", details={"field": "id"}
            )
        if access is not None:
            audit.record(conn, ctx, access, "delete", definition.name, deleted)
        return found

    def before(conn: Connection) -> list[Row]:
        return [dict(r) for r in conn.execute(select(table).where(*where)).mappings()]

    with database_errors():
        deleted = await write_with_changes(ctx, definition, "delete", work, before, answer=_done)
    return _done(deleted)


def _records_result(rows: list[Row]) -> RecordsResult:
    return RecordsResult(rows=rows, count=len(rows))


def _done(rows: list[Row]) -> Done:
    return Done(count=len(rows))


_SMALL_ROWS, _SMALL_BYTES = 4, 16_384


def _small(rows: list[dict[str, Any]]) -> bool:
    """A write of a few short rows, which SQLite takes in microseconds (`Database.run`)."""
    if len(rows) > _SMALL_ROWS:
        return False
    size, pending = 0, [value for row in rows for value in row.values()]
    while pending:  # JSON values walked only as far as the limit
        value = pending.pop()
        if isinstance(value, str | bytes):
            size += len(value)
        elif isinstance(value, dict):
            pending += value.keys()
            pending += value.values()
        elif isinstance(value, list | tuple):
            pending += value
        size += 8
        if size > _SMALL_BYTES:
            return False
    return True


def _require_one(conn: Connection, policy: RowPolicy, action: str, where: list[Any]) -> None:
    _require_rows(conn, policy, action, where, single=True)


def _require_rows(
    conn: Connection, policy: RowPolicy, action: str, where: list[Any], *, single: bool
) -> None:
    """Refuse unless the caller may `action` every row `where` selects (locked till the
    transaction ends on PostgreSQL, so the row checked is the row changed). One row named by
    its id that the caller may not even read is not found, as for database.get."""
    found = [dict(r) for r in conn.execute(_locked(select(policy.table).where(*where))).mappings()]
    allowed = policy.allowed(action, found)
    if single and found and not allowed[0] and not policy.allowed("read", found)[0]:
        raise NotFoundError(
            f"no row of {policy.definition.name} with that id; nothing was changed",
            details={"field": "id"},
        )
    policy.require(action, found)


def _locked(statement: Any) -> Any:
    return statement.with_for_update()


def _sequence_past(conn: Connection, table: Table, pk: str) -> None:
    """Move a PostgreSQL autoincrement key's sequence past the ids a caller gave (an import
    keeps its rows' ids): else the next row without one would be given a taken id. SQLite
    takes max(id) + 1 by itself."""
    highest = select(func.max(table.c[pk])).scalar_subquery()
    sequence = func.pg_get_serial_sequence(table.name, pk)  # found on the tenant's search_path
    conn.execute(select(func.setval(sequence, func.greatest(highest, 1))))


def _insert_group(conn: Connection, table: Table, pk: str, rows: list[dict[str, Any]]) -> list[Row]:
    """Insert rows that share one key set; return them as stored, in the order given."""
    if not rows[0]:
        statement = table.insert().values({}).returning(*table.c)
        return [dict(conn.execute(statement).mappings().one()) for _ in rows]
    if conn.dialect.name != "sqlite":
        ordered = table.insert().returning(*table.c, sort_by_parameter_order=True)
        return [dict(r) for r in conn.execute(ordered, rows).mappings()]
    # On SQLite, ordered RETURNING makes SQLAlchemy insert row by row (50x slower for 10k
    # rows); batched, the rows come back and are put in order here: by their key when they
    # carry one, else by the autoincrement id, which rises in insertion order.
    result = [dict(r) for r in conn.execute(table.insert().returning(*table.c), rows).mappings()]
    if pk in rows[0]:
        by_key = {row[pk]: row for row in result}
        return [by_key[row[pk]] for row in rows]
    return sorted(result, key=lambda row: row[pk])


class _Change(msgspec.Struct, frozen=True):
    """What an update sets (`data`) in which rows: the one whose primary key is `key`, or
    those that match `conditions`."""

    data: dict[str, Any]
    key: Any = None
    conditions: list[Any] | None = None

    def where(self, pk: Any) -> list[Any]:
        """The WHERE of the rows (built when needed: the prebuilt path needs none)."""
        return [pk == self.key] if self.conditions is None else self.conditions


def _changes(
    definition: TableDef, table: Table, params: UpdateRecordsRequest, dialect: str
) -> list[_Change]:
    pk_name = definition.primary_key.name
    if params.rows is not None:
        if params.id is not None or params.data is not None or params.filters:
            raise ValidationError(
                "rows= carries ids and data; give it alone", details={"field": "rows"}
            )
        changes = []
        for index, row in enumerate(params.rows):
            if pk_name not in row:
                raise ValidationError(
                    f"rows[{index}] has no {pk_name}", details={"field": f"rows[{index}]"}
                )
            data = {k: v for k, v in row.items() if k != pk_name}
            key = _key(definition, row[pk_name], f"rows[{index}].{pk_name}")
            values = _values(Coercer(definition), data, f"rows[{index}]")
            changes.append(_Change(_touched(definition, values), key))
        return changes
    if params.data is None or not params.data:
        raise ValidationError("data= holds the new values", details={"field": "data"})
    data = _touched(definition, _values(Coercer(definition), params.data, "data"))
    if params.id is not None:
        return [_Change(data, _key(definition, params.id, "id"))]
    if params.filters:
        conditions = table_conditions(definition, table, params.filters, dialect)
        return [_Change(data, conditions=conditions)]
    raise ValidationError("say which rows: id=, rows= or filters=", details={"field": "id"})


def _values(coercer: Coercer, row: dict[str, Any], field: str) -> dict[str, Any]:
    definition = coercer.table
    if not isinstance(row, dict):
        raise ValidationError(f"{field} must be an object", details={"field": field})
    values = {}
    for name, value in row.items():
        column = definition.require_column(name, f"{field}.{name}")
        if name in _PLATFORM_KEPT and definition.timestamps:
            raise ValidationError(
                f"{name} is kept by the platform", details={"field": f"{field}.{name}"}
            )
        values[name] = coercer.value(column, value, f"{field}.{name}")
    return values


def _touched(definition: TableDef, data: dict[str, Any]) -> dict[str, Any]:
    if definition.timestamps and definition.column("updated_at"):
        return {**data, "updated_at": datetime.now(UTC)}
    return data


def _key(definition: TableDef, value: Any, field: str) -> Any:
    return Coercer(definition).value(definition.primary_key, value, field)


def _pk(definition: TableDef, table: Table) -> Any:
    return table.c[definition.primary_key.name]


_BY_KEY = "roost.by_key"  # in a Table's info: its lookups by primary key, by columns selected
_MAX_BY_KEY = 64


def _by_key(definition: TableDef, table: Table, columns: list[Any]) -> Select[Any]:
    """`SELECT columns FROM table WHERE pk = :key`, built once per table object (a schema
    change builds new ones) and set of columns."""
    built: dict[tuple[str, ...], Select[Any]] = table.info.setdefault(_BY_KEY, {})
    names = tuple(column.name for column in columns)
    statement = built.get(names)
    if statement is None:
        if len(built) >= _MAX_BY_KEY:
            built.clear()
        statement = built[names] = select(*columns).where(
            _pk(definition, table) == bindparam("key")
        )
    return statement
