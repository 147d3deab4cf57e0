"""Ordering writers of the same keys inside a transaction."""

from __future__ import annotations

import sqlite3

from sqlalchemy import Connection, text


def serialize_writers(conn: Connection | sqlite3.Connection, space: str, *keys: str) -> None:
    """Hold the keys until the transaction ends. SQLite has one writer already; PostgreSQL
    takes a transaction-scoped advisory lock per key (sorted, so two writers never deadlock)."""
    if isinstance(conn, Connection) and conn.dialect.name == "postgresql":
        for key in sorted(set(keys)):
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{space}:{key}"}
            )
