"""The CB Dominus seed's documented examples through `roost.compat.dominus`, as the seed
writes them with only the import changed, on SQLite and PostgreSQL (the sync tests are
generated from these, with `Dominus` for the seed's async-only `dominus`).

Filled in: real values for the examples' placeholders ("your-psk-token", "uuid",
"tenant-uuid", "tenant_acme", "reset-token", ...), the data a call needs first (tables, a
bucket, pages), and annotations that `mypy --strict` wants. Where an example cannot run as
written the test pins what happens instead, and docs/coming-from-dominus.md says why.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from roost import Client, NotAuthenticatedError
from roost.compat._async.dominus import dominus
from roost.compat.dominus import (
    AuthenticationError,
    AuthorizationError,
    DominusError,
    NotFoundError,
    SecureTableError,
    ValidationError,
)
from tests.compat.tenants import Tenant, new_tenant
from tests.conftest import RunningServer, unique
from tests.inbox import mail_inbox

COLUMNS = {
    "users": ["email", "name", "status", "role"],
    "events": ["type", "user_id"],
    "patients": ["name", "notes"],
}


@pytest.fixture(scope="module")
def dominus_tenant(server: RunningServer, tenant: Tenant) -> Tenant:
    """The module's tenant with what the examples take as given: their tables, the bucket
    `reports`, secrets, pages and the category `healthcare`."""
    with Client(
        api_url=server.url, tenant=tenant.name, token=tenant.key, token_type="api_key"
    ) as root:
        for table, columns in COLUMNS.items():
            root.schema.add_table(
                table,
                [{"name": name, "type": "text"} for name in columns],
                secure=table == "patients",
            )
        root.storage.create_bucket("reports")
        for key in ("DATABASE_URL", "API_KEY", "DB_HOST", "OLD_KEY"):
            root.secrets.set(key, f"value of {key}")
        root.pages.create("/dashboard", "Dashboard")
        root.pages.create("/dashboard/admin", "Admin", "/dashboard", ["users:write"])
        root.pages.create("/dashboard/admin/users", "Users", "/dashboard/admin")
    return tenant


@pytest.fixture(autouse=True)
async def dominus_settings(
    server: RunningServer, dominus_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    """DOMINUS_TOKEN names the tenant's superuser's API key; the module-level `dominus` is
    closed after each test, so that the next reads the environment again."""
    monkeypatch.setenv("DOMINUS_TOKEN", dominus_tenant.key)
    monkeypatch.setenv("ROOST_API_URL", server.url)
    yield
    await dominus.close()


@pytest.mark.anyio
async def test_quick_start(dominus_tenant: Tenant) -> None:
    # Set your token (or use DOMINUS_TOKEN environment variable)
    os.environ["DOMINUS_TOKEN"] = dominus_tenant.key
    data = b"%PDF-1.4 quarterly figures"
    seen: dict[str, Any] = {}

    async def main() -> None:
        # Secrets
        db_url = await dominus.get("DATABASE_URL")

        # Database queries
        users = await dominus.db.query("users", filters={"status": "active"})

        # Redis caching
        await dominus.redis.set("session:123", {"user": "john"}, ttl=3600)

        # File storage
        result = await dominus.files.upload(data, "report.pdf", category="reports")

        # Structured logging
        await dominus.logs.info("User logged in", {"user_id": "123"})
        seen.update(db_url=db_url, users=users, result=result)

    await main()
    assert seen["db_url"] == "value of DATABASE_URL"
    assert seen["users"]["rows"] == []
    assert seen["result"]["id"]
    assert await dominus.redis.get("session:123") == {"user": "john"}


@pytest.mark.anyio
async def test_secrets_management() -> None:
    # Root-level shortcuts
    value = await dominus.get("API_KEY")
    await dominus.upsert("API_KEY", "new-value", comment="Updated API key")

    # Full namespace
    secrets = await dominus.secrets.list(prefix="DB_")
    await dominus.secrets.delete("OLD_KEY")

    assert value == "value of API_KEY"
    assert await dominus.secrets.get("API_KEY") == "new-value"
    assert [s["key"] for s in secrets["results"]] == ["DB_HOST"]
    with pytest.raises(NotFoundError):
        await dominus.get("OLD_KEY")


@pytest.mark.anyio
async def test_database_operations(dominus_tenant: Tenant) -> None:
    # List tables
    tables = await dominus.db.tables()
    tenant_tables = await dominus.db.tables(schema=f"tenant_{dominus_tenant.name}")
    assert {"users", "events", "patients"} <= {t["name"] for t in tables}
    assert tenant_tables == tables

    await dominus.db.bulk_insert(
        "users",
        [
            {"email": "ann@example.com", "status": "active", "role": "admin"},
            {"email": "bob@example.com", "status": "active", "role": "manager"},
            {"email": "cy@example.com", "status": "active", "role": "guest"},
            {"email": "di@example.com", "status": "inactive", "role": "admin"},
        ],
    )
    # Query with filters and pagination
    users = await dominus.db.query(
        "users",
        filters={"status": "active", "role": ["admin", "manager"]},
        sort_by="created_at",
        sort_order="desc",
        limit=50,
        offset=0,
    )
    assert sorted(u["email"] for u in users["rows"]) == ["ann@example.com", "bob@example.com"]
    assert users["total"] == 2

    # Insert
    user = await dominus.db.insert("users", {"email": "john@example.com", "name": "John Doe"})
    user_id = user["id"]

    # Update
    await dominus.db.update("users", {"status": "inactive"}, filters={"id": user_id})
    changed = await dominus.db.query("users", filters={"id": user_id})
    assert changed["rows"][0]["status"] == "inactive"

    # Delete
    await dominus.db.delete("users", filters={"id": user_id})

    # Bulk insert
    await dominus.db.bulk_insert(
        "events", [{"type": "login", "user_id": "123"}, {"type": "login", "user_id": "456"}]
    )
    assert (await dominus.db.query("events"))["total"] == 2
    assert (await dominus.db.query("users", filters={"id": user_id}))["rows"] == []


@pytest.mark.anyio
async def test_secure_table_access(dominus_tenant: Tenant) -> None:
    await dominus.db.insert("patients", {"name": "Pat"}, reason="admission", actor="nurse.jones")
    # Secure table access (requires audit reason)
    patients = await dominus.db.query(
        "patients",
        schema=f"tenant_{dominus_tenant.name}",
        reason="Reviewing records for appointment #123",
        actor="dr.smith",
    )
    assert [p["name"] for p in patients["rows"]] == ["Pat"]
    with pytest.raises(SecureTableError):
        await dominus.db.query("patients")
    with pytest.raises(AuthenticationError):  # a credential reads its own tenant only
        await dominus.db.query("patients", schema="tenant_other", reason="r", actor="a")
    with pytest.raises(ValidationError):  # refused before it reaches a header
        await dominus.db.tables(schema="tenant_acme\r\nX-Roost-Tenant: default")


@pytest.mark.anyio
async def test_redis_caching() -> None:
    # Key-value operations (TTL: min 60s, max 24h)
    await dominus.redis.set("user:123", {"name": "John"}, ttl=3600)
    value = await dominus.redis.get("user:123")
    await dominus.redis.delete("user:123")
    assert value == {"name": "John"}
    assert await dominus.redis.get("user:123") is None

    # Distributed locks
    worked: list[str] = []
    if await dominus.redis.setnx("lock:job", "worker-1", ttl=60):
        try:
            # Do exclusive work
            assert not await dominus.redis.setnx("lock:job", "worker-2", ttl=60)
            worked.append("worker-1")
        finally:
            await dominus.redis.delete("lock:job")
    assert worked == ["worker-1"]

    # Counters
    await dominus.redis.incr("page:views", delta=1)
    assert await dominus.redis.incr("page:views", delta=2) == 3

    # Hash operations
    await dominus.redis.hset("user:123", "email", "john@example.com", ttl=3600)
    email = await dominus.redis.hget("user:123", "email")
    assert email == "john@example.com"


@pytest.mark.anyio
async def test_file_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("report.pdf").write_bytes(b"%PDF-1.4 annual report")  # noqa: ASYNC240 - setup
    # Upload file
    with open("report.pdf", "rb") as f:  # noqa: ASYNC230 - the seed's own example
        result = await dominus.files.upload(
            data=f.read(), filename="report.pdf", category="reports"
        )

    # Get download URL
    download = await dominus.files.download(file_id=result["id"])
    url = download["download_url"]

    # List files
    files = await dominus.files.list(category="reports", prefix="2025/")

    # Delete file
    await dominus.files.delete(file_id=result["id"])

    assert url.startswith("http")
    assert files == []
    with pytest.raises(NotFoundError):
        await dominus.files.download(file_id=result["id"])


@pytest.mark.anyio
async def test_structured_logging() -> None:
    def risky_operation() -> None:
        raise RuntimeError("the payment provider hung up")

    # Simple logging (auto-captures file and function)
    await dominus.logs.info("User logged in", {"user_id": "123"})
    await dominus.logs.error("Payment failed", {"order_id": "456"})

    # All log levels
    await dominus.logs.debug("Debug message", {"data": "..."})
    await dominus.logs.notice("Important notice", {})
    await dominus.logs.warn("Warning message", {})
    await dominus.logs.critical("Critical error", {})

    # With category
    await dominus.logs.info("Cache hit", {"key": "user:123"}, category="cache")

    # With exception context
    try:
        risky_operation()
    except Exception as e:
        await dominus.logs.error("Operation failed", {}, exception=e)

    # Batch logging
    await dominus.logs.batch(
        [
            {"level": "info", "message": "Step 1 complete", "data": {}},
            {"level": "info", "message": "Step 2 complete", "data": {}},
        ]
    )

    # Query logs
    errors = await dominus.logs.query(level="error", limit=100)
    messages = [entry["message"] for entry in errors["entries"]]
    assert {"Payment failed", "Operation failed", "Critical error"} <= set(messages)
    failed = next(e for e in errors["entries"] if e["message"] == "Operation failed")
    assert "the payment provider hung up" in failed["exception"]
    assert failed["source"]["function"] == "test_structured_logging"  # the caller's frame


@pytest.mark.anyio
async def test_guardian_users_roles_scopes_and_tokens() -> None:
    # User management
    new_user = await dominus.auth.add_user(
        username="john", password="secure-password", email="john@example.com"
    )
    users = await dominus.auth.list_users()
    user = await dominus.auth.get_user(user_id=new_user["id"])
    assert user["username"] == "john"
    assert "john" in [u["username"] for u in users["items"]]

    await dominus.auth.update_user(user["id"], status="inactive")
    assert (await dominus.auth.get_user(user["id"]))["is_active"] is False
    await dominus.auth.update_user(user["id"], status="active")
    with pytest.raises(ValidationError):
        await dominus.auth.update_user(user["id"], status="suspended")

    # Role management
    roles = await dominus.auth.list_roles()
    with pytest.raises(ValidationError):  # role names are lowercase; scopes `module:action`
        await dominus.auth.add_role(name="Editor", scope_slugs=["read", "write", "publish"])
    role = await dominus.auth.add_role(name="editor", scope_slugs=["database:read", "logs:write"])
    assert "admin" in [r["name"] for r in roles]
    assert role["scopes"] == ["database:read", "logs:write"]

    # Scope management
    scopes = await dominus.auth.list_scopes()
    assert "database:read" in [s["name"] for s in scopes]

    # JWT operations
    jwt = await dominus.auth.mint_jwt(user_id=user["id"], expires_in=900)
    token = jwt["access"]
    claims = await dominus.auth.validate_jwt(token)
    assert (claims["sub"], claims["user_id"]) == (user["id"], user["id"])
    with pytest.raises(AuthenticationError):  # a dict of claims only for a valid token
        await dominus.auth.validate_jwt(token + "x")

    await dominus.auth.delete_user(user["id"])
    with pytest.raises(NotFoundError):
        await dominus.auth.get_user(user["id"])


@pytest.mark.anyio
async def test_guardian_tenants_and_provisioning(
    platform_api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOMINUS_TOKEN", platform_api_key)  # tenants are the platform's
    categories_before = await dominus.auth.list_tenant_categories()
    if "healthcare" not in [c["name"] for c in categories_before]:
        await dominus.native.tenants.create_category(
            "healthcare", [{"name": "patients", "columns": [{"name": "name", "type": "text"}]}]
        )
    slug = unique("customer_")

    # Provision tenant schema from category template
    await dominus.ddl.provision_tenant(slug, category_slug="healthcare")

    # Tenant management
    tenants = await dominus.auth.list_tenants()
    categories = await dominus.auth.list_tenant_categories()
    assert slug.replace("_", "-") in [t["name"] for t in tenants]
    assert "healthcare" in [c["name"] for c in categories]


@pytest.mark.anyio
async def test_schema_management() -> None:
    # Create table
    await dominus.ddl.add_table(
        "orders",
        [
            {"name": "id", "type": "UUID", "constraints": ["PRIMARY KEY"]},
            {"name": "user_id", "type": "UUID", "constraints": ["NOT NULL"]},
            {"name": "total", "type": "DECIMAL(10,2)"},
            {"name": "created_at", "type": "TIMESTAMPTZ", "default": "NOW()"},
        ],
    )

    # Add column
    await dominus.ddl.add_column("orders", "status", "VARCHAR(50)", default="'pending'")

    order = await dominus.db.insert(
        "orders",
        {
            "id": "7b1f8a54-52c3-4d63-a3f4-1f0c1c5c9d10",
            "user_id": "0c6c1f4e-1a8e-4b0f-9b8e-6b1f5d9a4c21",
        },
    )
    assert order["status"] == "pending"


@pytest.mark.anyio
async def test_portal_user_authentication(server: RunningServer, dominus_tenant: Tenant) -> None:
    email = "jo@example.com"
    await dominus.native.users.create_user("jo", "secret123", email=email)

    # Client login with PSK (for service-to-service)
    client_session = await dominus.portal.login_client(psk=dominus_tenant.key)
    assert client_session["kind"] == "api_key"
    await dominus.portal.logout()

    # User login (tenant_id is optional)
    session = await dominus.portal.login(
        username=email,
        password="secret123",
        tenant_id=dominus_tenant.name,  # optional
    )
    assert (session["username"], session["tenant"]) == ("jo", dominus_tenant.name)

    # Get current user
    me = await dominus.portal.me()
    assert me["email"] == email

    # Get navigation (access-filtered for current user)
    nav = await dominus.portal.get_navigation()
    assert [page["path"] for page in nav] == ["/dashboard"]
    assert nav[0]["children"] == []  # /dashboard/admin needs users:write

    # Check page access
    has_access = await dominus.portal.check_page_access("/dashboard/admin/users")
    assert has_access is False
    assert await dominus.portal.check_page_access("/dashboard") is True

    # Profile & preferences
    profile = await dominus.portal.get_profile()
    updated = await dominus.portal.update_profile(display_name="John Doe")
    assert profile["display_name"] == ""
    assert (updated["display_name"], updated["first_name"], updated["last_name"]) == (
        "John Doe",
        "John",
        "Doe",
    )

    prefs = await dominus.portal.get_preferences()
    await dominus.portal.update_preferences(theme="dark", timezone="America/New_York")
    assert prefs == {}
    assert await dominus.portal.get_preferences() == {
        "theme": "dark",
        "timezone": "America/New_York",
    }

    # Session management
    second = await dominus.portal.login(username="jo", password="secret123")
    sessions = await dominus.portal.list_sessions()
    assert second["session_id"] in [s["id"] for s in sessions]
    others = [s["id"] for s in sessions if not s["current"]]
    await dominus.portal.revoke_session(others[0])
    assert len(await dominus.portal.list_sessions()) == len(sessions) - 1

    # Password management
    await dominus.portal.change_password("secret123", "new-password")
    with mail_inbox(server) as inbox:
        await dominus.portal.request_password_reset(email)
        reset_token = inbox.token(email, "rpr")
    await dominus.portal.confirm_password_reset(reset_token, "newer-password")
    with pytest.raises(AuthenticationError):  # a reset signs every session out
        await dominus.portal.me()
    await dominus.portal.login(username="jo", password="newer-password")
    await dominus.portal.revoke_all_sessions()
    with pytest.raises(AuthenticationError):
        await dominus.portal.me()

    # Registration & email verification
    with mail_inbox(server) as inbox:
        await dominus.portal.register("newuser", "new@example.com", "password", dominus_tenant.name)
        verification_token = inbox.token("new@example.com", "rev")
    await dominus.portal.verify_email(verification_token)
    await dominus.portal.resend_verification("new@example.com")

    # Logout
    await dominus.portal.logout()
    assert (await dominus.portal.me())["username"] == "root"  # the PSK's owner again


@pytest.mark.anyio
async def test_portal_switch_tenant(
    server: RunningServer, dominus_tenant: Tenant, admin_token: str
) -> None:
    """The seed's `switch_tenant`, for a user who is a member of the other tenant: its admin
    offered the account there and the user took it signed in here (Roost's invitation calls,
    which Dominus does elsewhere)."""
    await dominus.native.users.create_user("kim", "secret123")
    other = new_tenant(server, admin_token, "other")
    with Client(
        api_url=server.url, tenant=other.name, token=other.key, token_type="api_key"
    ) as other_root:  # setting up, as the module's fixture does
        other_root.users.create_user("kim-there", "secret123")
        invitation = other_root.users.invite_member("kim-there")
    session = await dominus.portal.login(
        username="kim", password="secret123", tenant_id=dominus_tenant.name
    )
    with pytest.raises(AuthorizationError):  # not a member there yet
        await dominus.portal.switch_tenant(other.name)
    with Client(api_url=server.url, tenant=dominus_tenant.name) as anonymous:
        kim = anonymous.auth.sign_in_with_password("kim", "secret123")
        kim.auth.accept_invitation(invitation["code"])

    # Switch tenant
    await dominus.portal.switch_tenant(other.name)
    me = await dominus.portal.me()
    assert me["username"] == "kim-there"
    switched = await dominus.portal.switch_tenant(dominus_tenant.name)  # and back
    assert (switched["username"], switched["session_id"]) == ("kim", session["session_id"])
    await dominus.portal.logout()
    with pytest.raises(NotAuthenticatedError):
        await dominus.portal.switch_tenant(other.name)


@pytest.mark.anyio
async def test_courier_email_delivery() -> None:
    # Send email via Postmark template
    result = await dominus.courier.send(
        template_alias="welcome",
        to="user@example.com",
        from_email="noreply@myapp.com",
        model={"name": "John", "product_name": "My App"},
    )
    assert result["status"] == "outbox"

    # Convenience methods
    await dominus.courier.send_welcome(
        to="user@example.com",
        from_email="noreply@myapp.com",
        name="John",
        action_url="https://myapp.com/start",
        product_name="My App",
    )

    await dominus.courier.send_password_reset(
        to="user@example.com",
        from_email="noreply@myapp.com",
        name="John",
        reset_url="https://myapp.com/reset?token=abc",
        product_name="My App",
    )

    await dominus.courier.send_email_verification(
        to="user@example.com",
        from_email="noreply@myapp.com",
        name="John",
        verify_url="https://myapp.com/verify?token=xyz",
        product_name="My App",
    )

    await dominus.courier.send_invitation(
        to="invited@example.com",
        from_email="noreply@myapp.com",
        name="Invited User",
        invite_url="https://myapp.com/invite?token=abc",
        inviter_name="John",
        product_name="My App",
    )

    sent = await dominus.native.mail.outbox(limit=5)
    assert [m["subject"] for m in sent] == [
        "John invited you",
        "Confirm your email address",
        "Reset your password",
        "Welcome, John",
        "Welcome, John",
    ]
    assert "https://myapp.com/reset?token=abc" in sent[2]["text"]
    assert sent[0]["sender"] == "noreply@myapp.com"


@pytest.mark.anyio
async def test_health_check() -> None:
    # Basic health check
    status = await dominus.health.check()
    assert status
    assert status.status == "ok"


@pytest.mark.anyio
async def test_error_handling(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        user = await dominus.auth.get_user(user_id="invalid")
        print(user)
    except NotFoundError as e:
        print(f"User not found: {e.message}")
    except SecureTableError:
        print("Secure table requires 'reason' and 'actor' parameters")
    except AuthenticationError:
        print("Invalid or expired token")
    except AuthorizationError:
        print("Insufficient permissions")
    except ValidationError as e:
        print(f"Invalid request: {e.message}")
    except TimeoutError:
        print("Request timed out")
    except DominusError as e:
        print(f"Error {e.status_code}: {e.message}")
        if e.details:
            print(f"Details: {e.details}")
    assert capsys.readouterr().out == "User not found: no user with id 'invalid'\n"


@pytest.mark.anyio
async def test_pagination_pattern() -> None:
    await dominus.db.bulk_insert("events", [{"type": "page", "user_id": str(n)} for n in range(7)])

    async def get_all_users(page_size: int = 100) -> list[dict[str, Any]]:
        offset = 0
        all_users: list[dict[str, Any]] = []
        while True:
            result = await dominus.db.query("events", limit=page_size, offset=offset)
            rows = result.get("rows", [])
            all_users.extend(rows)
            if len(rows) < page_size:
                break
            offset += page_size
        return all_users

    everything = await get_all_users(page_size=3)
    assert len(everything) == (await dominus.db.query("events"))["total"]
