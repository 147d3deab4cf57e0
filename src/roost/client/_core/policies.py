"""What the policy namespaces share without I/O to the server: policies read from files, and
principals and resources turned into what the wire carries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import msgspec

from roost.wire.policy import (
    Principal,
    Resource,
    ResourceEntry,
    is_policy_file,
    schema_document,
    schema_files,
)

PolicySource: TypeAlias = str | Mapping[str, Any] | Path
"""A policy as `policies.put` takes it: YAML or JSON text (one document or several), an
object, or a path (a file, or a folder read as Cerbos reads one)."""
PrincipalLike: TypeAlias = Principal | Mapping[str, Any]
ResourceLike: TypeAlias = Resource | Mapping[str, Any]
EntryLike: TypeAlias = ResourceEntry | Mapping[str, Any]


def policy_sources(policies: PolicySource | Sequence[PolicySource]) -> list[Any]:
    """The texts and objects to send for `policies`; a path is read here (a folder: every
    policy file in it, by name; not test suites nor `testdata`; its `_schemas/` JSON Schemas
    as schema documents)."""
    given: Sequence[PolicySource] = (
        [policies] if isinstance(policies, str | Mapping | Path) else policies
    )
    sources: list[Any] = []
    for item in given:
        if isinstance(item, Path):
            files = (
                sorted(path for path in item.rglob("*") if is_policy_file(path, item))
                if item.is_dir()
                else [item]
            )
            sources.extend(path.read_text(encoding="utf-8") for path in files)
            if item.is_dir():  # `_schemas/*.json`: documents of their own (`schema:`)
                sources.extend(schema_document(path, item) for path in schema_files(item))
        elif isinstance(item, Mapping):
            sources.append(dict(item))
        else:
            sources.append(item)
    return sources


def wire(value: Any) -> Any:
    """A Struct (or a mapping of them) as the JSON the server reads; other values as they are."""
    if value is None:
        return None
    return msgspec.to_builtins(value)


def keep_allowed(given: Sequence[Any], allowed: list[Resource]) -> list[Any]:
    """The caller's own items among `given` that the server returned in `allowed` (an ordered
    subsequence of `given`, as the server read each)."""
    kept: list[Any] = []
    pending = iter(allowed)
    wanted = next(pending, None)
    for item in given:
        if wanted is None:
            break
        read = item if isinstance(item, Resource) else msgspec.convert(item, Resource)
        if read == wanted:
            kept.append(item)
            wanted = next(pending, None)
    return kept
