"""The operation registry: every capability is a named async function with typed input/output.

A service module declares its operations with `@operation(...)`; the REST, batch and WebSocket
doors all serve the same registry, and the shared path (`roost.server.dispatch`) checks the
credential and scope before any handler runs.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_type_hints

from roost.errors import ValidationError
from roost.services.context import Context

Access = Literal["public", "authenticated"]
Handler = Callable[[Context, Any], Awaitable[Any]]
# Many calls of one operation at once: a result, or the RoostError of that call, per input.
BatchHandler = Callable[[Context, list[Any]], Awaitable[list[Any]]]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    handler: Handler
    input_type: type[Any]
    output_type: Any
    scope: str | None
    access: Access
    read_only: bool
    summary: str
    aliases: tuple[tuple[str, str], ...] = ()  # extra REST routes: (method, path under /api/v1)
    batch: BatchHandler | None = None  # runs many calls in one trip to the backend

    @property
    def module(self) -> str:
        return self.name.split(".", 1)[0]


class Registry:
    """Every operation of the platform, by name."""

    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}

    def add(self, op: Operation) -> None:
        if op.name in self._ops:
            raise ValueError(f"operation {op.name} is registered twice")
        self._ops[op.name] = op

    def get(self, name: str) -> Operation | None:
        return self._ops.get(name)

    def __iter__(self) -> Iterator[Operation]:
        return iter(sorted(self._ops.values(), key=lambda op: op.name))

    def __len__(self) -> int:
        return len(self._ops)


async def each_valid(
    items: list[Any],
    check: Callable[[Any], Any],
    run: Callable[[list[Any]], Awaitable[list[Any]]],
) -> list[Any]:
    """For batch handlers: `run` once on what `check` makes of every item it accepts; in the
    place of each item it refuses, the ValidationError it raised. In the items' order."""
    outcomes: list[Any] = []
    accepted: list[Any] = []
    for item in items:
        try:
            accepted.append(check(item))
        except ValidationError as exc:
            outcomes.append(exc)
        else:
            outcomes.append(_ACCEPTED)
    answers = iter(await run(accepted) if accepted else [])
    return [next(answers) if outcome is _ACCEPTED else outcome for outcome in outcomes]


_ACCEPTED = object()
_declared: list[Operation] = []


def operation(
    name: str,
    *,
    scope: str | None = None,
    access: Access = "authenticated",
    read_only: bool = False,
    aliases: tuple[tuple[str, str], ...] = (),
    batch: BatchHandler | None = None,
) -> Callable[[F], F]:
    """Declare an operation. Input and output types come from the handler's annotations.

    `scope=None` with `access="authenticated"` means any signed-in caller; `access="public"`
    means no credential is needed (a credential sent anyway is still checked). `batch`, for
    a hot read, answers many calls in one trip to the backend: the WebSocket door hands it
    the calls of one frame that ask for this operation one after another.
    """
    if not _NAME.match(name):
        raise ValueError(f"bad operation name {name!r}")

    def register(handler: F) -> F:
        hints = get_type_hints(handler)
        params = list(inspect.signature(handler).parameters)
        if len(params) != 2 or "return" not in hints:
            raise TypeError(f"{name}: a handler is `async def f(ctx, params: In) -> Out`")
        _declared.append(
            Operation(
                name=name,
                handler=handler,
                input_type=hints[params[1]],
                output_type=hints["return"],
                scope=scope,
                access=access,
                read_only=read_only,
                summary=inspect.getdoc(handler) or "",
                aliases=aliases,
                batch=batch,
            )
        )
        return handler

    return register


def declared_operations() -> list[Operation]:
    """Every operation declared by the modules imported so far."""
    return list(_declared)
