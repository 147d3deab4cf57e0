"""What the benchmark scripts share: ports, server processes, and timing loops."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """A process' CPU so far (user + system, all its threads), from /proc (Linux). Raises
    OSError once the process is gone."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def tree_cpu_seconds(root: int) -> float:
    """`cpu_seconds` of `root` and of every live process descended from it (a server whose
    children serve: `roost serve --workers N`); one that ends meanwhile counts nothing."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # ended since the listing
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
    tree, grown = {root}, True
    while grown:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grown = bool(found)
    total = 0.0
    for pid in tree:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command's name."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


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
