"""Query builders without I/O: the Taruvi chain, the Dominus `filters=` form and DotDo `where`
all become the parameters of one server operation, `database.query`."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Literal, Self

import msgspec

from roost.errors import ValidationError
from roost.wire.database import FILTER_OPERATORS as OPERATORS

DOTDO_OPERATORS = {
    "==": "eq",
    "!=": "ne",
    "<": "lt",
    "<=": "lte",
    ">": "gt",
    ">=": "gte",
    "in": "in",
    "not_in": "not_in",
}
Filters = dict[str, Any] | list[tuple[str, str, Any]] | list[list[Any]] | None

# What `database.query(table, filters=...)` (the Dominus form, api.md) gives: `{"rows", "total"}`
# from the sync client, a coroutine of it from the async one. Named by the SDK's convention
# (`AsyncX` → `X`), so scripts/unasync.py generates the sync signature with no rule of its own.
QueryAnswer = dict[str, Any]
AsyncQueryAnswer = Coroutine[Any, Any, QueryAnswer]


def normalize_filters(filters: Filters) -> list[list[Any]]:
    """`[[field, op, value], ...]` from triples or from a Dominus dict (a list value means in)."""
    if filters is None:
        return []
    if isinstance(filters, dict):
        return [
            [
                field,
                "in" if isinstance(value, list | tuple) else "eq",
                list(value) if isinstance(value, list | tuple) else value,
            ]
            for field, value in filters.items()
        ]
    return [list(item) for item in filters]


class QueryState(msgspec.Struct, frozen=True):
    """What a query asks for; every builder step returns a new state."""

    table: str | None = None
    collection: str | None = None
    filters: tuple[tuple[str, str, Any], ...] = ()
    sort: tuple[tuple[str, str], ...] = ()
    select: tuple[str, ...] | None = None
    populate: tuple[str, ...] = ()
    page_size: int | None = None
    page: int = 1
    limit: int | None = None
    offset: int | None = None
    reason: str | None = None
    actor: str | None = None

    def params(self, count: Literal["none", "with", "only"] = "none") -> dict[str, Any]:
        params: dict[str, Any] = {
            "filters": [list(f) for f in self.filters],
            "sort": [list(s) for s in self.sort],
            "count": count,
            "populate": list(self.populate),
            "page": self.page,
        }
        for name in ("table", "collection", "page_size", "limit", "offset", "reason", "actor"):
            if getattr(self, name) is not None:
                params[name] = getattr(self, name)
        if self.select is not None:
            params["select"] = list(self.select)
        return params


class QueryBuilder:
    """The Taruvi chain: `.filter().sort().page_size().page().select().populate()`."""

    def __init__(self, client: Any, state: QueryState) -> None:
        self._client = client
        self._state = state

    def _with(self, **changes: Any) -> Self:
        return type(self)(self._client, msgspec.structs.replace(self._state, **changes))

    def filter(self, field: str, op: str, value: Any = True) -> Self:
        """Keep rows where `field op value` (ops: eq ne gt gte lt lte in not_in contains
        icontains startswith endswith is_null between)."""
        if op not in OPERATORS:
            raise ValidationError(
                f"unknown operator {op!r}; use {', '.join(OPERATORS)}", details={"field": "op"}
            )
        return self._with(filters=(*self._state.filters, (field, op, value)))

    def sort(self, field: str, direction: Literal["asc", "desc"] = "asc") -> Self:
        return self._with(sort=(*self._state.sort, (field, direction)))

    def page_size(self, size: int) -> Self:
        return self._with(page_size=size)

    def page(self, number: int) -> Self:
        return self._with(page=number)

    def limit(self, n: int) -> Self:
        return self._with(limit=n)

    def offset(self, n: int) -> Self:
        return self._with(offset=n)

    def select(self, *columns: str) -> Self:
        return self._with(select=tuple(columns))

    def populate(self, *references: str) -> Self:
        """Replace these reference columns by the rows they point to."""
        return self._with(populate=(*self._state.populate, *references))

    def audited(self, reason: str, actor: str) -> Self:
        """Why and for whom a secure table is read (written to its audit log)."""
        return self._with(reason=reason, actor=actor)


class CollectionQueryBuilder(QueryBuilder):
    """The DotDo chain: `.where(field, "==", value).order_by(field, descending=True)`."""

    def where(self, field: str, op: str, value: Any) -> Self:
        if op not in DOTDO_OPERATORS:
            raise ValidationError(
                f"unknown operator {op!r}; use {', '.join(DOTDO_OPERATORS)}",
                details={"field": "op"},
            )
        return self._with(filters=(*self._state.filters, (field, DOTDO_OPERATORS[op], value)))

    def order_by(self, field: str, descending: bool = False) -> Self:
        return self._with(sort=(*self._state.sort, (field, "desc" if descending else "asc")))
