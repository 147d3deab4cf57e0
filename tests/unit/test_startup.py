"""`roost serve` pauses the garbage collector while it starts (`roost._startup`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(code: str) -> str:
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_a_paused_collector_resumes_with_start_ups_objects_frozen() -> None:
    code = (
        "import gc; from roost._startup import pause_collector, resume_collector; "
        "pause_collector(); paused = gc.isenabled(); resume_collector(); "
        "print(paused, gc.isenabled(), gc.get_freeze_count() > 0)"
    )
    assert run(code) == "False True True"


def test_resuming_enables_no_collector_that_roost_did_not_pause() -> None:
    # a host app that runs with the collector off keeps it off when the server starts
    code = (
        "import gc; from roost._startup import resume_collector; "
        "gc.disable(); resume_collector(); print(gc.isenabled(), gc.get_freeze_count())"
    )
    assert run(code) == "False 0"


def test_the_server_resumes_the_collector_once_started(tmp_path: Path) -> None:
    # the app's lifespan, driven as uvicorn drives it, in a process of its own
    code = f"""
import asyncio, gc, os
os.environ.update(ROOST_DATA_DIR={str(tmp_path)!r}, ROOST_SECRET_KEY="k" * 48,
                  ROOST_FUNCTIONS_ENABLED="false")
from roost._startup import pause_collector
pause_collector()
from roost.server.app import create_app

async def main():
    app = create_app()
    sent = asyncio.Queue()
    await sent.put({{"type": "lifespan.startup"}})
    answers = asyncio.Queue()
    task = asyncio.create_task(app({{"type": "lifespan", "asgi": {{"version": "3.0"}}}},
                                   sent.get, answers.put))
    before = gc.isenabled()
    started = await answers.get()
    after = gc.isenabled()
    await sent.put({{"type": "lifespan.shutdown"}})
    await answers.get()
    await task
    print(before, started["type"], after)

asyncio.run(main())
"""
    assert run(code) == "False lifespan.startup.complete True"
