"""Driver errors translated where they arise: inside each backend (the httpx transport pattern).

A backend that cannot reach its server raises `ServiceUnavailableError` (503, with a
Retry-After), whatever its driver raised; every other error passes unchanged. The doors thus
never need to know a driver's exception types. Each family decides what an outage is
(`redis_outage`, `backends.sql.errors.sql_outage`) and applies it with `map_errors` around a
call, or `translate_errors` on a store class (every public coroutine method, once).
"""

from __future__ import annotations

import collections
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from roost.errors import RoostError, ServiceUnavailableError

logger = logging.getLogger("roost.backends")

RETRY_AFTER = 1.0
"""Seconds a client is told to wait after an outage: long enough not to hammer a backend that
restarts, short enough that a blip costs little."""

IsOutage = Callable[[BaseException], bool]
C = TypeVar("C", bound=type)


OUTAGES: collections.Counter[str] = collections.Counter()
"""Outages met by this process, by backend (read by `/metrics`, `server/metrics.py`)."""


def unavailable(backend: str, exc: BaseException) -> ServiceUnavailableError:
    """The error to answer with when `backend` ("Redis", "PostgreSQL", ...) is unreachable."""
    OUTAGES[backend] += 1
    logger.warning("%s is unavailable: %s", backend, exc)
    return ServiceUnavailableError(
        f"{backend} is unavailable; retry later", retry_after=RETRY_AFTER
    )


def _raise_outage(exc: Exception, backend: str, is_outage: IsOutage) -> None:
    """Raise ServiceUnavailableError for `exc` if it is an outage of `backend` (never for one of
    our own errors); return to let the caller re-raise it unchanged otherwise."""
    if not isinstance(exc, RoostError) and is_outage(exc):
        raise unavailable(backend, exc) from exc


class map_errors:  # lower case: it is used as the function (a contextmanager) it was
    """`with map_errors(backend, is_outage):` raises `ServiceUnavailableError` for a driver
    error that `is_outage` recognises; any other error passes unchanged.

    A class rather than a `@contextmanager` generator: it wraps every database use, down to
    the inline primary-key reads of SQLite that take a few microseconds, and a generator's
    context manager costs about as much as such a read."""

    __slots__ = ("backend", "is_outage")

    def __init__(self, backend: str, is_outage: IsOutage) -> None:
        self.backend, self.is_outage = backend, is_outage

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, Exception):  # anything else goes on as it was
            _raise_outage(exc, self.backend, self.is_outage)


def translate_errors(backend: str, is_outage: IsOutage) -> Callable[[C], C]:
    """A class decorator: every public coroutine method of the class maps its outages.

    A wrapper per method costs one coroutine frame per call (well under a microsecond), and no
    method can be forgotten when one is added."""

    def decorate(cls: C) -> C:
        for name, method in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(method):
                setattr(cls, name, _translated(method, backend, is_outage))
        return cls

    return decorate


def _translated(
    method: Callable[..., Awaitable[Any]], backend: str, is_outage: IsOutage
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except Exception as exc:
            _raise_outage(exc, backend, is_outage)
            raise

    return call


def redis_outage(exc: BaseException) -> bool:
    """Redis cannot be reached: redis-py's connection and timeout errors (a server still
    loading its data counts), and the socket errors of our own line (`redis_line.py`)."""
    from redis.exceptions import ConnectionError, TimeoutError

    return isinstance(exc, ConnectionError | TimeoutError | OSError)
