"""`client.schema`: tables and their changes (recorded migrations)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace, add_given

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncSchema(Namespace):
    """Changing the tenant's tables (scope `schema:admin`); every change is a recorded migration."""

    _client: AsyncClient

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
        add_given(params, name=name)
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
        add_given(params, table=table)
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
