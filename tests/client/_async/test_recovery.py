"""Email verification and password reset through the SDK, on SQLite and PostgreSQL. With no
relay in tests the mails land in the outbox (tokens redacted) and, whole, in the data dir's
`mail/` folder, where the test reads the token a user would find in their inbox."""

from __future__ import annotations

import pytest

from roost import AsyncClient, AuthenticationError, RateLimitError, ValidationError
from tests.conftest import RunningServer, unique
from tests.inbox import mail_inbox


@pytest.mark.anyio
async def test_signing_up_mails_a_link_that_verifies_the_address_once(
    server: RunningServer, admin_token: str
) -> None:
    name = unique("ver")
    email = f"{name}@example.com"
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        with mail_inbox(server) as inbox:
            created = await client.auth.register(name, "member-password", email=email)
        assert created["email_verified"] is False
        [mail] = await admin.mail.outbox(to=email)
        assert (mail["template"], mail["status"]) == ("email_verification", "outbox")
        token = inbox.token(email, "rev")
        assert token not in mail["text"]
        assert "[redacted]" in mail["text"]
        await client.auth.verify_email(token)
        member = await client.auth.sign_in_with_password(name, "member-password")
        assert (await member.auth.get_current_user())["email_verified"] is True
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.verify_email(token)
        assert caught.value.code == "invalid_token"
        await client.auth.resend_verification(email)  # verified already: nothing is sent
        assert len(await admin.mail.outbox(to=email)) == 1


@pytest.mark.anyio
async def test_a_password_reset_sets_the_password_and_signs_out_everywhere(
    server: RunningServer,
) -> None:
    name = unique("reset")
    email = f"{name}@example.com"
    async with AsyncClient(api_url=server.url) as client:
        await client.auth.register(name, "old-password-1", email=email)
        signed_in = await client.auth.sign_in_with_password(name, "old-password-1")
        with mail_inbox(server) as inbox:
            await client.auth.request_password_reset(email.upper())  # any case finds it
        token = inbox.token(email, "rpr")
        await client.auth.confirm_password_reset(token, "new-password-2")
        with pytest.raises(AuthenticationError):
            await signed_in.auth.get_current_user()
        with pytest.raises(AuthenticationError):
            await client.auth.sign_in_with_password(name, "old-password-1")
        await client.auth.sign_in_with_password(name, "new-password-2")
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.confirm_password_reset(token, "third-password-3")
        assert caught.value.code == "invalid_token"


@pytest.mark.anyio
async def test_tokens_that_do_not_work_are_refused(server: RunningServer) -> None:
    name = unique("tok")
    email = f"{name}@example.com"
    async with AsyncClient(api_url=server.url) as client:
        with mail_inbox(server) as inbox:
            await client.auth.register(name, "member-password", email=email)
        verification = inbox.token(email, "rev")
        for token in ("garbage", verification, verification[:-4] + "AAAA", "rpr_x_y_z"):
            with pytest.raises(AuthenticationError) as caught:
                await client.auth.confirm_password_reset(token, "new-password-2")
            assert caught.value.code == "invalid_token"
            assert caught.value.details["field"] == "token"
        with pytest.raises(ValidationError) as refused:
            await client.auth.confirm_password_reset(verification, "short")
        assert "new_password" in str(refused.value.details) + refused.value.message


@pytest.mark.anyio
async def test_asking_for_an_unknown_address_looks_the_same_and_sends_nothing(
    server: RunningServer, admin_token: str
) -> None:
    email = f"{unique('nobody')}@example.com"
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await client.auth.request_password_reset(email)
        await client.auth.resend_verification(email)
        assert await admin.mail.outbox(to=email) == []
        with pytest.raises(ValidationError) as caught:
            await client.auth.request_password_reset("not-an-address")
        assert "email" in str(caught.value.details) + caught.value.message


@pytest.mark.anyio
async def test_mails_asked_for_one_address_are_rate_limited(server: RunningServer) -> None:
    email = f"{unique('flood')}@example.com"
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        for _ in range(5):
            await client.auth.request_password_reset(email)
        with pytest.raises(RateLimitError) as caught:
            await client.auth.request_password_reset(email)
        assert caught.value.retry_after is not None
