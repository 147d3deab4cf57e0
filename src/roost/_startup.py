"""The cyclic garbage collector, paused while `roost serve` starts.

Start-up imports some 1,250 modules and builds the app: objects that live as long as the
process, which the collector would otherwise walk again and again while they are made (~10%
of start-up's CPU). `roost serve` pauses it first thing (`roost.cli.run`); the server resumes
it once started, with what start-up made moved to the permanent generation (`gc.freeze`),
which later collections skip. Nothing else pauses it: a host app's collector is left alone.
"""

from __future__ import annotations

import gc

_paused = False


def pause_collector() -> None:
    """Pause the cyclic garbage collector until `resume_collector` (if it runs at all)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_collector() -> None:
    """Resume the collector if `pause_collector` paused it, start-up's objects frozen."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
