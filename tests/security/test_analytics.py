"""Analytics reads the tenant's own tables only, and the database itself enforces it.

The attacks of issue 11: a CTE that shadows a platform table's name, the PostgreSQL catalogs
(other tenants' schemas, column statistics, settings, live queries, password hashes), another
tenant's tables, secure tables read without a reason; and a server that runs as a PostgreSQL
superuser. And of the second round: a quoted CTE name that PostgreSQL does not fold hiding a
secure table, functions called as `(expr).name`, casts to catalog types, one tenant's
queries taking every turn, results of many megabytes, a time limit armed too early. Where the text checker refuses an attack, a second test turns the checker off and
shows that the database refuses it on its own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest

from roost import (
    Client,
    ConfigurationError,
    PayloadTooLargeError,
    SecureTableError,
    ServiceUnavailableError,
    ValidationError,
)
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
        roles = [db.confined.role_of(tenant, secure=secure) for secure in (False, True)]
        assert [_pg_roles(role) for role in roles] == [[role] for role in roles]
        admin.tenants.delete(tenant)
    assert [_pg_roles(role) for role in roles] == [[], []]
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


# -- second round ----------------------------------------------------------------------------


def _secure_table(admin: Client) -> str:
    table = unique("secret_")
    admin.schema.add_table(table, [{"name": "ssn", "type": "text"}], secure=True)
    admin.database.create(table, {"ssn": "123-45-6789"}, reason="setup", actor="admin")
    return table


def test_a_quoted_cte_name_does_not_hide_a_secure_table_on_postgresql(
    admin: Client, server: RunningServer
) -> None:
    if server.backend != "postgresql":
        pytest.skip("PostgreSQL folds unquoted names to lower case; SQLite ignores case")
    table = _secure_table(admin)
    name = unique("case_")
    shout = table.upper()
    admin.analytics.define(name, f'WITH "{shout}" AS (SELECT 1 AS a) SELECT ssn FROM {shout}')
    with pytest.raises(SecureTableError):
        admin.analytics.execute(name)
    assert admin.audit.query(table, operation="analytics") == []
    assert admin.analytics.execute(name, reason="ticket 1")["data"] == [{"ssn": "123-45-6789"}]
    assert len(admin.audit.query(table, operation="analytics")) == 1


@pytest.mark.usefixtures("checker_off")
def test_on_postgresql_only_the_secure_role_reads_secure_tables(
    admin: Client, server: RunningServer
) -> None:
    if server.backend != "postgresql":
        pytest.skip("PostgreSQL's roles")
    db = platform_of(server).db
    secret = _secure_table(admin)
    plain = _numbers(admin)
    assert _run(admin, f"SELECT count(*) AS c FROM {plain}") == [{"c": 2}]  # roles set up
    assert "permission denied" in _refused(admin, f"SELECT ssn FROM {secret}").message
    # a table made secure loses the plain role's SELECT, and gets it back when it is not
    admin.schema.set_secure(plain, True)
    assert "permission denied" in _refused(admin, f"SELECT n FROM {plain}").message
    admin.schema.set_secure(plain, False)
    assert _run(admin, f"SELECT count(*) AS c FROM {plain}") == [{"c": 2}]
    # a grant that slipped through is taken back by the next read
    schema, role = db.schema_of("default"), db.confined.role_of("default")
    _as_superuser(f'GRANT SELECT ON "{schema}"."{secret}" TO "{role}"', "SELECT 1")
    assert _run(admin, f"SELECT count(*) AS c FROM {plain}") == [{"c": 2}]
    assert "permission denied" in _refused(admin, f"SELECT ssn FROM {secret}").message


FIELD_ACCESS_AND_CASTS = [
    "SELECT (CAST('server_version' AS text)).current_setting AS v",
    "SELECT (CAST('SELECT usename FROM pg_user' AS text)).ts_stat AS v",
    "SELECT (CAST(42 AS bigint)).pg_advisory_xact_lock AS v",
    "SELECT (CAST(5 AS float8)).pg_sleep AS v",
    "SELECT ('data_directory').current_setting AS v",
    "SELECT CAST(2200 AS regnamespace) AS v",
    "SELECT CAST('pg_authid' AS regclass) AS v",
    "SELECT CAST(1 AS oid) AS v",
    "SELECT 'roost_test'::regrole AS v",
]


@pytest.mark.parametrize("sql", FIELD_ACCESS_AND_CASTS)
def test_field_access_and_catalog_casts_are_refused(admin: Client, sql: str) -> None:
    _refused(admin, sql)


def test_casts_to_value_types_still_work(admin: Client) -> None:
    table = _numbers(admin)
    rows = _run(
        admin,
        f"SELECT CAST(n AS text) AS t, CAST(n AS bigint) + 1 AS b, t0.n AS n "
        f"FROM {table} AS t0 WHERE n = 2",
    )
    assert rows == [{"t": "2", "b": 3, "n": 2}]


DOUBLING = (
    "WITH RECURSIVE r(s, n) AS (SELECT 'x', 0 UNION ALL SELECT s || s, n + 1 FROM r "
    "WHERE n < 20) SELECT s FROM r WHERE n >= 19"
)
MANY_ROWS = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5000) "
    "SELECT n, 'padding padding padding padding padding padding' AS p FROM r"
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_result_past_its_byte_limit_is_refused_with_413(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    server = make_server(backend, analytics_max_result_bytes=65536)
    with Client(api_url=server.url, max_retries=0) as client:
        admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        for sql, limit in [(DOUBLING, 100), (MANY_ROWS, 10000)]:
            with pytest.raises(PayloadTooLargeError) as caught:
                _run(admin, sql, limit=limit)
            assert "analytics_max_result_bytes" in caught.value.message
        assert len(_run(admin, MANY_ROWS, limit=100)) == 100  # a narrower read answers


ENDLESS = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_one_tenants_slow_queries_take_one_turn_and_leave_the_others_theirs(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    server = make_server(
        backend, analytics_time_limit=3, analytics_max_concurrent=2, analytics_max_per_tenant=1
    )
    confined = platform_of(server).db.confined
    with Client(api_url=server.url, max_retries=0) as client:
        admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        other = unique("calm")
        admin.tenants.create(other, admin_username="root", admin_password="root-password")
        admin.analytics.define("endless", ENDLESS)
    outcomes: list[BaseException | None] = []

    def slow() -> None:
        with Client(api_url=server.url, max_retries=0) as client:
            signed_in = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
            try:
                signed_in.analytics.execute("endless")
                outcomes.append(None)
            except ServiceUnavailableError as exc:
                outcomes.append(exc)

    workers = [threading.Thread(target=slow) for _ in range(3)]
    for worker in workers:
        worker.start()
    with Client(api_url=server.url, tenant=other, max_retries=0) as client:
        calm = client.auth.sign_in_with_password("root", "root-password")
        table = _numbers(calm)
        while not any(confined.running.values()):  # the slow ones hold their turn
            threading.Event().wait(0.01)
        # the other tenant still gets a turn of its own while they run or wait
        assert _run(calm, f"SELECT count(*) AS c FROM {table}") == [{"c": 2}]
        assert calm.database.query(table).count() == 2
    for worker in workers:
        worker.join()
    assert len(outcomes) == 3
    assert all(outcome is not None for outcome in outcomes)
    assert max(confined.most_running.values()) == 1  # never two of one tenant at once


def test_a_tiny_time_limit_stops_a_sqlite_query_that_has_not_started(
    make_server: Callable[..., RunningServer],
) -> None:
    server = make_server("sqlite", analytics_time_limit=0.001)
    with Client(api_url=server.url, max_retries=0) as client:
        admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        admin.analytics.define("endless", ENDLESS)
        for _ in range(3):
            with pytest.raises(ServiceUnavailableError):
                admin.analytics.execute("endless")
