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
