"""A scripted stand-in for the server's HTTP side, for SDK unit tests over `httpx.MockTransport`.

It tests the SDK, never the server: each test scripts the answers it needs. The fixtures in
`tests/unit/conftest.py` build the async or the sync client over it.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import httpx

API_URL = "http://roost.test"
Reply = httpx.Response | Exception


def ok(body: Any, **headers: str) -> httpx.Response:
    """A 200 answer with a JSON body."""
    return httpx.Response(200, json=body, headers=headers)


def error(status: int, code: str, **headers: str) -> httpx.Response:
    """An error answer as the server sends it."""
    body = {"error": {"code": code, "message": f"scripted {code}", "details": {}}}
    return httpx.Response(status, json=body, headers=headers)


class FakeServer:
    """Answers each operation from its script (the last reply repeats) and records requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self._script: dict[str, list[Reply]] = {}

    def answer(self, operation: str, *replies: Reply) -> None:
        """Answer the next calls of `operation` ("kv.get") with `replies`, in order."""
        module, _, action = operation.partition(".")
        self._script[f"/api/v1/{module}/{action}"] = list(replies)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        replies = self._script[request.url.path]
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def calls(self, operation: str) -> list[httpx.Request]:
        """The requests made for `operation`, in order."""
        path = "/api/v1/" + operation.replace(".", "/", 1)
        return [request for request in self.requests if request.url.path == path]

    @staticmethod
    def body(request: httpx.Request) -> Any:
        return json.loads(request.content)


async def run(value: Any) -> Any:
    """The result of an SDK call of either client (the async one returns a coroutine)."""
    return await value if inspect.isawaitable(value) else value
