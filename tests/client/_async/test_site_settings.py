"""Site settings through the SDK, on SQLite and PostgreSQL: merge, remove, replace, the size
limit, who may read and who may change them, and tenants kept apart."""

from __future__ import annotations

import pytest

from roost import AsyncClient, AuthorizationError, NotAuthenticatedError, ValidationError
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique


@pytest.mark.anyio
async def test_site_settings_merge_and_only_admins_change_them(server: RunningServer) -> None:
    tenant = unique("site")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
    async with AsyncClient(api_url=server.url, tenant=tenant) as client:
        root = await client.auth.sign_in_with_password("root", "root-password")
        assert await root.settings.get() == {}
        await root.settings.update({"site_name": "Acme", "theme": "dark"})
        merged = await root.settings.update({"theme": None, "flags": {"beta": True}})
        assert merged == {"site_name": "Acme", "flags": {"beta": True}}
        name = unique("reader")
        await client.auth.register(name, "member-password")
        member = await client.auth.sign_in_with_password(name, "member-password")
        assert await member.settings.get() == merged
        with pytest.raises(AuthorizationError) as caught:
            await member.settings.update({"site_name": "Mine"})
        assert caught.value.details["scope"] == "settings:write"
        with pytest.raises(NotAuthenticatedError):
            await client.settings.get()
        with pytest.raises(ValidationError) as refused:
            await root.settings.update({"blob": "x" * 300_000})
        assert refused.value.details["field"] == "settings"
        assert await root.settings.update({"only": 1}, replace=True) == {"only": 1}
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        assert "only" not in await admin.settings.get()  # another tenant's settings
