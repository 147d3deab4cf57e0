"""Taruvi on Roost: change `from taruvi import ...` to `from roost.compat.taruvi import ...`
and nothing else (`docs/coming-from-taruvi.md` lists what still differs).

    from roost.compat.taruvi import Client

    client = Client(api_url="http://127.0.0.1:8787", app_slug="my-app")
    auth_client = client.auth.signInWithPassword(username="alice", password="secret123")
    users = auth_client.database.query("users").page_size(10).get()

`site_slug` names the Roost tenant. Unset settings come from `TARUVI_API_URL`,
`TARUVI_APP_SLUG`, `TARUVI_SITE_SLUG`, `TARUVI_MODE`, `TARUVI_TIMEOUT`,
`TARUVI_MAX_RETRIES`, then from `ROOST_*`.
"""

from __future__ import annotations

from typing import Any, Literal, overload

from roost import detect_runtime, get_function_context, is_inside_function
from roost.compat._async.taruvi import AsyncTaruviClient
from roost.compat._core.taruvi import TaruviError, mode_of
from roost.compat._sync.taruvi import TaruviClient
from roost.errors import (
    APIError,
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    ConflictError,
    ConnectionError,
    FunctionExecutionError,
    NetworkError,
    NotAuthenticatedError,
    NotFoundError,
    RateLimitError,
    ResponseError,
    ServerError,
    ServiceUnavailableError,
    TimeoutError,
    ValidationError,
)


@overload
def Client(  # Taruvi's factory is called Client, as a class would be
    api_url: str | None = None,
    app_slug: str | None = None,
    *,
    mode: Literal["async"],
    site_slug: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    **options: Any,
) -> AsyncTaruviClient: ...
@overload
def Client(
    api_url: str | None = None,
    app_slug: str | None = None,
    *,
    mode: Literal["sync"],
    site_slug: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    **options: Any,
) -> TaruviClient: ...
@overload
def Client(
    api_url: str | None = None,
    app_slug: str | None = None,
    *,
    mode: None = None,
    site_slug: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    **options: Any,
) -> Any: ...
def Client(
    api_url: str | None = None,
    app_slug: str | None = None,
    *,
    mode: str | None = None,
    site_slug: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    **options: Any,
) -> Any:
    """A Taruvi client: sync unless `mode="async"` (or `TARUVI_MODE=async`); without a mode
    the type checker cannot know which, as `TARUVI_MODE` decides at run time. Other
    arguments are `roost.Client`'s (`pool_size`, `token`, ...).

    Example:
        client = Client(api_url="http://127.0.0.1:8787", app_slug="my-app")
        auth_client = client.auth.signInWithPassword(username="alice", password="secret123")
    """
    cls = AsyncTaruviClient if mode_of(mode) == "async" else TaruviClient
    return cls(
        api_url,
        app_slug,
        site_slug=site_slug,
        timeout=timeout,
        max_retries=max_retries,
        **options,
    )


__all__ = [
    # clients
    "Client",
    "TaruviClient",
    "AsyncTaruviClient",
    # function runtime
    "detect_runtime",
    "is_inside_function",
    "get_function_context",
    # errors
    "TaruviError",
    "ConfigurationError",
    "APIError",
    "ValidationError",
    "AuthenticationError",
    "NotAuthenticatedError",
    "AuthorizationError",
    "NotFoundError",
    "ConflictError",
    "RateLimitError",
    "ServerError",
    "ServiceUnavailableError",
    "NetworkError",
    "TimeoutError",
    "ConnectionError",
    "FunctionExecutionError",
    "ResponseError",
]
