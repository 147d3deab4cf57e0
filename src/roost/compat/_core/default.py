"""A seed's module-level client (`from dominus import dominus`): made at first use, from the
environment as it is then, rather than at import."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Process:
    """The key of the one instance a sync client shares in a process."""


class LoopLocal(Generic[T]):
    """One `make()` per running event loop (`per_loop`), or one in all.

    An httpx connection pool belongs to the event loop it was opened on, and code written for
    a module-level async client may run several loops one after another (`asyncio.run` per
    task, a test runner's loop per test): each gets its own. An instance is dropped with its
    loop.
    """

    def __init__(self, make: Callable[[], T], *, per_loop: bool) -> None:
        self._make = make
        self._per_loop = per_loop
        self._process = _Process()
        self._made: weakref.WeakKeyDictionary[object, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self) -> T:
        key = self._key()
        with self._lock:
            found = self._made.get(key)
            if found is None:
                found = self._made[key] = self._make()
            return found

    def forget(self) -> T | None:
        """Drop this loop's instance (the next `get` makes a new one) and return it."""
        with self._lock:
            return self._made.pop(self._key(), None)

    def _key(self) -> object:
        return asyncio.get_running_loop() if self._per_loop else self._process
