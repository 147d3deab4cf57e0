"""Types of the structured log operations (Dominus logs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

Level = Literal["debug", "info", "notice", "warn", "error", "critical"]
LEVELS: dict[Level, int] = {
    "debug": 10,
    "info": 20,
    "notice": 25,
    "warn": 30,
    "error": 40,
    "critical": 50,
}
Category = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:\-]+$", max_length=100)]


class LogSource(Struct, forbid_unknown_fields=True):
    """Where in the caller's code the entry was written (the SDK fills it in)."""

    file: Annotated[str, Meta(max_length=500)] = ""
    function: Annotated[str, Meta(max_length=200)] = ""
    line: Annotated[int, Meta(ge=0)] = 0


class LogEntryIn(Struct, forbid_unknown_fields=True):
    level: Level
    message: Annotated[str, Meta(min_length=1, max_length=10_000)]
    data: Any = None
    category: Category = "app"
    exception: Annotated[str, Meta(max_length=32_768)] | None = None
    source: LogSource | None = None


class WriteLogsRequest(Struct, forbid_unknown_fields=True):
    entries: Annotated[list[LogEntryIn], Meta(min_length=1, max_length=1000)]


class LogQuery(Struct, forbid_unknown_fields=True):
    level: Level | None = None  # this level and above
    category: Category | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    cursor: Annotated[str, Meta(max_length=40)] | None = None


class LogTailRequest(Struct, forbid_unknown_fields=True):
    """`logs.tail`: the entries written from now on that pass these filters (as `logs.query`)."""

    level: Level | None = None  # this level and above
    category: Category | None = None
    search: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class LogEntry(Struct):
    id: int
    at: datetime
    level: Level
    category: str
    message: str
    data: Any
    exception: str | None
    source: LogSource | None
    username: str


class LogPage(Struct):
    entries: list[LogEntry]  # newest first
    next_cursor: str | None
