"""Start a coroutine right away and make it a task only if it has to wait.

Python 3.12 has this (`eager_start`), and it is used there; on 3.11 it is written here. Most
calls on the WebSocket door answer without waiting (a cached credential, an embedded KV read, a
whoami): run inline, they skip the task's creation and its trip through the event loop, about a
third of what such a call costs. A call that does wait goes on in a task, in the same context,
exactly where it stopped.

While the coroutine runs inline, `asyncio.current_task()` answers a stand-in for the task it
may move into, not the caller's task: `asyncio.timeout` or a TaskGroup entered there cancels
that task later, never the caller.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import sys
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start_eagerly(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T] | None:
    """Run `coro` up to its first wait. `None` if it finished (its result is dropped: use it
    for coroutines that deliver their own outcome); else the task that runs the rest."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    if sys.version_info >= (3, 12):
        task = asyncio.Task(coro, loop=loop, context=context, eager_start=True)
        if task.done():
            task.result()  # raises what the coroutine raised
            return None
        return task
    stand_in = _TaskToBe()
    caller = asyncio.current_task(loop)
    # asyncio's own bookkeeping of the running task (what Task.__step does around each step),
    # written out: every WebSocket call comes through here
    if caller is not None:
        _leave_task(loop, caller)
    _enter_task(loop, stand_in)
    try:
        awaited = context.run(coro.send, None)
    except StopIteration:
        return None
    finally:
        _leave_task(loop, stand_in)
        if caller is not None:
            _enter_task(loop, caller)
    if awaited is not None:
        # A future raises "await wasn't used with future" when awaited while this flag, set by
        # its own await, is on; a task clears it as it takes the future. Until our task does,
        # other coroutines started eagerly may await the same future (a credential being
        # loaded): clear it now, `_Rest` sets it again for the task.
        awaited._asyncio_future_blocking = False
    stand_in.task = loop.create_task(_Rest(coro, awaited), context=context)
    return stand_in.task


# typed loosely: the stand-in below is no Task, and asyncio only keeps what it is handed
_enter_task: Callable[[asyncio.AbstractEventLoop, Any], None] = asyncio.tasks._enter_task
_leave_task: Callable[[asyncio.AbstractEventLoop, Any], None] = asyncio.tasks._leave_task


class _TaskToBe:
    """The current task while a coroutine runs eagerly. Whoever keeps it (asyncio.timeout,
    TaskGroup) gets the task the coroutine moves into once it waits; nothing can cancel it
    before, since the coroutine runs without a break until then."""

    task: asyncio.Task[Any] | None = None

    def cancel(self, msg: Any = None) -> bool:
        return self.task.cancel(msg) if self.task is not None else False

    def cancelling(self) -> int:
        return self.task.cancelling() if self.task is not None else 0

    def uncancel(self) -> int:
        return self.task.uncancel() if self.task is not None else 0

    def __getattr__(self, name: str) -> Any:
        if self.task is None:
            raise AttributeError(f"{name}: the task of an eager start does not exist yet")
        return getattr(self.task, name)


class _Rest(collections.abc.Coroutine[Any, Any, T]):
    """The rest of a coroutine that stopped at `awaited` (the future it waits on, or None for
    a bare yield), as a task's own coroutine: the task's first step takes that future, and
    every send and throw after it goes through to the coroutine, as if the task had run it
    from the start. A throw goes through even before the first step: a task cancelled before
    it ever ran still cancels the coroutine where it waits, so that the coroutine lets go of
    what it holds (a coroutine function here would end at once and leave it hanging)."""

    def __init__(self, coro: Coroutine[Any, Any, T], awaited: Any) -> None:
        self._coro = coro
        self._awaited = awaited
        self._started = False

    def send(self, value: Any) -> Any:
        if self._started:
            return self._coro.send(value)
        self._started = True
        if self._awaited is not None:
            self._awaited._asyncio_future_blocking = True  # a task takes a future only with it on
        return self._awaited

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._started = True
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - asyncio throws instances

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, T]:
        raise TypeError("the rest of an eager start is run by its task, not awaited")


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
