"""Pages of the tenant's app and the scopes each needs: admins declare them here; every caller
gets the navigation tree of the pages they may open from `auth.get_navigation`
(services/auth/navigation.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from roost.backends.sql.tables import pages, utcnow
from roost.errors import ConflictError, NotFoundError, ValidationError
from roost.services.context import Context
from roost.services.registry import operation
from roost.wire.common import Done, Empty
from roost.wire.pages import Page, PageRef, PageSpec

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


@operation("pages.create", scope="pages:write")
async def create_page(ctx: Context, params: PageSpec) -> Page:
    """Declare a page under `parent` (which must exist), opened by callers holding `scopes`."""
    if params.parent == params.path:
        raise ValidationError("a page cannot be its own parent", details={"field": "parent"})
    async with ctx.platform.db.write(ctx.tenant) as conn:
        if params.parent is not None and await _find(conn, params.parent) is None:
            raise NotFoundError(
                f"no page {params.parent!r} to put this one under", details={"field": "parent"}
            )
        try:
            await conn.execute(
                pages.insert().values(
                    path=params.path,
                    title=params.title,
                    parent=params.parent,
                    scopes=sorted(set(params.scopes)),
                    position=params.position,
                    created_at=utcnow(),
                )
            )
        except IntegrityError:
            raise ConflictError(f"page {params.path!r} exists", details={"field": "path"}) from None
        created = await _find(conn, params.path)
    assert created is not None
    return _page(created)


@operation("pages.list", scope="pages:read", read_only=True)
async def list_pages(ctx: Context, params: Empty) -> list[Page]:
    """Every page, by path, with the scopes it needs."""
    return [_page(row) for row in await all_pages(ctx)]


@operation("pages.delete", scope="pages:write")
async def delete_page(ctx: Context, params: PageRef) -> Done:
    """Delete a page that has no pages under it."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        if await _find(conn, params.path) is None:
            raise no_page(params.path)
        child = await conn.scalar(select(pages.c.path).where(pages.c.parent == params.path))
        if child is not None:
            raise ConflictError(
                f"page {params.path!r} has pages under it ({child!r}); delete those first",
                details={"field": "path"},
            )
        await conn.execute(delete(pages).where(pages.c.path == params.path))
    return Done(count=1)


async def all_pages(ctx: Context) -> list[RowMapping]:
    """Every page of the tenant, by path."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        return list((await conn.execute(select(pages).order_by(pages.c.path))).mappings().all())


async def _find(conn: AsyncConnection, path: str) -> RowMapping | None:
    return (await conn.execute(select(pages).where(pages.c.path == path))).mappings().first()


def _page(row: RowMapping) -> Page:
    return Page(
        path=row["path"],
        title=row["title"],
        parent=row["parent"],
        scopes=row["scopes"],
        position=row["position"],
        created_at=row["created_at"],
    )


def no_page(path: str) -> NotFoundError:
    """The error for a page that does not exist."""
    return NotFoundError(f"no page {path!r}", details={"field": "path"})
