"""The operation registry: every capability is a named function with typed input and output.

An operation is one of three kinds, each declared by its own decorator in the service module
that owns it:

- `@operation`: unary, `async def f(ctx, params: In) -> Out`;
- `@streamed`: server-streamed, `async def f(ctx, params: In) -> AsyncIterator[Item]` (a
  handler that yields). The WebSocket door sends each item as a `{"id", "chunk"}` frame and
  then `{"id", "end"}`; over HTTP the items are NDJSON lines;
- `@subscription`: a live feed, `async def f(ctx, params: In, push) -> Feed`, opened on the
  WebSocket door; `push` takes each event.

The decorators only mark the function (no module-level list fills as modules are imported):
`roost.services.build_registry()` collects the marked functions of an explicit list of
modules. Every door, the OpenAPI document and the scope catalogue read that one registry, and
the shared path (`roost.server.dispatch`) checks the credential and scope before any handler
runs.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import re
import types
from collections.abc import Awaitable, Callable, Iterator
from types import ModuleType
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import msgspec

from roost.errors import ValidationError
from roost.services.context import Context, to_its_end
from roost.wire.common import OPERATION_NAME

Access = Literal["public", "authenticated"]
Kind = Literal["unary", "stream", "subscription"]
Handler = Callable[..., Any]
"""unary: `(ctx, params) -> Awaitable[Out]`; stream: `(ctx, params) -> AsyncIterator[Item]`;
subscription: `(ctx, params, push) -> Awaitable[Feed]`."""
# Many calls of one operation at once: a result, or the RoostError of that call, per input.
BatchHandler = Callable[[Context, list[Any]], Awaitable[list[Any]]]
F = TypeVar("F", bound=Callable[..., Any])

_NAME = re.compile(OPERATION_NAME)
_MARK = "__roost_operation__"


class Operation(msgspec.Struct, frozen=True):
    name: str
    handler: Handler
    input_type: type[Any]
    output_type: Any  # for a stream, the type of one item; for a subscription, of one event
    scope: str | None
    access: Access
    read_only: bool
    summary: str
    aliases: tuple[tuple[str, str], ...] = ()  # extra REST routes: (method, path under /api/v1)
    batch: BatchHandler | None = None  # runs many calls in one trip to the backend
    kind: Kind = "unary"
    # its Idempotency-Key record is written in the transaction of the write that answers it
    # (`Context.pending_answer`), not in the KV store before and after the call
    answered_in_write: bool = False
    # it revokes credentials: its handler runs to its end even if its caller goes away
    revokes: bool = False
    # what a refusal of the input names ("parameters for kv.get"), made once, not per call
    what: str = ""

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "what", f"parameters for {self.name}")

    @property
    def module(self) -> str:
        return self.name.split(".", 1)[0]


class Registry:
    """Every operation of the platform, by name."""

    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}
        # The operation of a name, or None: the dict's own `get`, as every call of every door
        # looks its operation up here (a method around it costs a Python call each time).
        self.get: Callable[[str], Operation | None] = self._ops.get

    def add(self, op: Operation) -> None:
        if op.name in self._ops:
            raise ValueError(f"operation {op.name} is registered twice")
        self._ops[op.name] = op

    def add_module(self, module: ModuleType) -> None:
        """Add every operation that `module` itself declares (not those it imports)."""
        for op in operations_of(module):
            self.add(op)

    def scopes(self) -> set[str]:
        """Every scope some operation checks."""
        return {op.scope for op in self._ops.values() if op.scope is not None}

    def __iter__(self) -> Iterator[Operation]:
        return iter(sorted(self._ops.values(), key=lambda op: op.name))

    def __len__(self) -> int:
        return len(self._ops)


def operations_of(module: ModuleType) -> list[Operation]:
    """The operations declared in `module`, in the order they appear in it."""
    found = []
    for value in vars(module).values():
        op = getattr(value, _MARK, None)
        if isinstance(op, Operation) and getattr(value, "__module__", None) == module.__name__:
            found.append(op)
    return found


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


def operation(
    name: str,
    *,
    scope: str | None = None,
    access: Access = "authenticated",
    read_only: bool = False,
    aliases: tuple[tuple[str, str], ...] = (),
    batch: BatchHandler | None = None,
    answered_in_write: bool = False,
    revokes: bool = False,
) -> Callable[[F], F]:
    """Declare a unary operation. Input and output types come from the handler's annotations.

    `scope=None` with `access="authenticated"` means any signed-in caller; `access="public"`
    means no credential is needed (a credential sent anyway is still checked). `batch`, for
    a hot read, answers many calls in one trip to the backend: the WebSocket door hands it
    the calls of one frame that ask for this operation one after another.
    `answered_in_write`: every success of the handler is answered by one tenant write made
    through `write_with_changes` with an `answer`, which takes an Idempotency-Key's record
    into its transaction (answering 200).
    `revokes`: the handler revokes credentials (signs out, revokes keys, changes roles...) and
    then tells the principal caches (`Platform.forget_principals`). It runs to its end even
    if its caller goes away: a call cancelled between the commit and that last step left the
    revoked credential acting for the cache's ttl.
    """
    return _declare(
        name,
        "unary",
        2,
        scope=scope,
        access=access,
        read_only=read_only,
        aliases=aliases,
        batch=batch,
        answered_in_write=answered_in_write,
        revokes=revokes,
    )


def _to_its_end(handler: Handler) -> Handler:
    """`handler`, run to its end even if the call is cancelled (`context.to_its_end`)."""

    @functools.wraps(handler)
    async def shielded(ctx: Context, params: Any) -> Any:
        return await to_its_end(handler(ctx, params))

    return shielded


def streamed(
    name: str, *, scope: str | None = None, access: Access = "authenticated", read_only: bool
) -> Callable[[F], F]:
    """Declare a server-streamed operation: `async def f(ctx, params: In) ->
    AsyncIterator[Item]` yields its items in order. The doors pull the next item only when
    the connection has room for it, and close the generator (GeneratorExit at its `yield`,
    or CancelledError at its `await`) when the caller cancels or goes away: release what it
    holds in a `finally`."""
    return _declare(name, "stream", 2, scope=scope, access=access, read_only=read_only)


def subscription(name: str, *, scope: str, event: type[Any]) -> Callable[[F], F]:
    """Declare a live subscription: `async def f(ctx, params: In, push) -> Feed` opens a feed
    that calls `push(event)` (never blocking) for each `event` of type `event`."""
    return _declare(name, "subscription", 3, scope=scope, read_only=True, output=event)


def _declare(
    name: str,
    kind: Kind,
    arity: int,
    *,
    scope: str | None,
    access: Access = "authenticated",
    read_only: bool,
    aliases: tuple[tuple[str, str], ...] = (),
    batch: BatchHandler | None = None,
    output: Any = None,
    answered_in_write: bool = False,
    revokes: bool = False,
) -> Callable[[F], F]:
    if not _NAME.match(name):
        raise ValueError(f"bad operation name {name!r}")

    def mark(handler: F) -> F:
        params, hints = _input_and_return(handler)
        if len(params) < arity or "return" not in hints or params[1] not in hints:
            raise TypeError(f"{name}: a {kind} handler takes {arity} arguments, typed")
        op = Operation(
            name=name,
            handler=_to_its_end(handler) if revokes else handler,
            input_type=hints[params[1]],
            output_type=output if output is not None else _output(name, kind, hints["return"]),
            scope=scope,
            access=access,
            read_only=read_only,
            summary=inspect.getdoc(handler) or "",
            aliases=aliases,
            batch=batch,
            kind=kind,
            answered_in_write=answered_in_write,
            revokes=revokes,
        )
        setattr(handler, _MARK, op)
        return handler

    return mark


def _input_and_return(handler: Callable[..., Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The names of `handler`'s positional parameters, and the types of the second one (the
    input) and of what it returns. Only those two annotations are evaluated, and the names come
    from the code object: `get_type_hints` and `inspect.signature` over all 132 handlers were
    ~6% of `roost serve`'s start-up."""
    function = inspect.unwrap(handler)
    code = function.__code__
    params: tuple[str, ...] = code.co_varnames[: code.co_argcount]
    wanted = (*params[1:2], "return")
    annotations = {k: v for k, v in function.__annotations__.items() if k in wanted}
    only = types.SimpleNamespace(__annotations__=annotations)
    return params, get_type_hints(only, globalns=function.__globals__)


def _output(name: str, kind: Kind, returned: Any) -> Any:
    if kind != "stream":
        return returned
    if get_origin(returned) not in (collections.abc.AsyncIterator, collections.abc.AsyncGenerator):
        raise TypeError(f"{name}: a streamed handler returns AsyncIterator[Item]")
    return get_args(returned)[0]
