"""Users and roles administration through the SDK, on SQLite and PostgreSQL: updating users,
assigning roles (with an expiry) and taking them back, changing and deleting roles, and the
refusals that keep anyone from granting more than they hold."""

from __future__ import annotations

from datetime import timedelta

import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from tests.client._async.calls import Call
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique


@pytest.mark.anyio
async def test_updating_a_user_changes_only_what_is_sent(
    server: RunningServer, admin_token: str
) -> None:
    name = unique("upd")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.users.create_user(name, "first-password", email=f"{name}@example.com")
        signed_in = await client.auth.sign_in_with_password(name, "first-password")
        updated = await admin.users.update_user(name, first_name="Ann", is_staff=True)
        assert (updated["first_name"], updated["is_staff"], updated["email"]) == (
            "Ann",
            True,
            f"{name}@example.com",
        )
        await signed_in.auth.get_current_user()  # no password change: still signed in
        await admin.users.update_user(name, password="second-password")
        with pytest.raises(AuthenticationError):
            await signed_in.auth.get_current_user()
        again = await client.auth.sign_in_with_password(name, "second-password")
        await admin.users.update_user(name, is_active=False)
        with pytest.raises(AuthenticationError):
            await again.auth.get_current_user()
        with pytest.raises(AuthenticationError):
            await client.auth.sign_in_with_password(name, "second-password")
        other = unique("other")
        await admin.users.create_user(other, "other-password", email=f"{other}@example.com")
        with pytest.raises(ConflictError):
            await admin.users.update_user(name, email=f"{other.upper()}@example.com")
        with pytest.raises(ValidationError):
            await admin.users.update_user(name)
        with pytest.raises(NotFoundError):
            await admin.users.update_user(unique("ghost"), first_name="x")


@pytest.mark.anyio
async def test_a_user_is_found_by_id_as_by_username(
    server: RunningServer, admin_token: str
) -> None:
    name = unique("byid")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        created = await admin.users.create_user(name, "first-password")
        user_id = created["id"]
        assert (await admin.users.get_user(user_id=user_id))["username"] == name
        updated = await admin.users.update_user(user_id=user_id, first_name="Ann")
        assert (updated["username"], updated["first_name"]) == (name, "Ann")
        minted = await admin.auth.mint_jwt(user_id=user_id, expires_in=300)
        assert minted["user_id"] == user_id
        with pytest.raises(NotFoundError):  # an id is never taken for a username
            await admin.users.get_user(user_id)
        for refused in ({}, {"username": name, "id": user_id}):
            with pytest.raises(ValidationError) as caught:
                await admin.call("users.get_user", refused, idempotent=True)
            assert caught.value.details["field"] == "username"
        with pytest.raises(ValidationError):
            await admin.users.get_user(user_id="no\x00nul")
        with pytest.raises(NotFoundError) as missing:
            await admin.users.get_user(user_id="0" * 24)
        assert missing.value.details["field"] == "id"
        await admin.users.delete_user(user_id=user_id)
        with pytest.raises(NotFoundError):
            await admin.users.get_user(name)


@pytest.mark.anyio
async def test_roles_are_assigned_lapse_and_are_taken_back(clocked_server: RunningServer) -> None:
    name, role = unique("rol"), unique("reader")
    clock = clocked_server.clock
    async with AsyncClient(api_url=clocked_server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.roles.create(role, ["users:read"])
        await admin.users.create_user(name, "member-password")
        assert await admin.users.assign_roles([role], [name]) == 1
        user = await client.auth.sign_in_with_password(name, "member-password")
        assert (await user.users.get_user(name))["roles"] == ["member", role]
        assert await admin.users.revoke_roles([role], [name]) == 1
        with pytest.raises(AuthorizationError):
            await user.users.get_user(name)
        soon = clock.now() + timedelta(seconds=1)
        await admin.users.assign_roles([role], [name], expires_at=soon)
        assert (await admin.users.get_user(name))["roles"] == ["member", role]
        clock.advance(1)
        assert (await admin.users.get_user(name))["roles"] == ["member"]
        with pytest.raises(NotFoundError):
            await admin.users.assign_roles([unique("norole")], [name])
        with pytest.raises(NotFoundError):
            await admin.users.assign_roles([role], [unique("nouser")])
        with pytest.raises(ValidationError):
            await admin.users.assign_roles([role], [name], expires_at=clock.now())


@pytest.mark.anyio
async def test_changing_a_role_changes_its_users_at_once(
    server: RunningServer, admin_token: str
) -> None:
    name, role = unique("chg"), unique("ops")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.roles.create(role, ["users:read"], "operators")
        await admin.users.create_user(name, "member-password", roles=[role])
        user = await client.auth.sign_in_with_password(name, "member-password")
        await user.users.get_user(name)
        changed = await admin.roles.update(role, ["roles:read"])
        assert (changed["scopes"], changed["description"]) == (["roles:read"], "operators")
        with pytest.raises(AuthorizationError):
            await user.users.get_user(name)
        await user.roles.list()
        await admin.roles.delete(role)
        with pytest.raises(AuthorizationError):
            await user.roles.list()
        assert role not in [r["name"] for r in await admin.roles.list()]
        with pytest.raises(NotFoundError):
            await admin.roles.delete(role)
        with pytest.raises(NotFoundError):
            await admin.roles.update(role, description="gone")


@pytest.mark.anyio
async def test_nobody_grants_more_than_they_hold(server: RunningServer, admin_token: str) -> None:
    name, role = unique("esc"), unique("narrow")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.roles.create(role, ["users:read", "users:write", "roles:write"])
        await admin.users.create_user(name, "member-password", roles=[role])
        manager = await client.auth.sign_in_with_password(name, "member-password")
        refusals: list[Call] = [
            lambda: manager.users.assign_roles(["admin"], [name]),
            lambda: manager.roles.create(unique("wide"), ["*"]),
            lambda: manager.roles.update(role, ["users:read", "secrets:read"]),
            lambda: manager.users.create_user(unique("x"), "some-password", roles=["admin"]),
        ]
        for refused in refusals:
            with pytest.raises(AuthorizationError) as caught:
                await refused()
            assert caught.value.code == "missing_scope"
        admin_id = (await admin.auth.get_current_user())["id"]
        by_id: list[Call] = [  # naming the user by id reaches no further than by username
            lambda: manager.users.update_user(user_id=admin_id, first_name="x"),
            lambda: manager.users.delete_user(user_id=admin_id),
            lambda: manager.auth.mint_jwt(user_id=admin_id),
        ]
        for refused in by_id:
            with pytest.raises(AuthorizationError):
                await refused()
        with pytest.raises(AuthorizationError):
            await admin.roles.update("admin", ["users:read"])
        with pytest.raises(AuthorizationError):
            await admin.roles.delete("member")
        assert (await admin.users.get_user(name))["roles"] == [role]
