"""Frozen migrations: a fresh migrate and a step-by-step one build the same schema, that schema
is the one `tables.py` declares, and the SQL of a released step never changes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, inspect, text

from roost.backends.sql import CONTROL, Database
from roost.backends.sql import tables as live
from roost.backends.sql.migrations import CONTROL_MIGRATIONS, TENANT_MIGRATIONS, Migration, migrate
from tests.backends.databases import sql_database

pytestmark = pytest.mark.anyio

ENGINES = ["sqlite", "postgresql"]
NAMESPACES = {  # kind -> (namespace migrated, its steps, the live tables it must end up with)
    "control": (CONTROL, CONTROL_MIGRATIONS, live.control_metadata),
    "tenant": ("acme", TENANT_MIGRATIONS, live.tenant_metadata),
}

# The fingerprint of each released step's SQL on both engines. Editing a released step would
# give namespaces made after the edit another schema than those upgraded through it: add a new
# step instead. A new step gets its line here when it is released.
RELEASED: dict[tuple[str, int], str] = {
    ("control", 1): "024b8cd5b1a98b53",
    ("control", 2): "8497040f2683b2e0",
    ("control", 3): "3fa5f30c58557618",
    ("control", 4): "ad5d4efbfc326c65",
    ("control", 5): "a54025f826f746a9",
    ("control", 6): "f725585ad8091c36",
    ("control", 7): "fdab5ab7c8c10d55",
    ("control", 8): "4a1ff7a1dc8f1977",
    ("tenant", 1): "853cfedde2a644a5",
    ("tenant", 2): "a6fa182181d941a2",
    ("tenant", 3): "65e882a39fbba9b3",
    ("tenant", 4): "fc8930ca36af4a51",
    ("tenant", 5): "1ef1a211f63219e1",
    ("tenant", 6): "f23e6b00fb50cef1",
    ("tenant", 7): "40f6b62348c3c835",
    ("tenant", 8): "e3ba015a34a73078",
    ("tenant", 9): "beb2f4c161563d09",
    ("tenant", 10): "08ecce9d691d1273",
    ("tenant", 11): "bcd6202f1ebb96e7",
    ("tenant", 12): "2f57a93359b1b6c5",
    ("tenant", 13): "fe33a7521a8c2ad3",
    ("tenant", 14): "0722776f95443c4b",
    ("tenant", 15): "7278143c3b2bf6e3",
    ("tenant", 16): "b600954e6b3e72e8",
    ("tenant", 17): "f1c2a58a9be8226f",
    ("tenant", 18): "c536300216195e70",
    ("tenant", 19): "06410a90ee1bcf38",
    ("tenant", 20): "1844e242808d461d",
    ("tenant", 21): "903a31a9f43a7edb",
    ("tenant", 22): "463ac3030f0dbf07",
    ("tenant", 23): "a11196a516d5d401",
    ("tenant", 24): "0868f1ba5b69a757",
    ("tenant", 25): "6522dcc163a02ea8",
    ("tenant", 26): "15b34429a9e56f10",
    ("tenant", 27): "c7b0d3ea0559de04",
    ("tenant", 28): "ab940bf4acd50083",
    ("tenant", 29): "0c09f745d2da86c3",
}


def fingerprint(migration: Migration) -> str:
    rendered = {dialect: migration.sql(dialect) for dialect in ("sqlite", "postgresql")}
    return hashlib.sha256(json.dumps(rendered, sort_keys=True).encode()).hexdigest()[:16]


def describe(conn: Connection, schema: str | None) -> dict[str, Any]:
    """Everything about a namespace's schema that a migration decides: tables, columns (type,
    nullability, default), keys, indexes, constraints, and triggers and functions."""
    inspector = inspect(conn)
    found: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names(schema=schema)):
        found[name] = {
            "columns": [
                [c["name"], c["type"].compile(conn.dialect), c["nullable"], c.get("default")]
                for c in inspector.get_columns(name, schema=schema)
            ],
            "primary key": inspector.get_pk_constraint(name, schema=schema)["constrained_columns"],
            "indexes": sorted(
                [i["name"], i["column_names"], i["unique"]]
                for i in inspector.get_indexes(name, schema=schema)
            ),
            "unique": sorted(
                [u["name"] or "", u["column_names"]]
                for u in inspector.get_unique_constraints(name, schema=schema)
            ),
            "foreign keys": sorted(
                [
                    fk["constrained_columns"],
                    fk["referred_table"],
                    fk["referred_columns"],
                    *sorted(fk["options"].items()),
                ]
                for fk in inspector.get_foreign_keys(name, schema=schema)
            ),
            "checks": sorted(
                c["sqltext"] for c in inspector.get_check_constraints(name, schema=schema)
            ),
        }
    return {"tables": found, "routines": _routines(conn, schema)}


def _routines(conn: Connection, schema: str | None) -> list[list[str]]:
    if schema is None:  # SQLite
        rows = conn.execute(
            text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
        )
        return sorted([str(v) for v in row] for row in rows)
    triggers = conn.execute(
        text(
            "SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND NOT t.tgisinternal"
        ),
        {"schema": schema},
    )
    functions = conn.execute(
        text(
            "SELECT p.proname, '', pg_get_functiondef(p.oid) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = :schema"
        ),
        {"schema": schema},
    )
    return sorted([str(v) for v in row] for row in [*triggers, *functions])


async def schema_of(db: Database, namespace: str) -> dict[str, Any]:
    """`describe` of a namespace, with its PostgreSQL schema's name (which differs from one
    database to the next) written as <schema>."""
    schema = db.schema_of(namespace) if db.dialect == "postgresql" else None
    async with db.read(namespace) as conn:
        found = await conn.run_sync(describe, schema)
    rendered = json.dumps(found, sort_keys=True, default=str)
    return dict(json.loads(rendered.replace(schema, "<schema>") if schema else rendered))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", NAMESPACES)
async def test_a_fresh_and_a_stepwise_migrate_build_the_same_schema(
    tmp_path: Path, engine: str, kind: str
) -> None:
    namespace, steps, _ = NAMESPACES[kind]
    async with (
        sql_database(engine, tmp_path / "fresh", migrated=False) as fresh,
        sql_database(engine, tmp_path / "stepwise", migrated=False) as stepwise,
    ):
        assert await migrate(fresh, namespace) == [m.version for m in steps]
        for migration in steps:  # as a namespace made by each release in turn
            assert await migrate(stepwise, namespace, target=migration.version) == [
                migration.version
            ]
        assert await migrate(stepwise, namespace) == []
        assert await schema_of(stepwise, namespace) == await schema_of(fresh, namespace)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", NAMESPACES)
async def test_the_migrations_build_the_tables_that_tables_py_declares(
    tmp_path: Path, engine: str, kind: str
) -> None:
    namespace, _, declared = NAMESPACES[kind]
    async with sql_database(engine, tmp_path, migrated=False) as db:
        await migrate(db, namespace)
        await migrate(db, "declared", target=0)  # no step: the namespace, empty
        async with db.write("declared") as conn:
            await conn.run_sync(lambda sync: declared.create_all(sync))
        assert (await schema_of(db, namespace))["tables"] == (await schema_of(db, "declared"))[
            "tables"
        ]


def test_released_steps_are_never_edited() -> None:
    for kind, (_, steps, _) in NAMESPACES.items():
        assert [m.version for m in steps] == list(range(1, len(steps) + 1)), kind
        for migration in steps:
            found = fingerprint(migration)
            recorded = RELEASED.get((kind, migration.version))
            assert recorded is not None, (
                f"{kind} step {migration.version} is new: record its fingerprint in RELEASED "
                f'as ("{kind}", {migration.version}): "{found}"'
            )
            assert found == recorded, (
                f"the SQL of released {kind} step {migration.version} changed: a released "
                "step is never edited (namespaces already past it would not get the change); "
                "add a new step instead"
            )
    assert set(RELEASED) == {(k, m.version) for k, (_, s, _) in NAMESPACES.items() for m in s}


def test_frozen_tables_are_imported_only_when_a_step_runs(tmp_path: Path) -> None:
    """A start on an up-to-date database renders no step, so it does not build the ~60 frozen
    tables (~6% of such a start)."""
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from roost.backends.sql import CONTROL, Database\n"
        "from roost.backends.sql.migrations import migrate\n"
        "async def main() -> None:\n"
        f"    db = Database('sqlite+aiosqlite:///{tmp_path}/roost.db', data_dir=Path('{tmp_path}'))\n"
        "    try:\n"
        "        print(bool(await migrate(db, CONTROL)))\n"
        "    finally:\n"
        "        await db.close()\n"
        "asyncio.run(main())\n"
        "print('roost.backends.sql.frozen' in sys.modules)\n"
    )

    def run() -> list[str]:
        done = subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        return done.stdout.split()

    assert run() == ["True", "True"]  # a new database: every step ran
    assert run() == ["False", "False"]  # nothing to run, nothing frozen imported
