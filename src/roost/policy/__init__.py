"""Roost's policy engine: Cerbos policies checked in process.

```python
from roost.policy import Engine

engine = Engine.from_policies(yaml_text)
engine.check({"id": "u1", "roles": ["user"]},
             [{"resource": {"kind": "doc", "id": "d1", "attr": {"owner": "u1"}},
               "actions": ["view", "edit"]}])
engine.plan({"id": "u1", "roles": ["user"]}, "doc", "view")
```

`check` answers in Cerbos' CheckResources shape, `plan` in its PlanResources shape with the
residual condition as an operator/operands tree. Policies are validated as a set when loaded
(`PolicyValidationError.issues` lists every problem).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from roost.policy.engine import Engine
    from roost.policy.loader import Issue, PolicySet, PolicyValidationError, load
    from roost.policy.model import (
        CheckResponse,
        CheckResult,
        PlanResponse,
        Principal,
        Resource,
        ResourceEntry,
    )

# Each name is imported from its module when first asked for (PEP 562): a module that needs
# only a light part of the package (`roost.policy.sql`, the SQL of a plan's condition) does not
# load the engine, YAML and CEL with it, and the server starts without them until a tenant's
# policies are first used.
_HOMES = {
    "Engine": "engine",
    "load": "loader",
    "PolicySet": "loader",
    "Issue": "loader",
    "PolicyValidationError": "loader",
    "CheckResponse": "model",
    "CheckResult": "model",
    "PlanResponse": "model",
    "Principal": "model",
    "Resource": "model",
    "ResourceEntry": "model",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    # the engine
    "Engine",
    "load",
    "PolicySet",
    # errors
    "Issue",
    "PolicyValidationError",
    # shapes
    "CheckResponse",
    "CheckResult",
    "PlanResponse",
    "Principal",
    "Resource",
    "ResourceEntry",
]
