"""The plan compiled to SQL selects exactly the rows the engine's check allows, on SQLite and
PostgreSQL: random conditions (NULLs, wrong types, code-point order, string functions, ids)
over random rows, each plan's rows compared with a check of every row."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    create_engine,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import create_async_engine

from roost.policy import Engine
from roost.policy.sql import PlanNotCompilable, SqlColumn, condition_sql
from roost.services.database.rowpolicy import record_attr
from tests.conftest import POSTGRES_URL, require_postgres, unique

UUIDS = [uuid.UUID(int=n * 7919) for n in range(1, 4)]
ATOMS = [
    "R.attr.owner == P.id",
    "R.attr.owner != P.id",
    "R.attr.n > 2",
    "R.attr.n >= 2.0",
    "R.attr.n == 3",
    "2 < R.attr.n",
    "R.attr.n < P.attr.level",
    'R.attr.n == "3"',
    "R.attr.n != 3",
    "R.attr.flag",
    "!R.attr.flag",
    "R.attr.flag == true",
    "R.attr.flag != false",
    'R.attr.status in ["a", "b"]',
    'R.attr.status in ["a", null]',
    "R.attr.status == null",
    'R.attr.status != "a"',
    "R.attr.status > 1",
    'R.attr.name.startsWith("ab")',
    'R.attr.name.endsWith("b")',
    'R.attr.name.contains("é")',
    'R.attr.name < "b"',
    'R.attr.name >= "Z"',
    'R.id == "3"',
    'R.id in ["1", "2", "x"]',
    'R.id != "07"',
    f'R.attr.u == "{UUIDS[0]}"',
    f'R.attr.u != "{str(UUIDS[1]).upper()}"',
    "has(R.attr.n)",
    "P.attr.level >= 2",
    "R.attr.big > 9223372036854775807",
]


def _condition(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.35:
        return rng.choice(ATOMS)
    shape = rng.randrange(3)
    if shape == 0:
        return f"!({_condition(rng, depth - 1)})"
    joiner = " && " if shape == 1 else " || "
    return f"({_condition(rng, depth - 1)}){joiner}({_condition(rng, depth - 1)})"


def _policy(rng: random.Random) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {
            "actions": ["read"],
            "effect": "EFFECT_ALLOW",
            "roles": ["user"],
            "condition": {"match": {"expr": _condition(rng, 3)}},
        }
    ]
    if rng.random() < 0.4:
        rules.append(
            {
                "actions": ["read"],
                "effect": "EFFECT_DENY",
                "roles": ["user"],
                "condition": {"match": {"expr": _condition(rng, 2)}},
            }
        )
    return {
        "apiVersion": "api.cerbos.dev/v1",
        "resourcePolicy": {"resource": "row", "version": "default", "rules": rules},
    }


def _rows(rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "id": index,
            "owner": rng.choice(["alice", "bob", None]),
            "n": rng.choice([None, 0, 1, 2, 3, 4, 5]),
            "big": rng.choice([None, 1, -(2**62)]),
            "flag": rng.choice([None, True, False]),
            "status": rng.choice(["a", "b", "c", None]),
            "name": rng.choice(["ab", "abb", "B", "é", "Zb", "", "xé", None]),
            "u": rng.choice([*UUIDS, None]),
        }
        for index in range(1, 41)
    ]


def _table(name: str) -> Table:
    return Table(
        name,
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("owner", Text),
        Column("n", Integer),
        Column("big", BigInteger),
        Column("flag", Boolean),
        Column("status", String(10)),
        Column("name", Text),
        Column("u", Uuid),
    )


FAMILIES: dict[str, Any] = {
    "owner": "string",
    "n": "number",
    "big": "number",
    "flag": "bool",
    "status": "string",
    "name": "string",
    "u": "uuid",
}


def _compare(conn: Connection, table: Table, dialect: str, seed: int) -> tuple[int, int]:
    """(plans compared, plans refused) over 150 random policies."""
    rng = random.Random(seed)
    rows = _rows(rng)
    conn.execute(insert(table), rows)
    attrs = {name: SqlColumn(table.c[name], family) for name, family in FAMILIES.items()}
    id_column = SqlColumn(table.c.id, "integer_id")
    compared = refused = 0
    for _ in range(150):
        engine = Engine.from_policies([_policy(rng)])
        principal = {"id": "alice", "roles": ["user"], "attr": {"level": rng.randrange(5)}}
        entries = [
            {
                "resource": {"kind": "row", "id": str(r["id"]), "attr": record_attr(r)},
                "actions": ["read"],
            }
            for r in rows
        ]
        checked = {
            int(result.resource.id)
            for result in engine.check(principal, entries).results
            if result.is_allowed("read")
        }
        plan = engine.plan(principal, "row", "read", mark_conditions=True).filter
        if plan.kind == "KIND_ALWAYS_ALLOWED":
            selected = {r["id"] for r in rows}
        elif plan.kind == "KIND_ALWAYS_DENIED":
            selected = set()
        else:
            assert plan.condition is not None
            try:
                where = condition_sql(plan.condition, attrs, id_column, dialect, "t")
            except PlanNotCompilable:
                refused += 1
                continue
            selected = set(conn.execute(select(table.c.id).where(where)).scalars())
        assert selected == checked, (plan.condition, sorted(selected ^ checked))
        compared += 1
    return compared, refused


def test_the_plans_sql_selects_what_the_check_allows_on_sqlite() -> None:
    engine = create_engine("sqlite://")
    total = refused_total = 0
    for seed in range(4):
        table = _table(f"rows_{seed}")
        with engine.begin() as conn:
            table.create(conn)
            compared, refused = _compare(conn, table, "sqlite", seed)
        total += compared
        refused_total += refused
    assert total >= 500
    assert refused_total == 0


def test_the_plans_sql_selects_what_the_check_allows_on_postgresql() -> None:
    require_postgres()
    url = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)

    async def run() -> tuple[int, int]:
        engine = create_async_engine(url)
        table = _table(unique("policy_sql_"))
        total = refused_total = 0
        try:
            async with engine.begin() as conn:
                await conn.run_sync(table.create)
                for seed in range(4):
                    await conn.execute(table.delete())
                    compared, refused = await conn.run_sync(_compare, table, "postgresql", seed)
                    total += compared
                    refused_total += refused
                await conn.run_sync(table.drop)
        finally:
            await engine.dispose()
        return total, refused_total

    total, refused = asyncio.run(run())
    assert total >= 500
    assert refused == 0


def test_what_sql_cannot_mean_the_same_is_refused() -> None:
    table = _table("refusals")
    attrs = {name: SqlColumn(table.c[name], family) for name, family in FAMILIES.items()}
    id_column = SqlColumn(table.c.id, "integer_id")
    for expr in (
        "R.attr.n + 1 > 3",
        "size(R.attr.name) > 1",
        'R.attr.name.matches("a.*")',
        "R.attr.missing == 1",
        "R.attr.meta.x == 1",
        'timestamp(R.attr.name) > timestamp("2020-01-01T00:00:00Z")',
    ):
        policy = {
            "apiVersion": "api.cerbos.dev/v1",
            "resourcePolicy": {
                "resource": "row",
                "version": "default",
                "rules": [
                    {
                        "actions": ["read"],
                        "effect": "EFFECT_ALLOW",
                        "roles": ["user"],
                        "condition": {"match": {"expr": expr}},
                    }
                ],
            },
        }
        plan = Engine.from_policies([policy]).plan(
            {"id": "a", "roles": ["user"]}, "row", "read", mark_conditions=True
        )
        assert plan.filter.kind == "KIND_CONDITIONAL", expr
        assert plan.filter.condition is not None
        with pytest.raises(PlanNotCompilable) as refused:
            condition_sql(plan.filter.condition, attrs, id_column, "sqlite", "table 't'")
        assert refused.value.status_code == 422
        assert refused.value.details["field"] == "policy"
