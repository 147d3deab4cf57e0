"""Passwordless sign-in by mail (magic links, six-digit codes) through the SDK against a real
server, on every SQL backend; the letters are read from the development inbox."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from roost import AsyncClient, AuthenticationError, SecondFactorRequired
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.factors import code_at, wait_for_mail
from tests.inbox import mail_inbox

APP = "https://app.example.com/auth"


async def _user(client: AsyncClient) -> tuple[AsyncClient, str, str]:
    """The admin, and a new user's name and address; the app's URL is allowed."""
    admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
    await admin.settings.update({"auth_redirect_urls": [APP]})
    name = unique("pl")
    await admin.users.create_user(name, "a-long-password", email=f"{name}@example.com")
    return admin, name, f"{name}@example.com"


@pytest.mark.anyio
async def test_a_magic_link_signs_in_once(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin, name, address = await _user(client)
        with mail_inbox(server) as inbox:
            await client.auth.send_magic_link(address, APP + "/done?next=%2Fhome")
            link = wait_for_mail(inbox, address, r"https://\S+")
        assert link.startswith(APP + "/done?next=%2Fhome&token=rml_")
        token = parse_qs(urlsplit(link).query)["token"][0]
        user = await client.auth.sign_in_with_magic_link(token)
        me = await user.auth.get_current_user()
        assert me["username"] == name
        assert me["email_verified"] is True  # the mail proved the address
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.sign_in_with_magic_link(token)
        assert caught.value.code == "invalid_token"
        audit = await admin.logs.query(category="auth.audit", limit=50)
        mine = {e["message"] for e in audit["entries"] if e["username"] == name}
        assert {"magic_link_sent", "signed_in_with_magic_link"} <= mine


@pytest.mark.anyio
async def test_a_mailed_code_signs_in_once(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        _, name, address = await _user(client)
        with mail_inbox(server) as inbox:
            await client.auth.send_otp(address.upper())  # the address in any case
            code = wait_for_mail(inbox, address, r"code is (\d{6})")
        user = await client.auth.verify_otp(address, code)
        assert (await user.auth.get_current_user())["username"] == name
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.verify_otp(address, code)
        assert caught.value.code == "invalid_token"


@pytest.mark.anyio
async def test_an_unknown_address_gets_the_same_answer(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        await _user(client)
        nobody = f"{unique('nobody')}@example.com"
        with mail_inbox(server) as inbox:
            await client.auth.send_otp(nobody)  # answered as for any address
            await client.auth.send_magic_link(nobody, APP)
            with pytest.raises(AuthenticationError) as caught:
                await client.auth.verify_otp(nobody, "123456")
            assert caught.value.code == "invalid_token"
            assert inbox.to(nobody) == []


@pytest.mark.anyio
async def test_a_user_with_two_factors_is_asked_for_a_code(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        _, name, address = await _user(client)
        user = await client.auth.sign_in_with_password(name, "a-long-password")
        secret = (await user.auth.totp_enrol())["secret"]
        await user.auth.totp_confirm(code_at(clocked_server, secret))
        with mail_inbox(clocked_server) as inbox:
            await client.auth.send_otp(address)
            code = wait_for_mail(inbox, address, r"code is (\d{6})")
        with pytest.raises(SecondFactorRequired) as needed:
            await client.auth.verify_otp(address, code)
        signed_in = await client.auth.verify_totp(
            needed.value.challenge, code_at(clocked_server, secret, steps=1)
        )
        assert (await signed_in.auth.get_current_user())["username"] == name
