"""A mypy plugin: `Client(mode="async")` is an `AsyncClient`, `AsyncClient(mode="sync")` a
`Client`, to the type checker as at run time.

mypy takes a class call to make an instance of that class whatever `__new__` says it returns
(overloads of `__new__` that answer another class are an error there; pyright would follow
them), so the one way to say it to mypy is a plugin, as pydantic does for its models. Enable it
in your mypy configuration: `plugins = ["roost.mypy"]`.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.checker import TypeChecker
from mypy.nodes import TypeInfo
from mypy.plugin import FunctionContext, Plugin
from mypy.types import Instance, LiteralType, Type, get_proper_type

_SYNC = "roost.client._sync.client.Client"
_ASYNC = "roost.client._async.client.AsyncClient"
_BY_MODE = {
    "sync": ("roost.client._sync.client", "Client"),
    "async": ("roost.client._async.client", "AsyncClient"),
}


class RoostPlugin(Plugin):
    def get_function_hook(self, fullname: str) -> Callable[[FunctionContext], Type] | None:
        return _client_of_mode if fullname in (_SYNC, _ASYNC) else None


def _client_of_mode(ctx: FunctionContext) -> Type:
    for names, types in zip(ctx.arg_names, ctx.arg_types, strict=True):
        for name, given in zip(names, types, strict=True):
            if name == "mode" and (mode := _literal(given)) in _BY_MODE:
                return _instance(ctx, *_BY_MODE[str(mode)])
    return ctx.default_return_type


def _instance(ctx: FunctionContext, module: str, name: str) -> Type:
    """An instance of `module.name`, found among the modules mypy has loaded (`roost` loads
    both clients; looked up by module, since a dotted name is found only through parents
    that list their submodules)."""
    modules = ctx.api.modules if isinstance(ctx.api, TypeChecker) else {}
    loaded = modules.get(module)
    symbol = loaded.names.get(name) if loaded is not None else None
    if symbol is None or not isinstance(symbol.node, TypeInfo):
        return ctx.default_return_type
    return Instance(symbol.node, [])


def _literal(given: Type) -> object:
    proper = get_proper_type(given)
    if isinstance(proper, LiteralType):
        return proper.value
    if isinstance(proper, Instance) and proper.last_known_value is not None:
        return proper.last_known_value.value
    return None


def plugin(version: str) -> type[Plugin]:
    return RoostPlugin
