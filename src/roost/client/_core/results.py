"""Small frozen result types (records themselves are plain dicts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class BatchItemResult:
    """One operation of a `client.batch` call: `status` is "success" or "error"."""

    status: str
    payload: Any = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"


@dataclass(frozen=True, slots=True)
class SetResult:
    """Whether `kv.set` stored the value (false when nx/xx said no)."""

    success: bool


@dataclass(frozen=True, slots=True)
class GetResult:
    """`kv.get`: whether the key exists, its value, and its ttl (-1: never expires)."""

    found: bool
    value: Any = None
    ttl: int | None = None


@dataclass(frozen=True, slots=True)
class ScanResult:
    """A page of `kv.scan`; pass `cursor` back while `has_more`."""

    keys: list[str]
    cursor: str | None
    has_more: bool
