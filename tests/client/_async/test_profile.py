"""The signed-in user's profile and preferences, and minted tokens, through the SDK on SQLite
and PostgreSQL, with each refusal."""

from __future__ import annotations

import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from tests.conftest import ADMIN_USERNAME, RunningServer, unique


async def _member(client: AsyncClient, **fields: str) -> tuple[str, AsyncClient]:
    name = unique("prof")
    await client.auth.register(name, "member-password", **fields)
    return name, await client.auth.sign_in_with_password(name, "member-password")


@pytest.mark.anyio
async def test_a_user_changes_their_own_profile(server: RunningServer, admin_token: str) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        name, member = await _member(client)
        changed = await member.auth.update_profile(first_name="Ann", last_name="Lee")
        assert (changed["first_name"], changed["last_name"]) == ("Ann", "Lee")
        assert (await member.auth.get_profile())["first_name"] == "Ann"
        email = f"{name}@example.com"
        changed = await member.auth.update_profile(email=email)
        assert (changed["email"], changed["email_verified"]) == (email, False)
        assert [m["template"] for m in await admin.mail.outbox(to=email)] == ["email_verification"]
        other, _ = await _member(client, email=f"{unique('taken')}@example.com")
        taken = (await admin.users.get_user(other))["email"]
        with pytest.raises(ConflictError):
            await member.auth.update_profile(email=taken)
        with pytest.raises(ValidationError):
            await member.auth.update_profile()
        key = await member.api_keys.create(unique("k"))
        keyed = await client.auth.sign_in_with_token(key["key"], "api_key")
        with pytest.raises(AuthorizationError):  # the login itself, not a key, changes it
            await keyed.auth.update_profile(first_name="Key")


@pytest.mark.anyio
async def test_preferences_merge_remove_replace_and_stay_small(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        _, member = await _member(client)
        assert await member.auth.get_preferences() == {}
        await member.auth.update_preferences({"theme": "dark", "lang": "en"})
        merged = await member.auth.update_preferences({"lang": None, "page_size": 50})
        assert merged == {"theme": "dark", "page_size": 50}
        assert await member.auth.get_preferences() == merged
        replaced = await member.auth.update_preferences({"only": True}, replace=True)
        assert replaced == {"only": True}
        with pytest.raises(ValidationError) as caught:
            await member.auth.update_preferences({"blob": "x" * 70_000})
        assert caught.value.details["field"] == "preferences"
        assert await member.auth.get_preferences() == {"only": True}


@pytest.mark.anyio
async def test_a_minted_token_acts_for_its_user_and_no_one_mints_above_themselves(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        name, member = await _member(client)
        minted = await admin.auth.mint_jwt(name, expires_in=120)
        assert minted["expires_in"] == 120
        acting = await client.auth.sign_in_with_token(minted["access"], "jwt")
        assert (await acting.auth.get_current_user())["username"] == name
        claims = await client.auth.validate_jwt(minted["access"])
        assert (claims.valid, claims.user_id) == (True, minted["user_id"])
        assert (await client.auth.validate_jwt("not-a-jwt")).valid is False
        with pytest.raises(AuthorizationError) as caught:
            await member.auth.mint_jwt(ADMIN_USERNAME)
        assert caught.value.details["scope"] == "auth:mint"
        role = unique("minter")
        await admin.roles.create(role, ["auth:mint"])
        minter_name = unique("minter")
        await admin.users.create_user(minter_name, "minter-password", roles=[role])
        minter = await client.auth.sign_in_with_password(minter_name, "minter-password")
        with pytest.raises(AuthorizationError) as caught:
            await minter.auth.mint_jwt(ADMIN_USERNAME)  # admin holds "*": the minter does not
        assert caught.value.code == "missing_scope"
        with pytest.raises(ValidationError):
            await admin.auth.mint_jwt(name, expires_in=5)
        with pytest.raises(NotFoundError):
            await admin.auth.mint_jwt(unique("ghost"))
        await admin.users.update_user(name, is_active=False)
        with pytest.raises(AuthorizationError):
            await admin.auth.mint_jwt(name)
        with pytest.raises(AuthenticationError):
            await acting.auth.get_current_user()  # deactivation ended the minted session too
