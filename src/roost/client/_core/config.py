"""Client configuration: arguments, then `ROOST_*` environment variables, then `.env`."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from roost._environment import roost_variables
from roost.errors import ConfigurationError

DEFAULT_API_URL = "http://127.0.0.1:8787"
TokenType = Literal["jwt", "api_key", "session_token"]
TOKEN_TYPES = ("jwt", "api_key", "session_token")


class ClientConfig(msgspec.Struct, frozen=True):
    """What a client was told. Built by `ClientConfig.resolve`, which validates every field."""

    api_url: str = DEFAULT_API_URL
    app: str = "default"
    tenant: str | None = None
    timeout: float = 30.0
    max_retries: int = 3
    retry_delay: float = 0.5
    retry_max_delay: float = 30.0
    retry_multiplier: float = 2.0
    pool_size: int = 10
    pool_timeout: float = 30.0
    calls_per_connection: int = 100
    keep_alive: bool = True
    format: Literal["json", "msgpack"] = "json"
    compression: bool = False
    circuit_breaker_threshold: int = 5
    circuit_breaker_reset: float = 30.0
    token: str | None = None
    token_type: TokenType = "jwt"
    api_socket: str | None = None  # a Unix socket to reach api_url through (inside functions)
    api_door: int | None = None  # the fd the runtime hands API connections on (inside functions)

    @classmethod
    def resolve(cls, **arguments: Any) -> ClientConfig:
        """Arguments win over `ROOST_<FIELD>` variables, which win over `.env`, then defaults."""
        values: dict[str, Any] = {}
        environment = roost_variables()
        for name in cls.__struct_fields__:
            given = arguments.get(name)
            if given is None:
                given = environment.get(f"ROOST_{name.upper()}")
            if given is not None:
                # the annotation as written ("int | None"): this module's annotations are text
                values[name] = _convert(name, cls.__annotations__[name], given)
        for name, env in (("api_key", "api_key"), ("session_token", "session_token")):
            if "token" not in values and environment.get(f"ROOST_{name.upper()}"):
                values["token"], values["token_type"] = environment[f"ROOST_{name.upper()}"], env
        return cls(**values).validated()

    def validated(self) -> ClientConfig:
        _check(
            self.api_url.startswith(("http://", "https://")),
            "api_url",
            f"must start with http:// or https://, got {self.api_url!r}",
        )
        _check(1 <= self.timeout <= 300, "timeout", "must be between 1 and 300 seconds")
        _check(0 <= self.max_retries <= 10, "max_retries", "must be between 0 and 10")
        _check(
            0 < self.retry_delay <= self.retry_max_delay,
            "retry_delay",
            "must be positive and at most retry_max_delay",
        )
        _check(self.retry_multiplier >= 1, "retry_multiplier", "must be at least 1")
        _check(1 <= self.pool_size <= 1000, "pool_size", "must be between 1 and 1000")
        _check(
            0 < self.pool_timeout <= 3600,
            "pool_timeout",
            "must be more than 0 and at most 3600 seconds",
        )
        _check(
            1 <= self.calls_per_connection <= 100_000,
            "calls_per_connection",
            "must be between 1 and 100000",
        )
        _check(self.format in ("json", "msgpack"), "format", "must be 'json' or 'msgpack'")
        _check(self.token_type in TOKEN_TYPES, "token_type", f"must be one of {TOKEN_TYPES}")
        _check(
            self.circuit_breaker_threshold >= 1, "circuit_breaker_threshold", "must be at least 1"
        )
        return msgspec.structs.replace(self, api_url=self.api_url.rstrip("/"))


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigurationError(f"{name} {message}", details={"field": name})


def _convert(name: str, kind: Any, value: Any) -> Any:
    kind = str(kind)
    if not isinstance(value, str):
        return value
    try:
        if kind.startswith("bool"):
            return value.strip().lower() in ("1", "true", "yes", "on")
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
    except ValueError:
        raise ConfigurationError(
            f"ROOST_{name.upper()} must be a number, got {value!r}", details={"field": name}
        ) from None
    return value
