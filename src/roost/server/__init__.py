"""The Roost server: the app factory and the doors (REST, batch, WebSocket) to the registry."""

from roost._extras import require_server_extra

require_server_extra()

from roost.server.app import create_app  # noqa: E402 - only once its dependencies are known

__all__ = ["create_app"]
