"""The JSON column type of Roost's tables: JSON on SQLite, JSONB on PostgreSQL.

`JSON().with_variant(JSONB(), "postgresql")` says the same, but needs the JSONB class when the
tables are defined, and importing it imports SQLAlchemy's whole PostgreSQL dialect with its four
drivers (~50 ms of `roost serve`'s start, for nothing on SQLite). The variant here is a type
that names JSONB only when a PostgreSQL dialect asks for its implementation: DDL, bind and
result processing on PostgreSQL are JSONB's, as before; everywhere else it is never consulted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Dialect, TypeDecorator
from sqlalchemy.types import TypeEngine


class _PostgreSQLJSONB(TypeDecorator[Any]):
    """JSONB, resolved when a PostgreSQL dialect first compiles or runs a statement with it."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        from sqlalchemy.dialects.postgresql import JSONB

        return dialect.type_descriptor(JSONB())


def json_type() -> TypeEngine[Any]:
    """A JSON column's type: JSON, and JSONB on PostgreSQL."""
    return JSON().with_variant(_PostgreSQLJSONB(), "postgresql")
