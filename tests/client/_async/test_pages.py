"""Pages and navigation through the SDK, on SQLite and PostgreSQL: the tree each caller sees,
page access with the scopes missing, and each refusal."""

from __future__ import annotations

import pytest

from roost import (
    AsyncClient,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from tests.client._async.calls import Call
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique


@pytest.mark.anyio
async def test_each_caller_sees_the_pages_they_may_open(server: RunningServer) -> None:
    tenant = unique("nav")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
    async with AsyncClient(api_url=server.url, tenant=tenant) as client:
        root = await client.auth.sign_in_with_password("root", "root-password")
        await root.pages.create("/home", "Home")
        await root.pages.create("/reports", "Reports", scopes=["users:read"], position=2)
        await root.pages.create("/reports/sales", "Sales", "/reports")
        await root.pages.create("/account", "Account", position=1)
        await root.pages.create("/account/keys", "Keys", "/account", ["api_keys:read"])
        assert [p["path"] for p in await root.pages.list()] == [
            "/account",
            "/account/keys",
            "/home",
            "/reports",
            "/reports/sales",
        ]
        full = await root.auth.get_navigation()
        assert [(n["path"], [c["path"] for c in n["children"]]) for n in full] == [
            ("/home", []),
            ("/account", ["/account/keys"]),
            ("/reports", ["/reports/sales"]),
        ]
        name = unique("viewer")
        await client.auth.register(name, "member-password")
        member = await client.auth.sign_in_with_password(name, "member-password")
        seen = await member.auth.get_navigation()
        assert [(n["path"], [c["path"] for c in n["children"]]) for n in seen] == [
            ("/home", []),
            ("/account", ["/account/keys"]),  # members hold api_keys:read
        ]
        sales = await member.auth.check_page_access("/reports/sales")
        assert (sales.allowed, sales.missing_scopes) == (False, ["users:read"])
        assert not sales  # a refused page is false in an `if`
        assert (await member.auth.check_page_access("/account/keys")).allowed is True
        with pytest.raises(NotFoundError):
            await member.auth.check_page_access("/nowhere")
        with pytest.raises(AuthorizationError):
            await member.pages.create("/mine", "Mine")
        with pytest.raises(AuthorizationError):
            await member.pages.list()


@pytest.mark.anyio
async def test_bad_pages_are_refused(server: RunningServer) -> None:
    base = "/" + unique("p")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.pages.create(base, "Base")
        await admin.pages.create(base + "/child", "Child", base)
        bad_calls: list[tuple[str, Call]] = [
            ("path", lambda: admin.pages.create("no-slash", "x")),
            ("path", lambda: admin.pages.create(base + "/Upper Case", "x")),
            ("title", lambda: admin.pages.create(base + "/t", "")),
            ("scopes", lambda: admin.pages.create(base + "/s", "x", scopes=["not a scope"])),
            ("parent", lambda: admin.pages.create(base + "/self", "x", base + "/self")),
        ]
        for field, bad in bad_calls:
            with pytest.raises(ValidationError) as caught:
                await bad()
            assert field in str(caught.value.details) + caught.value.message, field
        with pytest.raises(NotFoundError):
            await admin.pages.create(base + "/orphan", "x", base + "/missing")
        with pytest.raises(ConflictError):
            await admin.pages.create(base, "Again")
        with pytest.raises(ConflictError):
            await admin.pages.delete(base)  # it has a child
        await admin.pages.delete(base + "/child")
        await admin.pages.delete(base)
        with pytest.raises(NotFoundError):
            await admin.pages.delete(base)
