"""`database.query`'s two paths answer alike: a plain page on SQLite is read inline from SQL
compiled once per query shape (`services/database/pages.py`); any other query (here: one with
an IN of a list, which changes nothing in the rows) goes through SQLAlchemy. Every portable
column type, many operators, sorts, selects, counts, and a shape asked again with new values."""

from __future__ import annotations

from typing import Any

import pytest

from roost import AsyncClient
from tests.conftest import RunningServer, unique

COLUMNS: list[dict[str, Any]] = [
    {"name": "label", "type": "text"},
    {"name": "code", "type": "varchar(12)"},
    {"name": "small", "type": "integer"},
    {"name": "big", "type": "bigint"},
    {"name": "amount", "type": "decimal(10,2)"},
    {"name": "flag", "type": "boolean"},
    {"name": "at", "type": "timestamp"},
    {"name": "at_tz", "type": "timestamptz"},
    {"name": "day", "type": "date"},
    {"name": "ref", "type": "uuid"},
    {"name": "doc", "type": "json"},
    {"name": "blob", "type": "bytes"},
]


def _row(n: int) -> dict[str, Any]:
    if n % 5 == 4:  # a row of NULLs
        return {"label": None, "code": None, "small": None}
    return {
        "label": ["Apple pie", "apple%_x", "Ünïcode ÄB", "", "zeta"][n % 5] + f" {n}" * (n % 2),
        "code": f"c{n % 3}",
        "small": n * 7 - 20,
        "big": 2**40 + n,
        "amount": f"{n}.{n % 10}5",
        "flag": n % 2 == 0,
        "at": f"2026-01-{n % 28 + 1:02d}T10:{n % 60:02d}:00",
        "at_tz": f"2026-02-{n % 28 + 1:02d}T10:00:00+02:00",
        "day": f"2026-03-{n % 28 + 1:02d}",
        "ref": f"00000000-0000-4000-8000-{n:012d}",
        "doc": {"n": n, "tags": ["a", "b"][: n % 3]},
        "blob": "YWJj",
    }


QUERIES: list[dict[str, Any]] = [
    {"filters": []},
    {"filters": [["code", "eq", "c1"]], "sort": [["small", "desc"]]},
    {"filters": [["code", "eq", "c2"]], "sort": [["small", "desc"]]},  # the shape again
    {"filters": [["small", "gte", 10], ["small", "lt", 90]], "sort": [["amount", "asc"]]},
    {"filters": [["big", "gt", 2**40 + 3]], "sort": [["big", "desc"]], "count": "with"},
    {"filters": [["amount", "lte", "9.95"]], "count": "only"},
    {"filters": [["amount", "between", ["2.25", "12.35"]]], "sort": [["label", "asc"]]},
    {"filters": [["flag", "eq", True]], "sort": [["at", "desc"]], "count": "with"},
    {"filters": [["flag", "eq", False]], "sort": [["at", "desc"]], "count": "with"},  # no bind
    {"filters": [["flag", "ne", True]], "sort": [["at_tz", "asc"]]},
    {"filters": [["at", "gte", "2026-01-05T00:00:00"]], "sort": [["day", "desc"]]},
    {"filters": [["at_tz", "lt", "2026-02-10T12:00:00+00:00"]], "count": "with"},
    {"filters": [["day", "eq", "2026-03-04"]]},
    {"filters": [["ref", "eq", "00000000-0000-4000-8000-000000000003"]]},
    {"filters": [["ref", "ne", None]], "sort": [["ref", "desc"]]},
    {"filters": [["label", "is_null", True]], "count": "with"},
    {"filters": [["label", "is_null", False]], "sort": [["label", "desc"]]},
    {"filters": [["label", "eq", None]]},
    {"filters": [["label", "contains", "%_"]]},
    {"filters": [["label", "icontains", "APPLE"]], "sort": [["small", "asc"]]},
    {"filters": [["label", "icontains", "NÏCODE"]]},
    {"filters": [["label", "startswith", "Apple"]]},
    {"filters": [["label", "startswith", ""]], "count": "with"},
    {"filters": [["label", "endswith", " 3"]]},
    {"filters": [["label", "endswith", ""]]},
    {"filters": [["code", "gt", "c0"]], "select": ["code", "doc", "blob", "day"]},
    {"filters": [], "select": ["ref", "at_tz"], "sort": [["ref", "asc"]], "count": "with"},
    {"filters": [["small", "gte", -100]], "page": 2, "page_size": 5, "count": "with"},
    {"filters": [["small", "gte", -100]], "page": 3, "page_size": 5},  # the shape again
    {"filters": [["small", "gte", -100]], "limit": 4, "offset": 17},
    {"filters": [["code", "eq", "c9"]], "count": "with"},  # no row
]


@pytest.mark.anyio
async def test_an_inline_page_reads_as_the_general_path_does(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = unique("paths_")
        await admin.schema.add_table(table, COLUMNS)
        await admin.database.create(table, [_row(n) for n in range(23)])
        for query in QUERIES:
            params = {"table": table, "sort": [], **query}
            fast = await admin.call("database.query", params, idempotent=True)
            general_filters = [*params["filters"], ["id", "not_in", [-1]]]
            general = await admin.call(
                "database.query", {**params, "filters": general_filters}, idempotent=True
            )
            assert fast == general, query
            if query.get("count") != "only":
                assert fast["rows"] or query["filters"] == [["code", "eq", "c9"]], query
