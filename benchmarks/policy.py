"""Policy checks: Roost's engine in process against the Cerbos binary over HTTP.

    python benchmarks/policy.py [--seconds 2] [--rounds 3] [--batch 1]

Both answer the same CheckResources requests (the hand-written feature policies of the
tests: derived roles, variables, scopes, a principal policy, a role policy), in alternating
turns so that neither gets a quieter machine. Prints resource checks per second for each and
the ratio (goal: in process >= 10x the binary). Needs the binary (`scripts/ensure-cerbos`).
Part 2 (Roost over HTTP, plan-filtered pages) comes with the server side of issue 15.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from roost.policy import Engine  # noqa: E402
from tests.policy.cerbos import Cerbos, find_binary  # noqa: E402
from tests.policy.test_features import ACTIONS, GLOBALS, POLICIES, PRINCIPALS, RESOURCES  # noqa: E402


def rate(call: Callable[[], object], seconds: float, per_call: int) -> float:
    """Resource checks per second of `call()` run back to back for `seconds`."""
    for _ in range(20):
        call()
    count, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        call()
        count += 1
    return count * per_call / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description="Roost policy engine vs the Cerbos binary")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1, help="resources per request")
    args = parser.parse_args()
    binary = find_binary()
    if binary is None:
        raise SystemExit("no Cerbos binary: run scripts/ensure-cerbos")
    engine = Engine.from_policies(POLICIES, GLOBALS)
    cerbos = Cerbos(binary, list(yaml.safe_load_all(POLICIES)), GLOBALS)
    requests = [
        (
            principal,
            [
                {"resource": RESOURCES[(i + j) % len(RESOURCES)], "actions": ACTIONS[:3]}
                for j in range(args.batch)
            ],
        )
        for i, principal in enumerate(PRINCIPALS)
    ]
    turn = {"n": 0}

    def roost() -> None:
        principal, entries = requests[turn["n"] % len(requests)]
        turn["n"] += 1
        engine.check(principal, entries)

    def binary_http() -> None:
        principal, entries = requests[turn["n"] % len(requests)]
        turn["n"] += 1
        cerbos.check(principal, entries)

    try:
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(rate(roost, args.seconds, args.batch))
            theirs.append(rate(binary_http, args.seconds, args.batch))
        best_ours, best_theirs = max(ours), max(theirs)
        print(f"resources per request: {args.batch}, actions per resource: 3")
        print(f"roost in process : {best_ours:10.0f} checks/s  ({1e6 / best_ours:7.1f} us each)")
        print(
            f"cerbos over HTTP : {best_theirs:10.0f} checks/s  ({1e6 / best_theirs:7.1f} us each)"
        )
        print(f"ratio            : {best_ours / best_theirs:10.1f}x  (goal >= 10x)")
    finally:
        cerbos.stop()


if __name__ == "__main__":
    main()
