"""`client.collection(name)`: schemaless JSON documents of one collection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client._async.database import AsyncQuery, Row
from roost.client._core.namespace import Namespace
from roost.client._core.query import CollectionQueryBuilder, QueryState

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncCollectionQuery(CollectionQueryBuilder, AsyncQuery):
    """A query of a collection: `.where()`, `.order_by()`, `.limit()`, then `await .execute()`."""

    async def execute(self) -> list[Row]:
        """The matching documents.

        Example:
            docs = await client.collection("users").query().where("age", ">=", 18).execute()
        """
        return await self.get()


class AsyncCollection(Namespace):
    """Schemaless JSON documents by id (DotDo collections)."""

    _client: AsyncClient

    def __init__(self, client: AsyncClient, name: str) -> None:
        super().__init__(client)
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
