"""Account takeover by a lesser admin, and learning which addresses have accounts.

A holder of `users:write` (or `auth:mint`, or `api_keys:write` with `users:write`) must not be
able to act on a user who holds a scope they lack: reset a superuser's password, change its
email (so that the reset mail comes to them), disable it, delete it, strip its roles, mint
tokens for it or revoke its keys. And `auth.register` must not tell a stranger that an address
has an account. Run over HTTP on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from roost import AsyncClient, AuthorizationError, ConflictError
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique

HELPDESK_SCOPES = ["users:read", "users:write", "auth:mint", "api_keys:read", "api_keys:write"]


async def _admin(client: AsyncClient) -> AsyncClient:
    return await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)


async def _helpdesk(client: AsyncClient, admin: AsyncClient) -> AsyncClient:
    """A user administrator who holds `users:write` and little else."""
    role, name = unique("helpdesk"), unique("helper")
    await admin.roles.create(role, HELPDESK_SCOPES)
    await admin.users.create_user(name, "helper-password", roles=[role])
    return await client.auth.sign_in_with_password(name, "helper-password")


def _takeover_attempts(
    helper: AsyncClient, target: str, key_id: str, role: str
) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    return [
        ("reset password", lambda: helper.users.update_user(target, password="attacker-pass-1")),
        ("change email", lambda: helper.users.update_user(target, email="evil@attacker.test")),
        ("disable", lambda: helper.users.update_user(target, is_active=False)),
        ("rename", lambda: helper.users.update_user(target, first_name="pwned")),
        ("strip roles", lambda: helper.users.revoke_roles([role], [target])),
        ("give roles", lambda: helper.users.assign_roles(["member"], [target])),
        ("mint a token", lambda: helper.auth.mint_jwt(target)),
        ("revoke its key", lambda: helper.api_keys.revoke(key_id)),
        ("delete", lambda: helper.users.delete_user(target)),
    ]


@pytest.mark.anyio
async def test_users_write_holder_cannot_take_over_a_superuser(server: RunningServer) -> None:
    boss = unique("boss")
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        await admin.users.create_user(
            boss, "boss-password-1", email=f"{boss}@example.com", is_superuser=True
        )
        boss_client = await client.auth.sign_in_with_password(boss, "boss-password-1")
        key = await boss_client.api_keys.create(unique("boss-key"))
        helper = await _helpdesk(client, admin)
        for what, attempt in _takeover_attempts(helper, boss, key["id"], "admin"):
            with pytest.raises(AuthorizationError) as caught:
                await attempt()
            assert caught.value.status_code == 403, what
            assert caught.value.details["username"] == boss, what
            assert "*" in caught.value.details["scopes"], what
        after = await admin.users.get_user(boss)
        assert (after["is_superuser"], after["is_active"], after["email"]) == (
            True,
            True,
            f"{boss}@example.com",
        )
        assert after["first_name"] == ""
        await client.auth.sign_in_with_password(boss, "boss-password-1")
        await boss_client.auth.get_current_user()  # still signed in: nothing was revoked
        assert not next(k for k in await boss_client.api_keys.list() if k["id"] == key["id"])[
            "revoked"
        ]


@pytest.mark.anyio
async def test_nobody_acts_on_a_user_holding_a_scope_they_lack(server: RunningServer) -> None:
    """Not only superusers: one scope the actor lacks (through a role) is enough to refuse."""
    keeper, role = unique("keeper"), unique("vault")
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        await admin.roles.create(role, ["secrets:read"])
        await admin.users.create_user(keeper, "keeper-password", roles=["member", role])
        keeper_client = await client.auth.sign_in_with_password(keeper, "keeper-password")
        key = await keeper_client.api_keys.create(unique("keeper-key"))
        helper = await _helpdesk(client, admin)
        for what, attempt in _takeover_attempts(helper, keeper, key["id"], role):
            with pytest.raises(AuthorizationError) as caught:
                await attempt()
            assert caught.value.details["scopes"] == ["secrets:read"], what
        assert (await admin.users.get_user(keeper))["roles"] == ["member", role]


@pytest.mark.anyio
async def test_a_narrow_api_key_cannot_act_on_its_own_owner(server: RunningServer) -> None:
    """A key limited to `users:write` may not reset the password of the superuser who owns it."""
    boss = unique("boss")
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        await admin.users.create_user(boss, "boss-password-1", is_superuser=True)
        boss_client = await client.auth.sign_in_with_password(boss, "boss-password-1")
        key = await boss_client.api_keys.create(unique("narrow"), ["users:write"])
        narrow = await client.auth.sign_in_with_token(key["key"], "api_key")
        with pytest.raises(AuthorizationError):
            await narrow.users.update_user(boss, password="attacker-pass-1")
        await client.auth.sign_in_with_password(boss, "boss-password-1")


@pytest.mark.anyio
async def test_users_write_holder_still_manages_users_within_their_scopes(
    server: RunningServer,
) -> None:
    member = unique("member")
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        await admin.users.create_user(member, "member-password")
        member_client = await client.auth.sign_in_with_password(member, "member-password")
        key = await member_client.api_keys.create(unique("member-key"))
        helper = await _helpdesk(client, admin)
        assert (await helper.users.update_user(member, first_name="Ann"))["first_name"] == "Ann"
        await helper.users.update_user(member, password="reset-password-2")
        await helper.auth.mint_jwt(member)
        await helper.api_keys.revoke(key["id"])
        await helper.users.delete_user(member)


async def _register(http: httpx.AsyncClient, username: str, email: str) -> httpx.Response:
    body = {"username": username, "password": "some-password-1", "email": email}
    return await http.post("/api/v1/auth/register", json=body)


@pytest.mark.anyio
async def test_register_does_not_tell_whether_an_email_has_an_account(
    server: RunningServer,
) -> None:
    owner, email = unique("owner"), f"{unique('taken')}@example.com"
    async with (
        AsyncClient(api_url=server.url, max_retries=0) as client,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        admin = await _admin(client)
        await admin.users.create_user(owner, "owner-password-1", email=email)
        fresh = await _register(http, unique("new"), f"{unique('fresh')}@example.com")
        probe_name = unique("probe")
        probe = await _register(http, probe_name, email.upper())
        assert probe.status_code == fresh.status_code == 200
        fresh_body, probe_body = fresh.json(), probe.json()
        assert probe_body.keys() == fresh_body.keys()
        varying = {"id", "username", "email", "created_at"}
        assert {k: v for k, v in probe_body.items() if k not in varying} == {
            k: v for k, v in fresh_body.items() if k not in varying
        }
        assert (probe_body["username"], probe_body["email"]) == (probe_name, email.upper())
        # the owner hears of it; the account and its password are untouched
        [notice] = await admin.mail.outbox(to=email, limit=1)
        assert notice["template"] == "account_exists"
        assert owner in notice["text"]
        assert [u["username"] for u in (await admin.users.list_users(search=email))["items"]] == [
            owner
        ]
        await client.auth.sign_in_with_password(owner, "owner-password-1")


@pytest.mark.anyio
async def test_register_still_refuses_a_taken_username(server: RunningServer) -> None:
    """Usernames are public handles: a taken one is a 409, whatever the email."""
    name = unique("handle")
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        await client.auth.register(name, "some-password-1", email=f"{name}@example.com")
        with pytest.raises(ConflictError) as caught:
            await client.auth.register(name, "some-password-1", email=f"{unique('x')}@example.com")
        assert caught.value.details["field"] == "username"


@pytest.mark.anyio
async def test_emptying_or_deleting_a_stronger_users_role_is_acting_on_them(
    server: RunningServer,
) -> None:
    """A `roles:write` + `users:write` holder emptied the CFO's role (only new scopes were
    checked), then reset the CFO's password."""
    cfo, finance, desk = unique("cfo"), unique("finance"), unique("desk")
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        await admin.roles.create(finance, ["secrets:read", "secrets:write"])
        await admin.roles.create(desk, ["users:read", "users:write", "roles:read", "roles:write"])
        await admin.users.create_user(cfo, "cfo-password-11", roles=[finance])
        helper_name = unique("helper")
        await admin.users.create_user(helper_name, "helper-password-1", roles=[desk])
        helper = await client.auth.sign_in_with_password(helper_name, "helper-password-1")
        attempts: list[Callable[[], Awaitable[Any]]] = [
            lambda: helper.roles.update(finance, scopes=[]),
            lambda: helper.roles.update(finance, scopes=["users:read"]),
            lambda: helper.roles.delete(finance),
            lambda: helper.users.revoke_roles([finance], [cfo]),
        ]
        for attempt in attempts:
            with pytest.raises(AuthorizationError) as caught:
                await attempt()
            assert caught.value.status_code == 403
            assert caught.value.details["username"] == cfo
        with pytest.raises(AuthorizationError):
            await helper.users.update_user(cfo, password="owned-password-1")
        assert (await admin.users.get_user(cfo))["scopes"] == ["secrets:read", "secrets:write"]
        await client.auth.sign_in_with_password(cfo, "cfo-password-11")
        # a role whose holders the helper may act on still changes and goes
        await admin.roles.update(finance, scopes=["users:read"])
        assert (await helper.roles.update(finance, scopes=[]))["scopes"] == []
        await helper.roles.delete(finance)


def test_a_role_that_expires_is_gone_from_a_cached_principal_at_once(
    make_server: Callable[..., RunningServer],
) -> None:
    # a cached credential lived its cache's ttl (up to a minute) with a role that had expired
    server = make_server(auth_cache_seconds=60)
    with httpx.Client(base_url=server.url, timeout=30) as http:

        def bearer(username: str, password: str) -> dict[str, str]:
            login = {"username": username, "password": password}
            tokens = http.post("/api/v1/auth/login", json=login).json()
            return {"Authorization": f"Bearer {tokens['access']}"}

        def ok(path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
            answer = http.post(f"/api/v1/{path}", json=body, headers=headers)
            assert answer.status_code == 200, answer.text

        admin = bearer(ADMIN_USERNAME, ADMIN_PASSWORD)
        role, user = unique("temp"), unique("user")
        ok("roles/create", {"name": role, "scopes": ["kv:read"]}, admin)
        ok("users/create_user", {"username": user, "password": "a-long-password-1"}, admin)
        lapses = (server.clock.now() + timedelta(seconds=20)).isoformat()
        assign = {"roles": [role], "usernames": [user], "expires_at": lapses}
        ok("users/assign_roles", assign, admin)
        holder = bearer(user, "a-long-password-1")
        ok("kv/get", {"key": "k"}, holder)  # its principal is cached now, with the role
        server.clock.advance(30)
        refused = http.post("/api/v1/kv/get", json={"key": "k"}, headers=holder)
        assert refused.status_code == 403, refused.text
