"""Ways into an account an attacker's pass found through provider sign-in (services/auth/oidc.py),
each closed: run against a real server on SQLite and PostgreSQL and a real OpenID Connect
provider on loopback (`tests/oidc_provider.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from roost import AsyncClient, AuthenticationError, SecondFactorRequired, ValidationError
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.factors import code_at, next_step
from tests.inbox import mail_inbox
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
        await _verified(client, signin_server, email)
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
        await _verified(client, signin_server, email)
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


# -- linking by email: pre-hijacking, look-alike addresses, a provider made again -----------


async def _verified(client: AsyncClient, server: RunningServer, email: str) -> None:
    """Verify `email` as its owner does: the link mailed to it, followed."""
    with mail_inbox(server) as inbox:
        await client.auth.resend_verification(email)
    await client.auth.verify_email(inbox.token(email, "rev"))


async def _signed_in_as(client: AsyncClient, provider_name: str) -> str:
    """The id of the user a provider sign-in ends as."""
    back = back_at_app(at_provider(await client.auth.sign_in_with_provider_url(provider_name, APP)))
    assert "roost_code" in back, back
    user = await client.auth.sign_in_with_provider_code(back["roost_code"])
    return str((await user.auth.get_current_user())["id"])


async def test_an_account_registered_with_an_unverified_address_is_not_linked(
    signin_server: RunningServer,
) -> None:
    """Pre-hijacking: the attacker signs up with the victim's address (never verified) and a
    password of theirs; the victim's provider sign-in must not land in that account, where the
    attacker's password still works."""
    email = f"{unique('victim')}@example.com"
    attacker_name = unique("early")
    async with AsyncClient(api_url=signin_server.url) as client, _admin(signin_server) as admin:
        planted = await client.auth.register(attacker_name, "attacker-password", email=email)
        with oidc_provider(Person(sub=unique("sub"), email=email)) as provider:
            name = await _put(admin, provider)
            url = await client.auth.sign_in_with_provider_url(name, APP)
            assert back_at_app(at_provider(url)) == {"roost_error": "account_email_unverified"}
            # the owner of the mailbox takes the account back by a reset mail, which verifies
            # the address; then the provider links
            with mail_inbox(signin_server) as inbox:
                await client.auth.request_password_reset(email)
            await client.auth.confirm_password_reset(inbox.token(email, "rpr"), "owner-password")
            assert await _signed_in_as(client, name) == planted["id"]
        with pytest.raises(AuthenticationError):
            await client.auth.sign_in_with_password(attacker_name, "attacker-password")


async def test_a_look_alike_address_does_not_reach_an_account(
    signin_server: RunningServer,
) -> None:
    """The Kelvin sign K lower-cases to k: `Kate@...` (with it) is another mailbox than
    `kate@...`, which a provider may verify for an attacker."""
    local = unique("kate")
    email = f"{local}@example.com"
    look_alike = f"\u212a{local[1:]}@example.com"
    async with AsyncClient(api_url=signin_server.url) as client, _admin(signin_server) as admin:
        victim = await admin.users.create_user(unique("victim"), "victim-password", email=email)
        await _verified(client, signin_server, email)
        with oidc_provider(Person(sub=unique("sub"), email=look_alike)) as provider:
            name = await _put(admin, provider)
            assert await _signed_in_as(client, name) != victim["id"]
        for register in (
            client.auth.register(unique("kelvin"), "kelvin-password", email=look_alike),
            admin.users.create_user(unique("kelvin"), "kelvin-password", email=look_alike),
        ):
            with pytest.raises(ValidationError) as caught:
                await register
            assert caught.value.details["field"] == "email"


async def test_a_provider_made_again_for_another_issuer_does_not_inherit_identities(
    signin_server: RunningServer,
) -> None:
    """Identities are kept by provider name and subject; a subject is unique only at its
    issuer. Another issuer's user with the same subject must not sign in as the linked user."""
    email = f"{unique('victim')}@example.com"
    subject = unique("sub")
    async with AsyncClient(api_url=signin_server.url) as client, _admin(signin_server) as admin:
        victim = await admin.users.create_user(unique("victim"), "victim-password", email=email)
        await _verified(client, signin_server, email)
        attacker = Person(sub=subject, email=f"{unique('other')}@example.com")
        with (
            oidc_provider(Person(sub=subject, email=email)) as first,
            oidc_provider(attacker) as second,
        ):
            name = await _put(admin, first)
            assert await _signed_in_as(client, name) == victim["id"]
            # changed in place to the other issuer
            await admin.auth.providers.put(
                name,
                client_id=second.client_id,
                client_secret=second.client_secret,
                issuer=second.url,
            )
            assert await _signed_in_as(client, name) != victim["id"]
            # deleted and made again
            await admin.auth.providers.put(
                name, client_id=first.client_id, client_secret=first.client_secret, issuer=first.url
            )
            assert await _signed_in_as(client, name) == victim["id"]
            await admin.auth.providers.delete(name)
            await admin.auth.providers.put(
                name,
                client_id=second.client_id,
                client_secret=second.client_secret,
                issuer=second.url,
            )
            assert await _signed_in_as(client, name) != victim["id"]
