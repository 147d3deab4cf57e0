"""A stand-in for the resolver (`socket.getaddrinfo`) that answers for names under `.test` as
a test says, for attacks that need a name to lead somewhere (DNS rebinding, a provider's name
pointed at the server's network). Servers under test run in this process, so they see it."""

from __future__ import annotations

import socket
from typing import Any

import pytest


class FakeDNS(dict[str, list[list[str]]]):
    """`dns["a.test"] = [["10.0.0.1"], ["127.0.0.1"]]`: the first lookup of a.test answers
    10.0.0.1, every later one 127.0.0.1. `asked` counts the lookups of each name."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: dict[str, int] = {}

    def answer(self, name: str, port: int) -> list[tuple[Any, ...]]:
        self.asked[name] = self.asked.get(name, 0) + 1
        script = self.get(name)
        if not script:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        addresses = script[0] if len(script) == 1 else script.pop(0)
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in addresses
        ]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    """The resolver, answering for names under .test as the test says."""
    fake = FakeDNS()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not name.endswith(".test"):
            return real(host, port, *args, **kwargs)
        return fake.answer(name, int(port))

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return fake
