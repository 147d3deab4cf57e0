"""Auth through the SDK against a real server, on every SQL backend."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotAuthenticatedError,
    NotFoundError,
    RateLimitError,
    ValidationError,
)
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique


@pytest.mark.anyio
async def test_sign_in_returns_a_new_authenticated_client(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        assert admin.is_authenticated
        assert not client.is_authenticated
        me = await admin.auth.get_current_user()
        assert me["username"] == ADMIN_USERNAME
        assert me["is_superuser"] is True
        assert "*" in me["scopes"]


@pytest.mark.anyio
async def test_sign_in_with_wrong_password_is_refused(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.sign_in_with_password(ADMIN_USERNAME, "not-the-password")
        assert caught.value.code == "invalid_credentials"
        assert caught.value.status_code == 401


@pytest.mark.anyio
async def test_call_without_credential_is_refused(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        with pytest.raises(NotAuthenticatedError):
            await client.auth.get_current_user()


@pytest.mark.anyio
async def test_sign_in_with_token_sends_each_header_form(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        tokens = await client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD, session_token=True)
        admin = await client.auth.sign_in_with_token(admin_token)
        key = await admin.api_keys.create(unique("key"))
        for token, kind in (
            (tokens["access"], "jwt"),
            (key["key"], "api_key"),
            (tokens["session_token"], "session_token"),
        ):
            signed_in = await client.auth.sign_in_with_token(token, token_type=kind)
            assert (await signed_in.auth.get_current_user())["username"] == ADMIN_USERNAME


@pytest.mark.anyio
async def test_sign_out_revokes_the_session_on_the_server(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        tokens = await client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD, session_token=True)
        by_jwt = await client.auth.sign_in_with_token(tokens["access"])
        by_session = await client.auth.sign_in_with_token(tokens["session_token"], "session_token")
        signed_out = await by_jwt.auth.sign_out()
        assert not signed_out.is_authenticated
        for stale in (by_jwt, by_session):
            with pytest.raises(AuthenticationError) as caught:
                await stale.auth.get_current_user()
            assert caught.value.code == "token_revoked"


@pytest.mark.anyio
async def test_refresh_rotates_and_reusing_an_old_refresh_token_revokes_the_family(
    server: RunningServer,
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        first = await client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        second = await client.auth.refresh_token(first["refresh"])
        assert second["refresh"] != first["refresh"]
        assert await client.auth.verify_token(second["access"])
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.refresh_token(first["refresh"])
        assert caught.value.code == "token_revoked"
        with pytest.raises(AuthenticationError):
            await client.auth.refresh_token(second["refresh"])
        assert not await client.auth.verify_token(second["access"])


@pytest.mark.anyio
async def test_verify_token_is_false_for_garbage(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        assert not await client.auth.verify_token("not.a.jwt")
        assert not await client.auth.verify_token("rak_default_00_x", token_type="api_key")


@pytest.mark.anyio
async def test_register_then_change_password_signs_out_other_sessions(
    server: RunningServer,
) -> None:
    name = unique("user")
    async with AsyncClient(api_url=server.url) as client:
        user = await client.auth.register(name, "first-password", email=f"{name}@example.com")
        assert user["roles"] == ["member"]
        with pytest.raises(ConflictError):
            await client.auth.register(name, "first-password")
        other = await client.auth.sign_in_with_password(name, "first-password")
        current = await client.auth.sign_in_with_password(f"{name}@example.com", "first-password")
        result = await current.auth.change_password("first-password", "second-password")
        assert result["count"] == 1
        assert (await current.auth.get_current_user())["username"] == name
        with pytest.raises(AuthenticationError):
            await other.auth.get_current_user()
        with pytest.raises(AuthenticationError):
            await client.auth.sign_in_with_password(name, "first-password")
        await client.auth.sign_in_with_password(name, "second-password")


@pytest.mark.anyio
async def test_register_refuses_a_short_password_naming_the_field(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        with pytest.raises(ValidationError) as caught:
            await client.auth.register(unique("user"), "short")
        assert caught.value.details["field"] == "password"


@pytest.mark.anyio
async def test_api_keys_are_shown_once_listed_without_secret_and_revocable(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        created = await admin.api_keys.create(unique("svc"), ["api_keys:read"], expires_in=3600)
        assert created["key"].startswith(created["prefix"] + "_")
        listed = {key["id"]: key for key in await admin.api_keys.list()}
        assert "key" not in listed[created["id"]]
        assert listed[created["id"]]["scopes"] == ["api_keys:read"]
        service = await client.auth.sign_in_with_token(created["key"], "api_key")
        who = await service.auth.whoami()
        assert (who["kind"], who["scopes"]) == ("api_key", ["api_keys:read"])
        assert who["api_key_id"] == created["id"]
        assert [k["id"] for k in await service.api_keys.list()]
        await admin.api_keys.revoke(created["id"])
        with pytest.raises(AuthenticationError) as caught:
            await service.api_keys.list()
        assert caught.value.code == "token_revoked"


@pytest.mark.anyio
async def test_missing_scope_is_refused_naming_the_scope(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        key = await admin.api_keys.create(unique("narrow"), ["api_keys:read"])
        narrow = await client.auth.sign_in_with_token(key["key"], "api_key")
        with pytest.raises(AuthorizationError) as caught:
            await narrow.users.list_users()
        assert caught.value.details["scope"] == "users:read"
        name = unique("member")
        await client.auth.register(name, "member-password")
        member = await client.auth.sign_in_with_password(name, "member-password")
        with pytest.raises(AuthorizationError):
            await member.users.create_user(unique("x"), "some-password")
        with pytest.raises(AuthorizationError):
            await member.api_keys.create("too-wide", ["users:write"])


@pytest.mark.anyio
async def test_users_and_roles_admin(server: RunningServer, admin_token: str) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        role = unique("auditor")
        await admin.roles.create(role, ["users:read"])
        name = unique("aud")
        created = await admin.users.create_user(name, "auditor-password", roles=[role])
        assert created["scopes"] == ["users:read"]
        auditor = await client.auth.sign_in_with_password(name, "auditor-password")
        page = await auditor.users.list_users(search=name)
        assert [u["username"] for u in page["items"]] == [name]
        assert (await auditor.users.get_user(name))["roles"] == [role]
        await admin.users.delete_user(name)
        with pytest.raises(AuthenticationError):
            await auditor.users.get_user(ADMIN_USERNAME)


@pytest.mark.anyio
async def test_credentials_of_one_tenant_are_refused_on_another(
    server: RunningServer, admin_token: str
) -> None:
    tenant = unique("t")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.tenants.create(tenant, "Test tenant")
        assert tenant in [t["name"] for t in await admin.tenants.list()]
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            # the same username is another user in another tenant
            await other.auth.register(ADMIN_USERNAME, "tenant-password")
            with pytest.raises(AuthenticationError):
                await other.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
            tenant_user = await other.auth.sign_in_with_password(ADMIN_USERNAME, "tenant-password")
            assert (await tenant_user.auth.get_current_user())["is_superuser"] is False
            tokens = await client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD)
            default_token_on_other = await other.auth.sign_in_with_token(tokens["access"])
            with pytest.raises(AuthenticationError) as caught:
                await default_token_on_other.auth.get_current_user()
            assert caught.value.code == "wrong_tenant"
            with pytest.raises(AuthorizationError):
                await tenant_user.tenants.list()
        await admin.tenants.delete(tenant)


@pytest.mark.anyio
async def test_batch_runs_each_operation_with_its_own_status(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        results = await admin.batch(
            [
                {"command": "auth.me", "payload": {}},
                {"command": "users.get_user", "payload": {"username": "nobody-here"}},
                {"command": "nope.nothing"},
            ]
        )
        assert [r.status for r in results] == ["success", "error", "error"]
        assert results[0].payload["username"] == ADMIN_USERNAME
        assert results[1].error is not None
        assert results[1].error["code"] == "not_found"


@pytest.mark.anyio
async def test_msgpack_and_gzip_give_the_same_results(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url, format="msgpack", compression=True) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        me = await admin.auth.get_current_user()
        assert me["username"] == ADMIN_USERNAME
        assert isinstance(me["created_at"], str)
        health = await client.health.check()
        assert health.backends["sql"].status == "ok"


@pytest.mark.anyio
async def test_expired_access_token_is_refused_and_a_signed_in_client_refreshes(
    make_server: object,
) -> None:
    running = make_server()  # type: ignore[operator]
    async with AsyncClient(api_url=running.url) as client:
        tokens = await client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        raw = await client.auth.sign_in_with_token(tokens["access"])
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await raw.auth.get_current_user()
        running.clock.advance(running.settings.access_token_ttl)
        with pytest.raises(AuthenticationError) as caught:
            await raw.auth.get_current_user()
        assert caught.value.code == "token_expired"
        # the client still thinks its token fresh: the server's refusal makes it refresh
        assert (await admin.auth.get_current_user())["username"] == ADMIN_USERNAME


@pytest.mark.anyio
async def test_failed_logins_are_rate_limited_per_account(make_server: object) -> None:
    limited = make_server(login_failures_per_account=3)  # type: ignore[operator]
    async with AsyncClient(api_url=limited.url, max_retries=0) as client:
        for _ in range(3):
            with pytest.raises(AuthenticationError):
                await client.auth.login(ADMIN_USERNAME, "wrong-password")
        with pytest.raises(RateLimitError) as caught:
            await client.auth.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        assert caught.value.retry_after is not None
        assert caught.value.retry_after > 0


@pytest.mark.anyio
async def test_sessions_are_listed_and_revoked_one_or_all(server: RunningServer) -> None:
    name = unique("sess")
    async with AsyncClient(api_url=server.url) as client:
        await client.auth.register(name, "session-password")
        first = await client.auth.sign_in_with_password(name, "session-password")
        second = await client.auth.sign_in_with_password(name, "session-password")
        third = await client.auth.sign_in_with_password(name, "session-password")
        listed = await first.auth.list_sessions()
        assert len(listed) == 3
        assert sum(s["current"] for s in listed) == 1
        current = next(s["id"] for s in listed if s["current"])
        other = next(s["id"] for s in listed if not s["current"])
        await first.auth.revoke_session(other)
        with pytest.raises(NotFoundError):
            await first.auth.revoke_session(other)
        alive = [c for c in (second, third) if await _works(c)]
        assert len(alive) == 1
        assert (await first.auth.revoke_all_sessions())["count"] == 2
        for stale in (first, *alive):
            assert not await _works(stale)
        assert current


async def _works(client: AsyncClient) -> bool:
    try:
        await client.auth.whoami()
    except AuthenticationError:
        return False
    return True


@pytest.mark.anyio
async def test_an_expired_api_key_is_refused(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        soon = clocked_server.clock.now() + timedelta(seconds=1)
        key = await admin.api_keys.create(unique("brief"), expires_at=soon)
        service = await client.auth.sign_in_with_token(key["key"], "api_key")
        await service.auth.whoami()
        clocked_server.clock.advance(1)
        with pytest.raises(AuthenticationError) as caught:
            await service.auth.whoami()
        assert caught.value.code == "token_expired"
        with pytest.raises(ValidationError):
            await admin.api_keys.create(unique("past"), expires_at=soon - timedelta(days=1))


@pytest.mark.anyio
async def test_failed_logins_count_across_replicas_on_redis(
    make_server: object, tmp_path: Path
) -> None:
    from tests.conftest import REDIS_URL, require_redis

    require_redis()
    secret = "s" * 40
    shared = tmp_path / "replicas"  # replicas share one database: the same user, the same id
    first = make_server(
        redis_url=REDIS_URL,
        secret_key=secret,
        data_dir=shared,
        login_failures_per_account=2,  # type: ignore[operator]
        login_failures_per_address=1000,
    )
    second = make_server(
        redis_url=REDIS_URL,
        secret_key=secret,
        data_dir=shared,
        login_failures_per_account=2,  # type: ignore[operator]
        login_failures_per_address=1000,
    )
    name = unique("victim")
    async with (
        AsyncClient(api_url=first.url, max_retries=0) as one,
        AsyncClient(api_url=second.url, max_retries=0) as two,
    ):
        await one.auth.register(name, "right-password")
        for _ in range(2):
            with pytest.raises(AuthenticationError):
                await one.auth.login(name, "wrong-password")
        with pytest.raises(RateLimitError):
            await two.auth.login(name, "right-password")
