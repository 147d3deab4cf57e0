"""The query builder against a plain Python filter (hypothesis), and populate's query count."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from roost import Client
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, platform_of, unique

TEXTS = ["apple", "Apple", "banana", "cherry pie", "", "APPLE pie", "a_b%c", None]
ROWS = [
    {
        "n": (i * 7) % 9 - 3 if i % 5 else None,
        "s": TEXTS[i % len(TEXTS)],
        "b": [True, False, None][i % 3],
    }
    for i in range(40)
]


@pytest.fixture(scope="module")
def dataset(server: RunningServer) -> Iterator[tuple[Client, str, dict[int, dict[str, Any]]]]:
    with Client(api_url=server.url) as client:
        admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        table = unique("prop_")
        admin.schema.add_table(
            table,
            [
                {"name": "n", "type": "integer"},
                {"name": "s", "type": "text"},
                {"name": "b", "type": "boolean"},
            ],
            timestamps=False,
        )
        stored = admin.database.create(table, ROWS)
        yield admin, table, {row["id"]: row for row in stored}


def _filters() -> st.SearchStrategy[list[tuple[str, str, Any]]]:
    ints = st.integers(-5, 7)
    texts = st.sampled_from(["apple", "Apple", "pie", "a", "", "%", "_", "APPLE", "zzz"])
    numeric = st.one_of(
        st.tuples(st.just("n"), st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]), ints),
        st.tuples(
            st.just("n"), st.sampled_from(["in", "not_in"]), st.lists(ints, min_size=1, max_size=4)
        ),
        st.tuples(st.just("n"), st.just("between"), st.lists(ints, min_size=2, max_size=2)),
    )
    text = st.one_of(
        st.tuples(
            st.just("s"),
            st.sampled_from(["eq", "ne", "contains", "icontains", "startswith", "endswith"]),
            texts,
        ),
        st.tuples(
            st.just("s"), st.sampled_from(["in", "not_in"]), st.lists(texts, min_size=1, max_size=3)
        ),
    )
    flags = st.tuples(st.just("b"), st.sampled_from(["eq", "ne"]), st.booleans())
    nulls = st.tuples(st.sampled_from(["n", "s", "b"]), st.just("is_null"), st.booleans())
    return st.lists(st.one_of(numeric, text, flags, nulls), max_size=3)


def _matches(row: dict[str, Any], field: str, op: str, value: Any) -> bool:
    x = row[field]
    if op == "is_null":
        return bool((x is None) == value)
    if x is None:  # SQL: a comparison with NULL is never true
        return False
    checks: dict[str, Callable[[], bool]] = {
        "eq": lambda: x == value,
        "ne": lambda: x != value,
        "gt": lambda: x > value,
        "gte": lambda: x >= value,
        "lt": lambda: x < value,
        "lte": lambda: x <= value,
        "in": lambda: x in value,
        "not_in": lambda: x not in value,
        "contains": lambda: value in x,
        "icontains": lambda: value.lower() in x.lower(),
        "startswith": lambda: x.startswith(value),
        "endswith": lambda: x.endswith(value),
        "between": lambda: value[0] <= x <= value[1],
    }
    return bool(checks[op]())


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filters=_filters(), descending=st.booleans())
def test_query_builder_returns_what_a_python_filter_returns(
    dataset: tuple[Client, str, dict[int, dict[str, Any]]],
    filters: list[tuple[str, str, Any]],
    descending: bool,
) -> None:
    admin, table, rows = dataset
    query = admin.database.query(table).sort("n", "desc" if descending else "asc").page_size(1000)
    for field, op, value in filters:
        query = query.filter(field, op, value)
    got = [row["id"] for row in query.get()]
    expected = [i for i, row in rows.items() if all(_matches(row, *f) for f in filters)]

    def key(i: int) -> tuple[bool, int, int]:
        # NULL is the smallest value; ties go by id, ascending
        n = rows[i]["n"]
        if descending:
            return (n is None, -(n or 0), i)
        return (n is not None, n or 0, i)

    expected.sort(key=key)
    assert got == expected


def test_populate_runs_one_query_per_reference_not_per_row(server: RunningServer) -> None:
    with Client(api_url=server.url) as client:
        admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        customers, orders = unique("pc_"), unique("po_")
        admin.schema.add_table(customers, [{"name": "name", "type": "text"}])
        admin.schema.add_table(
            orders,
            [
                {
                    "name": "customer",
                    "type": "bigint",
                    "constraints": [f"REFERENCES {customers}(id)"],
                }
            ],
        )
        people = admin.database.create(customers, [{"name": f"c{i}"} for i in range(30)])
        admin.database.create(orders, [{"customer": p["id"]} for p in people * 2])
        statements: list[str] = []
        engines = platform_of(server).db.engines_of("default")

        def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        for engine in engines:
            event.listen(engine, "before_cursor_execute", watch)
        try:
            rows = admin.database.query(orders).populate("customer").page_size(60).get()
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", watch)
        assert len(rows) == 60
        assert all(row["customer"]["name"].startswith("c") for row in rows)
        assert sum(customers in s for s in statements) == 1, statements
