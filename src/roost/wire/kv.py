"""Types of the KV operations (Synap kv, Dominus redis)."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, Struct

from roost.wire.common import NoTruthValue

Key = Annotated[str, Meta(min_length=1, max_length=512)]
Ttl = Annotated[int, Meta(ge=1, le=10 * 365 * 86400)]


class SetRequest(Struct, forbid_unknown_fields=True):
    key: Key
    value: Any
    ttl: Ttl | None = None
    nx: bool = False
    xx: bool = False


class KeyRef(Struct, forbid_unknown_fields=True):
    key: Key


class KeysRequest(Struct, forbid_unknown_fields=True):
    keys: Annotated[list[Key], Meta(min_length=1, max_length=1000)]


class IncrRequest(Struct, forbid_unknown_fields=True):
    key: Key
    amount: int = 1


class ScanRequest(Struct, forbid_unknown_fields=True):
    prefix: Annotated[str, Meta(max_length=512)] = ""
    cursor: Annotated[str, Meta(max_length=600)] | None = None
    count: Annotated[int, Meta(ge=1, le=1000)] = 100


class ExpireRequest(Struct, forbid_unknown_fields=True):
    key: Key
    ttl: Ttl


class HSetRequest(Struct, forbid_unknown_fields=True):
    key: Key
    field: Key
    value: Any
    ttl: Ttl | None = None


class HFieldRef(Struct, forbid_unknown_fields=True):
    key: Key
    field: Key


class HDelRequest(Struct, forbid_unknown_fields=True):
    key: Key
    fields: Annotated[list[Key], Meta(min_length=1, max_length=1000)]


class LockRequest(Struct, forbid_unknown_fields=True):
    name: Key
    ttl: Annotated[int, Meta(ge=1, le=86400)] = 30


class LockRelease(Struct, forbid_unknown_fields=True):
    name: Key
    token: Annotated[str, Meta(min_length=1, max_length=100)]


class SetAnswer(Struct):
    """`kv.set` (the SDK's `SetResult`): whether the value was stored (false when nx/xx said
    no); its truth value is that answer."""

    success: bool

    def __bool__(self) -> bool:
        return self.success


class GetAnswer(Struct, NoTruthValue):
    """`kv.get` (the SDK's `GetResult`): whether the key exists, its value and its ttl. No
    truth value: a found key may hold a false value (test `found`, or `value`)."""

    found: bool
    value: Any = None
    ttl: int | None = None  # seconds left; -1 when the key never expires


class CountAnswer(Struct):
    count: int


class IntAnswer(Struct):
    value: int


class ScanAnswer(Struct, NoTruthValue):
    """A page of `kv.scan` (the SDK's `ScanResult`); pass `cursor` back while `has_more`."""

    keys: list[str]
    cursor: str | None
    has_more: bool


class HashAnswer(Struct):
    fields: dict[str, Any]


class LockAnswer(Struct):
    acquired: bool
    token: str | None = None
