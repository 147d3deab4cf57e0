"""DotDo without I/O: its client settings (`DOTDO_*`), its endpoint and its error names.

Error names, all within Roost's one tree (`except DotDoError` catches every one):
`DotDoError` is `RoostError`; `AuthError` is `AuthenticationError`; `RpcError` is `APIError`
(a call the server refused or that failed there: every such error, whichever its class, e.g.
`ValidationError`, `NotFoundError`, `FunctionExecutionError`); `ConnectionError`,
`TimeoutError` (also the builtin ones) and `RateLimitError` (`retry_after`) are Roost's own.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from roost.compat._core.credentials import credential_kind
from roost.errors import APIError, AuthenticationError, ConfigurationError, RoostError
from roost.wire.common import TENANT_NAME

DotDoError = RoostError
AuthError = AuthenticationError
RpcError = APIError

# The settings `roost.AsyncClient` takes under the same name.
_SAME_NAMES = (
    "pool_size",
    "pool_timeout",
    "max_retries",
    "retry_delay",
    "retry_max_delay",
    "retry_multiplier",
    "timeout",
)
_NUMBERS: dict[str, type[int] | type[float]] = {
    "pool_size": int,
    "max_retries": int,
    "pool_timeout": float,
    "retry_delay": float,
    "retry_max_delay": float,
    "retry_multiplier": float,
    "timeout": float,
}
# Paths a DotDo endpoint may end in that stand for the server's own WebSocket.
_RPC_PATHS = ("/rpc", "/api/v1/ws")
_HTTP_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
# Headers that name the tenant in DotDo's examples: Roost sends its own tenant header.
_TENANT_HEADERS = frozenset({"x-tenant-id", "x-roost-tenant"})
_TRUE = frozenset({"1", "true", "yes", "on"})


def api_url_of(endpoint: str) -> str:
    """The Roost server a DotDo endpoint names: `ws(s)://host[:port][/rpc]` is
    `http(s)://host[:port]` (Roost's WebSocket is at `/api/v1/ws` of that server); a
    scheme that is no WebSocket or HTTP one is refused, naming `endpoint`."""
    parts = urlsplit(endpoint)
    scheme = _HTTP_SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ConfigurationError(
            f"endpoint {endpoint!r} is no ws://, wss://, http:// or https:// URL",
            details={"field": "endpoint"},
        )
    path = parts.path.rstrip("/")
    for suffix in _RPC_PATHS:
        path = path.removesuffix(suffix)
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def tenant_of(headers: dict[str, str] | None) -> str | None:
    """The tenant a DotDo `headers` dict names (`X-Tenant-ID`), if any; a value that is no
    tenant name is refused here, naming `headers`, before it reaches a request header."""
    for name, value in (headers or {}).items():
        if name.lower() not in _TENANT_HEADERS:
            continue
        if not isinstance(value, str) or not re.fullmatch(TENANT_NAME, value):
            raise ConfigurationError(
                f"headers[{name!r}] names no tenant: lower-case letters, digits and '-'",
                details={"field": "headers"},
            )
        return value
    return None


class DotDoSettings(msgspec.Struct, frozen=True):
    """DotDo's constructor arguments. What is left None comes from `DOTDO_<NAME>`
    (`DOTDO_API_KEY`, `DOTDO_ENDPOINT`, `DOTDO_POOL_SIZE`, ...), then from Roost's `ROOST_*`
    and its defaults."""

    api_key: str | None = None
    access_token: str | None = None
    endpoint: str | None = None
    headers: dict[str, str] | None = None
    pool_size: int | None = None
    pool_timeout: float | None = None
    max_retries: int | None = None
    retry_delay: float | None = None
    retry_max_delay: float | None = None
    retry_multiplier: float | None = None
    timeout: float | None = None
    debug: bool | None = None

    def native_options(self) -> dict[str, Any]:
        """The arguments of `roost.AsyncClient` / `roost.Client` these settings stand for (the
        native client checks and converts the numbers, naming the field it refuses)."""
        given = {name: self._setting(name) for name in _SAME_NAMES}
        options = {name: value for name, value in given.items() if value is not None}
        if endpoint := self._setting("endpoint"):
            options["api_url"] = api_url_of(endpoint)
        if tenant := tenant_of(self.headers):
            options["tenant"] = tenant
        # An OAuth access token is a user's credential: it wins over the service's API key.
        if token := self._setting("access_token") or self._setting("api_key"):
            options.update(token=token, token_type=credential_kind(token))
        return options

    def debug_enabled(self) -> bool:
        """Whether `debug` (or `DOTDO_DEBUG=true`) asks for debug logging."""
        if self.debug is not None:
            return self.debug
        return os.environ.get("DOTDO_DEBUG", "").strip().lower() in _TRUE

    def _setting(self, name: str) -> Any:
        value = getattr(self, name)
        if value is not None:
            return value
        variable = f"DOTDO_{name.upper()}"
        text = os.environ.get(variable) or None
        convert = _NUMBERS.get(name)
        if text is None or convert is None:
            return text
        try:
            return convert(text)
        except ValueError:  # the native client would name ROOST_<NAME>, which was not set
            raise ConfigurationError(
                f"{variable} must be a number, got {text!r}", details={"field": name}
            ) from None


def configure_logging(settings: DotDoSettings) -> None:
    """Turn on debug logging of the `roost` loggers when `debug` asks for it (the
    application's logging configuration decides where the records go)."""
    if settings.debug_enabled():
        logging.getLogger("roost").setLevel(logging.DEBUG)
