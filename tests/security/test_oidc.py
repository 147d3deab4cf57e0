"""Attacks on sign-in with outside providers, each against a real server (SQLite and
PostgreSQL) and a real OpenID Connect provider on loopback (`tests/oidc_provider.py`): forged
state, replayed codes, ID tokens with a wrong nonce, audience or expiry, an unverified email
aimed at an existing account, another tenant's provider, and redirects off the allow-list."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from joserfc.jwk import RSAKey

from roost import (
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    RateLimitError,
    ValidationError,
)
from roost.server.redaction import redact
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.fake_dns import FakeDNS
from tests.fake_dns import dns as dns  # the fixture
from tests.inbox import mail_inbox
from tests.oidc_provider import (
    APP,
    OidcProvider,
    Person,
    at_provider,
    back_at_app,
    back_at_server,
    oidc_provider,
)
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


def _person() -> Person:
    return Person(sub=unique("sub"), email=f"{unique('p')}@example.com")


def _refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == code


async def test_a_forged_state_is_refused(signin_server: RunningServer) -> None:
    async with _admin(signin_server) as admin:
        with oidc_provider(_person()) as provider:
            name = await _put(admin, provider)
            callback = at_provider(await admin.auth.sign_in_with_provider_url(name, APP))
            code = dict(parse_qsl(urlsplit(callback).query))["code"]
            base = callback.split("?")[0]
            forged = f"{base}?code={code}&state={secrets.token_urlsafe(32)}"
            _refused(back_at_server(forged), "invalid_state")
            response = back_at_server(f"{base}?code={code}")
            assert response.status_code == 400
            assert response.json()["error"]["details"]["field"] == "state"
            response = back_at_server(f"{base}?code={code}&state=a%00b")
            assert response.status_code == 400
        entries = await admin.logs.query(category="auth", search="callback refused")
        assert entries["entries"][0]["message"].endswith("invalid_state")


async def test_a_refusal_at_the_provider_goes_back_to_the_app(
    signin_server: RunningServer,
) -> None:
    async with _admin(signin_server) as admin:
        with oidc_provider(_person()) as provider:
            name = await _put(admin, provider)
            callback = at_provider(await admin.auth.sign_in_with_provider_url(name, APP))
            state = dict(parse_qsl(urlsplit(callback).query))["state"]
            denied = f"{callback.split('?')[0]}?error=access_denied&state={state}"
            assert back_at_app(denied) == {"roost_error": "provider_refused"}


async def test_a_replayed_callback_or_code_is_refused(signin_server: RunningServer) -> None:
    async with _admin(signin_server) as admin:
        with oidc_provider(_person()) as provider:
            name = await _put(admin, provider)
            first = at_provider(await admin.auth.sign_in_with_provider_url(name, APP))
            assert "roost_code" in back_at_app(first)
            _refused(back_at_server(first), "invalid_state")  # the same callback again
            # a code stolen from one sign-in, brought with the state of another: PKCE refuses it
            second = at_provider(await admin.auth.sign_in_with_provider_url(name, APP))
            third = at_provider(await admin.auth.sign_in_with_provider_url(name, APP))
            stolen = dict(parse_qsl(urlsplit(second).query))["code"]
            state = dict(parse_qsl(urlsplit(third).query))["state"]
            swapped = f"{third.split('?')[0]}?code={stolen}&state={state}"
            assert back_at_app(swapped) == {"roost_error": "provider_refused"}
            # and once tried, that code is spent at the provider for its own sign-in too
            assert back_at_app(second) == {"roost_error": "provider_refused"}


@pytest.mark.parametrize(
    ("changes", "claim"),
    [
        ({"nonce": "a-nonce-of-another-sign-in"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"aud": "another-client"}, "aud"),
        ({"exp": 1_600_000_000, "iat": 1_599_999_000}, "exp"),
        ({"iss": "https://evil.example.com"}, "iss"),
    ],
)
async def test_a_bad_id_token_is_refused(
    signin_server: RunningServer, changes: dict[str, object], claim: str
) -> None:
    async with _admin(signin_server) as admin:
        with oidc_provider(_person()) as provider:
            name = await _put(admin, provider)
            provider.id_token_changes = changes
            url = await admin.auth.sign_in_with_provider_url(name, APP)
            assert back_at_app(at_provider(url)) == {"roost_error": "invalid_id_token"}
        entries = await admin.logs.query(category="auth", search=f"{name!r} refused")
        assert [e["message"] for e in entries["entries"]] == [
            f"sign-in with {name!r} refused: invalid_id_token"
        ]


async def test_an_id_token_signed_by_another_key_is_refused(signin_server: RunningServer) -> None:
    async with _admin(signin_server) as admin:
        with oidc_provider(_person()) as provider:
            name = await _put(admin, provider)
            # the same key id, a key the provider's JWKS does not publish
            provider.signing_key = RSAKey.generate_key(2048, {"kid": "k1"})
            url = await admin.auth.sign_in_with_provider_url(name, APP)
            assert back_at_app(at_provider(url)) == {"roost_error": "invalid_id_token"}


async def test_an_unverified_email_never_takes_over_an_account(
    signin_server: RunningServer,
) -> None:
    victim = unique("victim")
    email = f"{victim}@example.com"
    async with AsyncClient(api_url=signin_server.url) as client, _admin(signin_server) as admin:
        with mail_inbox(signin_server) as inbox:
            account = await client.auth.register(victim, "victim-password", email=email)
        await client.auth.verify_email(inbox.token(email, "rev"))
        attacker = Person(sub=unique("sub"), email=email, email_verified=False)
        with oidc_provider(attacker) as provider:
            name = await _put(admin, provider)
            url = await client.auth.sign_in_with_provider_url(name, APP)
            assert back_at_app(at_provider(url)) == {"roost_error": "email_not_verified"}
            provider.person = Person(sub=attacker.sub, email=email, email_verified=True)
            # once the provider has verified it, the same identity may link
            url = await client.auth.sign_in_with_provider_url(name, APP)
            code = back_at_app(at_provider(url))["roost_code"]
        user = await client.auth.sign_in_with_provider_code(code)
        assert (await user.auth.get_current_user())["id"] == account["id"]


async def test_another_tenants_provider_is_unusable(signin_server: RunningServer) -> None:
    tenant = unique("t")
    async with _admin(signin_server) as admin:
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
        async with AsyncClient(api_url=signin_server.url, tenant=tenant) as other:
            with oidc_provider(_person()) as provider:
                name = await _put(admin, provider)
                with pytest.raises(NotFoundError):
                    await other.auth.sign_in_with_provider_url(name, APP)
                root = await other.auth.sign_in_with_password("root", "root-password")
                assert await root.auth.providers.list() == []
                # a state of the default tenant, brought to the other tenant's callback
                callback = at_provider(await admin.auth.sign_in_with_provider_url(name, APP))
                moved = callback.replace("/providers/default/", f"/providers/{tenant}/")
                _refused(back_at_server(moved), "invalid_state")
                code = back_at_app(callback)["roost_code"]
                with pytest.raises(AuthenticationError) as caught:
                    await other.auth.exchange_provider_code(code)
                assert caught.value.code == "invalid_code"
                await admin.auth.exchange_provider_code(code)  # still good in its own tenant
            response = back_at_server(
                f"{signin_server.url}/api/v1/auth/providers/NO_/callback?state=x"
            )
            assert response.status_code == 400


@pytest.mark.parametrize(
    "redirect_to",
    [
        "http://app.test.evil.com/signed-in",
        "http://evil.com/?http://app.test/",
        "http://app.test@evil.com/",
        "https://app.test/signed-in",
        "http://app.test:8080/",
        "http://app.test\\@evil.com/",
    ],
)
async def test_redirects_off_the_allow_list_are_refused(
    signin_server: RunningServer, redirect_to: str
) -> None:
    async with _admin(signin_server) as admin:
        name = unique("idp")
        await admin.auth.providers.put(
            name, client_id="c", client_secret="s", issuer="https://id.example.com"
        )
        with pytest.raises(ValidationError) as caught:
            await admin.auth.sign_in_with_provider_url(name, redirect_to)
        assert caught.value.details["field"] == "redirect_to"


async def test_providers_need_their_scopes_and_safe_urls(signin_server: RunningServer) -> None:
    async with _admin(signin_server) as admin:
        member_name = unique("m")
        async with AsyncClient(api_url=signin_server.url) as client:
            await client.auth.register(member_name, "member-password")
            member = await client.auth.sign_in_with_password(member_name, "member-password")
            with pytest.raises(AuthorizationError):
                await member.auth.providers.put(
                    "idp", client_id="c", client_secret="s", issuer="https://id.example.com"
                )
            with pytest.raises(AuthorizationError):
                await member.auth.providers.list()
        refused: list[tuple[dict[str, Any], str]] = [
            ({"issuer": "http://id.example.com"}, "issuer"),  # plain http off this machine
            ({"issuer": "https://user:pw@id.example.com"}, "issuer"),
            ({"authorize_url": "https://a.example.com/authorize"}, "token_url"),
            (
                {
                    "issuer": "https://id.example.com",
                    "authorize_url": "https://a.example.com",
                    "token_url": "https://a.example.com",
                    "userinfo_url": "https://a.example.com",
                },
                "issuer",
            ),
            ({"issuer": "https://id.example.com/\x00"}, "issuer"),
            # the server's own network, named by address (a name is checked when called)
            ({"issuer": "https://10.1.2.3"}, "issuer"),
            ({"issuer": "https://169.254.169.254"}, "issuer"),  # cloud metadata
            ({"issuer": "https://[::ffff:192.168.0.1]"}, "issuer"),
            ({"issuer": "https://0x7f.1"}, "issuer"),  # an address in disguise
        ]
        for urls, field in refused:
            with pytest.raises(ValidationError) as caught:
                await admin.auth.providers.put("idp", client_id="c", client_secret="s", **urls)
            assert field in str(caught.value.details), urls
        with pytest.raises(ValidationError):
            await admin.auth.providers.put(
                "Bad Name", client_id="c", client_secret="s", issuer="https://id.example.com"
            )


async def test_a_provider_name_pointed_at_the_servers_network_is_not_called(
    signin_server: RunningServer, dns: FakeDNS
) -> None:
    # accepted when configured (no DNS then); refused when the sign-in would call it
    dns["idp.test"] = [["10.0.0.7"]]
    async with _admin(signin_server) as admin:
        name = unique("idp")
        await admin.auth.providers.put(
            name, client_id="c", client_secret="s", issuer="https://idp.test"
        )
        with pytest.raises(AuthenticationError) as caught:
            await admin.auth.sign_in_with_provider_url(name, APP)
        assert caught.value.code == "provider_error"
        assert "does not call" in caught.value.message, dns.asked
        assert "10.0.0.7" not in caught.value.message  # nothing of the inside is told
    assert dns.asked["idp.test"] == 1


async def test_an_unknown_tenant_in_the_callback_is_refused(signin_server: RunningServer) -> None:
    url = f"{signin_server.url}/api/v1/auth/providers/{unique('nosuch')}/callback?state=x&code=y"
    response = back_at_server(url)
    assert 400 <= response.status_code < 500, response.text


async def test_sign_ins_expire_and_are_rate_limited(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server(auth_redirect_urls=["http://app.test/"], provider_sign_ins_per_client=3)
    async with _admin(server) as admin:
        with oidc_provider(_person()) as provider:
            name = await _put(admin, provider)
            late = at_provider(await admin.auth.sign_in_with_provider_url(name, APP))
            back = back_at_app(at_provider(await admin.auth.sign_in_with_provider_url(name, APP)))
            await admin.auth.sign_in_with_provider_url(name, APP)
            with pytest.raises(RateLimitError):  # the fourth from one address in ten minutes
                await admin.auth.sign_in_with_provider_url(name, APP)
            server.clock.advance(61)  # a one-time code lives a minute
            with pytest.raises(AuthenticationError) as caught:
                await admin.auth.exchange_provider_code(back["roost_code"])
            assert caught.value.code == "invalid_code"
            server.clock.advance(540)  # a state, ten minutes
            _refused(back_at_server(late), "invalid_state")


async def test_a_disabled_user_cannot_sign_in_with_a_provider(
    signin_server: RunningServer,
) -> None:
    person = _person()
    async with _admin(signin_server) as admin:
        with oidc_provider(person) as provider:
            name = await _put(admin, provider)
            code = back_at_app(at_provider(await admin.auth.sign_in_with_provider_url(name, APP)))
            user = await admin.auth.sign_in_with_provider_code(code["roost_code"])
            me = await user.auth.get_current_user()
            await admin.users.update_user(me["username"], is_active=False)
            url = await admin.auth.sign_in_with_provider_url(name, APP)
            assert back_at_app(at_provider(url)) == {"roost_error": "invalid_credentials"}


def test_callback_codes_and_states_never_reach_a_log_line() -> None:
    line = (
        '127.0.0.1:5 - "GET /api/v1/auth/providers/default/callback?code=abc123&state=xyz789 '
        'HTTP/1.1" 303 and http://app.test/signed-in?roost_code=def456'
    )
    redacted = redact(line)
    for value in ("abc123", "xyz789", "def456"):
        assert value not in redacted
