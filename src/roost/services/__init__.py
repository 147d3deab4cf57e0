"""One module per capability: plain async operations over the backends.

`MODULES` is the one list of the modules that declare operations, streamed operations or
subscriptions; `build_registry()` collects them. Nothing is registered by importing a module,
so a module left out of the list is simply not served (and `tests/security/test_registry.py`
fails), rather than served or not depending on what else happened to be imported.

An operation named `x.y` lives in `services/x.py`, or in a module of the package
`services/x/` (listed as `x.part`), so its name says where to find it.
"""

from __future__ import annotations

import functools
import importlib

from roost.services.registry import Registry

MODULES = (
    "analytics",
    "api_keys",
    "audit",
    "auth.anonymous",
    "auth.memberships",
    "auth.navigation",
    "auth.oidc",
    "auth.profile",
    "auth.providers",
    "auth.recovery",
    "auth.totp",
    "auth.passkeys",
    "auth.passwordless",
    "auth.sessions",
    "database.changes",
    "database.query",
    "database.records",
    "database.tables",
    "documents",
    "functions.catalog",
    "functions.invocations",
    "health",
    "kv",
    "logs",
    "mail",
    "pages",
    "policies",
    "policy",
    "pubsub",
    "queue",
    "roles",
    "schema",
    "scopes",
    "secrets",
    "settings",
    "storage",
    "stream",
    "tenants",
    "triggers.catalog",
    "usage",
    "users",
)


def build_registry() -> Registry:
    """The registry of every operation the platform serves (a new one at each call)."""
    registry = Registry()
    for name in MODULES:
        registry.add_module(importlib.import_module(f"roost.services.{name}"))
    return registry


@functools.cache
def platform_registry() -> Registry:
    """The platform's registry, built once (for services that read it: the scope catalogue)."""
    return build_registry()
