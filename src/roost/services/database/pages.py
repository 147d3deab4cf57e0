"""`database.query`'s short path on SQLite: a page (and its count) of a plain table read,
with no row policy, audit or populate, run inline on the event loop (`Database.read_inline`).

Through SQLAlchemy a page costs its cache key, its compilation and a thread hop, far more
than SQLite takes to read 20 rows by an index. Here the SQL text is compiled once per table
object and query shape (each filter's column, operator and the kind of its value; the sort,
the columns selected, the count): a request of a known shape only builds its filters' conditions
(which coerce and check the values as ever) and takes their bound values, in the order the
SQL wants them, by where they sit in the conditions. Their types are applied as SQLAlchemy
applies them (`TypedSelect`), so the rows are those the general path returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from sqlalchemy import BindParameter, ColumnElement, Select, Table, func, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import visitors

from roost.backends.sql.database import Database
from roost.backends.sql.fast import TypedSelect
from roost.wire.database import Filter

_DIALECT = sqlite.dialect()
_SHAPES = "roost.page_shapes"  # in a Table's info: the compiled shapes of its pages
_MAX_SHAPES = 64
_LIMIT, _OFFSET = -1, -2  # in a `_Where`: the page's LIMIT and OFFSET, not a condition's
_TEXT_EDGES = {"startswith", "endswith"}  # an empty value makes other SQL
_UNSHAPED = {"in", "not_in"}  # a list's length makes other SQL (and IN is compiled late)

_Where = tuple[int, int]  # (condition, its nth bound parameter) or (_LIMIT|_OFFSET, 0)


class _Compiled(msgspec.Struct, frozen=True):
    reader: TypedSelect
    where: tuple[_Where, ...]  # where each of the reader's parameters' values comes from


class Shape(msgspec.Struct, frozen=True):
    """A query's SQL, compiled: the page's and (for a count) the count's."""

    page: _Compiled | None
    count: _Compiled | None
    structure: tuple[tuple[type, ...], ...]  # each condition's elements (a check)


class PageRead(msgspec.Struct, frozen=True):
    """The rows of a page read inline, and the total when it was asked for."""

    rows: list[dict[str, Any]]
    total: int | None


def shape_key(
    filters: Sequence[Filter], sort: Sequence[Any], chosen: Sequence[str] | None, count: str
) -> tuple[Any, ...] | None:
    """What the SQL of a query depends on besides the table; None for a query with no short
    path (an IN of a list)."""
    parts: list[Any] = []
    for name, op, value in filters:
        if op in _UNSHAPED:
            return None
        if op == "is_null" or isinstance(value, bool):  # true and false are no parameters
            kind: Any = value
        elif op in _TEXT_EDGES and isinstance(value, str):
            kind = value == ""
        elif isinstance(value, list):
            kind = tuple(v if isinstance(v, bool) else type(v).__name__ for v in value)
        else:
            kind = type(value).__name__
        parts.append((name, op, kind))
    sort_key = tuple((str(name), str(direction)) for name, direction in sort)
    return (tuple(parts), sort_key, None if chosen is None else tuple(chosen), count)


def compiled_shape(
    table: Table,
    key: tuple[Any, ...],
    conditions: list[ColumnElement[bool]],
    statement: Callable[[], Select[Any]],
    limit: int,
    offset: int,
) -> Shape | None:
    """The shape `key` of `table`'s queries, compiled the first time from `statement()` (the
    page's select, unpaged) and `conditions` (its filters); None if it has no short path."""
    shapes: dict[tuple[Any, ...], Shape | None] = table.info.setdefault(_SHAPES, {})
    if key in shapes:
        return shapes[key]
    if len(shapes) >= _MAX_SHAPES:
        shapes.clear()
    paged = statement().limit(limit).offset(offset)
    counted = select(func.count()).select_from(table).where(*conditions)
    count = key[-1]
    try:
        shape: Shape | None = Shape(
            page=_compile(paged, conditions) if count != "only" else None,
            count=_compile(counted, conditions) if count != "none" else None,
            structure=tuple(_parts(condition)[1] for condition in conditions),
        )
    except (ValueError, LookupError):  # SQL compiled late, a parameter found nowhere
        shape = None
    shapes[key] = shape
    return shape


def too_long(table: Table, key: tuple[Any, ...]) -> None:
    """Send the shape `key` of `table`'s queries to the general path from now on: a read of
    it could not run inline (too long for the event loop, and tables rarely shrink)."""
    shapes: dict[tuple[Any, ...], Shape | None] = table.info.setdefault(_SHAPES, {})
    shapes[key] = None


def _compile(statement: Select[Any], conditions: list[ColumnElement[bool]]) -> _Compiled:
    reader = TypedSelect(statement, frozenset(), _DIALECT)
    found: dict[int, _Where] = {}
    for index, condition in enumerate(conditions):
        for nth, bind in enumerate(_parts(condition)[0]):
            found.setdefault(id(bind), (index, nth))
    if statement._limit_clause is not None:
        found[id(statement._limit_clause)] = (_LIMIT, 0)
    if statement._offset_clause is not None:
        found[id(statement._offset_clause)] = (_OFFSET, 0)
    where = tuple(found[id(bind)] for bind in reader.parameters)  # LookupError: no short path
    return _Compiled(reader, where)


def _parts(condition: ColumnElement[bool]) -> tuple[list[BindParameter[Any]], tuple[type, ...]]:
    """A condition's bound parameters, and the kinds of all its elements in order."""
    elements = list(visitors.iterate(condition))
    binds = [e for e in elements if isinstance(e, BindParameter)]
    return binds, tuple(type(e) for e in elements)


def read(
    db: Database,
    namespace: str,
    shape: Shape,
    conditions: list[ColumnElement[bool]],
    limit: int,
    offset: int,
) -> PageRead | None:
    """The page (and count) of `shape` for these conditions' values, read inline; None when
    it cannot be (the read proved too long for the event loop, or the conditions are not of
    the shape after all): the caller takes the general path."""
    parts = [_parts(condition) for condition in conditions]
    if tuple(structure for _, structure in parts) != shape.structure:
        return None  # e.g. `= false` where the shape has `= true`: neither is a parameter
    binds = [found for found, _ in parts]
    reads = [
        (compiled.reader, compiled.reader.values_in_order(_values(compiled, binds, limit, offset)))
        for compiled in (shape.count, shape.page)
        if compiled is not None
    ]
    found = db.read_inline(namespace, reads)
    if found is None:
        return None
    total = None
    if shape.count is not None:
        total = int(next(iter(found.pop(0)[0].values())))
    return PageRead(rows=found[0] if shape.page is not None else [], total=total)


def _values(
    compiled: _Compiled, binds: list[list[BindParameter[Any]]], limit: int, offset: int
) -> list[Any]:
    values: list[Any] = []
    for index, nth in compiled.where:
        if index == _LIMIT:
            values.append(limit)
        elif index == _OFFSET:
            values.append(offset)
        else:
            values.append(binds[index][nth].effective_value)
    return values
