"""One module per capability: plain async operations over the backends."""

from __future__ import annotations

from roost.services.registry import Registry, declared_operations


def build_registry() -> Registry:
    """The registry of every operation the platform serves."""
    from roost.services import api_keys, auth, health, tenants, users  # noqa: F401 - declare ops

    registry = Registry()
    for op in declared_operations():
        registry.add(op)
    return registry
