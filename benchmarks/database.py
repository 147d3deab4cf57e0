"""Database figures: the query builder and bulk insert through the SDK vs SQLAlchemy directly.

    python benchmarks/database.py [--rows 100000] [--seconds 5]

Prints, from one run on the embedded default (SQLite), with the server in a process of its own:
1. rows/s of a filtered, sorted, paginated query (20-row page) of a 100k-row table through the
   sync SDK, and of the same query run directly with SQLAlchemy Core on the same database file
   (goal: SDK >= 0.5x of direct);
2. rows/s of a 10k-row bulk insert through the SDK (one call, one transaction) and of a direct
   SQLAlchemy executemany in one transaction (goal: >= 0.5x).
"""

from __future__ import annotations

import argparse
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import per_second
from benchmarks.http_overhead import ADMIN, PASSWORD, start
from roost import Client

COLUMNS = [
    {"name": "category", "type": "varchar(10)"},
    {"name": "price", "type": "integer"},
    {"name": "name", "type": "text"},
]


def rows(count: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [
        {"category": f"c{rng.randrange(20)}", "price": rng.randrange(1000), "name": f"item {i}"}
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="Roost database figures")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    data_dir, secret = tempfile.mkdtemp(prefix="roost-bench-"), secrets.token_urlsafe(40)
    server, url = start("roost", data_dir, secret)
    direct = create_engine(f"sqlite:///{Path(data_dir) / 'tenants' / 'default.db'}")
    with direct.begin() as conn:
        conn.execute(text("PRAGMA journal_mode=WAL"))
    items = Table(
        "items",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("category", String(10)),
        Column("price", Integer),
        Column("name", String),
    )
    copies = Table(
        "copies",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("category", String(10)),
        Column("price", Integer),
        Column("name", String),
    )
    with Client(api_url=url, timeout=300) as client:
        admin = client.auth.sign_in_with_password(ADMIN, PASSWORD)
        admin.schema.add_table("items", COLUMNS, timestamps=False)
        admin.schema.add_table("copies", COLUMNS, timestamps=False)
        for start_at in range(0, args.rows, 10_000):
            admin.database.bulk_insert("items", rows(min(10_000, args.rows - start_at), start_at))
        admin.schema.add_index("items", ["category", "price"])
        print(
            f"table: {args.rows:,} rows, index on (category, price); {args.seconds:g} s per figure"
        )

        query = (
            admin.database.query("items")
            .filter("category", "eq", "c7")
            .filter("price", "gte", 100)
            .sort("price", "desc")
            .page_size(20)
            .page(3)
        )
        statement = (
            select(items)
            .where(items.c.category == "c7", items.c.price >= 100)
            .order_by(items.c.price.desc(), items.c.id)
            .limit(20)
            .offset(40)
        )
        assert [r["id"] for r in query.get()] == [r["id"] for r in _direct_page(direct, statement)]
        sdk = per_second(query.get, args.seconds, warmup=10) * 20
        raw = per_second(lambda: _direct_page(direct, statement), args.seconds, warmup=10) * 20
        print(
            f"1. query, 20-row page: SDK {sdk:,.0f} rows/s; SQLAlchemy direct {raw:,.0f} rows/s; "
            f"ratio {sdk / raw:.2f}x (goal >= 0.5x)"
        )

        batch = rows(10_000, 999)
        begin = time.perf_counter()
        admin.database.bulk_insert("copies", batch)
        sdk_insert = 10_000 / (time.perf_counter() - begin)
        begin = time.perf_counter()
        with direct.begin() as conn:
            conn.execute(copies.insert(), batch)
        raw_insert = 10_000 / (time.perf_counter() - begin)
        print(
            f"2. bulk insert of 10k rows: SDK {sdk_insert:,.0f} rows/s; SQLAlchemy executemany "
            f"{raw_insert:,.0f} rows/s; ratio {sdk_insert / raw_insert:.2f}x (goal >= 0.5x)"
        )
    server.terminate()


def _direct_page(engine: object, statement: object) -> list[dict[str, object]]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return [dict(row) for row in conn.execute(statement).mappings()]


if __name__ == "__main__":
    main()
