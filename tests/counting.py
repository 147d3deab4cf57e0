"""`test.count`: a streamed operation that tests add to a real server's registry, to watch a
handler from the inside: how many items it has produced and how its generator ended (run to
its end, closed by a cancel, or cancelled with its connection)."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator

from msgspec import Struct

from roost.errors import ValidationError
from roost.services import build_registry
from roost.services.context import Context
from roost.services.registry import Registry, streamed


class CountRequest(Struct, forbid_unknown_fields=True):
    run: str
    n: int
    pad: int = 0
    fail_after: int | None = None
    hold_after: int | None = None


class Counted(Struct):
    n: int
    pad: str = ""


class Run:
    def __init__(self) -> None:
        self.produced = 0
        self.ended: str | None = None  # how the generator ended: done, GeneratorExit, cancelled


RUNS: dict[str, Run] = {}
_lock = threading.Lock()


@streamed("test.count", read_only=True)
async def count(ctx: Context, params: CountRequest) -> AsyncIterator[Counted]:
    """0, 1, ... n-1; `fail_after` items, then a ValidationError; `hold_after` items, then
    nothing more until it is cancelled."""
    with _lock:
        run = RUNS.setdefault(params.run, Run())
    try:
        for n in range(params.n):
            if params.fail_after is not None and n == params.fail_after:
                raise ValidationError("the count failed on purpose", details={"field": "n"})
            if params.hold_after is not None and n == params.hold_after:
                await asyncio.Event().wait()  # nobody sets it: held until cancelled
            await asyncio.sleep(0)  # a real handler awaits its backend between items
            run.produced += 1
            yield Counted(n=n, pad="x" * params.pad)
        run.ended = "done"
    except GeneratorExit:
        run.ended = "GeneratorExit"
        raise
    except asyncio.CancelledError:
        run.ended = "cancelled"
        raise


def registry_with_count() -> Registry:
    """The platform's operations and `test.count`."""
    registry = build_registry()
    registry.add_module(sys.modules[__name__])
    return registry


def stopped_early(run: str) -> bool:
    """Whether the handler of `run` ended before its last item (closed or cancelled)."""
    return run in RUNS and RUNS[run].ended in ("GeneratorExit", "cancelled")
