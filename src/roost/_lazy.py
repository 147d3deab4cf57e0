"""Names of a package imported on first use (PEP 562), where a package exports more than
most of its importers need: the server imports `roost` (for `roost.errors`) without the SDK,
and `roost.policy.sql` without the policy engine."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: a name of `homes` is imported from the module it
    maps to when first asked for, and kept in `namespace` (the package's `globals()`), so the
    next use is a plain attribute."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    return __getattr__
