"""ASGI apps for the in-process client's tests (`tests/client/_async/test_in_process.py`):
Roost's own, and small ones that answer, fail or keep state as other apps do. Outside
`_async/`, since an ASGI app is async in both clients' tests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from roost.client._asgi import ASGIApp, Message, Receive, Send
from roost.server import create_app
from roost.settings import load_settings
from roost.testing import FAST_PASSWORD_HASH

ADMIN_PASSWORD = "in-process-password"


def roost_app(data_dir: Path) -> ASGIApp:
    """Roost's app on SQLite and files in `data_dir`, whatever the environment names."""
    settings = load_settings(
        data_dir=data_dir,
        database_url=None,
        storage_url=None,
        redis_url=None,
        smtp_url=None,
        admin_username="admin",
        admin_password=ADMIN_PASSWORD,
        functions_enabled=False,
        **FAST_PASSWORD_HASH,
    )
    return create_app(settings)


class LifespanNoted:
    """`app`, with the lifespan messages that pass to and from it noted in `seen`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[str] = []

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def noted_receive() -> Message:
            message = await receive()
            self.seen.append(message["type"])
            return message

        async def noted_send(message: Message) -> None:
            self.seen.append(message["type"])
            await send(message)

        await self.app(scope, noted_receive, noted_send)


async def _json(send: Send, status: int, body: object) -> None:
    content = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


async def bare_app(scope: Message, receive: Receive, send: Send) -> None:
    """An app with no lifespan (it refuses the scope, as many do) that answers any operation
    with its path, except `broken.*`, on which it raises, and `slow.*`, which takes 5 s."""
    assert scope["type"] == "http", "this app has no lifespan"
    if scope["path"].startswith("/api/v1/broken/"):
        raise RuntimeError("a bug in the app")
    if scope["path"].startswith("/api/v1/slow/"):
        await asyncio.sleep(5)
    await _json(send, 200, {"path": scope["path"], "state": scope["state"]})


async def stateful_app(scope: Message, receive: Receive, send: Send) -> None:
    """An app whose startup puts a value in the lifespan state, which its answers show."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["pool"] = "open"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await _json(send, 200, {"pool": scope["state"]["pool"]})


async def failing_app(scope: Message, receive: Receive, send: Send) -> None:
    """An app whose startup fails (its database unreachable, say)."""
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
