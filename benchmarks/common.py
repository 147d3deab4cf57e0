"""What the benchmark scripts share: ports, server processes, and timing loops."""

from __future__ import annotations

import multiprocessing
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_process(
    serve: Callable[..., None],
    args: tuple[Any, ...],
    probe: Callable[[str], object],
    port: int | None = None,
) -> tuple[multiprocessing.Process, str]:
    """Run `serve(*args, port)` in a process of its own (on a free port unless told one);
    return it once `probe(url)` answers."""
    port = port or free_port()
    process = multiprocessing.Process(target=serve, args=(*args, port), daemon=True)
    process.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            probe(url)
            return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"the server {args} did not start")


def per_second(call: Callable[[], object], seconds: float, warmup: int = 20) -> float:
    """How many times a second `call()` runs, one after another."""
    for _ in range(warmup):
        call()
    count, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        call()
        count += 1
    return count / (time.perf_counter() - begin)
