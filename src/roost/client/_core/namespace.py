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


def user_ref(username: str | None, user_id: str | None) -> dict[str, Any]:
    """The parameters naming a user by username or by id (the server refuses both or neither)."""
    params: dict[str, Any] = {}
    add_given(params, username=username, id=user_id)
    return params
