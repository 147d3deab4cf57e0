"""The navigation tree of the pages the caller may open: a page needs its own scopes and those
of every page above it. Admins declare the pages with `pages.*` (services/pages.py)."""

from __future__ import annotations

from sqlalchemy.engine import RowMapping

from roost.services.context import Context, Principal
from roost.services.pages import all_pages, no_page
from roost.services.registry import operation
from roost.wire.common import Empty
from roost.wire.pages import NavigationNode, PageAccess, PageRef


@operation("auth.get_navigation", read_only=True)
async def get_navigation(ctx: Context, params: Empty) -> list[NavigationNode]:
    """The tree of pages you may open, each level in `position` order."""
    principal = ctx.require_principal()
    rows = await all_pages(ctx)
    children: dict[str | None, list[RowMapping]] = {}
    for row in sorted(rows, key=lambda r: (r["position"], r["path"])):
        children.setdefault(row["parent"], []).append(row)

    def branch(parent: str | None) -> list[NavigationNode]:
        return [
            NavigationNode(path=row["path"], title=row["title"], children=branch(row["path"]))
            for row in children.get(parent, [])
            if _allowed(principal, row["scopes"])
        ]

    return branch(None)


@operation("auth.check_page_access", read_only=True)
async def check_page_access(ctx: Context, params: PageRef) -> PageAccess:
    """Whether you may open a page, and which scopes you lack for it (or above it)."""
    principal = ctx.require_principal()
    by_path = {row["path"]: row for row in await all_pages(ctx)}
    if params.path not in by_path:
        raise no_page(params.path)
    missing: set[str] = set()
    path: str | None = params.path
    while path is not None and path in by_path:
        row = by_path[path]
        missing |= {scope for scope in row["scopes"] if not principal.allows(scope)}
        path = row["parent"]
    return PageAccess(path=params.path, allowed=not missing, missing_scopes=sorted(missing))


def _allowed(principal: Principal, scopes: list[str]) -> bool:
    return all(principal.allows(scope) for scope in scopes)
