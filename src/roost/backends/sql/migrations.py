"""Versioned migrations of the platform's own tables, applied at start, each in a transaction.

A migration is a numbered step that is never edited once released: a later change to a table
is a new step that alters it. Each namespace records the steps it has in `roost_migrations`.
Concurrent starts (several workers, several replicas) are ordered by the write lock (SQLite)
or a transaction-scoped advisory lock (PostgreSQL), so each step runs once.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from roost.backends.sql import tables
from roost.backends.sql.database import CONTROL, Database

Step = Callable[[AsyncConnection], Awaitable[None]]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Step


_version_metadata = MetaData()
_versions = Table(
    "roost_migrations",
    _version_metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", tables.UTCDateTime, nullable=False, default=tables.utcnow),
)


def _create(*selected: Table) -> Step:
    async def step(conn: AsyncConnection) -> None:
        await conn.run_sync(lambda sync: selected[0].metadata.create_all(sync, tables=selected))

    return step


def _drop(*selected: Table) -> Step:
    async def step(conn: AsyncConnection) -> None:
        await conn.run_sync(lambda sync: selected[0].metadata.drop_all(sync, tables=selected))

    return step


def _add_columns(table: Table, *names: str) -> Step:
    """ALTER TABLE ... ADD COLUMN for columns declared on `table` after it was created. A
    namespace made after the declaration already has them (its first step creates the table
    as declared now), so columns present are skipped."""

    async def step(conn: AsyncConnection) -> None:
        for name in names:
            if await _has_column(conn, table.name, name):
                continue
            kind = table.c[name].type.compile(dialect=conn.dialect)
            await conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}"))

    return step


async def _has_column(conn: AsyncConnection, table: str, column: str) -> bool:
    if conn.dialect.name == "sqlite":
        rows = (await conn.execute(text(f"PRAGMA table_info({table})"))).all()
        return any(row[1] == column for row in rows)
    found = await conn.scalar(
        text(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = :table AND column_name = :column"
        ),
        {"table": table, "column": column},
    )
    return found is not None


async def _builtin_roles(conn: AsyncConnection) -> None:
    await conn.execute(
        tables.roles.insert(),
        [
            {"name": "admin", "scopes": ["*"], "description": "every scope", "builtin": True},
            {
                "name": "member",
                "scopes": ["api_keys:read", "api_keys:write"],
                "description": "what every user may do for themselves",
                "builtin": True,
            },
        ],
    )


async def _append_only_audit(conn: AsyncConnection) -> None:
    """Refuse UPDATE and DELETE on the audit log in the database itself."""
    if conn.dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            await conn.execute(
                text(
                    f"CREATE TRIGGER roost_audit_no_{action.lower()} BEFORE {action} "
                    "ON roost_audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
                )
            )
        return
    await conn.execute(
        text(
            "CREATE FUNCTION roost_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$"
        )
    )
    await conn.execute(
        text(
            "CREATE TRIGGER roost_audit_append_only BEFORE UPDATE OR DELETE ON roost_audit "
            "FOR EACH STATEMENT EXECUTE FUNCTION roost_audit_append_only()"
        )
    )


CONTROL_MIGRATIONS: Sequence[Migration] = (
    Migration(1, "tenants", _create(tables.tenants)),
    Migration(2, "tenant categories", _create(tables.tenant_categories)),
    Migration(3, "embedded KV cache", _create(tables.kv_entries)),
    Migration(4, "embedded work queues", _create(tables.queues, tables.queue_messages)),
    Migration(5, "embedded event streams", _create(tables.stream_rooms, tables.stream_events)),
    Migration(6, "KV ttl bounds per tenant", _create(tables.tenant_kv_bounds)),
    Migration(7, "tenants being deleted", _create(tables.tenant_purges)),
)

TENANT_MIGRATIONS: Sequence[Migration] = (
    Migration(
        1,
        "users, roles, sessions, refresh tokens, API keys",
        _create(
            tables.users,
            tables.roles,
            tables.user_roles,
            tables.sessions,
            tables.refresh_tokens,
            tables.api_keys,
        ),
    ),
    Migration(2, "built-in roles admin and member", _builtin_roles),
    Migration(3, "idempotency keys", _create(tables.idempotency_keys)),
    Migration(
        4,
        "user table definitions and their migrations",
        _create(tables.user_tables, tables.schema_migrations),
    ),
    Migration(5, "documents", _create(tables.documents)),
    Migration(6, "audit log", _create(tables.audit_log)),
    Migration(7, "audit log is append-only", _append_only_audit),
    Migration(8, "analytics queries", _create(tables.analytics_queries)),
    Migration(9, "storage buckets and objects", _create(tables.buckets, tables.objects)),
    Migration(
        10,
        "idempotency keys move to the KV store (shared by replicas)",
        _drop(tables.idempotency_keys),
    ),
    Migration(
        11,
        "secrets, their versions and the tenant's wrapped data key",
        _create(tables.secret_keys, tables.secrets, tables.secret_versions),
    ),
    Migration(12, "structured logs", _create(tables.logs)),
    Migration(
        13, "mail templates and sent mail", _create(tables.mail_templates, tables.mail_messages)
    ),
    Migration(14, "users' email verification", _add_columns(tables.users, "email_verified_at")),
    Migration(15, "one-time tokens sent by mail", _create(tables.user_tokens)),
    Migration(16, "users' preferences", _add_columns(tables.users, "preferences")),
    Migration(17, "usage by hour and API key", _create(tables.usage)),
    Migration(18, "site settings", _create(tables.site_settings)),
    Migration(19, "pages and the scopes they need", _create(tables.pages)),
    Migration(20, "tenant-defined scopes", _create(tables.custom_scopes)),
)


async def migrate(db: Database, namespace: str) -> list[int]:
    """Bring one namespace up to date; return the versions applied now."""
    steps = CONTROL_MIGRATIONS if namespace == CONTROL else TENANT_MIGRATIONS
    async with db.write(namespace) as conn:
        if db.dialect == "postgresql":
            schema = db.schema_of(namespace)
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(schema)})
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(lambda sync: _version_metadata.create_all(sync))
        done = set((await conn.execute(select(_versions.c.version))).scalars())
        applied = []
        for migration in steps:
            if migration.version in done:
                continue
            await migration.apply(conn)
            await conn.execute(
                _versions.insert().values(
                    version=migration.version, description=migration.description
                )
            )
            applied.append(migration.version)
    return applied


def _lock_key(schema: str) -> int:
    return zlib.crc32(f"roost-migrate:{schema}".encode())
