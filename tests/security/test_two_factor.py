"""Refusals of two-factor sign-in and of passwordless mail: one test each, over HTTP on SQLite
and PostgreSQL. A wrong, replayed or foreign code or challenge, too many guesses, an open
redirect, a spent or expired link, a lower credential: each is refused with a clear 4xx that
names the field."""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg
import httpx
import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    RateLimitError,
    SecondFactorRequired,
    ValidationError,
)
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    POSTGRES_URL,
    RunningServer,
    platform_of,
    unique,
)
from tests.factors import code_at, next_step, wait_for_mail
from tests.inbox import mail_inbox

PASSWORD = "a-long-password"
APP = "https://app.example.com/auth"


async def _user(client: AsyncClient) -> tuple[AsyncClient, AsyncClient, str]:
    """The admin, a new user (signed in) with an address, and its name."""
    admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
    name = unique("sec")
    await admin.users.create_user(name, PASSWORD, email=f"{name}@example.com")
    return admin, await client.auth.sign_in_with_password(name, PASSWORD), name


async def _enrolled(client: AsyncClient, server: RunningServer) -> tuple[str, str]:
    """A new user with two-factor sign-in on (its confirming code spent): name and secret."""
    _, user, name = await _user(client)
    secret = (await user.auth.totp_enrol())["secret"]
    await user.auth.totp_confirm(code_at(server, secret))
    next_step(server)
    return name, secret


async def _challenge(client: AsyncClient, name: str) -> str:
    with pytest.raises(SecondFactorRequired) as needed:
        await client.auth.sign_in_with_password(name, PASSWORD)
    return needed.value.challenge


def _call(server: RunningServer, operation: str, params: dict[str, Any]) -> httpx.Response:
    module, name = operation.split(".", 1)
    return httpx.post(f"{server.url}/api/v1/{module}/{name}", json=params, timeout=30)


# -- two-factor ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_wrong_code_is_refused(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, secret = await _enrolled(client, clocked_server)
        wrong = f"{(int(code_at(clocked_server, secret)) + 1) % 10**6:06d}"
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.verify_totp(await _challenge(client, name), wrong)
        assert caught.value.code == "invalid_code"
        assert caught.value.details["field"] == "code"
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        audit = await admin.logs.query(category="auth.audit", limit=50)
        refused = [e for e in audit["entries"] if e["username"] == name and e["level"] == "warn"]
        assert [e["message"] for e in refused] == ["second_factor_refused"]
        assert wrong not in str(refused)  # no code in the log


@pytest.mark.anyio
async def test_a_replayed_code_is_refused(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, secret = await _enrolled(client, clocked_server)
        code = code_at(clocked_server, secret)
        await client.auth.verify_totp(await _challenge(client, name), code)
        with pytest.raises(AuthenticationError) as caught:  # same window, second challenge
            await client.auth.verify_totp(await _challenge(client, name), code)
        assert caught.value.code == "code_used"


@pytest.mark.anyio
async def test_an_older_code_after_a_newer_one_is_refused(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, secret = await _enrolled(client, clocked_server)
        await client.auth.verify_totp(
            await _challenge(client, name), code_at(clocked_server, secret, steps=1)
        )
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.verify_totp(
                await _challenge(client, name), code_at(clocked_server, secret)
            )
        assert caught.value.code == "code_used"


@pytest.mark.anyio
async def test_a_challenge_works_once(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, secret = await _enrolled(client, clocked_server)
        challenge = await _challenge(client, name)
        await client.auth.verify_totp(challenge, code_at(clocked_server, secret))
        next_step(clocked_server)
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.verify_totp(challenge, code_at(clocked_server, secret))
        assert caught.value.code == "invalid_challenge"
        assert caught.value.details["field"] == "challenge"


@pytest.mark.anyio
async def test_an_expired_challenge_is_refused(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, secret = await _enrolled(client, clocked_server)
        challenge = await _challenge(client, name)
        clocked_server.clock.advance(301)
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.verify_totp(challenge, code_at(clocked_server, secret))
        assert caught.value.code == "invalid_challenge"


@pytest.mark.anyio
async def test_a_forged_challenge_is_refused(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, secret = await _enrolled(client, clocked_server)
        challenge = await _challenge(client, name)
        forged = challenge[:-4] + ("AAAA" if not challenge.endswith("AAAA") else "BBBB")
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.verify_totp(forged, code_at(clocked_server, secret))
        assert caught.value.code == "invalid_challenge"


@pytest.mark.anyio
async def test_a_challenge_of_another_tenant_is_refused(clocked_server: RunningServer) -> None:
    tenant = unique("t")
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, secret = await _enrolled(client, clocked_server)
        challenge = await _challenge(client, name)
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.tenants.create(tenant, "Other tenant")
        try:
            async with AsyncClient(api_url=clocked_server.url, tenant=tenant) as other:
                with pytest.raises(AuthenticationError) as caught:
                    await other.auth.verify_totp(challenge, code_at(clocked_server, secret))
                assert caught.value.code == "invalid_challenge"
        finally:
            await admin.tenants.delete(tenant)


@pytest.mark.anyio
async def test_guesses_on_one_challenge_are_limited(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, secret = await _enrolled(client, clocked_server)
        challenge = await _challenge(client, name)
        wrong = f"{(int(code_at(clocked_server, secret)) + 5) % 10**6:06d}"
        for _ in range(5):
            with pytest.raises(AuthenticationError):
                await client.auth.verify_totp(challenge, wrong)
        with pytest.raises(RateLimitError):  # even the right code, now
            await client.auth.verify_totp(challenge, code_at(clocked_server, secret))


@pytest.mark.anyio
async def test_guesses_on_one_user_are_limited(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, secret = await _enrolled(client, clocked_server)
        wrong = f"{(int(code_at(clocked_server, secret)) + 5) % 10**6:06d}"
        for _ in range(2):  # new challenges do not buy new guesses
            challenge = await _challenge(client, name)
            for _ in range(5):
                with pytest.raises(AuthenticationError):
                    await client.auth.verify_totp(challenge, wrong)
        with pytest.raises(RateLimitError):
            await client.auth.verify_totp(await _challenge(client, name), wrong)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("challenge", "code", "field"),
    [
        ("", "123456", "challenge"),
        ("r2f_x_y_z\x00", "123456", "challenge"),
        ("r2f_" + "a" * 5000, "123456", "challenge"),
        ("r2f_a_b_c", "12345\x00", "code"),
        ("r2f_a_b_c", "1" * 2**16, "code"),
        ("r2f_a_b_c", 2**64, "code"),
    ],
)
async def test_bad_input_names_its_field(
    server: RunningServer, challenge: str, code: Any, field: str
) -> None:
    answer = _call(server, "auth.verify_totp", {"challenge": challenge, "code": code})
    assert answer.status_code in (400, 401), answer.text
    assert field in answer.text


@pytest.mark.anyio
async def test_an_api_key_cannot_enrol(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        _, user, _ = await _user(client)
        key = await user.api_keys.create(unique("key"))
        service = await client.auth.sign_in_with_token(key["key"], token_type="api_key")
        with pytest.raises(AuthorizationError):
            await service.auth.totp_enrol()


@pytest.mark.anyio
async def test_a_user_cannot_reset_anothers_factor(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, _ = await _enrolled(client, clocked_server)
        _, other, _ = await _user(client)
        with pytest.raises(AuthorizationError) as caught:
            await other.users.reset_totp(name)
        assert caught.value.code == "missing_scope"


@pytest.mark.anyio
async def test_a_lesser_admin_cannot_reset_a_superusers_factor(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin, _, _ = await _user(client)
        role, name = unique("helpdesk"), unique("helper")
        await admin.roles.create(role, ["users:read", "users:write"])
        await admin.users.create_user(name, PASSWORD, roles=[role])
        helper = await client.auth.sign_in_with_password(name, PASSWORD)
        with pytest.raises(AuthorizationError) as caught:
            await helper.users.reset_totp(ADMIN_USERNAME)
        assert caught.value.details["field"] == "username"


@pytest.mark.anyio
async def test_enrol_needs_a_credential_or_a_challenge(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        with pytest.raises(AuthenticationError):
            await client.auth.totp_enrol()


@pytest.mark.anyio
async def test_a_sign_in_challenge_does_not_enrol(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, _ = await _enrolled(client, clocked_server)
        with pytest.raises(ValidationError) as caught:
            await client.auth.totp_enrol(challenge=await _challenge(client, name))
        assert caught.value.details["field"] == "challenge"


@pytest.mark.anyio
async def test_enrolling_again_while_on_is_refused(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        _, user, _ = await _user(client)
        secret = (await user.auth.totp_enrol())["secret"]
        await user.auth.totp_confirm(code_at(clocked_server, secret))
        with pytest.raises(ConflictError):
            await user.auth.totp_enrol()


@pytest.mark.anyio
async def test_disable_without_proof_is_refused(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        _, user, _ = await _user(client)
        secret = (await user.auth.totp_enrol())["secret"]
        await user.auth.totp_confirm(code_at(clocked_server, secret))
        with pytest.raises(ValidationError):
            await user.auth.totp_disable()
        with pytest.raises(AuthenticationError) as caught:
            await user.auth.totp_disable(password="not-the-password")
        assert caught.value.details["field"] == "password"
        assert (await user.auth.totp_status())["enabled"] is True


@pytest.mark.anyio
async def test_disable_is_refused_while_the_tenant_requires_it(
    clocked_server: RunningServer,
) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        admin, user, name = await _user(client)
        role = unique("guarded")
        await admin.roles.create(role, ["users:read"])
        secret = (await user.auth.totp_enrol())["secret"]
        await user.auth.totp_confirm(code_at(clocked_server, secret))
        await admin.users.assign_roles([role], [name])
        await admin.settings.update({"auth_two_factor_roles": [role]})
        try:
            with pytest.raises(AuthorizationError) as caught:
                await user.auth.totp_disable(password=PASSWORD)
            assert caught.value.code == "two_factor_required"
        finally:
            await admin.settings.update({"auth_two_factor_roles": None})


@pytest.mark.anyio
async def test_the_totp_secret_is_stored_sealed(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        _, user, _ = await _user(client)
        secret = (await user.auth.totp_enrol())["secret"]
    db = platform_of(clocked_server).db
    if clocked_server.backend == "postgresql":
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            rows = await conn.fetch(
                f'SELECT secret FROM "{db.schema_of("default")}".roost_totp_factors'
            )
        finally:
            await conn.close()
        stored = [bytes(row["secret"]) for row in rows]
    else:
        with sqlite3.connect(db.sqlite_path_of("default")) as raw:
            stored = [bytes(r[0]) for r in raw.execute("SELECT secret FROM roost_totp_factors")]
    assert stored
    assert all(secret.encode() not in value for value in stored)


# -- passwordless -------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "redirect_to",
    [
        "https://evil.example.com/auth",
        "https://app.example.com.evil.com/auth",
        "https://app.example.com@evil.com/auth",
        "https://app.example.com/authority",
        "http://app.example.com/auth",
        "https://app.example.com/auth/..\\evil",
        "javascript:alert(1)",
    ],
)
async def test_an_open_redirect_is_refused(server: RunningServer, redirect_to: str) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin, _, name = await _user(client)
        await admin.settings.update({"auth_redirect_urls": [APP]})
        with pytest.raises(ValidationError) as caught:
            await client.auth.send_magic_link(f"{name}@example.com", redirect_to)
        assert caught.value.details["field"] == "redirect_to"


@pytest.mark.anyio
async def test_the_outbox_keeps_no_sign_in_code_or_link(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin, _, name = await _user(client)
        address = f"{name}@example.com"
        with mail_inbox(server) as inbox:
            await client.auth.send_otp(address)
            code = wait_for_mail(inbox, address, r"code is (\d{6})")
        with mail_inbox(server) as inbox:
            await client.auth.send_magic_link(address)
            token = wait_for_mail(inbox, address, r"rml_[A-Za-z0-9_\-]+")
        kept = await admin.mail.outbox(to=address)
        assert len(kept) == 2
        assert f"code is {code}" not in str(kept)
        assert "code is [redacted]" in str(kept)
        assert token not in str(kept)


@pytest.mark.anyio
async def test_a_magic_link_of_another_tenant_is_refused(server: RunningServer) -> None:
    tenant = unique("t")
    async with AsyncClient(api_url=server.url) as client:
        admin, _, name = await _user(client)
        await admin.settings.update({"auth_redirect_urls": [APP]})
        with mail_inbox(server) as inbox:
            await client.auth.send_magic_link(f"{name}@example.com", APP)
            token = wait_for_mail(inbox, f"{name}@example.com", r"rml_[A-Za-z0-9_\-]+")
        await admin.tenants.create(tenant, "Other tenant")
        try:
            async with AsyncClient(api_url=server.url, tenant=tenant) as other:
                with pytest.raises(AuthenticationError) as caught:
                    await other.auth.sign_in_with_magic_link(token)
                assert caught.value.code == "invalid_token"
        finally:
            await admin.tenants.delete(tenant)


@pytest.mark.anyio
async def test_an_expired_magic_link_is_refused(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        _, _, name = await _user(client)
        with mail_inbox(clocked_server) as inbox:
            await client.auth.send_magic_link(f"{name}@example.com")
            token = wait_for_mail(inbox, f"{name}@example.com", r"rml_[A-Za-z0-9_\-]+")
        clocked_server.clock.advance(901)
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.sign_in_with_magic_link(token)
        assert caught.value.code == "invalid_token"


@pytest.mark.anyio
async def test_an_expired_mailed_code_is_refused(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        _, _, name = await _user(client)
        with mail_inbox(clocked_server) as inbox:
            await client.auth.send_otp(f"{name}@example.com")
            code = wait_for_mail(inbox, f"{name}@example.com", r"code is (\d{6})")
        clocked_server.clock.advance(601)
        with pytest.raises(AuthenticationError):
            await client.auth.verify_otp(f"{name}@example.com", code)


@pytest.mark.anyio
async def test_a_newer_code_spends_the_older(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        _, _, name = await _user(client)
        address = f"{name}@example.com"
        with mail_inbox(server) as inbox:
            await client.auth.send_otp(address)
            first = wait_for_mail(inbox, address, r"code is (\d{6})")
        with mail_inbox(server) as inbox:
            await client.auth.send_otp(address)
            second = wait_for_mail(inbox, address, r"code is (\d{6})")
        if first != second:
            with pytest.raises(AuthenticationError):
                await client.auth.verify_otp(address, first)
        await client.auth.verify_otp(address, second)


@pytest.mark.anyio
async def test_code_guesses_per_address_are_limited(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        _, _, name = await _user(client)
        address = f"{name}@example.com"
        with mail_inbox(server) as inbox:
            await client.auth.send_otp(address)
            code = wait_for_mail(inbox, address, r"code is (\d{6})")
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        for _ in range(5):
            with pytest.raises(AuthenticationError):
                await client.auth.verify_otp(address, wrong)
        with pytest.raises(RateLimitError):  # even the right code, now
            await client.auth.verify_otp(address, code)


@pytest.mark.anyio
async def test_mails_per_address_are_limited(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        await _user(client)
        address = f"{unique('flood')}@example.com"  # no account: limited all the same
        for _ in range(server.settings.mails_per_address):
            await client.auth.send_otp(address)
        with pytest.raises(RateLimitError):
            await client.auth.send_otp(address)


@pytest.mark.anyio
async def test_mails_per_client_address_are_limited(make_server: Any) -> None:
    running = make_server(mails_per_client=3)
    async with AsyncClient(api_url=running.url) as client:
        for n in range(3):
            await client.auth.send_magic_link(f"{unique('a')}{n}@example.com")
        with pytest.raises(RateLimitError):
            await client.auth.send_otp(f"{unique('a')}@example.com")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"email": "x@example.com", "code": "12345"}, "code"),
        ({"email": "x@example.com", "code": "12345a"}, "code"),
        ({"email": "x@example.com\x00", "code": "123456"}, "email"),
        ({"email": "x" * 300 + "@example.com", "code": "123456"}, "email"),
    ],
)
async def test_bad_mail_code_input_names_its_field(
    server: RunningServer, params: dict[str, Any], field: str
) -> None:
    answer = _call(server, "auth.verify_otp", params)
    assert answer.status_code == 400, answer.text
    assert field in answer.text
