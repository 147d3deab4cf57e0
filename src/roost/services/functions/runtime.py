"""What the functions service needs of the function runtime (`roost.functions.pool`).

The service never runs a handler itself: it hands a `Job` to the runtime, whose sandboxed
worker processes run it, and reads back the events of the run. This protocol is the whole of
that contract, so the service does not depend on how the runtime confines its workers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from roost.errors import ServiceUnavailableError
from roost.functions.protocol import Failed, Finished, Item, Job, Log


class FunctionRuntime(Protocol):
    """Warm, sandboxed workers that run jobs (implemented by `roost.functions.pool`)."""

    @property
    def isolation(self) -> str:
        """How the workers are confined ("bubblewrap", "landlock+seccomp+setuid", ...)."""
        ...

    def run(
        self,
        job: Job,
        *,
        depth: int = 0,
        queued: bool = False,
        on_sent: Callable[[], None] | None = None,
    ) -> AsyncIterator[Item | Log | Finished | Failed]:
        """The events of one run, the last always one Finished or Failed. Closing the
        iterator early cancels the run. `depth`: how many runs wait on this one (a call
        made by a running function: 1); `queued`: an async run; `on_sent`: called as the job
        goes to a worker (a run stopped before it never ran). Before any event, it may
        raise RateLimitError (the tenant runs its share of the workers already; a queued
        run waits instead) or ServiceUnavailableError (no worker free for a nested call,
        which must not wait on workers its own chain holds)."""
        ...

    async def ready(self) -> bool:
        """Whether the runtime runs, once its start (in the background) has ended."""
        ...

    def stats(self) -> Any:
        """Figures for `health` (a msgspec Struct or a dict): workers, busy, replaced, ..."""
        ...


def unavailable() -> ServiceUnavailableError:
    """The refusal when this server runs no function runtime."""
    return ServiceUnavailableError(
        "this server runs no functions (the function runtime is off or could not start)",
        code="functions_unavailable",
    )
