"""Prebuilt statements run straight on SQLite's driver, for the hot paths.

Through SQLAlchemy a small statement costs ~20 µs of Python, several times what SQLite takes to
run it. `execute(conn, statement, params)` runs a statement built once (at module level) on
the connection SQLAlchemy holds, inside its transaction: on SQLite the statement is compiled
once into SQL text with `?` placeholders and handed to the sqlite3 driver; on PostgreSQL it is
plain `conn.execute`. Either way the result answers `first()`, `scalar()`, `scalar_one()`,
`all()` and `rowcount`, with rows whose columns are attributes.

`execute` and `sqlite_text` are only for statements over plain columns (text, integers, reals):
the driver converts no types (no JSON, dates or booleans), as SQLAlchemy would. `TypedSelect`
is for a select of any columns: it applies the columns' types as SQLAlchemy does, both to the
values bound and to the row read. `insert_rows` inserts rows of any columns the same way.
`TypedWrite` is the same for an insert or update returning rows, with the columns'
Python-side defaults filled in.
"""

from __future__ import annotations

import operator
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Dialect,
    Insert,
    Select,
    Table,
    Update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import Executable
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault
from sqlalchemy.types import TypeEngine

from roost.backends.sql.tables import UTCDateTime

_DIALECT = sqlite.dialect(paramstyle="qmark")
SQLITE: Dialect = _DIALECT
"""SQLite's dialect, for statements built once (`TypedSelect`, `TypedWrite`)."""
_compiled: dict[tuple[int, frozenset[str]], tuple[str, list[str], dict[str, Any]]] = {}
_row_types: dict[tuple[str, ...], Any] = {}


AnyConnection = Connection | sqlite3.Connection
"""SQLAlchemy's connection, or SQLite's driver connection (`Database.run_on_driver`)."""


def execute(
    conn: AnyConnection, statement: Executable, params: Mapping[str, Any] | None = None
) -> Any:
    """Run `statement` with `params`; see the module's docstring."""
    if isinstance(conn, sqlite3.Connection):
        return _Result(conn.execute(*sqlite_text(statement, params or {})))
    if conn.dialect.name != "sqlite":
        return conn.execute(statement, dict(params or {}))
    sql, values = sqlite_text(statement, params or {})
    return _Result(conn.connection.dbapi_connection.execute(sql, values))  # type: ignore[union-attr]


def sqlite_text(statement: Executable, params: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """`statement` as SQLite SQL text with `?` placeholders, and the values for them."""
    key = (id(statement), frozenset(params))
    compiled = _compiled.get(key)
    if compiled is None:
        done = statement.compile(dialect=_DIALECT, column_keys=list(params))  # type: ignore[attr-defined]
        if "POSTCOMPILE" in str(done):
            raise ValueError("fast.execute takes no IN (...) of a list: the SQL would vary")
        if len(_keep) >= _MAX_CACHED:  # statements are meant to be built once, not per call
            _compiled.clear()
            _keep.clear()
        compiled = _compiled[key] = (str(done), list(done.positiontup or []), dict(done.params))
        _keep.append(statement)  # so that its id stays its own while it is cached
    sql, names, constants = compiled
    return sql, tuple(params[name] if name in params else constants[name] for name in names)


_MAX_CACHED = 1000
_keep: list[Executable] = []


class _Result:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        columns = tuple(d[0] for d in cursor.description or ())
        row_type = _row_types.get(columns)
        if row_type is None:
            row_type = _row_types[columns] = namedtuple("Row", columns, rename=True)
        self._row_type: Any = row_type

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def first(self) -> Any:
        found = self._cursor.fetchone()
        return None if found is None else self._row_type(*found)

    def all(self) -> list[Any]:
        return [self._row_type(*found) for found in self._cursor.fetchall()]

    def scalar(self) -> Any:
        found = self._cursor.fetchone()
        return None if found is None else found[0]

    def scalar_one(self) -> Any:
        found = self._cursor.fetchone()
        if found is None:
            raise LookupError("the statement returned no row")
        return found[0]


Processor = Callable[[Any], Any] | None


def bind_processor(bound: TypeEngine[Any], dialect: Dialect) -> Processor:
    """How SQLAlchemy binds a value of type `bound` on `dialect`. A UTC datetime on SQLite is
    formatted in C, to the same text: SQLAlchemy formats it in Python, the bulk of the cost of
    binding a row of an invocation's record."""
    if isinstance(bound, UTCDateTime) and dialect.name == "sqlite":
        return _sqlite_utc_text
    return bound.dialect_impl(dialect).bind_processor(dialect)


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """`UTCDateTime` as SQLAlchemy's SQLite dialect stores it: "YYYY-MM-DD HH:MM:SS.ffffff"."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # most are (`utcnow`): its text without the "+00:00"
        return value.isoformat(" ", "microseconds")[:-6]
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class TypedSelect:
    """A select built once, as SQLite SQL text for the driver, with SQLAlchemy's type
    processing of the values bound (a UUID key, a datetime) and of the columns read (JSON,
    dates, booleans, UUIDs), so that a row reads as `conn.execute(...).mappings()` gives it."""

    __slots__ = ("_binds", "_columns", "_constants", "_names", "_results", "parameters", "sql")

    def __init__(self, statement: Select[Any], params: frozenset[str], dialect: Dialect) -> None:
        done = statement.compile(dialect=dialect, column_keys=list(params))
        if "POSTCOMPILE" in str(done):
            raise ValueError("TypedSelect takes no IN (...) of a list: the SQL would vary")
        self.sql = str(done)
        self._names = list(done.positiontup or [])
        self.parameters: tuple[BindParameter[Any], ...] = tuple(
            done.binds[name] for name in self._names
        )
        """The statement's bound parameters, in the order of the SQL's placeholders."""
        self._binds: list[Processor] = [
            bind_processor(done.binds[name].type, dialect) for name in self._names
        ]
        self._constants = dict(done.params)
        columns = list(statement.selected_columns)
        self._columns = tuple(str(column.key) for column in columns)
        self._results: list[Processor] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]

    def values(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The values for the SQL's placeholders, processed as SQLAlchemy binds them."""
        values = []
        for name, process in zip(self._names, self._binds, strict=True):
            value = params[name] if name in params else self._constants[name]
            values.append(value if process is None or value is None else process(value))
        return tuple(values)

    def values_in_order(self, given: Sequence[Any]) -> tuple[Any, ...]:
        """The values for the SQL's placeholders from `given`, one for each of `parameters`,
        processed as SQLAlchemy binds them."""
        return tuple(
            value if process is None or value is None else process(value)
            for process, value in zip(self._binds, given, strict=True)
        )

    def record(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """A row the driver returned, as a dict of the columns' values in Python types."""
        return {
            name: value if process is None else process(value)
            for name, process, value in zip(self._columns, self._results, row, strict=True)
        }


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` (dicts that all name the same columns) into `table`, as
    `conn.execute(table.insert(), rows)` does; on SQLite in one call of the driver's
    `executemany`, each value bound as SQLAlchemy binds it (dates, JSON), which costs a
    fraction of SQLAlchemy's own work per row."""
    if not rows:
        return
    columns = tuple(rows[0])
    named = rows[0].keys()
    if conn.dialect.name != "sqlite" or any(row.keys() != named for row in rows):
        conn.execute(table.insert(), list(rows))
        return
    key = (table, columns)
    insert = _inserts.get(key)
    if insert is None:
        if len(_inserts) >= _MAX_CACHED:
            _inserts.clear()
        insert = _inserts[key] = _TypedInsert.of(table, columns)
    if insert is False:  # a column left out has a default of its own: SQLAlchemy fills it in
        conn.execute(table.insert(), list(rows))
        return
    driver = conn.connection.dbapi_connection
    assert driver is not None
    driver.executemany(insert.sql, [insert.values(row) for row in rows])


class _TypedInsert:
    """An insert of a table's `columns`, as SQL text with `?` placeholders, and how each value
    is bound (SQLAlchemy calls a bind processor for every value, None included)."""

    __slots__ = ("_binds", "_get", "_names", "_processed", "sql")

    @classmethod
    def of(cls, table: Table, columns: Sequence[str]) -> _TypedInsert | Literal[False]:
        """The insert of `columns`, or False if it binds other values too (defaults)."""
        done = table.insert().compile(dialect=_DIALECT, column_keys=list(columns))
        if set(done.positiontup or ()) != set(columns):
            return False
        return cls(done, _DIALECT)

    def __init__(self, done: SQLCompiler, dialect: Dialect) -> None:
        self.sql = str(done)
        self._names: list[str] = list(done.positiontup or [])
        self._binds: list[Processor] = [
            bind_processor(done.binds[name].type, dialect) for name in self._names
        ]
        # the row's values in the SQL's order taken in C, then the few that need it processed
        names = self._names
        self._get: Callable[[Mapping[str, Any]], tuple[Any, ...]] = (
            operator.itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
        )
        self._processed = [
            (index, process) for index, process in enumerate(self._binds) if process is not None
        ]

    def values(self, row: Mapping[str, Any]) -> Sequence[Any]:
        values = self._get(row)
        if not self._processed:
            return values
        processed = list(values)
        for index, process in self._processed:
            processed[index] = process(processed[index])
        return processed


_inserts: dict[tuple[Table, tuple[str, ...]], _TypedInsert | Literal[False]] = {}


class TypedWrite:
    """An INSERT or UPDATE ... RETURNING built once, as SQLite SQL text for the driver, that
    binds and reads values as SQLAlchemy does (see `TypedSelect`) and fills in the columns'
    Python-side defaults (`uuid4`, `now`) as SQLAlchemy's insert does: the row it returns is
    the row `conn.execute(statement, params).mappings()` returns. The driver's errors are
    raised as SQLAlchemy raises them (`IntegrityError` with the driver's message)."""

    __slots__ = ("_binds", "_columns", "_constants", "_defaults", "_names", "_results", "sql")

    def __init__(
        self,
        statement: Insert | Update,
        params: frozenset[str],
        returned: Sequence[ColumnElement[Any]],
        dialect: Dialect,
    ) -> None:
        """`params`: the names of the values each run gives; `returned`: the columns of the
        statement's RETURNING, in order."""
        done = statement.compile(dialect=dialect, column_keys=list(params))
        if "POSTCOMPILE" in str(done):
            raise ValueError("TypedWrite takes no IN (...) of a list: the SQL would vary")
        self.sql = str(done)
        self._names = list(done.positiontup or [])
        self._binds: list[Processor] = [
            bind_processor(done.binds[name].type, dialect) for name in self._names
        ]
        self._constants = dict(done.params)
        self._defaults: dict[str, Callable[[], Any]] = {}
        for column in [*done.insert_prefetch, *done.update_prefetch]:
            default = column.default if isinstance(statement, Insert) else column.onupdate
            if not isinstance(default, ScalarElementColumnDefault | CallableColumnDefault):
                raise ValueError(f"TypedWrite takes no default of {column.key} run by SQL")
            self._defaults[column.key] = _default_of(default)
        self._columns = tuple(str(column.key) for column in returned)
        self._results: list[Processor] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in returned
        ]

    def run(self, conn: sqlite3.Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run the statement on the driver's connection, inside the caller's transaction;
        the rows it returns, typed."""
        values = []
        for name, process in zip(self._names, self._binds, strict=True):
            if name in params:
                value = params[name]
            elif name in self._defaults:
                value = self._defaults[name]()
            else:
                value = self._constants[name]
            values.append(value if process is None else process(value))
        try:
            rows = conn.execute(self.sql, values).fetchall()
        except sqlite3.Error as exc:  # as SQLAlchemy wraps it, for the callers' handlers
            raise DBAPIError.instance(self.sql, tuple(values), exc, sqlite3.Error) from exc
        return [
            {
                name: value if process is None else process(value)
                for name, process, value in zip(self._columns, self._results, row, strict=True)
            }
            for row in rows
        ]


def _default_of(default: ScalarElementColumnDefault | CallableColumnDefault) -> Callable[[], Any]:
    if isinstance(default, CallableColumnDefault):
        # wrapped by SQLAlchemy to take the execution context, which defaults that read it
        # (none of the platform's: uuid4, now) would need
        arg: Callable[[Any], Any] = default.arg
        return lambda: arg(None)
    value = default.arg
    return lambda: value
