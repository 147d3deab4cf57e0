"""Versioned migrations of the platform's own tables, applied at start, each in a transaction.

A migration is a numbered step whose SQL is frozen: it is rendered from the definitions in
`frozen.py` (the tables as the step made them), never from the live ones in `tables.py`, so a
namespace made today and one upgraded step by step from the first get the same schema. A
released step is never edited; a later change is a new step. tests/backends/test_migrations.py
records a fingerprint of each released step's SQL, and checks that the steps build what
`tables.py` declares. Steps name their frozen tables (`CreateTables("roles")`), and
`frozen.py` is imported when a step is rendered or run, not on a start that has none to run.

Each namespace records the steps it has in `roost_migrations`. Concurrent starts (several
workers, several replicas) are ordered by the write lock (SQLite) or a transaction-scoped
advisory lock (PostgreSQL), so each step runs once.
"""

from __future__ import annotations

import functools
import json
import zlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import Dialect as SQLDialect
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.types import TypeEngine

from roost.backends.sql import tables
from roost.backends.sql.database import CONTROL, Database, Dialect


@functools.cache
def _dialect(name: str) -> SQLDialect:
    """The dialect DDL is rendered by, not the connection's own, so that what runs is exactly
    what the fingerprints were taken of. PostgreSQL's is imported when first asked for: on
    SQLite, SQLAlchemy's PostgreSQL dialect (and its drivers) is never loaded."""
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql.base import PGDialect

        return PGDialect()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
    if name == "sqlite":
        return SQLiteDialect()
    raise KeyError(name)


class Change(Protocol):
    """One part of a migration step."""

    def sql(self, dialect: SQLDialect) -> list[str]:
        """What the change runs on `dialect`, as text (its fingerprint is taken of this)."""
        ...

    def apply(self, conn: Connection) -> None:
        """Run the change in the migration's transaction."""
        ...


class _Statements(ABC):
    """A change that is nothing but its SQL statements."""

    @abstractmethod
    def sql(self, dialect: SQLDialect) -> list[str]: ...

    def apply(self, conn: Connection) -> None:
        for statement in self.sql(_dialect(conn.dialect.name)):
            conn.exec_driver_sql(statement)


def frozen_table(name: str) -> Table:
    """The table `name` of `frozen.py`, which is imported here, when a step is rendered or
    run: building its tables was ~6% of a start on an existing data folder, where none is."""
    from roost.backends.sql import frozen

    table = getattr(frozen, name)
    if not isinstance(table, Table):
        raise TypeError(f"frozen.{name} is not a table")
    return table


class CreateTables(_Statements):
    """CREATE TABLE, then CREATE INDEX for its indexes, for each (frozen) table in order."""

    def __init__(self, *created: str) -> None:
        self.names = created

    def sql(self, dialect: SQLDialect) -> list[str]:
        statements = []
        for table in map(frozen_table, self.names):
            statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
            for index in sorted(table.indexes, key=lambda index: str(index.name)):
                statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
        return statements


class DropTables(_Statements):
    """DROP TABLE, in order (their indexes go with them)."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def sql(self, dialect: SQLDialect) -> list[str]:
        return [f"DROP TABLE {name}" for name in self.names]


class AddColumn(_Statements):
    """ALTER TABLE ... ADD COLUMN: a nullable column (existing rows get NULL)."""

    def __init__(self, table: str, name: str, kind: TypeEngine[Any]) -> None:
        self.table, self.name, self.kind = table, name, kind

    def sql(self, dialect: SQLDialect) -> list[str]:
        kind = self.kind.compile(dialect=dialect)
        return [f"ALTER TABLE {self.table} ADD COLUMN {self.name} {kind}"]


class RawSQL(_Statements):
    """Statements written for each engine (triggers, functions)."""

    def __init__(self, *, sqlite: Sequence[str], postgresql: Sequence[str]) -> None:
        self.statements = {"sqlite": list(sqlite), "postgresql": list(postgresql)}

    def sql(self, dialect: SQLDialect) -> list[str]:
        return self.statements[dialect.name]


class InsertRows:
    """Rows for a (frozen) table; the `stamped` column gets the time the step runs (naive
    UTC, as `tables.UTCDateTime` stores it)."""

    def __init__(self, table: str, rows: Sequence[Mapping[str, Any]], stamped: str) -> None:
        self.table, self.rows, self.stamped = table, rows, stamped  # its name in frozen.py

    def sql(self, dialect: SQLDialect) -> list[str]:
        # Not the compiled INSERT: its parameter style is the driver's, not the step's.
        table = frozen_table(self.table)
        columns = ", ".join(column.name for column in table.columns)
        rows = json.dumps(list(self.rows), sort_keys=True)
        return [f"INSERT INTO {table.name} ({columns})", rows]

    def apply(self, conn: Connection) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = [{**row, self.stamped: now} for row in self.rows]
        conn.execute(frozen_table(self.table).insert(), rows)


class Migration(msgspec.Struct, frozen=True):
    """One numbered step of a namespace's migrations: its changes, in order."""

    version: int
    description: str
    changes: tuple[Change, ...]

    def sql(self, dialect: Dialect) -> list[str]:
        """Everything the step runs on an engine, as text."""
        return [line for change in self.changes for line in change.sql(_dialect(dialect))]

    def apply(self, conn: Connection) -> None:
        for change in self.changes:
            change.apply(conn)


def step(version: int, description: str, *changes: Change) -> Migration:
    """A migration step made of `changes`."""
    return Migration(version, description, changes)


_version_metadata = MetaData()
_versions = Table(
    "roost_migrations",
    _version_metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", tables.UTCDateTime, nullable=False, default=tables.utcnow),
)

_APPEND_ONLY_AUDIT = RawSQL(
    sqlite=[
        f"CREATE TRIGGER roost_audit_no_{action.lower()} BEFORE {action} ON roost_audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        for action in ("UPDATE", "DELETE")
    ],
    postgresql=[
        "CREATE FUNCTION roost_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
        "CREATE TRIGGER roost_audit_append_only BEFORE UPDATE OR DELETE ON roost_audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION roost_audit_append_only()",
    ],
)

_BUILTIN_ROLES = InsertRows(
    "roles",
    [
        {"name": "admin", "scopes": ["*"], "description": "every scope", "builtin": True},
        {
            "name": "member",
            "scopes": ["api_keys:read", "api_keys:write"],
            "description": "what every user may do for themselves",
            "builtin": True,
        },
    ],
    stamped="created_at",
)

_ANONYMOUS_ROLE = InsertRows(
    "roles",
    [
        {
            "name": "anonymous",
            "scopes": [],
            "description": "what users who signed in anonymously may do",
            "builtin": True,
        }
    ],
    stamped="created_at",
)

_POLICY_STATE = InsertRows(
    "policy_state",
    [{"id": 1, "revision": 0, "globals": {}, "updated_by": ""}],
    stamped="updated_at",
)

CONTROL_MIGRATIONS: Sequence[Migration] = (
    step(1, "tenants", CreateTables("tenants")),
    step(2, "tenant categories", CreateTables("tenant_categories")),
    step(3, "embedded KV cache", CreateTables("kv_entries")),
    step(4, "embedded work queues", CreateTables("queues", "queue_messages")),
    step(5, "embedded event streams", CreateTables("stream_rooms", "stream_events")),
    step(6, "KV ttl bounds per tenant", CreateTables("tenant_kv_bounds")),
    step(7, "tenants being deleted", CreateTables("tenant_purges")),
    step(
        8,
        "one person across tenants: memberships and their invitations",
        CreateTables("memberships", "membership_invites"),
    ),
)

TENANT_MIGRATIONS: Sequence[Migration] = (
    step(
        1,
        "users, roles, sessions, refresh tokens, API keys",
        CreateTables(
            "users",
            "roles",
            "user_roles",
            "sessions",
            "refresh_tokens",
            "api_keys",
        ),
    ),
    step(2, "built-in roles admin and member", _BUILTIN_ROLES),
    step(3, "idempotency keys", CreateTables("idempotency_keys")),
    step(
        4,
        "user table definitions and their migrations",
        CreateTables("user_tables", "schema_migrations"),
    ),
    step(5, "documents", CreateTables("documents")),
    step(6, "audit log", CreateTables("audit_log")),
    step(7, "audit log is append-only", _APPEND_ONLY_AUDIT),
    step(8, "analytics queries", CreateTables("analytics_queries")),
    step(9, "storage buckets and objects", CreateTables("buckets", "objects")),
    step(
        10,
        "idempotency keys move to the KV store (shared by replicas)",
        DropTables("roost_idempotency_keys"),
    ),
    step(
        11,
        "secrets, their versions and the tenant's wrapped data key",
        CreateTables("secret_keys", "secrets", "secret_versions"),
    ),
    step(12, "structured logs", CreateTables("logs")),
    step(
        13,
        "mail templates and sent mail",
        CreateTables("mail_templates", "mail_messages"),
    ),
    step(
        14,
        "users' email verification",
        AddColumn("roost_users", "email_verified_at", DateTime()),
    ),
    step(15, "one-time tokens sent by mail", CreateTables("user_tokens")),
    step(16, "users' preferences", AddColumn("roost_users", "preferences", JSON())),
    step(17, "usage by hour and API key", CreateTables("usage")),
    step(18, "site settings", CreateTables("site_settings")),
    step(19, "pages and the scopes they need", CreateTables("pages")),
    step(20, "tenant-defined scopes", CreateTables("custom_scopes")),
    step(
        21,
        "functions, their versions and invocations; function usage",
        CreateTables("functions", "function_versions", "function_invocations"),
        AddColumn("roost_usage", "function_invocations", BigInteger()),
        AddColumn("roost_usage", "function_ms", BigInteger()),
    ),
    step(
        22,
        "policies, their changes, and the tenant's policy revision and globals",
        CreateTables("policy_state", "policies", "policy_changes"),
        _POLICY_STATE,
    ),
    step(
        23,
        "tables, buckets, streams, queues and functions bound to policy resource kinds",
        CreateTables("policy_bindings"),
    ),
    step(
        24,
        "two-factor sign-in: TOTP factors and recovery codes",
        CreateTables("totp_factors", "recovery_codes"),
    ),
    step(
        25,
        "sign-in providers, linked identities and sign-in handoffs",
        CreateTables("auth_providers", "user_identities", "auth_handoffs"),
    ),
    step(
        26,
        "passkeys; anonymous users and their built-in role",
        CreateTables("passkeys"),
        AddColumn("roost_users", "is_anonymous", Boolean()),
        _ANONYMOUS_ROLE,
    ),
    step(
        27,
        "triggers and their deliveries",
        CreateTables("triggers", "trigger_deliveries"),
    ),
    step(
        28,
        "the trigger outbox: events written with the change that made them",
        CreateTables("trigger_outbox"),
    ),
    step(
        29,
        "Idempotency-Key answers of record writes, written with the write",
        CreateTables("idempotency_answers"),
    ),
)


async def migrate(db: Database, namespace: str, *, target: int | None = None) -> list[int]:
    """Bring one namespace up to date, or up to step `target` (none later); return the
    versions applied now. The steps run as one plain function in one transaction
    (`Database.run`): on SQLite that is one thread hop for all their statements rather than
    one per statement, which made every start (and every test server) ~0.4 s slower."""
    steps = CONTROL_MIGRATIONS if namespace == CONTROL else TENANT_MIGRATIONS

    def work(conn: Connection) -> list[int]:
        if conn.dialect.name == "postgresql":
            schema = db.schema_of(namespace)
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(schema)})
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        _version_metadata.create_all(conn)
        done = set(conn.execute(select(_versions.c.version)).scalars())
        applied = []
        for migration in steps:
            if migration.version in done or (target is not None and migration.version > target):
                continue
            migration.apply(conn)
            conn.execute(
                _versions.insert().values(
                    version=migration.version, description=migration.description
                )
            )
            applied.append(migration.version)
        return applied

    return await db.run(namespace, work, write=True)


def _lock_key(schema: str) -> int:
    return zlib.crc32(f"roost-migrate:{schema}".encode())


async def applied_steps(db: Database, namespace: str) -> set[int]:
    """The steps a namespace has (none if it has no record yet), read without changing it:
    for `roost migrate status`."""

    def work(conn: Connection) -> set[int]:
        schema = db.schema_of(namespace) if conn.dialect.name == "postgresql" else None
        if not inspect(conn).has_table(_versions.name, schema=schema):
            return set()
        return set(conn.execute(select(_versions.c.version)).scalars())

    return await db.run(namespace, work)


def known_steps(namespace: str) -> list[int]:
    """The steps this version of Roost knows for a namespace."""
    steps = CONTROL_MIGRATIONS if namespace == CONTROL else TENANT_MIGRATIONS
    return [migration.version for migration in steps]
