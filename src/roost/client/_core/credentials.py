"""Credentials a client carries, and when its access token wants refreshing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from roost.client._core.config import TOKEN_TYPES, TokenType
from roost.errors import ConfigurationError


class Credential(msgspec.Struct, frozen=True):
    """A token and how to send it."""

    token: str
    token_type: TokenType = "jwt"

    def __post_init__(self) -> None:
        if self.token_type not in TOKEN_TYPES:
            raise ConfigurationError(
                f"token_type must be one of {', '.join(TOKEN_TYPES)}, got {self.token_type!r}",
                details={"field": "token_type"},
            )
        if not self.token or any(c in self.token for c in "\r\n"):
            raise ConfigurationError(
                "token is empty or has a line break", details={"field": "token"}
            )

    def headers(self) -> dict[str, str]:
        if self.token_type == "jwt":
            return {"Authorization": f"Bearer {self.token}"}
        if self.token_type == "api_key":
            return {"Authorization": f"Api-Key {self.token}"}
        return {"X-Session-Token": self.token}


class TokenSession:
    """The tokens of a password sign-in: an access token renewed before it expires.

    Mutable on purpose: every request of the signed-in client reads the current access token,
    and a refresh replaces it for all of them.
    """

    REFRESH_MARGIN = 0.2  # refresh when less than this fraction of the lifetime is left

    def __init__(self, tokens: dict[str, Any], clock: Callable[[], float] = time.time) -> None:
        self._clock: Callable[[], float] = clock
        self.update(tokens)

    def update(self, tokens: dict[str, Any]) -> None:
        self.access = str(tokens["access"])
        self.refresh = str(tokens["refresh"])
        self.session_id = str(tokens.get("session_id", ""))
        self.lifetime = float(tokens.get("expires_in", 900))
        self.expires_at = self._clock() + self.lifetime

    @property
    def credential(self) -> Credential:
        return Credential(self.access, "jwt")

    def needs_refresh(self) -> bool:
        return self.expires_at - self._clock() < self.lifetime * self.REFRESH_MARGIN
