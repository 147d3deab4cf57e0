"""Refusals around anonymous users, one test each, over HTTP on SQLite and PostgreSQL: off
unless the tenant turns it on, nothing administrative whatever role they are given, no upgrade
to an address another account has, limited per client address, and kept to their tenant."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    RateLimitError,
    ValidationError,
)
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique

pytestmark = pytest.mark.anyio


async def _tenant(client: AsyncClient) -> str:
    """A new tenant whose superuser is root."""
    admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
    tenant = unique("anon")
    await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
    return tenant


async def test_anonymous_sign_in_is_off_unless_the_tenant_allows_it(
    server: RunningServer,
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        tenant = unique("anon")
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            for setting in (None, "true", 1):  # only true turns it on
                root = await other.auth.sign_in_with_password("root", "root-password")
                await root.settings.update({"auth_anonymous_sign_in": setting})
                with pytest.raises(AuthorizationError) as caught:
                    await other.auth.sign_in_anonymously()
                assert caught.value.code == "anonymous_sign_in_disabled"


async def test_an_anonymous_user_does_nothing_administrative(server: RunningServer) -> None:
    """Even when the tenant gives the `anonymous` role every scope, and an admin gives an
    anonymous user the admin role."""
    async with AsyncClient(api_url=server.url) as client:
        tenant = await _tenant(client)
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            root = await other.auth.sign_in_with_password("root", "root-password")
            await root.settings.update({"auth_anonymous_sign_in": True})
            await root.roles.update("anonymous", ["*", "users:write", "kv:read", "storage:admin"])
            guest = await other.auth.sign_in_anonymously()
            assert (await guest.auth.whoami())["scopes"] == ["kv:read"]
            me = await guest.auth.get_current_user()
            await root.users.assign_roles(["admin"], [me["username"]])
            assert (await guest.auth.whoami())["scopes"] == ["kv:read"]
            assert (await guest.auth.get_current_user())["roles"] == ["anonymous"]
            for call in (
                guest.users.list_users(),
                guest.roles.create(unique("r"), ["*"]),
                guest.settings.update({"auth_anonymous_sign_in": False}),
                guest.api_keys.create(unique("key")),
            ):
                with pytest.raises(AuthorizationError):
                    await call
            await root.settings.update(
                {"passkey_rp_id": "app.example.com", "passkey_origins": ["https://app.example.com"]}
            )
            with pytest.raises(ConflictError) as caught:
                await guest.auth.passkeys.registration_options()
            assert caught.value.code == "anonymous_user"


async def test_an_upgrade_to_a_taken_or_look_alike_address_is_refused(
    server: RunningServer,
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        tenant = await _tenant(client)
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            root = await other.auth.sign_in_with_password("root", "root-password")
            await root.settings.update({"auth_anonymous_sign_in": True})
            email = f"{unique('kate')}@example.com"
            await root.users.create_user(unique("owner"), "owner-password", email=email)
            guest = await other.auth.sign_in_anonymously()
            with pytest.raises(ConflictError) as taken:
                await guest.auth.upgrade_anonymous(email.upper(), "a-long-password")
            assert taken.value.details["field"] == "email"
            with pytest.raises(ConflictError) as name_taken:
                await guest.auth.upgrade_anonymous(
                    f"{unique('x')}@example.com", "a-long-password", username="root"
                )
            assert name_taken.value.details["field"] == "username"
            with pytest.raises(ValidationError) as look_alike:
                await guest.auth.upgrade_anonymous("\u212a" + email[1:], "a-long-password")
            assert look_alike.value.details["field"] == "email"
            assert (await guest.auth.get_current_user())["is_anonymous"] is True
            # and a full account cannot "upgrade" itself to another address
            with pytest.raises(ConflictError) as not_anonymous:
                await root.auth.upgrade_anonymous(f"{unique('y')}@example.com", "a-long-password")
            assert not_anonymous.value.code == "not_anonymous"


async def test_an_anonymous_session_is_kept_to_its_tenant(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        tenant = await _tenant(client)
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            root = await other.auth.sign_in_with_password("root", "root-password")
            await root.settings.update({"auth_anonymous_sign_in": True})
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(
                f"{server.url}/api/v1/auth/sign_in_anonymously",
                json={},
                headers={"X-Roost-Tenant": tenant},
            )
        assert answer.status_code == 200, answer.text
        token = answer.json()["access"]
        moved = await client.auth.sign_in_with_token(token)
        assert (await moved.auth.whoami())["tenant"] == tenant
        async with AsyncClient(api_url=server.url, tenant="default") as default:
            moved = await default.auth.sign_in_with_token(token)
            with pytest.raises(AuthenticationError) as caught:
                await moved.auth.whoami()
            assert caught.value.code == "wrong_tenant"
            # nor does turning it on in one tenant turn it on in another
            with pytest.raises(AuthorizationError):
                await default.auth.sign_in_anonymously()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_anonymous_sign_ins_are_limited_per_client_address(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    server = make_server(backend, anonymous_sign_ins_per_client=2)
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.settings.update({"auth_anonymous_sign_in": True})
        for _ in range(2):
            await client.auth.sign_in_anonymously()
        with pytest.raises(RateLimitError):
            await client.auth.sign_in_anonymously()
