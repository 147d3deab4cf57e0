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

from typing import TYPE_CHECKING

from roost._lazy import lazy_names

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
    "Engine": "roost.policy.engine",
    "load": "roost.policy.loader",
    "PolicySet": "roost.policy.loader",
    "Issue": "roost.policy.loader",
    "PolicyValidationError": "roost.policy.loader",
    "CheckResponse": "roost.policy.model",
    "CheckResult": "roost.policy.model",
    "PlanResponse": "roost.policy.model",
    "Principal": "roost.policy.model",
    "Resource": "roost.policy.model",
    "ResourceEntry": "roost.policy.model",
}


__getattr__ = lazy_names(__name__, _HOMES, globals())


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
