"""The SQL databases the backend contract suites run on: SQLite, and PostgreSQL when there."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from roost.backends.sql import CONTROL, Database
from roost.backends.sql.migrations import migrate
from tests.conftest import POSTGRES_URL, drop_pg_schemas, require_postgres


@asynccontextmanager
async def sql_database(
    kind: str, tmp_path: Path, *, migrated: bool = True
) -> AsyncIterator[Database]:
    """A fresh database of `kind` ("sqlite" or "postgresql", in a schema prefix of its own),
    with the control tables migrated unless `migrated` is false; dropped afterwards."""
    prefix = f"rt{secrets.token_hex(4)}"
    if kind == "postgresql":
        require_postgres()
        url = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'roost.db'}"
    db = Database(url, data_dir=tmp_path, pg_schema_prefix=prefix)
    if migrated:
        await migrate(db, CONTROL)
    try:
        yield db
    finally:
        await db.close()
        if kind == "postgresql":
            drop_pg_schemas(prefix)
