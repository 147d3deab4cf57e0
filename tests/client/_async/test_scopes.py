"""The scope catalogue through the SDK, on SQLite and PostgreSQL: the platform's scopes, a
tenant's own, and each refusal."""

from __future__ import annotations

import pytest

from roost import AsyncClient, AuthorizationError, ConflictError, NotFoundError, ValidationError
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique


def _letters() -> str:
    """A name part no other test uses, in the letters scopes are made of."""
    return "".join(chr(ord("a") + int(digit, 16)) for digit in unique("")[:8])


@pytest.mark.anyio
async def test_the_catalogue_lists_platform_and_tenant_scopes(server: RunningServer) -> None:
    name = f"app_{_letters()}:export"
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        before = {s["name"]: s for s in await admin.scopes.list()}
        for platform_scope in ("kv:read", "secrets:write", "usage:read", "roles:write"):
            assert before[platform_scope]["builtin"] is True
        made = await admin.scopes.create(name, "download reports")
        assert made == {"name": name, "description": "download reports", "builtin": False}
        listed = {s["name"]: s for s in await admin.scopes.list()}
        assert listed[name]["description"] == "download reports"
        role = unique("exporter")
        await admin.roles.create(role, [name])  # a tenant scope is given like any other
        with pytest.raises(ConflictError):
            await admin.scopes.create(name)
        with pytest.raises(ConflictError):
            await admin.scopes.create("kv:read")
        with pytest.raises(ValidationError):
            await admin.scopes.create("Not A Scope")
        await admin.scopes.delete(name)
        with pytest.raises(NotFoundError):
            await admin.scopes.delete(name)
        with pytest.raises(NotFoundError):
            await admin.scopes.delete("kv:read")  # platform scopes stay
        member_name = unique("m")
        await client.auth.register(member_name, "member-password")
        member = await client.auth.sign_in_with_password(member_name, "member-password")
        with pytest.raises(AuthorizationError):
            await member.scopes.list()
        with pytest.raises(AuthorizationError):
            await member.scopes.create(f"x_{_letters()}:y")
