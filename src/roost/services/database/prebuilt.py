"""One-row record writes on SQLite as prebuilt driver statements (`fast.TypedWrite`).

A create of one row and an update by id of a table with no row policy, audit or follower
are the common writes; through SQLAlchemy their statement costs more Python than SQLite
takes to run it. Each is built once per table object (a schema change builds new ones) and
set of columns, and answers, refuses and stores exactly as `records.py`'s general path does:
same row types, same defaults, same `IntegrityError` for `database_errors` to name.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from sqlalchemy import Insert, Table, Update, bindparam, update

from roost.backends.sql.fast import SQLITE, TypedWrite
from roost.errors import NotFoundError
from roost.services.tabledefs import TableDef
from roost.wire.database import Row

_INSERTS = "roost.inserts"  # in a Table's info: its prebuilt inserts, by the columns given
_UPDATES = "roost.updates"  # and its updates by primary key, by the columns set
_PK_VALUE = "PK"  # the bound key of an update by id: no column name is upper case
_MAX_PREBUILT = 64

DriverWork = Callable[[sqlite3.Connection], list[Row]]


def insert_on_driver(table: Table, values: list[dict[str, Any]]) -> DriverWork | None:
    """The insert of one row, which returns the row as stored; None for other inserts
    (several rows, or none given a value)."""
    if len(values) != 1 or not values[0]:
        return None
    row = values[0]
    inserter = _prebuilt(
        table, _INSERTS, tuple(sorted(row)), lambda: table.insert().returning(*table.c)
    )
    return lambda driver: inserter.run(driver, row)


def update_on_driver(
    definition: TableDef, table: Table, data: dict[str, Any], key: Any
) -> DriverWork:
    """The update of the row whose primary key is `key` (coerced) with `data`, which returns
    it as stored, or refuses as the general path does when there is no such row."""
    pk = table.c[definition.primary_key.name]
    updater = _prebuilt(
        table,
        _UPDATES,
        tuple(sorted(data)),
        lambda: update(table).where(pk == bindparam(_PK_VALUE)).returning(*table.c),
    )

    def work(driver: sqlite3.Connection) -> list[Row]:
        rows = updater.run(driver, {**data, _PK_VALUE: key})
        if not rows:
            raise NotFoundError(
                f"no row of {definition.name} with that id; nothing was changed",
                details={"field": "id"},
            )
        return rows

    return work


def _prebuilt(
    table: Table, kind: str, names: tuple[str, ...], build: Callable[[], Insert | Update]
) -> TypedWrite:
    built: dict[tuple[str, ...], TypedWrite] = table.info.setdefault(kind, {})
    writer = built.get(names)
    if writer is None:
        if len(built) >= _MAX_PREBUILT:  # few shapes in practice; never unbounded
            built.clear()
        params = frozenset(names) | ({_PK_VALUE} if kind == _UPDATES else frozenset())
        writer = built[names] = TypedWrite(build(), params, list(table.c), SQLITE)
    return writer
