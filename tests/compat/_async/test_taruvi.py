"""The Taruvi seed's documented examples through `roost.compat.taruvi`, as the seed writes them
with only the import changed, on SQLite and PostgreSQL (the sync tests are generated from these).

`Client(mode="async", ...)` is `AsyncTaruviClient(...)` and `Client(...)` is `TaruviClient(...)`
(tests/compat/test_taruvi_modes.py runs the factory itself). Filled in: the server's URL, the
tenant as `site_slug`, its superuser for `alice@example.com`, and the tables, buckets and
secrets an example reads. Functions run in tests/compat/test_taruvi_functions.py, on the
servers that run functions. Where an example cannot run as written the test pins what happens
instead, and docs/coming-from-taruvi.md says why.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from roost.compat._async.taruvi import AsyncTaruviClient
from roost.compat.taruvi import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    NotFoundError,
    TaruviError,
    ValidationError,
)
from tests.compat.tenants import Tenant, new_tenant
from tests.conftest import RunningServer, unique

EDITORS_VIEW_AND_EDIT = """
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: document
  version: default
  rules:
    - actions: [view, edit]
      effect: EFFECT_ALLOW
      roles: [editor]
"""


@pytest.fixture
def taruvi_env(server: RunningServer, tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> str:
    """The server and the tenant as TARUVI_API_URL / TARUVI_SITE_SLUG; answers the URL."""
    monkeypatch.setenv("TARUVI_API_URL", server.url)
    monkeypatch.setenv("TARUVI_SITE_SLUG", tenant.name)
    monkeypatch.setenv("TARUVI_USERNAME", tenant.username)
    monkeypatch.setenv("TARUVI_PASSWORD", tenant.password)
    monkeypatch.setenv("TARUVI_API_KEY", tenant.key)
    return server.url


async def signed_in(tenant: Tenant, url: str) -> AsyncTaruviClient:
    client = AsyncTaruviClient(api_url=url, app_slug="my-app", site_slug=tenant.name)
    return client.auth.signInWithToken(token=tenant.key, token_type="api_key")


async def users_table(client: AsyncTaruviClient) -> str:
    """A table of people with the columns the database examples read."""
    table = unique("people")
    await client.schema.add_table(
        table,
        [
            {"name": "email", "type": "text"},
            {"name": "name", "type": "text"},
            {"name": "age", "type": "integer"},
            {"name": "is_active", "type": "boolean", "default": True},
        ],
    )
    return table


@pytest.mark.anyio
async def test_quick_start(taruvi_env: str, tenant: Tenant) -> None:
    # Step 1: Create unauthenticated client
    client = AsyncTaruviClient(api_url=taruvi_env, app_slug="my-app", site_slug=tenant.name)

    # Step 2: Authenticate using AuthManager (not async)
    auth_client = client.auth.signInWithPassword(username=tenant.username, password=tenant.password)
    assert auth_client.is_authenticated
    assert isinstance(auth_client, AsyncTaruviClient)  # signing in keeps the Taruvi client

    table = await users_table(auth_client)
    await auth_client.database.create(table, {"email": "a@example.com", "name": "A"})
    # Query database
    users = await auth_client.database.query(table).page_size(10).get()
    assert len(users) == 1

    await auth_client.close()


@pytest.mark.anyio
async def test_complete_authentication_example(taruvi_env: str, tenant: Tenant) -> None:
    client = AsyncTaruviClient(api_url=taruvi_env, app_slug="my-app", site_slug=tenant.name)

    # Authenticate with username/password
    auth_client = client.auth.signInWithPassword(username=tenant.username, password=tenant.password)

    # Check authentication status
    assert auth_client.is_authenticated  # True
    me = await auth_client.auth.get_current_user()
    assert me["username"] == tenant.username

    # Sign out (removes authentication)
    unauth_client = auth_client.auth.signOut()
    assert not unauth_client.is_authenticated  # False
    with pytest.raises(AuthenticationError):  # the session was revoked on the server
        await auth_client.auth.get_current_user()
    await client.close()


@pytest.mark.anyio
async def test_sign_in_with_tokens(taruvi_env: str, tenant: Tenant) -> None:
    client = AsyncTaruviClient(api_url=taruvi_env, app_slug="my-app", site_slug=tenant.name)
    tokens = await client.auth.login(username=tenant.username, password=tenant.password)

    # Method 2: JWT Bearer Token
    auth_client = client.auth.signInWithToken(token=tokens["access"], token_type="jwt")
    assert (await auth_client.auth.get_current_user())["username"] == tenant.username

    # Method 3: Knox API key (a Roost API key)
    auth_client = client.auth.signInWithToken(token=tenant.key, token_type="api_key")
    assert (await auth_client.auth.get_current_user())["username"] == tenant.username

    with pytest.raises(ConfigurationError):
        client.auth.signInWithToken(token=tenant.key, token_type="knox")
    with pytest.raises(AuthenticationError):
        client.auth.signInWithPassword(username=tenant.username, password="wrong-password")
    await client.close()


@pytest.mark.anyio
async def test_environment_variables(taruvi_env: str, tenant: Tenant) -> None:
    import os

    # Create client (TARUVI_SITE_SLUG names the tenant)
    client = AsyncTaruviClient(
        api_url=os.getenv("TARUVI_API_URL"), app_slug=os.getenv("TARUVI_APP_SLUG")
    )

    # Authenticate with credentials from environment
    auth_client = client.auth.signInWithPassword(
        username=os.getenv("TARUVI_USERNAME", ""), password=os.getenv("TARUVI_PASSWORD", "")
    )
    assert (await auth_client.auth.get_current_user())["username"] == tenant.username
    assert client.config.tenant == tenant.name
    await client.close()


@pytest.mark.anyio
async def test_a_site_slug_that_names_no_tenant_is_refused(taruvi_env: str) -> None:
    for slug in ("Bad Slug", "x\x00y", "a" * 300):
        with pytest.raises(ConfigurationError) as refused:
            AsyncTaruviClient(api_url=taruvi_env, site_slug=slug)
        assert refused.value.details == {"field": "site_slug"}


@pytest.mark.anyio
async def test_database_operations(taruvi_env: str, tenant: Tenant) -> None:
    client = await signed_in(tenant, taruvi_env)
    table = await users_table(client)

    # Create single record
    new_user = await client.database.create(
        table, {"email": "alice@example.com", "name": "Alice", "age": 30}
    )
    assert isinstance(new_user, dict)
    # Create multiple records (bulk)
    new_users = await client.database.create(
        table,
        [
            {"email": "bob@example.com", "name": "Bob", "age": 17},
            {"email": "charlie@test.org", "name": "Charlie", "age": 40, "is_active": False},
        ],
    )
    assert len(new_users) == 2

    # With filtering
    active_users = await (
        client.database.query(table).filter("is_active", "eq", True).filter("age", "gte", 18).get()
    )
    assert [user["name"] for user in active_users] == ["Alice"]

    # With sorting and pagination
    users_page = await (
        client.database.query(table)
        .filter("email", "contains", "@example.com")
        .sort("created_at", "desc")
        .page_size(20)
        .page(1)
        .get()
    )
    assert {user["name"] for user in users_page} == {"Alice", "Bob"}
    ends = await client.database.query(table).filter("email", "endswith", ".org").get()
    assert [user["name"] for user in ends] == ["Charlie"]

    # Get by ID
    user = await client.database.get(table, record_id=new_user["id"])
    assert user["email"] == "alice@example.com"

    # Update single record
    updated = await client.database.update(
        table, record_id=new_user["id"], data={"name": "Alice Smith", "age": 31}
    )
    assert updated["name"] == "Alice Smith"

    # Query helpers
    first_user = await client.database.query(table).first()
    assert first_user is not None
    user_count = await client.database.query(table).filter("is_active", "eq", True).count()
    assert user_count == 2

    # Delete by ID, by IDs (bulk), by filter
    await client.database.delete(table, record_id=new_user["id"])
    await client.database.delete(table, record_ids=[new_users[0]["id"]])
    await client.database.delete(table, filters={"is_active": False})
    assert await client.database.query(table).count() == 0
    with pytest.raises(NotFoundError):
        await client.database.get(table, record_id=new_user["id"])
    await client.close()


@pytest.mark.anyio
async def test_user_management(taruvi_env: str, tenant: Tenant) -> None:
    client = await signed_in(tenant, taruvi_env)
    bob = unique("bob")

    # Create user
    new_user = await client.users.create_user(
        username=bob,
        email="bob@example.com",
        password="secret456-long",
        confirm_password="secret456-long",
        first_name="Bob",
        last_name="Smith",
        is_active=True,
        is_staff=False,
    )
    assert new_user["username"] == bob

    # List users with filters (Roost has no role filter: refused, never ignored)
    users = await client.users.list_users(search=bob, is_active=True, page=1, page_size=20)
    assert [user["username"] for user in users["items"]] == [bob]
    with pytest.raises(ValidationError) as refused:
        await client.users.list_users(search="alice", roles="admin,editor", page_size=20)
    assert refused.value.details == {"field": "roles"}

    # Get specific user
    user = await client.users.get_user(bob)
    assert user["email"] == "bob@example.com"

    # Update user
    updated = await client.users.update_user(
        username=bob, email="bob.smith@example.com", first_name="Robert"
    )
    assert updated["first_name"] == "Robert"

    # Role management, with Taruvi's ISO 8601 string for the expiry
    await client.roles.create("editor-" + bob, description="edits")
    role = "editor-" + bob
    assert await client.users.assign_roles(
        roles=[role], usernames=[bob], expires_at="2099-12-31T23:59:59Z"
    )
    assert role in await client.app.roles()
    with pytest.raises(ValidationError) as bad_date:
        await client.users.assign_roles(roles=[role], usernames=[bob], expires_at="soon")
    assert bad_date.value.details == {"field": "expires_at"}
    await client.users.revoke_roles(roles=[role], usernames=[bob])

    # Delete user
    await client.users.delete_user(bob)
    with pytest.raises(NotFoundError):
        await client.users.get_user(bob)
    await client.close()


@pytest.mark.anyio
async def test_user_apps_and_switching_tenants(
    taruvi_env: str, tenant: Tenant, server: RunningServer, admin_token: str
) -> None:
    """One person across tenants: an account in another tenant, offered by its admin and
    taken by the person signed in here, is one of their apps, switched to without a
    password (Roost's invitation calls: Taruvi makes memberships in its console)."""
    client = await signed_in(tenant, taruvi_env)
    alice = unique("alice")
    await client.users.create_user(alice, "alice-password")
    other = new_tenant(server, admin_token, "apps")
    other_admin = await signed_in(other, taruvi_env)
    await other_admin.users.create_user("alice", "alice-password")
    invitation = await other_admin.users.invite_member("alice")
    auth_client = client.auth.signInWithPassword(username=alice, password="alice-password")
    await auth_client.auth.accept_invitation(invitation["code"])

    # Get user's apps
    apps = await client.users.get_user_apps(alice)
    assert [(app["slug"], app["home"]) for app in apps] == [
        (tenant.name, True),
        (other.name, False),
    ]
    assert apps[1].get("username") is None  # an admin here does not see who she is there
    own = await auth_client.users.get_user_apps(alice)
    assert [(app["slug"], app["username"]) for app in own] == [
        (tenant.name, alice),
        (other.name, "alice"),
    ]

    # Switch tenant: a Taruvi client of the other tenant, as her account there
    there = await auth_client.auth.switch_tenant(other.name)
    assert isinstance(there, AsyncTaruviClient)
    assert (await there.auth.get_current_user())["username"] == "alice"
    with pytest.raises(AuthorizationError):  # an API key does not switch
        await client.auth.switch_tenant(other.name)
    await other_admin.close()
    await client.close()  # and the clients signing in made of it


@pytest.mark.anyio
async def test_storage(taruvi_env: str, tenant: Tenant) -> None:
    client = await signed_in(tenant, taruvi_env)
    images, backups = unique("images"), unique("backups")

    # Create bucket
    bucket = await client.storage.create_bucket(name=images, description="User uploaded images")
    assert bucket["name"] == images
    await client.storage.create_bucket(name=backups)
    # Get bucket details, update bucket
    assert (await client.storage.get_bucket(images))["description"] == "User uploaded images"
    await client.storage.update_bucket(images, {"description": "Public user images"})
    assert images in [b["name"] for b in await client.storage.list_buckets()]

    # Upload files (batch)
    uploaded = await client.storage.from_(images).upload(
        [
            {"file": io.BytesIO(b"one"), "name": "photo1.jpg"},
            {"file": io.BytesIO(b"two"), "name": "photo2.jpg"},
        ]
    )
    assert len(uploaded) == 2
    # Download file
    file_data = await client.storage.from_(images).download("photo1.jpg")
    assert file_data == b"one"
    # Copy file
    await client.storage.from_(images).copy_object(
        "photo1.jpg", destination_bucket=backups, destination_name="photo1-backup.jpg"
    )
    assert await client.storage.from_(backups).download("photo1-backup.jpg") == b"one"
    # Delete files (batch)
    await client.storage.from_(images).delete(["photo1.jpg", "photo2.jpg"])
    with pytest.raises(NotFoundError):
        await client.storage.from_(images).download("photo1.jpg")
    await client.close()


@pytest.mark.anyio
async def test_secrets(taruvi_env: str, tenant: Tenant) -> None:
    client = await signed_in(tenant, taruvi_env)
    # Taruvi creates secrets in its console; Roost's `set` is the upsert
    await client.secrets.set("API_KEY", "first", "api_key")
    await client.secrets.set("DATABASE_URL", "sqlite://")

    # Update secret value
    updated = await client.secrets.update("API_KEY", value="new_value_here")
    assert isinstance(updated, dict)

    # Get secret (simple)
    secret = await client.secrets.get_secret("API_KEY")
    assert secret["value"] == "new_value_here"

    # Batch get
    secrets = await client.secrets.get_secrets(["API_KEY", "DATABASE_URL"])
    assert set(secrets) == {"API_KEY", "DATABASE_URL"}

    # List with filters
    api_secrets = await client.secrets.list_secrets(search="API", page_size=50)
    assert "API_KEY" in [s["key"] for s in api_secrets["results"]]
    with pytest.raises(NotFoundError):
        await client.secrets.get_secret("NO_SUCH_SECRET")
    await client.close()


@pytest.mark.anyio
async def test_policy_checks_answer_the_seeds_shapes(taruvi_env: str, tenant: Tenant) -> None:
    """The seed's policy examples, first with no policy for `document` in this tenant (every
    action denied, in the seed's shapes), then with one where editors view and edit: the
    answers the seed documents."""
    client = await signed_in(tenant, taruvi_env)
    principal: dict[str, Any] = {"id": "user123", "roles": ["editor", "reviewer"]}
    resource = {"kind": "document", "id": "doc1", "attr": {"owner": "user123", "status": "draft"}}
    result = await client.policy.check_resources(
        principal=principal, resources=[resource], actions=["view", "edit", "delete"]
    )
    assert result == {"doc1": {"view": False, "edit": False, "delete": False}}
    assert await client.policy.filter_allowed(principal, [resource], ["edit"]) == []
    await client.policies.put([EDITORS_VIEW_AND_EDIT])

    # Check if user can perform actions on resources
    result = await client.policy.check_resources(
        principal={"id": "user123", "roles": ["editor", "reviewer"]},
        resources=[
            {"kind": "document", "id": "doc1", "attr": {"owner": "user123", "status": "draft"}}
        ],
        actions=["view", "edit", "delete"],
    )
    # Returns: {"doc1": {"view": True, "edit": True, "delete": False}}
    assert result == {"doc1": {"view": True, "edit": True, "delete": False}}

    # Get only resources where specific actions are allowed
    allowed = await client.policy.filter_allowed(
        principal={"id": "user123", "roles": ["editor"]},
        resources=[resource, {"kind": "document", "id": "doc2", "attr": {}}],
        actions=["edit"],
    )
    assert [r["id"] for r in allowed] == ["doc1", "doc2"]
    assert (
        await client.policy.filter_allowed({"id": "u", "roles": ["reader"]}, [resource], ["edit"])
        == []
    )

    # Get all actions user can perform on a resource
    actions = await client.policy.get_allowed_actions(
        principal={"id": "user123", "roles": ["editor"]},
        resource={"kind": "document", "id": "doc1", "attr": {"owner": "user123"}},
        actions=["view", "edit", "delete", "publish"],
    )
    # Returns: ["view", "edit"]
    assert actions == ["view", "edit"]
    await client.close()


@pytest.mark.anyio
async def test_app_roles_and_site_settings(taruvi_env: str, tenant: Tenant) -> None:
    client = await signed_in(tenant, taruvi_env)
    roles = await client.app.roles()
    assert all(isinstance(role, str) for role in roles)
    settings = await client.settings.get()
    assert isinstance(settings, dict)
    await client.close()


@pytest.mark.anyio
async def test_error_handling(taruvi_env: str, tenant: Tenant) -> None:
    client = await signed_in(tenant, taruvi_env)
    table = await users_table(client)
    caught = []
    try:
        await client.database.get(table, record_id=123)
    except ValidationError as e:
        caught.append(f"Invalid: {e}")
    except NotFoundError as e:
        caught.append(f"Not found: {e}")
    except TaruviError as e:
        caught.append(f"Error: {e.message}")
    assert caught[0].startswith("Not found")
    await client.close()
