"""Start a coroutine right away and make it a task only if it has to wait.

Python 3.12 has this as `asyncio.eager_task_factory`; on 3.11 it is written here. Most calls
on the WebSocket door answer without waiting (a cached credential, an embedded KV read, a
whoami): run inline, they skip the task's creation and its trip through the event loop, about a
third of what such a call costs. A call that does wait goes on in a task, in the same context,
exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start_eagerly(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T] | None:
    """Run `coro` up to its first wait. `None` if it finished (its result is dropped: use it
    for coroutines that deliver their own outcome); else the task that runs the rest."""
    context = contextvars.copy_context()
    try:
        awaited = context.run(coro.send, None)
    except StopIteration:
        return None
    if awaited is not None:
        # A future raises "await wasn't used with future" when awaited while this flag, set by
        # its own await, is on; a task clears it as it takes the future. Until our task does,
        # other coroutines started eagerly may await the same future (a credential being
        # loaded): clear it now, `_Resumed` sets it again for the task.
        awaited._asyncio_future_blocking = False
    return asyncio.get_running_loop().create_task(_rest(coro, awaited), context=context)


async def _rest(coro: Coroutine[Any, Any, T], awaited: Any) -> T:
    result: T = await _Resumed(coro, awaited)
    return result


class _Resumed:
    """The rest of a coroutine that stopped at `awaited` (the future it waits on, or None for
    a bare yield): the task gets that future, and every send and throw after it goes through
    to the coroutine, as if the task had run it from the start."""

    def __init__(self, coro: Coroutine[Any, Any, Any], awaited: Any) -> None:
        self._coro = coro
        self._awaited = awaited

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self._coro, self._awaited
        if value is not None:
            value._asyncio_future_blocking = True  # a task takes a future only with it on
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # the task throws CancelledError in
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class Starter:
    """Starts coroutines eagerly, except those of a kind (an operation's name) that waited last
    time: for those an eager start only adds the cost of moving them into a task, so they go
    straight into one. One start in `probe_every` of such a kind is still eager, to notice when
    it stops waiting (a cache has warmed up, say)."""

    def __init__(self, probe_every: int = 64, max_kinds: int = 1000) -> None:
        self._waited: dict[str, int] = {}  # kind → starts since it was last seen to wait
        self._probe_every = probe_every
        self._max_kinds = max_kinds

    def start(self, kind: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T] | None:
        """`None` if `coro` finished right away, else the task that runs it (on)."""
        starts = self._waited.get(kind)
        if starts is not None:
            self._waited[kind] = starts + 1
            if starts % self._probe_every:
                return asyncio.get_running_loop().create_task(coro)
        task = start_eagerly(coro)
        if task is None:
            self._waited.pop(kind, None)
        elif starts is None:
            if len(self._waited) >= self._max_kinds:
                self._waited.clear()
            self._waited[kind] = 1
        return task
