"""Synap without I/O: its client settings (`ClientConfig`, `SYNAP_*`), its error names and
where they are raised.

Error names, all within Roost's one tree (`except SynapError` catches every one):
`SynapError` is `RoostError` (`code`, `message`, `details`); `RateLimitError` (its
`details["retry_after"]`) and `ConnectionError` are Roost's own; `KeyNotFoundError`,
`QueueNotFoundError` and `RoomNotFoundError` are `NotFoundError`s that only the Synap facade
raises: `kv.get` of a missing key, `queue.ack`/`nack` of a message that is not in flight in
that queue, `stream.history` of a room that never had an event.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from roost.compat._core.credentials import credential_kind
from roost.errors import NotFoundError, RoostError

SynapError = RoostError


class KeyNotFoundError(NotFoundError):
    """`kv.get` of a key that does not exist."""

    default_code = "key_not_found"


class QueueNotFoundError(NotFoundError):
    """`queue.ack`/`nack` of a message that is not in flight in that queue (Roost queues
    exist once used, so an unknown queue shows here)."""

    default_code = "queue_not_found"


class RoomNotFoundError(NotFoundError):
    """`stream.history` of a room that never had an event."""

    default_code = "room_not_found"


@contextmanager
def not_found_as(cls: type[NotFoundError]) -> Iterator[None]:
    """Raise `cls` (with the native error's message and details) for a NotFoundError."""
    try:
        yield
    except NotFoundError as exc:
        raise cls(exc.message, status_code=exc.status_code, details=exc.details) from exc


_NATIVE_NAMES = {
    "url": "api_url",
    "timeout": "timeout",
    "retries": "max_retries",
    "retry_delay": "retry_delay",
    "retry_backoff": "retry_multiplier",
    "retry_max_delay": "retry_max_delay",
    "pool_size": "pool_size",
    "keep_alive": "keep_alive",
    "compression": "compression",
    "format": "format",
}


class ClientConfig(msgspec.Struct, frozen=True):
    """Synap's client settings. What is left None comes from `SYNAP_<NAME>` (`SYNAP_URL`,
    `SYNAP_API_KEY`, `SYNAP_TIMEOUT`, ...), then from Roost's `ROOST_*` and its defaults."""

    url: str | None = None
    api_key: str | None = None
    timeout: float | None = None
    retries: int | None = None
    retry_delay: float | None = None
    retry_backoff: float | None = None
    retry_max_delay: float | None = None
    pool_size: int | None = None
    keep_alive: bool | None = None
    compression: bool | None = None
    format: str | None = None

    def native_options(self) -> dict[str, Any]:
        """The arguments of `roost.AsyncClient` / `roost.Client` these settings stand for
        (the native client checks and converts them)."""
        given = {field.name: self._setting(field.name) for field in msgspec.structs.fields(self)}
        options = {
            native: given[name] for name, native in _NATIVE_NAMES.items() if given[name] is not None
        }
        if api_key := given["api_key"]:
            options.update(token=api_key, token_type=credential_kind(api_key))
        return options

    def _setting(self, name: str) -> Any:
        value = getattr(self, name)
        return value if value is not None else os.environ.get(f"SYNAP_{name.upper()}") or None
