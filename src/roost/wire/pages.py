"""Types of pages and navigation (Dominus portal)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta, Struct

from roost.wire.auth import Scope

PagePath = Annotated[str, Meta(pattern=r"^/([a-z0-9_\-]+(/[a-z0-9_\-]+)*)?$", max_length=255)]


class PageSpec(Struct, forbid_unknown_fields=True):
    path: PagePath
    title: Annotated[str, Meta(min_length=1, max_length=200)]
    parent: PagePath | None = None
    scopes: Annotated[list[Scope], Meta(max_length=50)] = []  # all needed to open the page
    position: Annotated[int, Meta(ge=0, le=10_000)] = 0  # order among its siblings


class PageRef(Struct, forbid_unknown_fields=True):
    path: PagePath


class Page(Struct):
    path: str
    title: str
    parent: str | None
    scopes: list[str]
    position: int
    created_at: datetime


class NavigationNode(Struct):
    path: str
    title: str
    children: list[NavigationNode]


class PageAccess(Struct):
    """`auth.check_page_access` (the SDK's `PageAccess`): whether the caller may open the
    page, and the scopes it lacks; its truth value is `allowed`."""

    path: str
    allowed: bool
    missing_scopes: list[str]  # of this page and of the pages above it

    def __bool__(self) -> bool:
        return self.allowed
