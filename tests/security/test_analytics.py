"""Analytics reads the tenant's own tables only, and the database itself enforces it.

The attacks of issue 11: a CTE that shadows a platform table's name, the PostgreSQL catalogs
(other tenants' schemas, column statistics, settings, live queries, password hashes), another
tenant's tables, secure tables read without a reason; and a server that runs as a PostgreSQL
superuser. Where the text checker refuses an attack, a second test turns the checker off and
shows that the database refuses it on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest

from roost import Client, ConfigurationError, SecureTableError, ValidationError
from roost.server.platform import open_platform
from roost.services import analytics
from roost.services.schema import TenantSchema
from roost.settings import load_settings
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    POSTGRES_URL,
    SERVER_PG_ROLE,
    RunningServer,
    drop_pg_schemas,
    platform_of,
    unique,
)

CTE_ATTACKS = [
    "SELECT username, password_hash FROM roost_users, "
    "(WITH roost_users AS (SELECT 1 AS x) SELECT x FROM roost_users) AS s",
    "SELECT * FROM roost_mail, (WITH roost_mail AS (SELECT 1 AS x) SELECT x FROM roost_mail) AS s",
    "SELECT sql FROM sqlite_master, "
    "(WITH sqlite_master AS (SELECT 1 AS x) SELECT x FROM sqlite_master) AS s",
    # a CTE's body does not see the CTE itself unless WITH RECURSIVE
    "WITH roost_users AS (SELECT * FROM roost_users) SELECT * FROM roost_users",
]
CATALOGS = [
    "SELECT * FROM pg_tables",
    "SELECT * FROM pg_stats",
    "SELECT * FROM pg_settings",
    "SELECT * FROM pg_stat_activity",
    "SELECT * FROM pg_shadow",
    "SELECT * FROM pg_catalog.pg_authid",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM sqlite_master",
    "SELECT * FROM sqlite_schema",
    "SELECT * FROM pg_stats, (WITH pg_stats AS (SELECT 1 AS x) SELECT x FROM pg_stats) AS s",
]


SYSTEM_SCHEMAS = {"pg_catalog", "information_schema"}


@pytest.fixture
def admin(server: RunningServer) -> Iterator[Client]:
    with Client(api_url=server.url, max_retries=0) as client:
        yield client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)


@pytest.fixture
def checker_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The text checker passes anything, so what the database does is all that stands. It
    lets the database allow every table of the tenant but the secure ones (other tests of the
    shared server make some), whose reads need a reason."""

    def anything(sql: str, dialect: str, schema: TenantSchema) -> analytics.CheckedQuery:
        readable = {name for name, table in schema.definitions.items() if not table.secure}
        return analytics.CheckedQuery(sql, [], frozenset(readable))

    monkeypatch.setattr(analytics, "check_query", anything)


def _numbers(admin: Client) -> str:
    table = unique("numbers_")
    admin.schema.add_table(table, [{"name": "n", "type": "integer"}])
    admin.database.create(table, [{"n": 1}, {"n": 2}])
    return table


def _run(admin: Client, sql: str, **kwargs: Any) -> list[dict[str, Any]]:
    name = unique("q_")
    admin.analytics.define(name, sql)
    rows: list[dict[str, Any]] = admin.analytics.execute(name, **kwargs)["data"]
    return rows


def _refused(admin: Client, sql: str) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        _run(admin, sql)
    assert caught.value.details.get("field") == "sql", sql
    return caught.value


@pytest.mark.parametrize("sql", CTE_ATTACKS)
def test_a_cte_shadows_a_table_only_within_its_own_with(admin: Client, sql: str) -> None:
    _refused(admin, sql)


def test_a_cte_still_works_where_it_is_in_scope(admin: Client) -> None:
    table = _numbers(admin)
    rows = _run(
        admin,
        f"WITH a AS (SELECT n FROM {table}), b AS (SELECT n FROM a WHERE n > 1) "
        "SELECT count(*) AS c FROM b",
    )
    assert rows == [{"c": 1}]


@pytest.mark.parametrize("sql", CATALOGS)
def test_catalogs_are_refused(admin: Client, sql: str) -> None:
    _refused(admin, sql)


@pytest.mark.usefixtures("checker_off")
def test_the_database_refuses_platform_tables_when_the_checker_is_off(
    admin: Client, server: RunningServer
) -> None:
    table = _numbers(admin)
    assert _run(admin, f"SELECT count(*) AS c FROM {table}") == [{"c": 2}]
    for sql in [
        "SELECT username, password_hash FROM roost_users",
        "SELECT * FROM roost_mail",
        "SELECT * FROM roost_user_tokens",
        f"SELECT * FROM {table}, roost_api_keys",
        *CTE_ATTACKS[:2],
    ]:
        assert "refused" in _refused(admin, sql).message
    if server.backend == "sqlite":
        for sql in [
            "SELECT * FROM sqlite_master",
            "SELECT * FROM pragma_table_info('roost_users')",
            "SELECT load_extension('/tmp/evil') AS x",
            "SELECT zeroblob(1000000000) AS x",
        ]:
            assert "refused" in _refused(admin, sql).message


@pytest.mark.usefixtures("checker_off")
def test_on_postgresql_catalogs_show_nothing_of_other_tenants_when_the_checker_is_off(
    server: RunningServer,
) -> None:
    if server.backend != "postgresql":
        pytest.skip("PostgreSQL's catalogs")
    db = platform_of(server).db
    with Client(api_url=server.url, max_retries=0) as client:
        admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        tenant_a, tenant_b = unique("a"), unique("b")
        for tenant in (tenant_a, tenant_b):
            admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
    with (
        Client(api_url=server.url, tenant=tenant_a, max_retries=0) as a_client,
        Client(api_url=server.url, tenant=tenant_b, max_retries=0) as b_client,
    ):
        a = a_client.auth.sign_in_with_password("root", "root-password")
        b = b_client.auth.sign_in_with_password("root", "root-password")
        b.schema.add_table("cards", [{"name": "number", "type": "text"}])
        b.database.create("cards", [{"number": "4111-1111"}] * 20)
        b.analytics.define("mine", "SELECT count(*) AS n FROM cards")  # B's role is set up
        assert b.analytics.execute("mine")["data"] == [{"n": 20}]
        own = _numbers(a)
        a_schema, b_schema, control = (
            db.schema_of(tenant_a),
            db.schema_of(tenant_b),
            db.schema_of("_control"),
        )
        for sql in [
            f'SELECT * FROM "{b_schema}".cards',
            f'SELECT * FROM "{b_schema}".roost_users',
            f'SELECT * FROM "{control}".roost_kv',
            "SELECT * FROM pg_shadow",
            "SELECT * FROM pg_authid",
            "SELECT pg_read_file('/etc/passwd') AS f",
            f"SELECT set_config('role', '{SERVER_PG_ROLE}', true) AS r",
            f"SELECT set_config('role', '{db.confined.role_of(tenant_b)}', true) AS r",
            "SELECT current_setting('data_directory') AS d",
            f"SELECT query_to_xml('SELECT * FROM \"{b_schema}\".cards', true, false, '') AS x",
        ]:
            message = _refused(a, sql).message
            assert "permission denied" in message or "must be superuser" in message, sql
        # what autovacuum does sooner or later: B's column values land in pg_stats
        analyzed = _as_superuser(
            f'ANALYZE "{b_schema}".cards',
            f"SELECT attname FROM pg_stats WHERE schemaname = '{b_schema}' AND tablename = 'cards'",
        )
        assert analyzed  # the statistics are there, for those allowed to see them
        stats = _run(a, "SELECT DISTINCT schemaname FROM pg_stats")
        assert {row["schemaname"] for row in stats} <= {a_schema, *SYSTEM_SCHEMAS}
        hidden = ("data_directory", "config_file", "hba_file")
        settings = _run(a, "SELECT name, setting FROM pg_settings")
        assert not {row["name"] for row in settings} & set(hidden)
        sql = "SELECT usename, query FROM pg_stat_activity"
        activity = _run(a, sql)
        others = [row for row in activity if row["query"] not in (sql, "", None)]
        assert all(row["query"] == "<insufficient privilege>" for row in others), others
        assert _run(a, f"SELECT count(*) AS n FROM {own}") == [{"n": 2}]


def test_tenant_a_cannot_name_tenant_b_tables(server: RunningServer) -> None:
    with Client(api_url=server.url, max_retries=0) as client:
        admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        tenant_a, tenant_b = unique("a"), unique("b")
        for tenant in (tenant_a, tenant_b):
            admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
    schema_b = platform_of(server).db.schema_of(tenant_b)
    with (
        Client(api_url=server.url, tenant=tenant_a, max_retries=0) as a_client,
        Client(api_url=server.url, tenant=tenant_b, max_retries=0) as b_client,
    ):
        a = a_client.auth.sign_in_with_password("root", "root-password")
        b = b_client.auth.sign_in_with_password("root", "root-password")
        b.schema.add_table("ledger", [{"name": "amount", "type": "integer"}])
        for sql in ["SELECT * FROM ledger", f'SELECT * FROM "{schema_b}".ledger']:
            _refused(a, sql)


def test_secure_table_analytics_needs_a_reason_and_is_audited(admin: Client) -> None:
    table = unique("patients_")
    admin.schema.add_table(table, [{"name": "diagnosis", "type": "text"}], secure=True)
    admin.database.create(table, {"diagnosis": "flu"}, reason="intake", actor="nurse")
    name = unique("sick_")
    admin.analytics.define(name, f"SELECT count(*) AS n FROM {table}")
    with pytest.raises(SecureTableError) as caught:
        admin.analytics.execute(name)
    assert caught.value.details["missing"] == ["reason"]
    assert "reason" in caught.value.message
    assert admin.audit.query(table, operation="analytics") == []
    assert admin.analytics.execute(name, reason="monthly report")["data"] == [{"n": 1}]
    [entry] = admin.audit.query(table, operation="analytics")
    assert (entry["actor"], entry["reason"], entry["username"]) == (
        ADMIN_USERNAME,
        "monthly report",
        ADMIN_USERNAME,
    )


def test_a_secure_table_behind_a_cte_needs_a_reason_too(admin: Client) -> None:
    table = unique("vault_")
    admin.schema.add_table(table, [{"name": "pin", "type": "text"}], secure=True)
    name = unique("hidden_")
    admin.analytics.define(name, f"WITH x AS (SELECT pin FROM {table}) SELECT * FROM x")
    with pytest.raises(SecureTableError):
        admin.analytics.execute(name)


def _as_superuser(*statements: str) -> list[Any]:
    """The rows of the last of `statements`, run by the tests' own superuser."""

    async def run() -> list[Any]:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            for statement in statements[:-1]:
                await conn.execute(statement)
            return list(await conn.fetch(statements[-1]))
        finally:
            await conn.close()

    return asyncio.run(run())


def _pg_roles(pattern: str) -> list[str]:
    rows = _as_superuser(f"SELECT rolname FROM pg_roles WHERE rolname LIKE '{pattern}'")
    return [row["rolname"] for row in rows]


def test_a_tenants_analytics_role_goes_with_the_tenant(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server("postgresql")
    db = platform_of(server).db
    tenant = unique("gone")
    with Client(api_url=server.url, max_retries=0) as client:
        admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        admin.tenants.create(tenant)
        role = db.confined.role_of(tenant)
        assert _pg_roles(role) == [role]
        admin.tenants.delete(tenant)
    assert _pg_roles(role) == []
    assert _pg_roles(SERVER_PG_ROLE) == [SERVER_PG_ROLE]


def test_the_server_refuses_to_start_as_a_postgresql_superuser(
    make_server: Callable[..., RunningServer], tmp_path: Any
) -> None:
    prefix = unique("rt")
    settings = load_settings(
        data_dir=tmp_path / "refused",
        database_url=POSTGRES_URL,
        pg_schema_prefix=prefix,
        secret_key="k" * 40,
    )

    async def start() -> None:
        async with open_platform(settings):
            pass

    with pytest.raises(ConfigurationError) as caught:
        asyncio.run(start())
    assert "ROOST_PG_ALLOW_SUPERUSER" in caught.value.message
    drop_pg_schemas(prefix)

    allowed = make_server("postgresql", database_url=POSTGRES_URL, pg_allow_superuser=True)
    with Client(api_url=allowed.url, max_retries=0) as client:
        client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
