"""Sign-in with OAuth2 / OpenID Connect providers through the SDK, the whole flow against a
real provider on loopback (`tests/oidc_provider.py`), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from roost import AsyncClient, AuthenticationError, NotFoundError
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.inbox import mail_inbox
from tests.oidc_provider import APP, OidcProvider, Person, oidc_provider, walk
from tests.oidc_provider import signin_server as signin_server  # the module's server


async def _put(admin: AsyncClient, provider: OidcProvider) -> str:
    name = unique("idp")
    await admin.auth.providers.put(
        name,
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        issuer=provider.url,
    )
    return name


@pytest.mark.anyio
async def test_a_new_user_signs_in_with_an_oidc_provider(signin_server: RunningServer) -> None:
    email = f"{unique('ada')}@example.com"
    async with AsyncClient(api_url=signin_server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        with oidc_provider(Person(sub=unique("sub"), email=email)) as provider:
            name = await _put(admin, provider)
            url = await client.auth.sign_in_with_provider_url(name, APP)
            assert url.startswith(f"{provider.url}/authorize?")
            back = walk(url)
            assert set(back) == {"roost_code"}
            user = await client.auth.sign_in_with_provider_code(back["roost_code"])
            me = await user.auth.get_current_user()
            assert (me["email"], me["email_verified"], me["first_name"]) == (email, True, "Ada")
            assert me["roles"] == ["member"]
            # the same person again: the same account, through the identity linked before
            again = walk(await client.auth.sign_in_with_provider_url(name, APP))
            tokens = await client.auth.exchange_provider_code(again["roost_code"])
            assert tokens["session_id"] != (await user.auth.whoami())["session_id"]
            same = await client.auth.sign_in_with_token(tokens["access"])
            assert (await same.auth.get_current_user())["id"] == me["id"]
        entries = await admin.logs.query(category="auth", search=f"provider {name!r}")
        assert any(e["message"] == f"signed in with provider {name!r}" for e in entries["entries"])


@pytest.mark.anyio
async def test_a_verified_email_links_the_existing_account(signin_server: RunningServer) -> None:
    name = unique("grace")
    email = f"{name}@example.com"
    async with AsyncClient(api_url=signin_server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        with mail_inbox(signin_server) as inbox:  # only a verified address links
            existing = await client.auth.register(name, "grace-password", email=email)
        await client.auth.verify_email(inbox.token(email, "rev"))
        with oidc_provider(Person(sub=unique("sub"), email=email.upper())) as provider:
            idp = await _put(admin, provider)
            back = walk(await client.auth.sign_in_with_provider_url(idp, APP))
            user = await client.auth.sign_in_with_provider_code(back["roost_code"])
        me = await user.auth.get_current_user()
        assert (me["id"], me["email_verified"]) == (existing["id"], True)
        await client.auth.sign_in_with_password(name, "grace-password")  # still works too


@pytest.mark.anyio
async def test_a_github_style_provider_signs_in_by_user_info(signin_server: RunningServer) -> None:
    email = f"{unique('octo')}@example.com"
    async with AsyncClient(api_url=signin_server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        with oidc_provider(Person(sub="4242", email=email)) as provider:
            name = unique("gh")
            await admin.auth.providers.put(
                name,
                client_id=provider.client_id,
                client_secret=provider.client_secret,
                authorize_url=f"{provider.url}/authorize",
                token_url=f"{provider.url}/token",
                userinfo_url=f"{provider.url}/user",
            )
            back = walk(await client.auth.sign_in_with_provider_url(name, APP))
            user = await client.auth.sign_in_with_provider_code(back["roost_code"])
        me = await user.auth.get_current_user()
        # GitHub's /user says nothing of verification: the address stays off the account
        assert (me["email"], me["email_verified"]) == ("", False)


@pytest.mark.anyio
async def test_providers_are_listed_without_their_secrets(signin_server: RunningServer) -> None:
    async with AsyncClient(api_url=signin_server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        name = unique("idp")
        put = await admin.auth.providers.put(
            name,
            client_id="the-client",
            client_secret="the-secret-value",
            issuer="https://accounts.example.com/",
        )
        assert (put["kind"], put["issuer"], put["scopes"]) == (
            "oidc",
            "https://accounts.example.com",
            ["openid", "email", "profile"],
        )
        assert put["callback_url"] == (
            f"{signin_server.url}/api/v1/auth/providers/default/callback"
        )
        listed = [p for p in await admin.auth.providers.list() if p["name"] == name]
        got = await admin.auth.providers.get(name)
        for answer in (put, got, *listed):
            assert "the-secret-value" not in repr(answer)
            assert "client_secret" not in answer
        await admin.auth.providers.delete(name)
        with pytest.raises(NotFoundError):
            await admin.auth.providers.get(name)
        with pytest.raises(NotFoundError) as caught:
            await client.auth.sign_in_with_provider_url(name, APP)
        assert caught.value.details["field"] == "provider"


@pytest.mark.anyio
async def test_a_one_time_code_works_once(signin_server: RunningServer) -> None:
    async with AsyncClient(api_url=signin_server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        with oidc_provider(Person(sub=unique("sub"), email=f"{unique('o')}@ex.com")) as provider:
            name = await _put(admin, provider)
            back = walk(await client.auth.sign_in_with_provider_url(name, APP))
        await client.auth.exchange_provider_code(back["roost_code"])
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.exchange_provider_code(back["roost_code"])
        assert caught.value.code == "invalid_code"


@pytest.mark.anyio
async def test_an_id_token_without_email_is_completed_by_user_info(
    signin_server: RunningServer,
) -> None:
    email = f"{unique('info')}@example.com"
    async with AsyncClient(api_url=signin_server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        with oidc_provider(Person(sub=unique("sub"), email=email)) as provider:
            provider.id_token_changes = {"email": None, "email_verified": None}
            name = await _put(admin, provider)
            back = walk(await client.auth.sign_in_with_provider_url(name, APP))
            user = await client.auth.sign_in_with_provider_code(back["roost_code"])
        me = await user.auth.get_current_user()
        assert (me["email"], me["email_verified"]) == (email, True)
