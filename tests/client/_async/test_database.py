"""The database capability through the SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    SecureTableError,
    ValidationError,
)
from tests.conftest import ADMIN_USERNAME, RunningServer, unique

PRODUCT_COLUMNS: list[dict[str, Any]] = [
    {"name": "sku", "type": "varchar(20)", "constraints": ["NOT NULL", "UNIQUE"]},
    {"name": "name", "type": "text"},
    {"name": "price", "type": "DECIMAL(10,2)", "constraints": ["CHECK (price >= 0)"]},
    {"name": "stock", "type": "integer", "default": 0},
    {"name": "active", "type": "boolean", "default": True},
    {"name": "released", "type": "date"},
    {"name": "tags", "type": "json"},
]


async def _products(admin: AsyncClient) -> str:
    table = unique("products_")
    await admin.schema.add_table(table, PRODUCT_COLUMNS)
    await admin.database.create(
        table,
        [
            {
                "sku": "A1",
                "name": "Apple",
                "price": "1.50",
                "stock": 10,
                "released": "2026-01-05",
                "tags": ["fruit"],
            },
            {"sku": "B2", "name": "banana", "price": 0.25, "stock": 0, "active": False},
            {"sku": "C3", "name": "Cherry pie", "price": "12.00", "stock": 3},
            {"sku": "D4", "name": None, "price": "7.10", "stock": 7},
        ],
    )
    return table


@pytest.mark.anyio
async def test_tables_get_id_timestamps_and_describe_shows_constraints(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = await _products(admin)
        info = await admin.database.describe(table)
        columns = {c["name"]: c for c in info["columns"]}
        assert list(columns)[:2] == ["id", "sku"]
        assert {"created_at", "updated_at"} <= set(columns)
        assert columns["sku"]["unique"]
        assert not columns["sku"]["nullable"]
        assert columns["price"]["type"] == "decimal(10,2)"
        assert columns["price"]["check"] == '"price" >= 0'
        assert table in [t["name"] for t in await admin.database.tables()]


@pytest.mark.anyio
async def test_records_round_trip_with_types(server: RunningServer, admin_token: str) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = await _products(admin)
        apple = await admin.database.query(table).filter("sku", "eq", "A1").first()
        assert apple is not None
        assert (apple["price"], apple["released"], apple["tags"], apple["active"]) == (
            "1.50",
            "2026-01-05",
            ["fruit"],
            True,
        )
        same = await admin.database.get(table, record_id=apple["id"])
        assert same == apple
        updated = await admin.database.update(table, record_id=apple["id"], data={"stock": 11})
        assert updated["stock"] == 11
        assert updated["updated_at"] >= apple["updated_at"]
        many = await admin.database.update(table, data=[{"id": apple["id"], "name": "Green apple"}])
        assert many[0]["name"] == "Green apple"
        by_filter = await admin.database.update(table, {"active": True}, filters={"active": False})
        assert [r["sku"] for r in by_filter] == ["B2"]
        assert await admin.database.delete(table, record_id=apple["id"]) == 1
        with pytest.raises(NotFoundError):
            await admin.database.get(table, record_id=apple["id"])
        assert await admin.database.delete(table, filters=[["stock", "lt", 5]]) == 2
        with pytest.raises(ValidationError):
            await admin.database.delete(table)
        assert await admin.database.delete(table, all=True) == 1


@pytest.mark.anyio
async def test_get_reads_every_type_as_query_does(server: RunningServer, admin_token: str) -> None:
    """database.get answers a row exactly as database.query does, whatever its columns' types
    (a UUID key, bytes, times with and without a zone, JSON, booleans), all of them or those
    selected, and sees a write the moment it is answered."""
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = unique("typed_")
        columns: list[dict[str, Any]] = [
            {"name": "id", "type": "uuid", "constraints": ["PRIMARY KEY"], "default": "uuid()"},
            {"name": "big", "type": "bigint"},
            {"name": "price", "type": "decimal(8,3)"},
            {"name": "flag", "type": "boolean"},
            {"name": "at", "type": "timestamp"},
            {"name": "at_tz", "type": "timestamptz"},
            {"name": "day", "type": "date"},
            {"name": "other", "type": "uuid"},
            {"name": "doc", "type": "json"},
            {"name": "raw", "type": "bytes"},
        ]
        await admin.schema.add_table(table, columns)
        given = {
            "big": 2**62,
            "price": "12.345",
            "flag": False,
            "at": "2026-03-04T05:06:07",
            "at_tz": "2026-03-04T05:06:07+02:00",
            "day": "2026-03-04",
            "other": "6f1c5a0e-8d5b-4a57-9d6e-3f2b0a1c9e77",
            "doc": {"nested": [1, "two", None, True]},
            "raw": "aGVsbG8=",
        }
        created = await admin.database.create(table, given)
        await admin.database.create(table, {"flag": None})
        listed = await admin.database.query(table).filter("big", "eq", 2**62).first()
        assert listed is not None
        got = await admin.database.get(table, record_id=created["id"])
        assert got == listed == created
        chosen = await admin.database.get(table, record_id=created["id"], select=["doc", "at_tz"])
        assert chosen == {"doc": listed["doc"], "at_tz": listed["at_tz"]}
        await admin.database.update(table, record_id=created["id"], data={"doc": [2]})
        assert (await admin.database.get(table, record_id=created["id"]))["doc"] == [2]
        with pytest.raises(NotFoundError):
            await admin.database.get(table, record_id="00000000-0000-4000-8000-000000000000")
        with pytest.raises(ValidationError):
            await admin.database.get(table, record_id="not a uuid")


@pytest.mark.anyio
async def test_rows_given_their_ids_leave_free_ids_for_the_next(
    server: RunningServer, admin_token: str
) -> None:
    """An import keeps its rows' ids; PostgreSQL's sequence is moved past them."""
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = unique("kept_")
        await admin.schema.add_table(table, [{"name": "v", "type": "text"}])
        await admin.database.create(table, [{"id": 7, "v": "a"}, {"id": 3, "v": "b"}])
        assert (await admin.database.create(table, {"v": "c"}))["id"] == 8
        assert await admin.database.query(table).count() == 3


@pytest.mark.anyio
async def test_bulk_create_is_all_or_nothing(server: RunningServer, admin_token: str) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = await _products(admin)
        with pytest.raises(ConflictError) as caught:
            await admin.database.bulk_insert(table, [{"sku": "NEW"}, {"sku": "A1"}])
        assert caught.value.code == "unique_violation"
        assert await admin.database.query(table).filter("sku", "eq", "NEW").count() == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "A1", ["A1"]),
        ("ne", "A1", ["B2", "C3", "D4"]),
        ("gt", 3, ["A1", "D4"]),
        ("gte", 3, ["A1", "C3", "D4"]),
        ("lt", 3, ["B2"]),
        ("lte", 3, ["B2", "C3"]),
        ("in", ["A1", "C3"], ["A1", "C3"]),
        ("not_in", ["A1", "C3"], ["B2", "D4"]),
        ("contains", "an", ["B2"]),
        ("icontains", "AN", ["B2"]),
        ("startswith", "Ch", ["C3"]),
        ("endswith", "pie", ["C3"]),
        ("is_null", True, ["D4"]),
        ("between", [1, 8], ["C3", "D4"]),
    ],
)
async def test_each_filter_operator(
    server: RunningServer, op: str, value: Any, expected: list[str], admin_token: str
) -> None:
    field = {
        "eq": "sku",
        "ne": "sku",
        "in": "sku",
        "not_in": "sku",
        "contains": "name",
        "icontains": "name",
        "startswith": "name",
        "endswith": "name",
        "is_null": "name",
    }.get(op, "stock")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = await _products(admin)
        rows = await admin.database.query(table).filter(field, op, value).sort("sku").get()
        assert [r["sku"] for r in rows] == expected


@pytest.mark.anyio
async def test_sort_pages_select_first_and_count(server: RunningServer, admin_token: str) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = await _products(admin)
        query = admin.database.query(table).sort("price", "desc").page_size(2)
        assert [r["sku"] for r in await query.page(1).get()] == ["C3", "D4"]
        assert [r["sku"] for r in await query.page(2).get()] == ["A1", "B2"]
        assert await query.page(3).get() == []
        page = await query.fetch()
        assert (page["total"], page["page"], page["page_size"]) == (4, 1, 2)
        assert list(await query.select("sku").first() or {}) == ["sku"]
        assert await admin.database.query(table).filter("stock", "gt", 0).count() == 3


@pytest.mark.anyio
async def test_dominus_query_form_returns_rows_and_total(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = await _products(admin)
        result = await admin.database.query(
            table,
            filters={"sku": ["A1", "B2", "C3"], "active": True},
            sort_by="sku",
            sort_order="desc",
            limit=1,
            offset=1,
        )
        assert [r["sku"] for r in result["rows"]] == ["A1"]
        assert result["total"] == 2


@pytest.mark.anyio
async def test_populate_replaces_references_by_rows(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        customers, orders = unique("customers_"), unique("orders_")
        await admin.schema.add_table(customers, [{"name": "name", "type": "text"}])
        await admin.schema.add_table(
            orders,
            [
                {
                    "name": "customer",
                    "type": "bigint",
                    "constraints": [f"REFERENCES {customers}(id) ON DELETE CASCADE"],
                },
                {"name": "total", "type": "integer"},
            ],
        )
        ann, bob = await admin.database.create(customers, [{"name": "ann"}, {"name": "bob"}])
        await admin.database.create(
            orders,
            [
                {"customer": ann["id"], "total": 1},
                {"customer": bob["id"], "total": 2},
                {"customer": None, "total": 3},
            ],
        )
        rows = await admin.database.query(orders).populate("customer").sort("total").get()
        assert [r["customer"] and r["customer"]["name"] for r in rows] == ["ann", "bob", None]
        with pytest.raises(ConflictError) as caught:
            await admin.database.create(orders, {"customer": 999999, "total": 9})
        assert caught.value.code == "foreign_key_violation"
        with pytest.raises(ValidationError):
            await admin.database.query(orders).populate("total").get()
        await admin.database.delete(customers, record_id=ann["id"])
        assert await admin.database.query(orders).count() == 2  # ON DELETE CASCADE
        with pytest.raises(ConflictError):
            await admin.schema.drop_table(customers)


@pytest.mark.anyio
async def test_collections_store_and_query_documents(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        people = admin.collection(unique("people_"))
        await people.set("ann", {"name": "Ann", "age": 31, "city": "Oslo"})
        await people.set("bob", {"name": "Bob", "age": 17})
        await people.set("cid", {"name": "Cid", "age": 45, "city": "Rome"})
        await people.update("bob", {"age": 18, "city": None})
        assert await people.get("bob") == {"id": "bob", "name": "Bob", "age": 18}
        adults = (
            await people.query().where("age", ">=", 18).order_by("age", descending=True).execute()
        )
        assert [d["id"] for d in adults] == ["cid", "ann", "bob"]
        first = await people.query().where("city", "==", "Oslo").first()
        assert first is not None
        assert first["name"] == "Ann"
        assert await people.query().where("age", "in", [17, 18]).limit(5).execute() == [
            {"id": "bob", "name": "Bob", "age": 18}
        ]
        await people.delete("bob")
        with pytest.raises(NotFoundError):
            await people.get("bob")
        with pytest.raises(ValidationError):
            people.query().where("age", "~", 1)
        assert people.name in await admin.database.collections()
        await people.delete("ann")
        await people.delete("cid")
        # a collection is listed while it holds a document
        assert people.name not in await admin.database.collections()


@pytest.mark.anyio
async def test_secure_tables_need_reason_and_actor_and_are_audited(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = unique("patients_")
        await admin.schema.add_table(table, [{"name": "name", "type": "text"}], secure=True)
        with pytest.raises(SecureTableError):
            await admin.database.create(table, {"name": "Pat"})
        created = await admin.database.create(
            table, {"name": "Pat"}, reason="intake", actor="nurse.joy"
        )
        with pytest.raises(SecureTableError):
            await admin.database.query(table).get()
        rows = await admin.database.query(table).audited("follow-up", "dr.who").get()
        assert [r["name"] for r in rows] == ["Pat"]
        with pytest.raises(SecureTableError):
            await admin.database.get(table, created["id"], reason="x")
        entries = await admin.audit.query(table)
        assert [(e["operation"], e["actor"], e["reason"]) for e in entries] == [
            ("query", "dr.who", "follow-up"),
            ("create", "nurse.joy", "intake"),
        ]
        assert entries[0]["record_ids"] == [created["id"]]
        assert entries[0]["username"] == ADMIN_USERNAME


@pytest.mark.anyio
async def test_analytics_runs_saved_read_only_queries(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = await _products(admin)
        name = unique("stock_")
        await admin.analytics.define(
            name,
            f"SELECT sku, stock FROM {table} WHERE stock >= :minimum AND coalesce(name, '') <> 'x:y' "
            "ORDER BY sku",
            {"minimum": "int"},
        )
        result = await admin.analytics.execute(name, {"minimum": 5})
        assert result["data"] == [{"sku": "A1", "stock": 10}, {"sku": "D4", "stock": 7}]
        assert name in [q["name"] for q in await admin.analytics.list()]
        refused = [
            f"DELETE FROM {table}",
            f"SELECT 1; DELETE FROM {table}",
            "SELECT * FROM roost_users",
            f"SELECT * FROM public.{table}",
            f"SELECT pg_sleep(1) FROM {table}",
            "SELECT * FROM nowhere",
        ]
        for sql in refused:
            with pytest.raises(ValidationError):
                await admin.analytics.define(unique("bad_"), sql)
        with pytest.raises(ValidationError):
            await admin.analytics.define(unique("p_"), f"SELECT * FROM {table} WHERE stock > :n")
        with pytest.raises(ValidationError):
            await admin.analytics.execute(name, {})
        with pytest.raises(ValidationError):
            await admin.analytics.execute(name, {"minimum": "lots"})
        await admin.analytics.delete(name)
        with pytest.raises(NotFoundError):
            await admin.analytics.execute(name, {"minimum": 1})


@pytest.mark.anyio
async def test_schema_changes_are_recorded_and_a_refused_change_leaves_nothing(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = await _products(admin)
        await admin.schema.add_column(table, "status", "VARCHAR(20)", default="'new'")
        await admin.schema.rename_column(table, "status", "state")
        await admin.schema.add_index(table, ["state"])
        rows = await admin.database.query(table).filter("state", "eq", "new").get()
        assert len(rows) == 4
        await admin.schema.drop_column(table, "state")
        history = [m["operation"] for m in await admin.schema.migrations(table)]
        assert history == ["drop_column", "add_index", "rename_column", "add_column", "add_table"]
        before = await admin.database.describe(table)
        with pytest.raises(ConflictError):  # NOT NULL without a default, on a table with rows
            await admin.schema.add_column(table, "must", "integer", constraints=["NOT NULL"])
        assert await admin.database.describe(table) == before
        await admin.database.create(table, {"sku": "E5", "stock": 3})  # stock 3 twice now
        with pytest.raises(ConflictError):
            await admin.schema.add_index(table, ["stock"], unique=True)
        assert await admin.database.describe(table) == before
        assert len(await admin.schema.migrations(table)) == 5


@pytest.mark.anyio
async def test_bad_input_gets_a_clear_error_and_changes_nothing(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = await _products(admin)
        cases: list[tuple[Any, str | None]] = [
            (lambda: admin.database.query(table).filter("nope", "eq", 1).get(), "filters[0]"),
            (
                lambda: admin.database.query(table).filter("name; DROP TABLE x", "eq", 1).get(),
                "filters[0]",
            ),
            (lambda: admin.database.query(table).filter("stock", "eq", "many").get(), "filters[0]"),
            (
                lambda: admin.database.query(table).filter("stock", "contains", "1").get(),
                "filters[0]",
            ),
            (lambda: admin.database.query(table).page_size(5000).get(), "page_size"),
            (lambda: admin.database.create(table, {"sku": "X" * 30}), "rows[0].sku"),
            (
                lambda: admin.database.create(table, {"sku": "Z9", "price": "1.234"}),
                "rows[0].price",
            ),
            (lambda: admin.database.create(table, {"sku": "Z9", "unknown": 1}), "rows[0].unknown"),
            (lambda: admin.database.create(table, {"sku": None}), "rows[0].sku"),
            (lambda: admin.schema.add_table("Bad-Name", [{"name": "a", "type": "text"}]), "name"),
            (lambda: admin.schema.add_table("roost_x", [{"name": "a", "type": "text"}]), "name"),
            (
                lambda: admin.schema.add_table(unique("t"), [{"name": "a", "type": "money"}]),
                "columns[0].type",
            ),
            (
                lambda: admin.schema.add_table(
                    unique("t"),
                    [{"name": "a", "type": "text", "constraints": ["CHECK (a = (SELECT 1))"]}],
                ),
                "columns[0].constraints[0]",
            ),
            (
                lambda: admin.schema.add_table(
                    unique("t"),
                    [{"name": "a", "type": "text", "default": "now()); DROP TABLE x; --"}],
                ),
                "columns[0].default",
            ),
        ]
        with pytest.raises(NotFoundError):
            await admin.database.query("no_such_table").get()
        with pytest.raises(ConflictError) as broken:
            await admin.database.create(table, {"sku": "Z9", "price": "-1"})
        assert broken.value.code == "check_violation"
        assert broken.value.details["constraint"] == "ck_price"
        for call, field in cases:
            with pytest.raises(ValidationError) as caught:
                print(await call())  # shows what was accepted, should the test fail
            if field is not None:
                assert caught.value.details.get("field") == field, caught.value
        assert await admin.database.query(table).count() == 4


@pytest.mark.anyio
async def test_tenants_never_see_each_others_tables(
    server: RunningServer, admin_token: str
) -> None:
    tenant = unique("db")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = await _products(admin)
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            root = await other.auth.sign_in_with_password("root", "root-password")
            assert await root.database.tables() == []
            await admin.collection(unique("mine_")).set("x", {})
            assert await root.database.collections() == []
            with pytest.raises(NotFoundError):
                await root.database.query(table).get()
            # the same table name in the other tenant is another table
            await root.schema.add_table(table, [{"name": "sku", "type": "text"}])
            await root.database.create(table, {"sku": "ONLY-HERE"})
            assert [r["sku"] for r in await root.database.query(table).get()] == ["ONLY-HERE"]
            assert "ONLY-HERE" not in [r["sku"] for r in await admin.database.query(table).get()]
            assert await admin.database.query(table).count() == 4
            # credentials of one tenant are refused on the other, both ways
            admin_key = (await admin.api_keys.create(unique("k")))["key"]
            root_key = (await root.api_keys.create(unique("k")))["key"]
            with pytest.raises(AuthenticationError):
                await (await other.auth.sign_in_with_token(admin_key, "api_key")).database.tables()
            async with AsyncClient(api_url=server.url, tenant="default") as default:
                stolen = await default.auth.sign_in_with_token(root_key, "api_key")
                with pytest.raises(AuthenticationError):
                    await stolen.database.tables()
        await admin.tenants.delete(tenant)
        assert table in [t["name"] for t in await admin.database.tables()]


@pytest.mark.anyio
async def test_categories_provision_tenants_with_their_tables(
    server: RunningServer, admin_token: str
) -> None:
    category, tenant = unique("clinic_"), unique("prov")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.tenants.create_category(
            category,
            [
                {"name": "doctors", "columns": [{"name": "name", "type": "text"}]},
                {
                    "name": "visits",
                    "columns": [
                        {
                            "name": "doctor",
                            "type": "bigint",
                            "constraints": ["REFERENCES doctors(id)"],
                        }
                    ],
                },
            ],
        )
        assert category in [c["name"] for c in await admin.tenants.categories()]
        with pytest.raises(ValidationError):
            await admin.tenants.create_category(
                unique("broken_"),
                [
                    {
                        "name": "visits",
                        "columns": [
                            {
                                "name": "doctor",
                                "type": "bigint",
                                "constraints": ["REFERENCES doctors(id)"],
                            }
                        ],
                    }
                ],
            )
        await admin.schema.provision_tenant(tenant, category_slug=category)
        with pytest.raises(ConflictError):
            await admin.schema.provision_tenant(tenant, category)
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            await other.auth.register("clerk", "clerk-password")
            clerk = await other.auth.sign_in_with_password("clerk", "clerk-password")
            with pytest.raises(AuthorizationError):
                await clerk.database.tables()  # members have no database scope
        await admin.tenants.delete(tenant)


@pytest.mark.anyio
async def test_database_scopes_are_enforced(server: RunningServer, admin_token: str) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = await _products(admin)
        reader_key = await admin.api_keys.create(unique("reader"), ["database:read"])
        reader = await client.auth.sign_in_with_token(reader_key["key"], "api_key")
        assert await reader.database.query(table).count() == 4
        for call in (
            lambda: reader.database.create(table, {"sku": "R1"}),
            lambda: reader.schema.add_column(table, "x", "text"),
            lambda: reader.analytics.define(unique("a_"), f"SELECT 1 AS one FROM {table}"),
            lambda: reader.audit.query(),
        ):
            with pytest.raises(AuthorizationError):
                await call()


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    """A record with the values each write makes anew (id, timestamps) as their types."""
    made = {"id", "ref", "created_at", "updated_at"}
    return {k: type(v).__name__ if k in made else v for k, v in row.items()}


async def _refusal(write: Any) -> tuple[str, str | None, str, Any]:
    try:
        await write()
    except (ConflictError, ValidationError, NotFoundError) as exc:
        return type(exc).__name__, exc.code, str(exc), exc.details
    raise AssertionError("the write was not refused")


@pytest.mark.anyio
async def test_one_row_writes_answer_alike_whether_the_table_is_followed_or_not(
    server: RunningServer, admin_token: str
) -> None:
    """A table nobody follows takes the short path of one-row writes (on SQLite, prebuilt
    statements); a followed one the general path. Both answer, refuse and store alike."""
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = unique("alike_")
        columns = [*PRODUCT_COLUMNS, {"name": "ref", "type": "uuid", "default": "uuid()"}]
        await admin.schema.add_table(table, columns)
        new = {"name": "Kiwi", "price": "2.5", "released": "2026-02-03", "tags": {"a": [1]}}
        change = {"stock": 4, "tags": None, "active": False}

        async def writes(sku: str) -> list[Any]:
            created = await admin.database.create(table, {**new, "sku": sku})
            updated = await admin.database.update(table, record_id=created["id"], data=change)
            return [
                _shape(created),
                _shape(updated),
                _shape(await admin.database.get(table, created["id"])),
                await _refusal(lambda: admin.database.create(table, {**new, "sku": sku})),
                await _refusal(lambda: admin.database.create(table, {"name": "no sku"})),
                await _refusal(
                    lambda: admin.database.create(table, {**new, "sku": "X", "price": -1})
                ),
                await _refusal(lambda: admin.database.create(table, {"sku": "Y", "stock": "many"})),
                await _refusal(lambda: admin.database.update(table, record_id=0, data=change)),
                await _refusal(
                    lambda: admin.database.update(table, record_id=created["id"], data={})
                ),
            ]

        alone = await writes("S1")
        changes: list[Any] = []
        await admin.database.subscribe(table, changes.append)
        followed = await writes("S2")
        assert [str(a).replace("S1", "S2") for a in alone] == [str(f) for f in followed]
        assert alone[0]["sku"] == "S1"
        assert alone[1] == {**alone[0], **change, "updated_at": "str"}
