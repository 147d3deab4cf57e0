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
