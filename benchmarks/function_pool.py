"""The function runtime alone (no server in front): how long a sandboxed worker takes to
start, a new version's first call (on a spare: its code copied and imported; with no spare
left: a worker replaced first), and a warm trivial call through `WorkerPool.run`, under each
isolation this host allows.

    PYTHONPATH=src python benchmarks/function_pool.py [bubblewrap|fallback ...]
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from roost.functions import sandbox
from roost.functions.pool import WorkerPool
from roost.functions.protocol import Job

HANDLER = "def main(params, user_data):\n    return params\n"
WARM_CALLS = 500


def job(code: Path, version: int) -> Job:
    return Job(
        execution_id="bench",
        tenant="bench",
        function="echo",
        version=version,
        code_dir=str(code),
        entrypoint="main",
        params=1,
        user_data={},
        env={},
        timeout=10,
        memory_mb=128,
        stream=False,
    )


async def measure(isolation: str, root: Path) -> None:
    code = folder(root / "echo")
    (code / "main.py").write_text(HANDLER)
    began = time.perf_counter()
    sandbox.choose(isolation)
    probe_ms = (time.perf_counter() - began) * 1000
    starts, binds, replaced = [], [], []
    for version in range(1, 6):
        run_dir = folder(Path(tempfile.mkdtemp(prefix="run-", dir=root)))
        pool = WorkerPool(
            size=1,
            run_dir=run_dir,
            api_url="http://127.0.0.1:9",
            isolation=isolation,
            # a range of its own: other servers on the host (tests, benchmarks) hold theirs
            uid_base=4_000_000 + secrets.randbelow(100_000) * 16,
        )
        began = time.perf_counter()
        await pool.start()
        starts.append((time.perf_counter() - began) * 1000 - probe_ms)
        binds.append(await timed(pool.run(job(code, version))))  # binds the spare
        replaced.append(await timed(pool.run(job(code, version + 100))))  # no spare left
        warm = [await timed(pool.run(job(code, version + 100))) for _ in range(WARM_CALLS)]
        await pool.close()
    warm.sort()
    print(f"{pool.isolation}:")
    print(f"  worker start (spawn until ready):        {statistics.median(starts):7.1f} ms")
    print(f"  first call of a version, on a spare:     {statistics.median(binds):7.1f} ms")
    print(f"  first call of a version, no spare left:  {statistics.median(replaced):7.1f} ms")
    print(
        f"  warm trivial call: p50 {warm[len(warm) // 2] * 1000:.0f} us, "
        f"p99 {warm[int(len(warm) * 0.99)] * 1000:.0f} us, "
        f"{1000 / statistics.mean(warm):.0f} calls/s one after another"
    )


def folder(path: Path) -> Path:
    """A folder the workers' uids can reach (a private tmp would keep the fallback out)."""
    path.mkdir(exist_ok=True)
    path.chmod(0o755)
    return path


async def timed(events: AsyncIterator[object]) -> float:
    """Milliseconds until the call's last event."""
    began = time.perf_counter()
    async for _ in events:
        pass
    return (time.perf_counter() - began) * 1000


async def main(modes: list[str]) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        root = folder(Path(temporary))
        for mode in modes:
            await measure(mode, root)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["bubblewrap", "fallback"]))
