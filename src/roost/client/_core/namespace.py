"""The base of every SDK namespace (`client.kv`, `client.users`, ...): a view of one client."""

from __future__ import annotations

from typing import Any


class Namespace:
    """The operations of one namespace, called through `client`. Each subclass declares its
    client's type (`_client: AsyncClient`), which the generated sync code turns into `Client`."""

    _client: Any

    def __init__(self, client: Any) -> None:
        self._client = client


def add_given(params: dict[str, Any], **optional: Any) -> None:
    """Add to `params` the optional parameters that were given (not None)."""
    params.update({key: value for key, value in optional.items() if value is not None})
