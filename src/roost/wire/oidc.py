"""Types of sign-in with outside providers: the providers a tenant configures, and the
operations of the sign-in itself."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

ProviderName = Annotated[
    str,
    Meta(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="lower-case letters, digits, _ and -, e.g. google",
    ),
]
Url = Annotated[str, Meta(min_length=8, max_length=2048, pattern=r"^https?://[^\s\x00]+$")]
ProviderScope = Annotated[str, Meta(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]{1,200}$")]
ProviderKind = Literal["oidc", "oauth2"]


class ProviderSpec(Struct, forbid_unknown_fields=True):
    """An OpenID Connect provider (`issuer`, found by discovery), or a plain OAuth2 one
    (`authorize_url`, `token_url` and `userinfo_url`, as GitHub)."""

    name: ProviderName
    client_id: Annotated[str, Meta(min_length=1, max_length=512)]
    client_secret: Annotated[str, Meta(min_length=1, max_length=4096)]
    issuer: Url | None = None
    authorize_url: Url | None = None
    token_url: Url | None = None
    userinfo_url: Url | None = None
    scopes: Annotated[list[ProviderScope], Meta(max_length=50)] | None = None


class ProviderInfo(Struct):
    """A provider as listings show it: never its client secret."""

    name: str
    kind: ProviderKind
    client_id: str
    issuer: str | None
    authorize_url: str | None
    token_url: str | None
    userinfo_url: str | None
    scopes: list[str]
    callback_url: str | None
    created_at: datetime
    updated_at: datetime


class ProviderRef(Struct, forbid_unknown_fields=True):
    name: ProviderName


class ProviderUrlRequest(Struct, forbid_unknown_fields=True):
    provider: ProviderName
    redirect_to: Url


class ProviderUrl(Struct):
    url: str
    expires_in: int


class ProviderCodeRequest(Struct, forbid_unknown_fields=True):
    code: Annotated[str, Meta(min_length=1, max_length=200)]
