"""Database figures: the query builder and bulk insert through the SDK vs SQLAlchemy directly.

    python benchmarks/database.py [--rows 100000] [--seconds 5] [--figures 1,2,3]
                                  [--clients 200] [--creates 10]

Prints, from one run on the embedded default (SQLite), with the server in a process of its own:
1. rows/s of a filtered, sorted, paginated query (20-row page) of a 100k-row table through the
   sync SDK, and of the same query run directly with SQLAlchemy Core on the same database file
   (goal: SDK >= 0.5x of direct);
2. rows/s of a 10k-row bulk insert through the SDK (one call, one transaction) and of a direct
   SQLAlchemy executemany in one transaction (goal: >= 0.5x);
3. `database.create` of one row under load: `--clients` async SDK clients at once (200 by
   default), each creating `--creates` rows one after another; p50 and p99 of a create and
   creates/s (the writes that queue behind SQLite's one writer should share its commits).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    select,
    text,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import per_second
from benchmarks.http_overhead import ADMIN, PASSWORD, start
from roost import AsyncClient, Client

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
    parser.add_argument("--figures", default="1,2,3", help="which figures to print")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--creates", type=int, default=10, help="creates per client")
    args = parser.parse_args()
    figures = {int(f) for f in args.figures.split(",")}
    data_dir, secret = tempfile.mkdtemp(prefix="roost-bench-"), secrets.token_urlsafe(40)
    server, url = start("roost", data_dir, secret)
    direct = create_engine(f"sqlite:///{Path(data_dir) / 'tenants' / 'default.db'}")
    with direct.begin() as conn:
        conn.execute(text("PRAGMA journal_mode=WAL"))
    with Client(api_url=url, timeout=300) as client:
        admin = client.auth.sign_in_with_password(ADMIN, PASSWORD)
        if 3 in figures:
            admin.schema.add_table("events", COLUMNS)
            token = admin._session.access  # type: ignore[union-attr]
            _print_creates(asyncio.run(_creates(url, token, args.clients, args.creates)), args)
        if figures & {1, 2}:
            _query_and_bulk(admin, direct, args)
    server.terminate()


def _query_and_bulk(admin: Client, direct: Engine, args: argparse.Namespace) -> None:
    """Figures 1 and 2."""
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
    admin.schema.add_table("items", COLUMNS, timestamps=False)
    admin.schema.add_table("copies", COLUMNS, timestamps=False)
    for start_at in range(0, args.rows, 10_000):
        admin.database.bulk_insert("items", rows(min(10_000, args.rows - start_at), start_at))
    admin.schema.add_index("items", ["category", "price"])
    print(f"table: {args.rows:,} rows, index on (category, price); {args.seconds:g} s per figure")

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


async def _creates(url: str, token: str, clients: int, creates: int) -> tuple[list[float], float]:
    """Every create's latency, and the wall time of the whole load."""
    latencies: list[float] = []

    async def one_client(number: int) -> None:
        async with AsyncClient(api_url=url, token=token, timeout=300) as client:
            await client.database.create("events", {"category": "warmup", "price": number})
            await ready.wait()
            for i in range(creates):
                begin = time.perf_counter()
                await client.database.create(
                    "events", {"category": "load", "price": i, "name": f"client {number}"}
                )
                latencies.append(time.perf_counter() - begin)

    ready = asyncio.Event()
    tasks = [asyncio.create_task(one_client(n)) for n in range(clients)]
    await asyncio.sleep(1.0)  # every client connected and warm
    begin = time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    return latencies, time.perf_counter() - begin


def _print_creates(measured: tuple[list[float], float], args: argparse.Namespace) -> None:
    latencies, elapsed = measured
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(
        f"3. database.create, {args.clients} clients x {args.creates}: p50 {p50:,.0f} ms, "
        f"p99 {p99:,.0f} ms; {len(latencies) / elapsed:,.0f} creates/s"
    )


def _direct_page(engine: object, statement: object) -> list[dict[str, object]]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return [dict(row) for row in conn.execute(statement).mappings()]


if __name__ == "__main__":
    main()
