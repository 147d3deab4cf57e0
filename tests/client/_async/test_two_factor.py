"""Two-factor sign-in (TOTP) through the SDK against a real server, on every SQL backend: the
server's clock is moved (`clocked_server`), the codes are computed at its time."""

from __future__ import annotations

import pytest

from roost import AsyncClient, AuthenticationError, SecondFactorRequired
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.factors import code_at, next_step

PASSWORD = "a-long-password"


async def _enrolled(client: AsyncClient, server: RunningServer) -> tuple[str, str, list[str]]:
    """A new user with two-factor sign-in on: its name, TOTP secret and recovery codes."""
    admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
    name = unique("tf")
    await admin.users.create_user(name, PASSWORD, email=f"{name}@example.com")
    user = await client.auth.sign_in_with_password(name, PASSWORD)
    enrolment = await user.auth.totp_enrol()
    await user.auth.totp_confirm(code_at(server, enrolment["secret"]))
    next_step(server)  # the confirming code is spent
    return name, enrolment["secret"], enrolment["recovery_codes"]


@pytest.mark.anyio
async def test_enrol_confirm_and_sign_in_with_a_code(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        name = unique("tf")
        await admin.users.create_user(name, PASSWORD)
        user = await client.auth.sign_in_with_password(name, PASSWORD)
        enrolment = await user.auth.totp_enrol()
        assert enrolment["uri"].startswith("otpauth://totp/")
        assert f"secret={enrolment['secret']}" in enrolment["uri"]
        assert len(enrolment["recovery_codes"]) == 10
        assert (await user.auth.totp_status())["pending"] is True
        # not on before it is confirmed: the password alone still signs in
        await client.auth.sign_in_with_password(name, PASSWORD)
        await user.auth.totp_confirm(code_at(clocked_server, enrolment["secret"]))
        status = await user.auth.totp_status()
        assert status["enabled"] is True
        assert status["recovery_codes_left"] == 10

        with pytest.raises(SecondFactorRequired) as needed:
            await client.auth.sign_in_with_password(name, PASSWORD)
        assert needed.value.second_factor == "totp"
        assert needed.value.expires_in > 0
        next_step(clocked_server)
        signed_in = await client.auth.verify_totp(
            needed.value.challenge, code_at(clocked_server, enrolment["secret"])
        )
        assert (await signed_in.auth.get_current_user())["username"] == name

        audit = await admin.logs.query(category="auth.audit", search=None, limit=50)
        mine = [e["message"] for e in audit["entries"] if e["username"] == name]
        assert {"totp_enabled", "second_factor_challenged", "signed_in_with_totp"} <= set(mine)


@pytest.mark.anyio
async def test_a_recovery_code_signs_in_once(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, _, codes = await _enrolled(client, clocked_server)
        with pytest.raises(SecondFactorRequired) as needed:
            await client.auth.sign_in_with_password(name, PASSWORD)
        user = await client.auth.verify_totp(needed.value.challenge, codes[0].upper())
        assert (await user.auth.totp_status())["recovery_codes_left"] == 9
        with pytest.raises(SecondFactorRequired) as again:
            await client.auth.sign_in_with_password(name, PASSWORD)
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.verify_totp(again.value.challenge, codes[0])
        assert caught.value.code == "invalid_code"


@pytest.mark.anyio
async def test_disable_with_a_code_or_the_password(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, secret, _ = await _enrolled(client, clocked_server)
        with pytest.raises(SecondFactorRequired) as needed:
            await client.auth.sign_in_with_password(name, PASSWORD)
        user = await client.auth.verify_totp(
            needed.value.challenge, code_at(clocked_server, secret)
        )
        next_step(clocked_server)
        await user.auth.totp_disable(code=code_at(clocked_server, secret))
        assert (await user.auth.totp_status())["enabled"] is False
        await client.auth.sign_in_with_password(name, PASSWORD)  # the password alone again

        enrolment = await user.auth.totp_enrol()
        await user.auth.totp_confirm(code_at(clocked_server, enrolment["secret"]))
        await user.auth.totp_disable(password=PASSWORD)
        assert (await user.auth.totp_status())["enabled"] is False


@pytest.mark.anyio
async def test_a_tenant_requires_two_factors_for_a_role(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        role, name = unique("guarded"), unique("tf")
        await admin.roles.create(role, ["users:read"])
        await admin.users.create_user(name, PASSWORD, roles=[role])
        await admin.settings.update({"auth_two_factor_roles": [role]})
        try:
            with pytest.raises(SecondFactorRequired) as needed:
                await client.auth.sign_in_with_password(name, PASSWORD)
            assert needed.value.second_factor == "totp_enrolment"
            enrolment = await client.auth.totp_enrol(challenge=needed.value.challenge)
            user = await client.auth.verify_totp(
                needed.value.challenge, code_at(clocked_server, enrolment["secret"])
            )
            status = await user.auth.totp_status()
            assert status["enabled"] is True
            assert status["required"] is True
            # from now on a code is asked for
            with pytest.raises(SecondFactorRequired) as later:
                await client.auth.sign_in_with_password(name, PASSWORD)
            assert later.value.second_factor == "totp"
        finally:
            await admin.settings.update({"auth_two_factor_roles": None})


@pytest.mark.anyio
async def test_an_admin_resets_a_lost_factor(clocked_server: RunningServer) -> None:
    async with AsyncClient(api_url=clocked_server.url) as client:
        name, _, _ = await _enrolled(client, clocked_server)
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        assert (await admin.users.reset_totp(name))["count"] == 1
        user = await client.auth.sign_in_with_password(name, PASSWORD)  # the password alone
        assert (await user.auth.totp_status())["enabled"] is False
        assert (await admin.users.reset_totp(name))["count"] == 0
        audit = await admin.logs.query(category="auth.audit", limit=50)
        assert any(e["message"] == "totp_reset" and e["username"] == name for e in audit["entries"])
