"""Ways into an account an attacker's pass found through provider sign-in (services/auth/oidc.py),
each closed: run against a real server on SQLite and PostgreSQL and a real OpenID Connect
provider on loopback (`tests/oidc_provider.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from roost import AsyncClient, SecondFactorRequired
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.factors import code_at, next_step
from tests.oidc_provider import APP, OidcProvider, Person, at_provider, back_at_app, oidc_provider
from tests.oidc_provider import signin_server as signin_server  # the module's server

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def _admin(server: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(api_url=server.url) as client:
        yield await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)


async def _put(admin: AsyncClient, provider: OidcProvider) -> str:
    name = unique("idp")
    await admin.auth.providers.put(
        name,
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        issuer=provider.url,
    )
    return name


async def _provider_sign_in_is_gated(client: AsyncClient, name: str) -> None:
    """A provider sign-in of a user who signs in with a second factor must not end in tokens:
    either the callback sends `roost_error`, or the code's exchange asks for the factor."""
    back = back_at_app(at_provider(await client.auth.sign_in_with_provider_url(name, APP)))
    if "roost_code" not in back:
        assert back.get("roost_error") == "second_factor_required", back
        return
    with pytest.raises(SecondFactorRequired):
        await client.auth.exchange_provider_code(back["roost_code"])


# -- the second factor, skipped by a provider sign-in ---------------------------------------


async def test_a_provider_sign_in_does_not_skip_a_confirmed_totp(
    signin_server: RunningServer,
) -> None:
    """The password asks for the code; the same account through its linked provider (or any
    provider asserting its verified email) got a session without one."""
    victim = unique("victim")
    email = f"{victim}@example.com"
    async with AsyncClient(api_url=signin_server.url) as client, _admin(signin_server) as admin:
        await admin.users.create_user(victim, "victim-password", email=email)
        user = await client.auth.sign_in_with_password(victim, "victim-password")
        secret = (await user.auth.totp_enrol())["secret"]
        await user.auth.totp_confirm(code_at(signin_server, secret))
        next_step(signin_server)
        with pytest.raises(SecondFactorRequired):
            await client.auth.sign_in_with_password(victim, "victim-password")
        with oidc_provider(Person(sub=unique("sub"), email=email)) as provider:
            name = await _put(admin, provider)
            await _provider_sign_in_is_gated(client, name)


async def test_a_provider_sign_in_does_not_skip_a_role_that_requires_two_factors(
    signin_server: RunningServer,
) -> None:
    """`auth_two_factor_roles` holds for a password sign-in (an enrolment challenge), not for a
    provider sign-in of the same user."""
    victim = unique("guarded")
    email = f"{victim}@example.com"
    role = unique("needs2fa")
    async with AsyncClient(api_url=signin_server.url) as client, _admin(signin_server) as admin:
        await admin.users.create_user(victim, "victim-password", email=email)
        await admin.roles.create(role, ["users:read"])
        await admin.users.assign_roles([role], [victim])
        await admin.settings.update({"auth_two_factor_roles": [role]})
        try:
            with pytest.raises(SecondFactorRequired):
                await client.auth.sign_in_with_password(victim, "victim-password")
            with oidc_provider(Person(sub=unique("sub"), email=email)) as provider:
                name = await _put(admin, provider)
                await _provider_sign_in_is_gated(client, name)
        finally:
            await admin.settings.update({"auth_two_factor_roles": None})
