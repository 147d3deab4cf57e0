"""Taruvi without I/O: its client settings (`TARUVI_*`), its error names and the arguments
it spells its own way.

Error names, all within Roost's one tree (`except TaruviError` catches every one):
`TaruviError` is `RoostError`; `ConfigurationError`, `APIError`, `ValidationError`,
`AuthenticationError`, `NotAuthenticatedError`, `AuthorizationError`, `NotFoundError`,
`ConflictError`, `RateLimitError`, `ServerError`, `ServiceUnavailableError`, `NetworkError`,
`TimeoutError`, `ConnectionError`, `FunctionExecutionError` and `ResponseError` are Roost's
own classes of the same names.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any

from roost.errors import ConfigurationError, RoostError, ValidationError
from roost.wire.common import TENANT_NAME

TaruviError = RoostError

MODES = ("sync", "async")


def client_options(
    api_url: str | None,
    app_slug: str | None,
    site_slug: str | None,
    timeout: float | None,
    max_retries: int | None,
) -> dict[str, Any]:
    """The arguments of `roost.Client` / `roost.AsyncClient` for Taruvi's: what is None comes
    from `TARUVI_API_URL`, `TARUVI_APP_SLUG`, `TARUVI_SITE_SLUG` (the tenant),
    `TARUVI_TIMEOUT`, `TARUVI_MAX_RETRIES`, then from `ROOST_*` (the native client checks
    and converts the numbers)."""
    given = {
        "api_url": api_url,
        "app": app_slug,
        "tenant": site_slug,
        "timeout": timeout,
        "max_retries": max_retries,
    }
    variables = {
        "api_url": "TARUVI_API_URL",
        "app": "TARUVI_APP_SLUG",
        "tenant": "TARUVI_SITE_SLUG",
        "timeout": "TARUVI_TIMEOUT",
        "max_retries": "TARUVI_MAX_RETRIES",
    }
    options: dict[str, Any] = {}
    for name, value in given.items():
        found = value if value is not None else os.environ.get(variables[name]) or None
        if found is not None:
            options[name] = found
    tenant = options.get("tenant")
    if tenant is not None and not re.fullmatch(TENANT_NAME, str(tenant)):
        raise ConfigurationError(
            f"site_slug {tenant!r} names no tenant: lower-case letters, digits and '-'",
            details={"field": "site_slug"},
        )
    return options


def mode_of(mode: str | None) -> str:
    """`mode`, else `TARUVI_MODE`, else "sync" (Taruvi's default); another is refused."""
    chosen = mode or os.environ.get("TARUVI_MODE") or "sync"
    if chosen not in MODES:
        raise ConfigurationError(
            f"mode must be 'sync' or 'async', got {chosen!r}", details={"field": "mode"}
        )
    return chosen


def expiry_of(expires_at: datetime | str | None) -> datetime | None:
    """Taruvi's `expires_at`, an ISO 8601 string (`"2025-12-31T23:59:59Z"`) or a datetime."""
    if expires_at is None or isinstance(expires_at, datetime):
        return expires_at
    try:
        return datetime.fromisoformat(expires_at)
    except ValueError:
        raise ValidationError(
            f"expires_at {expires_at!r} is no ISO 8601 date and time",
            details={"field": "expires_at"},
        ) from None


def refuse_role_filter(roles: str | list[str] | None) -> None:
    """`list_users(roles=...)`: Roost lists users without a role filter, and answering the
    unfiltered page would pass for the filtered one, so the filter is refused."""
    if roles:
        raise ValidationError(
            "list_users cannot filter by roles on Roost: list without `roles` and read each "
            "user's `roles`",
            details={"field": "roles"},
        )


def as_app(membership: dict[str, Any]) -> dict[str, Any]:
    """A Roost membership as one of Taruvi's user apps: its `slug` is the tenant, its `name`
    the tenant's display name (or its name); Roost's keys stay."""
    return {
        "slug": membership["tenant"],
        "name": membership.get("display_name") or membership["tenant"],
        **membership,
    }
