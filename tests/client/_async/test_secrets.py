"""Secrets through the SDK, on SQLite and PostgreSQL: values, versions, app overrides, tags,
listings, the root shortcuts, and each refusal."""

from __future__ import annotations

import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    SecretNotFoundError,
    ValidationError,
)
from tests.client._async.calls import Call
from tests.conftest import ADMIN_USERNAME, RunningServer, unique


@pytest.mark.anyio
async def test_a_secret_keeps_every_value_as_a_version(
    server: RunningServer, admin_token: str
) -> None:
    key = unique("API_KEY_")
    async with AsyncClient(api_url=server.url) as client:
        secrets = (await client.auth.sign_in_with_token(admin_token)).secrets
        made = await secrets.set(key, "first", "api_key", ["payment", "prod"], comment="new")
        assert (made["key"], made["version"], made["secret_type"]) == (key, 1, "api_key")
        assert "value" not in made  # writes never echo a value
        got = await secrets.get_secret(key)
        assert (got["value"], got["tags"], got["comment"], got["app"]) == (
            "first",
            ["payment", "prod"],
            "new",
            None,
        )
        assert (await secrets.update(key, value="second"))["version"] == 2
        assert (await secrets.update(key, comment="rotated"))["version"] == 2  # no new value
        assert (await secrets.get_secret(key))["value"] == "second"
        assert (await secrets.get_secret(key, version=1))["value"] == "first"
        versions = await secrets.versions(key)
        assert [v["version"] for v in versions] == [2, 1]
        assert versions[0]["created_by"] == ADMIN_USERNAME
        await secrets.delete(key)
        with pytest.raises(SecretNotFoundError):
            await secrets.get_secret(key)


@pytest.mark.anyio
async def test_an_app_secret_overrides_the_tenant_wide_one(
    server: RunningServer, admin_token: str
) -> None:
    url, token = unique("DATABASE_URL_"), unique("TOKEN_")
    async with AsyncClient(api_url=server.url) as client:
        secrets = (await client.auth.sign_in_with_token(admin_token)).secrets
        await secrets.set(url, "postgres://shared")
        await secrets.set(url, "postgres://prod", app="production")
        await secrets.set(token, "t-shared")
        prod = await secrets.get_secret(url, app="production")
        assert (prod["value"], prod["app"], prod["inherited"]) == (
            "postgres://prod",
            "production",
            False,
        )
        fallback = await secrets.get_secret(token, app="production")
        assert (fallback["value"], fallback["app"], fallback["inherited"]) == (
            "t-shared",
            None,
            True,
        )
        assert (await secrets.get_secret(url))["value"] == "postgres://shared"
        missing = unique("MISSING_")
        with pytest.raises(SecretNotFoundError) as caught:
            await secrets.get_secrets([url, token, missing], app="production")
        assert caught.value.details["missing"] == [missing]
        assert missing in str(caught.value)
        many = await secrets.get_secrets([url, token, missing], app="production", missing_ok=True)
        assert {k: v["value"] for k, v in many.items()} == {
            url: "postgres://prod",
            token: "t-shared",
        }
        await secrets.delete(url, app="production")  # the app's own only
        assert (await secrets.get_secret(url, app="production"))["value"] == "postgres://shared"


@pytest.mark.anyio
async def test_tags_asked_for_must_all_be_on_the_secret(
    server: RunningServer, admin_token: str
) -> None:
    key = unique("STRIPE_KEY_")
    async with AsyncClient(api_url=server.url) as client:
        secrets = (await client.auth.sign_in_with_token(admin_token)).secrets
        await secrets.set(key, "sk_live", tags=["payment", "production"])
        assert (await secrets.get_secret(key, tags=["payment"]))["value"] == "sk_live"
        with pytest.raises(ValidationError) as caught:
            await secrets.get_secret(key, tags=["payment", "staging"])
        assert caught.value.code == "tags_not_present"
        assert caught.value.details["missing"] == ["staging"]
        assert "sk_live" not in caught.value.message


@pytest.mark.anyio
async def test_listing_filters_and_pages_without_values(
    server: RunningServer, admin_token: str
) -> None:
    base = unique("LIST_")
    async with AsyncClient(api_url=server.url) as client:
        secrets = (await client.auth.sign_in_with_token(admin_token)).secrets
        for n in range(5):
            await secrets.set(f"{base}{n}", f"v{n}", "api_key" if n % 2 else "password", ["ci"])
        await secrets.set(f"{base}0", "for-billing", app="billing")
        everything = await secrets.list_secrets(prefix=base)
        assert [(s["key"], s["app"]) for s in everything["results"]] == [
            (f"{base}0", None),
            (f"{base}0", "billing"),
            *((f"{base}{n}", None) for n in range(1, 5)),
        ]
        assert all("value" not in s for s in everything["results"])
        assert everything["next_cursor"] is None
        seen = []
        page = await secrets.list_secrets(prefix=base, page_size=2)
        while True:
            seen += [(s["key"], s["app"]) for s in page["results"]]
            if page["next_cursor"] is None:
                break
            page = await secrets.list_secrets(prefix=base, page_size=2, cursor=page["next_cursor"])
        assert seen == [(s["key"], s["app"]) for s in everything["results"]]
        typed = await secrets.list_secrets(search=base.lower(), secret_type="api_key", tags="ci")
        assert [s["key"] for s in typed["results"]] == [f"{base}1", f"{base}3"]
        billing = await secrets.list_secrets(prefix=base, app="billing")
        assert [s["key"] for s in billing["results"]] == [f"{base}0"]
        assert (await secrets.list_secrets(prefix=base, tags=["ci", "nope"]))["results"] == []


@pytest.mark.anyio
async def test_root_shortcuts(server: RunningServer, admin_token: str) -> None:
    key = unique("SHORT_")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        assert (await admin.upsert(key, "one", comment="first"))["version"] == 1
        assert (await admin.upsert(key, "two"))["version"] == 2
        assert await admin.get(key) == "two"


@pytest.mark.anyio
async def test_bad_input_is_refused_naming_the_field(
    server: RunningServer, admin_token: str
) -> None:
    key = unique("BAD_")
    async with AsyncClient(api_url=server.url) as client:
        secrets = (await client.auth.sign_in_with_token(admin_token)).secrets
        refusals: list[tuple[str, Call]] = [
            ("key", lambda: secrets.set("has space", "v")),
            ("key", lambda: secrets.set("1starts_with_digit", "v")),
            ("value", lambda: secrets.set(key, "x" * 65537)),
            ("app", lambda: secrets.set(key, "v", app="Not An App")),
            ("secret_type", lambda: secrets.set(key, "v", secret_type="API KEY")),
            ("tags", lambda: secrets.set(key, "v", tags=["bad tag"])),
            ("value", lambda: secrets.update(key)),
            ("cursor", lambda: secrets.list_secrets(cursor="not-a-cursor")),
            ("version", lambda: secrets.get_secret(key, version=0)),
        ]
        for field, call in refusals:
            with pytest.raises(ValidationError) as caught:
                await call()
            assert field in str(caught.value.details) + caught.value.message, field
        missing_calls: list[Call] = [
            lambda: secrets.get_secret(key),
            lambda: secrets.update(key, value="v"),
            lambda: secrets.delete(key),
            lambda: secrets.versions(key),
        ]
        for missing in missing_calls:
            with pytest.raises(SecretNotFoundError):
                await missing()
        await secrets.set(key, "v")
        with pytest.raises(SecretNotFoundError) as no_such_version:
            await secrets.get_secret(key, version=7)
        assert no_such_version.value.details["field"] == "version"


@pytest.mark.anyio
async def test_reading_needs_secrets_read_and_writing_secrets_write(
    server: RunningServer, admin_token: str
) -> None:
    key = unique("SCOPED_")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.secrets.set(key, "hidden")
        reader_key = await admin.api_keys.create(unique("reader"), ["secrets:read"])
        reader = await client.auth.sign_in_with_token(reader_key["key"], "api_key")
        assert await reader.get(key) == "hidden"
        with pytest.raises(AuthorizationError) as caught:
            await reader.secrets.set(key, "changed")
        assert caught.value.details["scope"] == "secrets:write"
        name = unique("member")
        await client.auth.register(name, "member-password")
        member = await client.auth.sign_in_with_password(name, "member-password")
        for refused in (
            lambda: member.secrets.get_secret(key),
            lambda: member.secrets.list_secrets(),
            lambda: member.secrets.versions(key),
        ):
            with pytest.raises(AuthorizationError) as caught:
                await refused()
            assert caught.value.details["scope"] == "secrets:read"
        with pytest.raises(AuthorizationError):
            await member.secrets.delete(key)
        assert await admin.get(key) == "hidden"


@pytest.mark.anyio
async def test_tenants_never_see_each_others_secrets(
    server: RunningServer, admin_token: str
) -> None:
    tenant, key = unique("sec"), unique("SHARED_NAME_")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.secrets.set(key, "default-tenant")
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            root = await other.auth.sign_in_with_password("root", "root-password")
            with pytest.raises(SecretNotFoundError):
                await root.secrets.get_secret(key)
            assert (await root.secrets.list_secrets(prefix=key))["results"] == []
            await root.secrets.set(key, "other-tenant")
            assert await root.get(key) == "other-tenant"
            admin_key = (await admin.api_keys.create(unique("k")))["key"]
            stolen = await other.auth.sign_in_with_token(admin_key, "api_key")
            with pytest.raises(AuthenticationError):
                await stolen.get(key)
        assert await admin.get(key) == "default-tenant"
