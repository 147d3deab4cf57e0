"""CB Dominus without I/O: its environment, its error names, and the shapes of its answers.

Error names, all within Roost's one tree (`except DominusError` catches every one):
`DominusError` is `RoostError`; `ServiceError` is `ServerError` (a 503 raises
`ServiceUnavailableError`, which is a `DominusError` but not a `ServiceError`);
`DominusConnectionError` and `DominusTimeoutError` are Roost's `ConnectionError` and
`TimeoutError` (also the builtin ones); `AuthenticationError`, `AuthorizationError`,
`NotFoundError`, `ValidationError`, `ConflictError` and `SecureTableError` are Roost's own
classes of the same names.
"""

from __future__ import annotations

import os
import re
from typing import Any

from roost.client._core.results import VerifyResult
from roost.compat._core.credentials import credential_kind
from roost.errors import (
    AuthenticationError,
    ConnectionError,
    RoostError,
    ServerError,
    TimeoutError,
    ValidationError,
)
from roost.wire.common import TENANT_NAME

DominusError = RoostError
ServiceError = ServerError
DominusConnectionError = ConnectionError
DominusTimeoutError = TimeoutError


def client_options(token: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """The arguments of the native client: the token (else `DOMINUS_TOKEN`), its kind read
    from its shape, the app from `CB_PROJECT_SLUG`, then `options` as `roost.AsyncClient`
    takes them (`api_url`, `tenant`, `timeout`, ...; unset ones come from `ROOST_*`)."""
    found: dict[str, Any] = {}
    token = token or os.environ.get("DOMINUS_TOKEN") or None
    if token:
        found.update(token=token, token_type=credential_kind(token))
    if project := os.environ.get("CB_PROJECT_SLUG"):
        found["app"] = project
    return {**found, **options}


def tenant_of(name: str | None, field: str = "schema") -> str | None:
    """The Roost tenant a Dominus tenant slug or schema name (`tenant_acme`) stands for: Roost
    tenant names are DNS labels, so `_` becomes `-`. None and "public" are the credential's
    own tenant; a name that is no tenant name is refused (ValidationError naming `field`)
    before it reaches a request header."""
    if name is None or name == "public":
        return None
    tenant = name.removeprefix("tenant_").replace("_", "-")
    if not re.fullmatch(TENANT_NAME, tenant):
        raise ValidationError(
            f"{field} {name!r} names no tenant: lower-case letters, digits, '-' and '_'",
            details={"field": field},
        )
    return tenant


def claims_of(result: VerifyResult) -> dict[str, Any]:
    """The claims of a valid token; an invalid one raises AuthenticationError (a dict of
    claims is true, so it must not stand for a refusal)."""
    if not result.valid:
        raise AuthenticationError(
            f"the token is not valid: {result.reason or 'refused'}",
            details={"reason": result.reason},
        )
    expires = result.expires_at
    return {
        "sub": result.user_id,
        "user_id": result.user_id,
        "tenant": result.tenant,
        "exp": int(expires.timestamp()) if expires is not None else None,
    }


def is_active_of(status: str) -> bool:
    """A Dominus user `status` as Roost's `is_active`."""
    if status not in ("active", "inactive"):
        raise ValidationError(
            f"status must be 'active' or 'inactive', got {status!r}", details={"field": "status"}
        )
    return status == "active"


def names_of(display_name: str) -> dict[str, str]:
    """A display name as Roost's first and last names (split at the first space)."""
    first, _, last = display_name.strip().partition(" ")
    return {"first_name": first, "last_name": last.strip()}


def with_display_name(user: dict[str, Any]) -> dict[str, Any]:
    """A Roost user with the `display_name` Dominus profiles carry."""
    names = (user.get("first_name") or "", user.get("last_name") or "")
    return {**user, "display_name": " ".join(name for name in names if name)}
