"""Database refusals as clear 4xx errors naming the constraint or column at fault."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DataError, IntegrityError

from roost.errors import ConflictError, RoostError, ValidationError

_SQLITE = [
    (re.compile(r"UNIQUE constraint failed: (.+)"), "unique_violation"),
    (re.compile(r"FOREIGN KEY constraint failed"), "foreign_key_violation"),
    (re.compile(r"NOT NULL constraint failed: (.+)"), "not_null_violation"),
    (re.compile(r"CHECK constraint failed: (.+)"), "check_violation"),
]
_PG_STATES = {
    "23505": "unique_violation",
    "23503": "foreign_key_violation",
    "23502": "not_null_violation",
    "23514": "check_violation",
}
_MESSAGES = {
    "unique_violation": "a row with this value exists",
    "foreign_key_violation": "a reference points to a row that does not exist (or a row that is "
    "still referenced was to be removed)",
    "not_null_violation": "a required column has no value",
    "check_violation": "a value breaks a CHECK constraint",
}


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn IntegrityError and DataError raised inside into ConflictError / ValidationError."""
    try:
        yield
    except IntegrityError as exc:
        raise _integrity(exc) from None
    except DataError as exc:
        detail = str(exc.orig).strip().splitlines()[0][:300] if exc.orig else ""
        raise ValidationError(f"the database refused a value: {detail}") from None


def _integrity(exc: IntegrityError) -> RoostError:
    cause = getattr(exc.orig, "__cause__", None)
    state = getattr(cause, "sqlstate", None)
    code, constraint = None, None
    if state in _PG_STATES:
        code = _PG_STATES[state]
        constraint = getattr(cause, "constraint_name", None) or getattr(cause, "column_name", None)
    else:
        message = str(exc.orig)
        for pattern, name in _SQLITE:
            if match := pattern.search(message):
                code = name
                constraint = match.group(1) if match.groups() else None
                break
    code = code or "conflict"
    details = {"constraint": constraint} if constraint else {}
    text = _MESSAGES.get(code, "the change conflicts with existing data")
    if constraint:
        text += f" ({constraint})"
    if code == "not_null_violation":  # a missing value: the request is incomplete
        return ValidationError(text, code=code, details=details)
    return ConflictError(text, code=code, details=details)
