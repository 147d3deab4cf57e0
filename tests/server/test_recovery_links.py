"""Verification and reset mails: where their links point, when their tokens expire, and the
migration that gives older tenants' users the email_verified_at column."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from roost import AsyncClient, AuthenticationError
from roost.backends.sql.migrations import migrate
from roost.backends.sql.tables import users
from tests.backends.databases import sql_database
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.inbox import mail_inbox

pytestmark = pytest.mark.anyio


async def test_mails_link_to_the_configured_page_and_expire(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(
        auth_link_url="https://app.example.com/auth/{action}?token={token}",
        password_reset_ttl=60,
    )
    name = unique("link")
    email = f"{name}@example.com"
    async with AsyncClient(api_url=running.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        with mail_inbox(running) as inbox:
            await client.auth.register(name, "member-password", email=email)
            await client.auth.request_password_reset(email)
        [reset, verification] = await admin.mail.outbox(to=email)
        link = "https://app.example.com/auth/verify_email?token=[redacted]"
        assert link in verification["text"]
        assert "https://app.example.com/auth/reset_password?token=[redacted]" in reset["text"]
        found = re.search(
            r"https://app\.example\.com/auth/reset_password\?token=(rpr_\S+)", inbox.mails[-1]
        )
        assert found, inbox.mails
        running.clock.advance(60)
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.confirm_password_reset(found.group(1), "new-password-2")
        assert "expired" in caught.value.message


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_an_older_tenant_gets_the_new_columns(tmp_path: Path, kind: str) -> None:
    async with sql_database(kind, tmp_path) as db:
        await migrate(db, "older", target=13)  # as the tenant was before migration 14
        assert (await migrate(db, "older"))[:3] == [14, 15, 16]  # and any later ones
        async with db.write("older") as conn:
            await conn.execute(users.insert().values(id="u1", username="u1", password_hash="x"))
            row = (await conn.execute(select(users))).mappings().one()
        assert (row["email_verified_at"], row["preferences"]) == (None, None)
