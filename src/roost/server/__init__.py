"""The Roost server: the app factory and the doors (REST, batch, WebSocket) to the registry."""

from roost.server.app import create_app

__all__ = ["create_app"]
