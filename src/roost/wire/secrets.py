"""Types of the secrets operations (Taruvi secrets, Dominus secrets)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta, Struct

SecretKey = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.\-/]*$",
        max_length=255,
        description="letters, digits and _ . - /, not starting with a digit",
    ),
]
App = Annotated[
    str,
    Meta(pattern=r"^[a-z0-9][a-z0-9_\-]*$", max_length=64, description="an app's own secrets"),
]
SecretType = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
Tag = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:\-]+$", max_length=64)]
Tags = Annotated[list[Tag], Meta(max_length=20)]
Comment = Annotated[str, Meta(max_length=1000)]
SecretValue = Annotated[str, Meta(max_length=65536)]


class SetSecretRequest(Struct, forbid_unknown_fields=True):
    key: SecretKey
    value: SecretValue
    secret_type: SecretType = "generic"
    tags: Tags = []
    comment: Comment = ""
    app: App | None = None


class UpdateSecretRequest(Struct, forbid_unknown_fields=True):
    key: SecretKey
    value: SecretValue | None = None
    secret_type: SecretType | None = None
    tags: Tags | None = None
    comment: Comment | None = None
    app: App | None = None


class GetSecretRequest(Struct, forbid_unknown_fields=True):
    key: SecretKey
    app: App | None = None
    tags: Tags = []
    version: Annotated[int, Meta(ge=1)] | None = None


class GetSecretsRequest(Struct, forbid_unknown_fields=True):
    keys: Annotated[list[SecretKey], Meta(min_length=1, max_length=100)]
    app: App | None = None


class SecretRef(Struct, forbid_unknown_fields=True):
    key: SecretKey
    app: App | None = None


class ListSecretsRequest(Struct, forbid_unknown_fields=True):
    search: Annotated[str, Meta(max_length=255)] | None = None
    prefix: Annotated[str, Meta(max_length=255)] | None = None
    secret_type: SecretType | None = None
    tags: Tags = []
    app: App | None = None
    page_size: Annotated[int, Meta(ge=1, le=500)] = 100
    cursor: Annotated[str, Meta(max_length=600)] | None = None


class SecretInfo(Struct):
    """A secret without its value."""

    key: str
    app: str | None
    secret_type: str
    tags: list[str]
    comment: str
    version: int
    created_at: datetime
    updated_at: datetime


class Secret(SecretInfo):
    """A secret with the value of the version asked for (the current one by default)."""

    value: str
    inherited: bool = False  # asked for an app, answered by the tenant-wide secret


class SecretPage(Struct):
    results: list[SecretInfo]
    next_cursor: str | None


class SecretVersion(Struct):
    version: int
    comment: str
    created_at: datetime
    created_by: str
