"""The SQL backend: SQLite (embedded default) or PostgreSQL, through SQLAlchemy Core."""

from roost.backends.sql.database import CONTROL, Database

__all__ = ["CONTROL", "Database"]
