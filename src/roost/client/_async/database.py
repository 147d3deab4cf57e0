"""`client.database`, `client.schema`, `client.analytics`, `client.audit`, `client.collection()`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, overload

from roost.client._core.query import (
    CollectionQueryBuilder,
    Filters,
    QueryBuilder,
    QueryState,
    normalize_filters,
)
from roost.client._core.realtime import AsyncSubscription
from roost.client._core.results import StreamEvent, TableChange, decode

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient

Row = dict[str, Any]


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


class AsyncCollectionQuery(CollectionQueryBuilder, AsyncQuery):
    """A query of a collection: `.where()`, `.order_by()`, `.limit()`, then `await .execute()`."""

    async def execute(self) -> list[Row]:
        """The matching documents.

        Example:
            docs = await client.collection("users").query().where("age", ">=", 18).execute()
        """
        return await self.get()


class AsyncCollection:
    """Schemaless JSON documents by id (DotDo collections)."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self._client = client
        self.name = name

    async def get(self, id: str) -> Row:
        """A document (with its `id`); NotFoundError if there is none.

        Example:
            alice = await client.collection("users").get("user-123")
        """
        result: Row = await self._client.call(
            "documents.get", {"collection": self.name, "id": id}, idempotent=True
        )
        return result

    async def set(self, id: str, data: dict[str, Any]) -> Row:
        """Create or replace a document.

        Example:
            await client.collection("users").set("user-123", {"name": "Alice"})
        """
        result: Row = await self._client.call(
            "documents.set", {"collection": self.name, "id": id, "data": data}
        )
        return result

    async def update(self, id: str, data: dict[str, Any]) -> Row:
        """Merge fields into a document (a field set to None is removed).

        Example:
            await client.collection("users").update("user-123", {"name": "Alice Smith"})
        """
        result: Row = await self._client.call(
            "documents.update", {"collection": self.name, "id": id, "data": data}
        )
        return result

    async def delete(self, id: str) -> None:
        """Delete a document (no error if there is none).

        Example:
            await client.collection("users").delete("user-123")
        """
        await self._client.call("documents.delete", {"collection": self.name, "id": id})

    def query(self) -> AsyncCollectionQuery:
        """A query over the collection's documents.

        Example:
            docs = await client.collection("users").query().order_by("age").limit(10).execute()
        """
        return AsyncCollectionQuery(self._client, QueryState(collection=self.name))


class AsyncDatabase:
    """Rows of the tenant's tables."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

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
    ) -> Coroutine[Any, Any, dict[str, Any]]: ...

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
    ) -> AsyncQuery | Coroutine[Any, Any, dict[str, Any]]:
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
        _put(params, select=select, reason=reason, actor=actor)
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
        _put(params, reason=reason, actor=actor)
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
        _put(params, reason=reason, actor=actor)
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
        _put(params, reason=reason, actor=actor)
        return int((await self._client.call("database.delete", params))["count"])

    async def tables(self) -> list[dict[str, Any]]:
        """The tenant's tables: `[{"name", "secure", "columns"}]`.

        Example:
            names = [t["name"] for t in await client.database.tables()]
        """
        result: list[dict[str, Any]] = await self._client.call("database.tables", idempotent=True)
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


class AsyncSchema:
    """Changing the tenant's tables (scope `schema:admin`); every change is a recorded migration."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def add_table(
        self,
        name: str,
        columns: list[dict[str, Any]],
        *,
        timestamps: bool = True,
        secure: bool = False,
    ) -> dict[str, Any]:
        """Create a table from `[{"name", "type", "constraints", "default"}]`.

        Example:
            await client.schema.add_table("orders", [
                {"name": "total", "type": "DECIMAL(10,2)", "constraints": ["NOT NULL"]}])
        """
        return await self._change(
            "schema.add_table", name=name, columns=columns, timestamps=timestamps, secure=secure
        )

    async def add_column(
        self,
        table: str,
        name: str,
        type: str,
        *,
        constraints: list[str] | None = None,
        default: Any = None,
    ) -> dict[str, Any]:
        """Add a column.

        Example:
            await client.schema.add_column("orders", "status", "VARCHAR(50)", default="'new'")
        """
        column = {"name": name, "type": type, "constraints": constraints or [], "default": default}
        return await self._change("schema.add_column", table=table, column=column)

    async def drop_column(self, table: str, column: str) -> dict[str, Any]:
        """Drop a column.

        Example:
            await client.schema.drop_column("orders", "status")
        """
        return await self._change("schema.drop_column", table=table, column=column)

    async def rename_column(self, table: str, column: str, new_name: str) -> dict[str, Any]:
        """Rename a column.

        Example:
            await client.schema.rename_column("orders", "status", "state")
        """
        return await self._change(
            "schema.rename_column", table=table, column=column, new_name=new_name
        )

    async def add_index(
        self, table: str, columns: list[str], *, unique: bool = False, name: str | None = None
    ) -> dict[str, Any]:
        """Index columns (unique=True also refuses duplicates).

        Example:
            await client.schema.add_index("users", ["email"], unique=True)
        """
        params: dict[str, Any] = {"table": table, "columns": columns, "unique": unique}
        _put(params, name=name)
        return await self._change("schema.add_index", **params)

    async def drop_table(self, table: str) -> dict[str, Any]:
        """Drop a table and its rows.

        Example:
            await client.schema.drop_table("scratch")
        """
        return await self._change("schema.drop_table", table=table)

    async def set_secure(self, table: str, secure: bool = True) -> dict[str, Any]:
        """Require reason= and actor= for every access to `table`, and audit it.

        Example:
            await client.schema.set_secure("patients")
        """
        return await self._change("schema.set_secure", table=table, secure=secure)

    async def migrations(self, table: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Recorded schema changes, newest first.

        Example:
            history = await client.schema.migrations("orders")
        """
        params: dict[str, Any] = {"limit": limit}
        _put(params, table=table)
        result: list[dict[str, Any]] = await self._client.call(
            "schema.migrations", params, idempotent=True
        )
        return result

    async def provision_tenant(
        self,
        tenant: str,
        category: str | None = None,
        *,
        category_slug: str | None = None,
        display_name: str = "",
    ) -> dict[str, Any]:
        """Create a tenant with the tables of a category (`category_slug` is Dominus' name).

        Example:
            await client.schema.provision_tenant("acme", category="healthcare")
        """
        return await self._change(
            "schema.provision_tenant",
            tenant=tenant,
            category=category or category_slug,
            display_name=display_name,
        )

    async def _change(self, operation: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._client.call(operation, params)
        return result


class AsyncAnalytics:
    """Named, saved, parameterised read-only queries."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def define(
        self, name: str, sql: str, params: dict[str, str] | None = None, description: str = ""
    ) -> dict[str, Any]:
        """Save a query; `params` maps each `:name` placeholder to str, int, float, bool, date
        or datetime (scope `analytics:define`).

        Example:
            await client.analytics.define("big_orders",
                "SELECT count(*) AS n FROM orders WHERE total >= :min", {"min": "float"})
        """
        result: dict[str, Any] = await self._client.call(
            "analytics.define",
            {"name": name, "sql": sql, "params": params or {}, "description": description},
        )
        return result

    async def execute(
        self,
        name: str,
        params: dict[str, Any] | None = None,
        *,
        limit: int = 10000,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Run a saved query: `{"data": rows}`. A query over a secure table needs `reason`;
        it is audited with you as the actor.

        Example:
            n = (await client.analytics.execute("big_orders", {"min": 100}))["data"][0]["n"]
        """
        body: dict[str, Any] = {"name": name, "params": params or {}, "limit": limit}
        if reason is not None:
            body["reason"] = reason
        result: dict[str, Any] = await self._client.call("analytics.execute", body, idempotent=True)
        return result

    async def list(self) -> list[dict[str, Any]]:
        """Every saved query.

        Example:
            names = [q["name"] for q in await client.analytics.list()]
        """
        result: list[dict[str, Any]] = await self._client.call("analytics.list", idempotent=True)
        return result

    async def delete(self, name: str) -> None:
        """Delete a saved query.

        Example:
            await client.analytics.delete("big_orders")
        """
        await self._client.call("analytics.delete", {"name": name})


class AsyncAudit:
    """The audit log of secure tables (scope `audit:read`)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def query(
        self,
        table: str | None = None,
        *,
        actor: str | None = None,
        operation: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Entries, newest first.

        Example:
            entries = await client.audit.query("patients", actor="dr.smith")
        """
        params: dict[str, Any] = {"limit": limit}
        _put(
            params,
            table=table,
            actor=actor,
            operation=operation,
            since=since.isoformat() if since else None,
            until=until.isoformat() if until else None,
        )
        result: list[dict[str, Any]] = await self._client.call(
            "audit.query", params, idempotent=True
        )
        return result


def _put(params: dict[str, Any], **optional: Any) -> None:
    params.update({key: value for key, value in optional.items() if value is not None})
