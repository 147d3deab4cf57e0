"""Documents (DotDo collections): schemaless JSON objects by collection and id.

Queried with `database.query(collection=...)` like tables, on top-level fields (SQLite JSON1,
PostgreSQL jsonb); the collection and id are the primary key. Writes go through
`Database.run(write=True)`, so on SQLite those that arrive together share one commit.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import Connection, bindparam, select

from roost.backends.sql.tables import documents, utcnow
from roost.errors import NotFoundError, ValidationError
from roost.services.context import Context
from roost.services.registry import operation
from roost.services.tabledefs import check_identifier
from roost.wire.common import Done, Empty
from roost.wire.database import DocumentRef, DocumentWrite, Row

_MAX_BYTES = 1024 * 1024


@operation("documents.collections", scope="database:read", read_only=True)
async def collections(ctx: Context, params: Empty) -> list[str]:
    """The names of the tenant's document collections that hold a document, in order."""
    query = select(documents.c.collection).distinct().order_by(documents.c.collection)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        return list((await conn.execute(query)).scalars())


@operation("documents.get", scope="database:read", read_only=True)
async def get(ctx: Context, params: DocumentRef) -> Row:
    """A document with its `id`."""
    collection = check_identifier(params.collection, "collection")
    found = await ctx.platform.db.first_record(
        ctx.tenant, _DOCUMENT, {"collection": collection, "id": params.id}
    )
    if found is None:
        raise NotFoundError(f"no document {params.id!r} in {collection}", details={"field": "id"})
    return {"id": params.id, **found["data"]}


# a lookup by key, built once for `Database.first_record` (on SQLite: one step on the loop)
_DOCUMENT = select(documents.c.data).where(
    documents.c.collection == bindparam("collection"), documents.c.id == bindparam("id")
)


@operation("documents.set", scope="database:write")
async def set_document(ctx: Context, params: DocumentWrite) -> Row:
    """Create or replace a document."""
    collection, data = _checked(params)
    where = (documents.c.collection == collection) & (documents.c.id == params.id)

    def work(conn: Connection) -> None:
        exists = conn.execute(select(documents.c.id).where(where)).first() is not None
        if exists:
            conn.execute(documents.update().where(where).values(data=data, updated_at=utcnow()))
        else:
            conn.execute(documents.insert().values(collection=collection, id=params.id, data=data))

    await ctx.platform.db.run(ctx.tenant, work, write=True)
    return {"id": params.id, **data}


@operation("documents.update", scope="database:write")
async def update_document(ctx: Context, params: DocumentWrite) -> Row:
    """Merge fields into an existing document (top level; a field set to null is removed)."""
    collection, changes = _checked(params)
    where = (documents.c.collection == collection) & (documents.c.id == params.id)

    def work(conn: Connection) -> dict[str, Any]:
        current = conn.execute(select(documents.c.data).where(where)).scalar_one_or_none()
        if current is None:
            raise NotFoundError(
                f"no document {params.id!r} in {collection}", details={"field": "id"}
            )
        merged = {k: v for k, v in {**current, **changes}.items() if v is not None}
        conn.execute(documents.update().where(where).values(data=merged, updated_at=utcnow()))
        return merged

    merged = await ctx.platform.db.run(ctx.tenant, work, write=True)
    return {"id": params.id, **merged}


@operation("documents.delete", scope="database:write")
async def delete_document(ctx: Context, params: DocumentRef) -> Done:
    """Delete a document; deleting one that does not exist is a no-op (count 0)."""
    collection = check_identifier(params.collection, "collection")
    statement = documents.delete().where(
        documents.c.collection == collection, documents.c.id == params.id
    )
    count = await ctx.platform.db.run(
        ctx.tenant, lambda conn: conn.execute(statement).rowcount, write=True
    )
    return Done(count=count)


def _checked(params: DocumentWrite) -> tuple[str, dict[str, Any]]:
    collection = check_identifier(params.collection, "collection")
    if "id" in params.data:
        raise ValidationError(
            "a document's id is its key; leave it out of data", details={"field": "data.id"}
        )
    if len(msgspec.json.encode(params.data)) > _MAX_BYTES:
        raise ValidationError(
            f"a document is at most {_MAX_BYTES} bytes", details={"field": "data"}
        )
    return collection, params.data
