"""`client.database`: rows of the tenant's tables, records and the query builder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from roost.client._core.namespace import Namespace, add_given
from roost.client._core.query import (
    AsyncQueryAnswer,
    Filters,
    QueryBuilder,
    QueryState,
    normalize_filters,
)
from roost.client._core.results import StreamEvent, TableChange, decode
from roost.client._realtime import AsyncSubscription

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient

Row = dict[str, Any]
_ITER_PAGE_SIZE = 100


class AsyncQuery(QueryBuilder):
    """A query of a table: chain `.filter()`, `.sort()`, ... then `await .get()`."""

    async def get(self) -> list[Row]:
        """The rows of the current page.

        Example:
            adults = await client.database.query("users").filter("age", "gte", 18).get()
        """
        return (await self.fetch(with_total=False))["rows"]  # type: ignore[no-any-return]

    async def fetch(self, *, with_total: bool = True) -> dict[str, Any]:
        """`{"rows", "total", "page", "page_size"}` of the current page.

        Example:
            page = await client.database.query("users").page_size(20).fetch()
        """
        params = self._state.params("with" if with_total else "none")
        result: dict[str, Any] = await self._client.call("database.query", params, idempotent=True)
        return result

    async def iter(self) -> AsyncIterator[Row]:
        """Every matching row, from the current page on, one page (`page_size`, else 100) at
        a time. `limit`/`offset` are ignored: pages walk on by number.

        Example:
            async for order in client.database.query("orders").sort("id").iter():
                print(order["total"])
        """
        size = self._state.page_size or _ITER_PAGE_SIZE
        number = self._state.page
        while True:
            page = self._with(page_size=size, page=number, limit=None, offset=None)
            rows = (await page.fetch(with_total=False))["rows"]
            for row in rows:
                yield row
            if len(rows) < size:
                return
            number += 1

    async def first(self) -> Row | None:
        """The first row, or None.

        Example:
            newest = await client.database.query("users").sort("created_at", "desc").first()
        """
        rows = (
            await self._with(page_size=1, page=1, limit=None, offset=None).fetch(with_total=False)
        )["rows"]
        return rows[0] if rows else None

    async def count(self) -> int:
        """How many rows match the filters.

        Example:
            active = await client.database.query("users").filter("active", "eq", True).count()
        """
        result = await self._client.call(
            "database.query", self._state.params("only"), idempotent=True
        )
        return int(result["total"])


class AsyncDatabase(Namespace):
    """Rows of the tenant's tables."""

    _client: AsyncClient

    @overload
    def query(self, table: str) -> AsyncQuery: ...

    @overload
    def query(
        self,
        table: str,
        *,
        filters: Filters = None,
        sort_by: str | None = None,
        sort_order: Literal["asc", "desc"] = "asc",
        limit: int | None = None,
        offset: int | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> AsyncQueryAnswer: ...

    def query(
        self,
        table: str,
        *,
        filters: Filters = None,
        sort_by: str | None = None,
        sort_order: Literal["asc", "desc"] = "asc",
        limit: int | None = None,
        offset: int | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> AsyncQuery | AsyncQueryAnswer:
        """A query builder for `table`; or, given any Dominus argument (`filters=`, `sort_by=`,
        `limit=`, `offset=`, `reason=`), the answer `{"rows", "total"}` directly.

        Example:
            rows = await client.database.query("users").filter("age", "gte", 18).get()
            page = await client.database.query("users", filters={"status": "active"}, limit=50)
        """
        builder = AsyncQuery(self._client, QueryState(table=table))
        dominus = (filters, sort_by, limit, offset, reason, actor)
        if all(value is None for value in dominus):
            return builder
        state = QueryState(
            table=table,
            filters=tuple(tuple(f) for f in normalize_filters(filters)),
            sort=((sort_by, sort_order),) if sort_by else (),
            limit=limit or 100,
            offset=offset or 0,
            reason=reason,
            actor=actor,
        )
        return AsyncQuery(self._client, state).fetch()

    async def get(
        self,
        table: str,
        record_id: Any,
        *,
        select: list[str] | None = None,
        populate: list[str] | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Row:
        """One row by primary key; NotFoundError if there is none.

        Example:
            user = await client.database.get("users", record_id=123)
        """
        params: dict[str, Any] = {"table": table, "id": record_id, "populate": populate or []}
        add_given(params, select=select, reason=reason, actor=actor)
        result: Row = await self._client.call("database.get", params, idempotent=True)
        return result

    @overload
    async def create(
        self, table: str, data: Row, *, reason: str | None = None, actor: str | None = None
    ) -> Row: ...

    @overload
    async def create(
        self, table: str, data: list[Row], *, reason: str | None = None, actor: str | None = None
    ) -> list[Row]: ...

    async def create(
        self,
        table: str,
        data: Row | list[Row],
        *,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Row | list[Row]:
        """Insert one row (returns it) or many in one transaction (returns them all).

        Example:
            user = await client.database.create("users", {"email": "a@example.com"})
        """
        rows = await self.bulk_insert(
            table, data if isinstance(data, list) else [data], reason=reason, actor=actor
        )
        return rows if isinstance(data, list) else rows[0]

    async def insert(
        self, table: str, data: Row, *, reason: str | None = None, actor: str | None = None
    ) -> Row:
        """Insert one row (the Dominus name of `create`).

        Example:
            user = await client.database.insert("users", {"email": "a@example.com"})
        """
        return await self.create(table, data, reason=reason, actor=actor)

    async def bulk_insert(
        self, table: str, rows: list[Row], *, reason: str | None = None, actor: str | None = None
    ) -> list[Row]:
        """Insert many rows in one transaction: all or none.

        Example:
            await client.database.bulk_insert("events", [{"type": "login"}, {"type": "logout"}])
        """
        params: dict[str, Any] = {"table": table, "rows": rows}
        add_given(params, reason=reason, actor=actor)
        result = await self._client.call("database.create", params)
        return result["rows"]  # type: ignore[no-any-return]

    async def update(
        self,
        table: str,
        data: Row | list[Row] | None = None,
        *,
        record_id: Any = None,
        filters: Filters = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Any:
        """Change one row (`record_id=` and `data=`: returns it), rows that carry their ids
        (`data=[...]`) or the rows matching `filters=` (both return the changed rows).

        Example:
            await client.database.update("users", record_id=123, data={"name": "Alice"})
        """
        params: dict[str, Any] = {"table": table}
        if isinstance(data, list):
            params["rows"] = data
        else:
            params["data"] = data
        if record_id is not None:
            params["id"] = record_id
        if filters is not None:
            params["filters"] = normalize_filters(filters)
        add_given(params, reason=reason, actor=actor)
        result = await self._client.call("database.update", params)
        return result["rows"][0] if record_id is not None else result["rows"]

    async def delete(
        self,
        table: str,
        record_id: Any = None,
        *,
        record_ids: list[Any] | None = None,
        filters: Filters = None,
        all: bool = False,
        reason: str | None = None,
        actor: str | None = None,
    ) -> int:
        """Delete by id, ids or filters and return how many rows went; every row needs all=True.

        Example:
            await client.database.delete("users", filters={"is_active": False})
        """
        params: dict[str, Any] = {"table": table, "all": all}
        if record_id is not None:
            params["id"] = record_id
        if record_ids is not None:
            params["ids"] = record_ids
        if filters is not None:
            params["filters"] = normalize_filters(filters)
        add_given(params, reason=reason, actor=actor)
        return int((await self._client.call("database.delete", params))["count"])

    async def tables(self) -> list[dict[str, Any]]:
        """The tenant's tables: `[{"name", "secure", "columns"}]`.

        Example:
            names = [t["name"] for t in await client.database.tables()]
        """
        result: list[dict[str, Any]] = await self._client.call("database.tables", idempotent=True)
        return result

    async def collections(self) -> list[str]:
        """The names of the tenant's document collections (those holding a document).

        Example:
            for name in await client.database.collections():
                print(name)
        """
        result: list[str] = await self._client.call("documents.collections", idempotent=True)
        return result

    async def describe(self, table: str) -> dict[str, Any]:
        """A table's columns, indexes and flags.

        Example:
            columns = (await client.database.describe("users"))["columns"]
        """
        result: dict[str, Any] = await self._client.call(
            "database.describe", {"table": table}, idempotent=True
        )
        return result

    async def subscribe(
        self,
        table: str,
        callback: Callable[[TableChange], Any],
        events: Sequence[str] = ("insert", "update", "delete"),
        from_offset: int | None = None,
    ) -> AsyncSubscription:
        """Receive the table's inserts, updates and deletes made through the API, in commit
        order; `callback(change)` may be async. `from_offset` replays the change log from
        there first (negative: the last N changes).

        Example:
            sub = await client.database.subscribe("orders", lambda c: print(c.type, c.record))
        """
        params: dict[str, Any] = {"table": table, "events": list(events)}
        if from_offset is not None:
            params["from_offset"] = from_offset

        def change(event: Any) -> Any:
            # a change travels as a stream event whose data is {"table", "record"}
            found = decode(event, StreamEvent)
            return callback(
                TableChange(
                    type=found.event_type,
                    table=found.data["table"],
                    record=found.data["record"],
                    offset=found.offset,
                    timestamp=found.timestamp,
                )
            )

        return await self._client.realtime.subscribe("database.subscribe", params, change, table)
