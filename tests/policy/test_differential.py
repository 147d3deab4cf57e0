"""Roost's engine against the real Cerbos 0.51 on generated policies and requests."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roost.policy import Engine
from tests.policy import generate
from tests.policy.cerbos import Cerbos
from tests.policy.compare import outputs_agree, result_view

WORLDS = 60
PRINCIPALS_PER_WORLD = 4
RESOURCES_PER_REQUEST = 8


@pytest.fixture(scope="module")
def worlds() -> list[generate.World]:
    rng = random.Random(int(os.environ.get("ROOST_POLICY_SEED", "20260")))
    return [generate.make_world(rng, index) for index in range(WORLDS)]


@pytest.fixture(scope="module")
def servers(cerbos_binary: Path, worlds: list[generate.World]) -> Iterator[tuple[Cerbos, Engine]]:
    policies = [policy for world in worlds for policy in world.policies]
    cerbos = Cerbos(cerbos_binary, policies, generate.GLOBALS)
    try:
        yield cerbos, Engine.from_policies(policies, generate.GLOBALS)
    finally:
        cerbos.stop()


def test_generated_checks_agree_with_cerbos(
    servers: tuple[Cerbos, Engine], worlds: list[generate.World]
) -> None:
    cerbos, engine = servers
    rng = random.Random(7)
    mismatches: list[str] = []
    compared = 0
    same_outputs = 0
    for world in worlds:
        for _ in range(PRINCIPALS_PER_WORLD):
            principal = generate.principal(rng, world)
            entries: list[dict[str, Any]] = [
                {"resource": generate.resource(rng, world, n), "actions": generate.ACTIONS}
                for n in range(RESOURCES_PER_REQUEST)
            ]
            theirs = cerbos.check(principal, entries)["results"]
            ours = engine.check(principal, entries).results
            for entry, their, our in zip(entries, theirs, ours, strict=True):
                compared += len(entry["actions"])
                expected, actual = result_view(their), result_view(our)
                their_outputs, our_outputs = expected.pop("outputs"), actual.pop("outputs")
                if world.outputs_comparable and their_outputs == our_outputs:
                    same_outputs += 1
                if not outputs_agree(their_outputs, our_outputs):
                    mismatches.append(f"outputs {their_outputs} != {our_outputs}")
                if expected != actual:
                    mismatches.append(
                        f"world {world.index} {principal} {entry}\n  cerbos {expected}\n  roost  {actual}"
                    )
    assert compared >= 10_000
    assert not mismatches, (
        f"{len(mismatches)} of {compared // len(generate.ACTIONS)} differ:\n"
        + "\n".join(mismatches[:5])
    )


def test_generated_plans_agree_with_cerbos(
    servers: tuple[Cerbos, Engine], worlds: list[generate.World]
) -> None:
    cerbos, engine = servers
    rng = random.Random(11)
    mismatches: list[str] = []
    kinds: dict[str, int] = {}
    for world in worlds:
        for _ in range(1):
            principal = generate.principal(rng, world)
            scope = rng.choice(world.scopes)
            for action in generate.ACTIONS:
                theirs = cerbos.plan(principal, world.kind, action, scope=scope)["filter"]["kind"]
                ours = engine.plan(principal, world.kind, action, scope=scope).filter.kind
                kinds[theirs] = kinds.get(theirs, 0) + 1
                if theirs != ours:
                    mismatches.append(
                        f"world {world.index} {principal} {scope!r} {action}: cerbos {theirs} roost {ours}"
                    )
    assert len(kinds) == 3, kinds
    # Known gaps (see docs/policy.md): Cerbos' planner folds some residuals that Roost keeps
    # (`has()` on resource attributes, errors inside known parts): Roost then answers
    # KIND_CONDITIONAL where Cerbos answers a constant kind, or the reverse. Held under 10%.
    total = sum(kinds.values())
    assert len(mismatches) <= total * 0.10, f"{len(mismatches)} of {total} differ:\n" + "\n".join(
        mismatches[:10]
    )
