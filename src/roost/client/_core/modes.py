"""`Client(mode="async")` returns an AsyncClient (and `AsyncClient(mode="sync")` a Client)."""

from __future__ import annotations

from importlib import import_module
from typing import Any, ClassVar

from roost.errors import ConfigurationError

_CLASSES = {
    "sync": ("roost.client._sync.client", "Client"),
    "async": ("roost.client._async.client", "AsyncClient"),
}


class ModeSelecting:
    MODE: ClassVar[str]

    def __new__(cls, *args: Any, mode: str | None = None, **kwargs: Any) -> Any:
        if mode is None or mode == cls.MODE:
            return super().__new__(cls)
        if mode not in _CLASSES:
            raise ConfigurationError(
                f"mode must be 'sync' or 'async', got {mode!r}", details={"field": "mode"}
            )
        module, name = _CLASSES[mode]
        return getattr(import_module(module), name)(*args, **kwargs)
