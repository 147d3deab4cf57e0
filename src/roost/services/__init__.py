"""One module per capability: plain async operations over the backends."""

from __future__ import annotations

from roost.services.registry import Registry, declared_operations


def build_registry() -> Registry:
    """The registry of every operation the platform serves."""
    from roost.services import (  # noqa: F401 - importing declares their operations
        analytics,
        api_keys,
        audit,
        auth,
        categories,
        documents,
        health,
        kv,
        logs,
        mail,
        pages,
        profile,
        query,
        queue,
        records,
        recovery,
        schema,
        scopes,
        secrets,
        site,
        storage,
        stream,
        tenants,
        usage,
        users,
    )

    registry = Registry()
    for op in declared_operations():
        registry.add(op)
    return registry
