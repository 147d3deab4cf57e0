"""Dominus' `secrets`, `db` (and `secure`), `redis` and `ddl` over the native `secrets`,
`database`, `kv` and `schema` namespaces."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from roost.client._async.database import AsyncDatabase
from roost.client._core.query import Filters
from roost.client._core.results import SetResult
from roost.compat._core.dominus import tenant_of

if TYPE_CHECKING:
    from roost.compat._async.dominus import AsyncDominus


class AsyncDominusSecrets:
    def __init__(self, dominus: AsyncDominus) -> None:
        self._dominus = dominus

    async def list(self, prefix: str | None = None, **filters: Any) -> dict[str, Any]:
        """Secrets without their values: `{"results": [...], "next_cursor"}`.

        Example:
            found = await dominus.secrets.list(prefix="DB_")
        """
        return await self._dominus.native.secrets.list_secrets(prefix=prefix, **filters)

    async def get(self, key: str) -> str:
        """The value of a secret.

        Example:
            value = await dominus.secrets.get("API_KEY")
        """
        return await self._dominus.native.get(key)

    async def upsert(self, key: str, value: str, comment: str = "") -> dict[str, Any]:
        """Create a secret or give it a new value.

        Example:
            await dominus.secrets.upsert("API_KEY", "new-value")
        """
        return await self._dominus.native.upsert(key, value, comment=comment)

    async def delete(self, key: str) -> None:
        """Delete a secret and its versions.

        Example:
            await dominus.secrets.delete("OLD_KEY")
        """
        await self._dominus.native.secrets.delete(key)


class AsyncDominusDb:
    def __init__(self, dominus: AsyncDominus) -> None:
        self._dominus = dominus

    def _database(self, schema: str | None) -> AsyncDatabase:
        return self._dominus.in_schema(schema).database

    async def tables(self, schema: str | None = None) -> list[dict[str, Any]]:
        """The tables of a schema (tenant): `[{"name", "secure", "columns"}]`.

        Example:
            tables = await dominus.db.tables()
        """
        return await self._database(schema).tables()

    async def query(
        self,
        table: str,
        filters: Filters = None,
        sort_by: str | None = None,
        sort_order: str = "asc",
        limit: int | None = None,
        offset: int | None = None,
        schema: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """`{"rows", "total", ...}`: the rows matching `filters` (a list value means any of).

        Example:
            users = await dominus.db.query("users", filters={"status": "active"}, limit=50)
        """
        order: Literal["asc", "desc"] = "desc" if sort_order.lower() == "desc" else "asc"
        return await self._database(schema).query(
            table,
            filters=filters,
            sort_by=sort_by,
            sort_order=order,
            limit=100 if limit is None else limit,
            offset=offset or 0,
            reason=reason,
            actor=actor,
        )

    async def insert(
        self,
        table: str,
        data: dict[str, Any],
        schema: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Insert a row and return it as stored.

        Example:
            user = await dominus.db.insert("users", {"email": "john@example.com"})
        """
        return await self._database(schema).insert(table, data, reason=reason, actor=actor)

    async def update(
        self,
        table: str,
        data: dict[str, Any],
        filters: Filters = None,
        schema: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> list[dict[str, Any]]:
        """Change the rows matching `filters`; returns them changed.

        Example:
            await dominus.db.update("users", {"status": "inactive"}, filters={"id": user_id})
        """
        rows: list[dict[str, Any]] = await self._database(schema).update(
            table, data, filters=filters, reason=reason, actor=actor
        )
        return rows

    async def delete(
        self,
        table: str,
        filters: Filters = None,
        schema: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> int:
        """Delete the rows matching `filters`; returns how many.

        Example:
            await dominus.db.delete("users", filters={"id": user_id})
        """
        return await self._database(schema).delete(
            table, filters=filters, reason=reason, actor=actor
        )

    async def bulk_insert(
        self,
        table: str,
        rows: list[dict[str, Any]],
        schema: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> list[dict[str, Any]]:
        """Insert many rows in one transaction: all or none.

        Example:
            await dominus.db.bulk_insert("events", [{"type": "login"}, {"type": "logout"}])
        """
        return await self._database(schema).bulk_insert(table, rows, reason=reason, actor=actor)


class AsyncDominusRedis:
    def __init__(self, dominus: AsyncDominus) -> None:
        self._dominus = dominus

    async def set(self, key: str, value: Any, ttl: int | None = None) -> SetResult:
        """Store a JSON value, for `ttl` seconds if given.

        Example:
            await dominus.redis.set("user:123", {"name": "John"}, ttl=3600)
        """
        return await self._dominus.native.kv.set(key, value, ttl)

    async def get(self, key: str) -> Any:
        """The value, or None if there is no such key.

        Example:
            value = await dominus.redis.get("user:123")
        """
        result = await self._dominus.native.kv.get(key)
        return result.value if result.found else None

    async def delete(self, *keys: str) -> int:
        """Delete keys; returns how many existed.

        Example:
            await dominus.redis.delete("user:123")
        """
        return await self._dominus.native.kv.delete(*keys)

    async def setnx(self, key: str, value: Any, ttl: int | None = None) -> bool:
        """Store only if the key is absent: True if this call stored it.

        Example:
            if await dominus.redis.setnx("lock:job", "worker-1", ttl=60): ...
        """
        return await self._dominus.native.kv.setnx(key, value, ttl)

    async def incr(self, key: str, delta: int = 1) -> int:
        """Add `delta` atomically; returns the new value.

        Example:
            views = await dominus.redis.incr("page:views", delta=1)
        """
        return await self._dominus.native.kv.incr(key, delta)

    async def hset(self, key: str, field: str, value: Any, ttl: int | None = None) -> int:
        """Set a field of a hash; returns 1 if the field is new.

        Example:
            await dominus.redis.hset("user:123", "email", "john@example.com", ttl=3600)
        """
        return await self._dominus.native.kv.hset(key, field, value, ttl)

    async def hget(self, key: str, field: str) -> Any:
        """A field of a hash, or None.

        Example:
            email = await dominus.redis.hget("user:123", "email")
        """
        return await self._dominus.native.kv.hget(key, field)


class AsyncDominusDdl:
    def __init__(self, dominus: AsyncDominus) -> None:
        self._dominus = dominus

    async def add_table(
        self, name: str, columns: list[dict[str, Any]], schema: str | None = None
    ) -> dict[str, Any]:
        """Create a table from `[{"name", "type", "constraints", "default"}]`.

        Example:
            await dominus.ddl.add_table("orders", [{"name": "total", "type": "DECIMAL(10,2)"}])
        """
        return await self._dominus.in_schema(schema).schema.add_table(name, columns)

    async def add_column(
        self,
        table: str,
        name: str,
        type: str,
        default: Any = None,
        constraints: list[str] | None = None,
        schema: str | None = None,
    ) -> dict[str, Any]:
        """Add a column.

        Example:
            await dominus.ddl.add_column("orders", "status", "VARCHAR(50)", default="'pending'")
        """
        return await self._dominus.in_schema(schema).schema.add_column(
            table, name, type, constraints=constraints, default=default
        )

    async def provision_tenant(
        self, tenant: str, category_slug: str | None = None, display_name: str = ""
    ) -> dict[str, Any]:
        """Create a tenant with the tables of a category (`customer_acme`: tenant
        `customer-acme`).

        Example:
            await dominus.ddl.provision_tenant("customer_acme", category_slug="healthcare")
        """
        name = tenant_of(tenant, "tenant") or tenant  # "public" is a tenant name too
        return await self._dominus.native.schema.provision_tenant(
            name, category_slug=category_slug, display_name=display_name
        )
