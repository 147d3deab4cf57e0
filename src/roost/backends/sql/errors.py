"""What counts as an outage of the SQL backend (see `backends/errors.py`).

Only failures to reach or keep the database are outages; a statement the database refuses (a
constraint, a syntax error, a DDL conflict) is the caller's to handle, so it passes unchanged.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# PostgreSQL SQLSTATE classes: 08 connection exception, 53 insufficient resources (too many
# connections, out of memory, disk full), 57P operator intervention (shutdown, starting up).
_PG_OUTAGE_STATES = ("08", "53", "57P")
# SQLite: the file is held by another writer past busy_timeout, or cannot be opened or written.
_SQLITE_OUTAGES = ("database is locked", "unable to open database", "disk i/o error")


def sql_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached or cannot serve right now."""
    if isinstance(exc, OSError | PoolTimeout):  # no server at the address; the pool is spent
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
        if isinstance(exc, OSError):
            return True
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(state, str) and state.startswith(_PG_OUTAGE_STATES):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc).lower()
        return any(marker in message for marker in _SQLITE_OUTAGES)
    return False
