"""A/B of `roost serve`'s start-up in two Roost trees: from spawning the process to its first
healthy answer.

    python benchmarks/startup.py --before /path/to/other/tree [--after .] [--turns 7]
                                 [--data existing,fresh] [--core 0]

Each tree runs its own `.venv/bin/roost serve` (SQLite, the embedded default) pinned to one
core with `taskset` where there is one, as `benchmarks/vs_pocketbase.py` runs it; this process
polls `/api/v1/health` every 2 ms from another core. Per turn each tree starts once (which goes
first alternates) on a data folder of its own that is either made anew for the turn (`fresh`:
the first start, which creates the tables and the admin) or kept from the tree's earlier
turns (`existing`; a warm-up start makes it first). A figure is the median (and min) of the
turns of:

- cpu: the server process' CPU (user + system, every thread, from /proc/<pid>/stat) when the
  first healthy answer arrives: the figure to compare on a shared machine;
- wall: seconds from spawning to that answer;
- rss: the server's resident memory a second after it.

and the median of the per-turn ratios after/before of cpu (the two starts of a turn are
seconds apart, so a slow spell of the machine weighs on both).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import cpu_seconds

_HEALTH = "/api/v1/health"


@dataclass(frozen=True)
class Start:
    cpu: float
    wall: float
    rss_mb: float


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", _HEALTH)
        answer = connection.getresponse()
        answer.read()
        return answer.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def start(tree: Path, data_dir: Path, core: int | None) -> Start:
    """Start `tree`'s `roost serve` on `data_dir`, wait for its first healthy answer, stop it."""
    port = _free_port()
    env = {
        **os.environ,
        "ROOST_DATA_DIR": str(data_dir),
        "ROOST_SECRET_KEY": "startup-benchmark-" + "k" * 40,
        "ROOST_ADMIN_USERNAME": "admin",
        "ROOST_ADMIN_PASSWORD": "benchmark-password",
        # a uid range of its own: other servers on this host may hold the default one
        "ROOST_FUNCTIONS_UID_BASE": str(random.randrange(2_000_000, 2**30, 4096)),
    }
    pinned = ["taskset", "-c", str(core)] if core is not None else []
    command = [*pinned, str(tree / ".venv" / "bin" / "roost"), "serve", "--port", str(port)]
    begin = time.perf_counter()
    server = subprocess.Popen(  # noqa: S603 - our own binary and arguments
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while not _healthy(port):
            if server.poll() is not None:
                raise RuntimeError(f"{command!r} exited with {server.returncode}")
            time.sleep(0.002)
        wall = time.perf_counter() - begin
        cpu = cpu_seconds(server.pid)
        time.sleep(1.0)
        return Start(cpu, wall, _rss_mb(server.pid))
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _summary(starts: list[Start]) -> str:
    def cell(values: list[float], unit: str, digits: int) -> str:
        return f"{statistics.median(values):.{digits}f}{unit} (min {min(values):.{digits}f})"

    return (
        f"cpu {cell([s.cpu for s in starts], ' s', 3)}  "
        f"wall {cell([s.wall for s in starts], ' s', 3)}  "
        f"rss {cell([s.rss_mb for s in starts], ' MB', 1)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="roost serve start-up, two trees")
    parser.add_argument("--before", type=Path, required=True, help="the other tree")
    parser.add_argument("--after", type=Path, default=Path("."), help="this tree")
    parser.add_argument("--turns", type=int, default=7)
    parser.add_argument("--data", default="existing,fresh", help="existing, fresh or both")
    parser.add_argument("--core", type=int, default=0, help="the core the servers run on")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    core: int | None = args.core
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        core = None
    elif hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)) - {args.core})
    scratch = Path(tempfile.mkdtemp(prefix="roost-startup-"))
    try:
        for data in args.data.split(","):
            results: dict[str, list[Start]] = {name: [] for name in trees}
            if data == "existing":
                for name, tree in trees.items():
                    start(tree, scratch / name, core)  # makes the data folder
            for turn in range(args.turns):
                order = list(trees) if turn % 2 == 0 else list(trees)[::-1]
                for name in order:
                    folder = scratch / (name if data == "existing" else f"{name}-{turn}")
                    results[name].append(start(trees[name], folder, core))
            for name, starts in results.items():
                print(f"{data:8} {name:6} {_summary(starts)}")
            ratios = [
                a.cpu / b.cpu for a, b in zip(results["after"], results["before"], strict=True)
            ]
            print(
                f"{data:8} after/before cpu, paired by turn: median {statistics.median(ratios):.2f}"
                f" (min {min(ratios):.2f}, max {max(ratios):.2f})"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
