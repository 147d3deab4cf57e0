"""Anonymous users through the SDK against a real server, on every SQL backend: signed in
without an account, upgraded later to one that keeps the same id and data."""

from __future__ import annotations

import pytest

from roost import AsyncClient
from tests.conftest import RunningServer, unique


@pytest.mark.anyio
async def test_an_anonymous_user_upgrades_and_keeps_its_data(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.settings.update({"auth_anonymous_sign_in": True})
        try:
            guest = await client.auth.sign_in_anonymously()
            me = await guest.auth.get_current_user()
            assert (me["is_anonymous"], me["email"], me["roles"]) == (True, "", ["anonymous"])
            assert (await guest.auth.whoami())["scopes"] == []  # the role's, none by default
            await guest.auth.update_preferences({"cart": ["tea", "cups"]})

            email = f"{unique('ada')}@example.com"
            upgraded = await guest.auth.upgrade_anonymous(email, "a-long-password")
            assert (upgraded["id"], upgraded["is_anonymous"]) == (me["id"], False)
            assert (upgraded["email"], upgraded["roles"]) == (email, ["member"])
            # the same session goes on, now with the member's scopes
            assert "api_keys:write" in (await guest.auth.whoami())["scopes"]
            again = await client.auth.sign_in_with_password(email, "a-long-password")
            assert (await again.auth.get_current_user())["id"] == me["id"]
            assert (await again.auth.get_preferences()) == {"cart": ["tea", "cups"]}

            audit = await admin.logs.query(category="auth.audit", search=None, limit=100)
            names = {(e["message"], e["username"]) for e in audit["entries"]}
            assert ("signed_in_anonymously", me["username"]) in names
            assert ("anonymous_user_upgraded", upgraded["username"]) in names
        finally:
            await admin.settings.update({"auth_anonymous_sign_in": None})
