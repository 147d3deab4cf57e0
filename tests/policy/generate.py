"""Random policies and requests for the differential tests: many independent "worlds", each
with its own resource kind, scopes, derived roles and principal policies, so one Cerbos
server and one Roost engine hold them all and one request batches many resources."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

ROLES = ["r0", "r1", "r2", "r3"]
ACTIONS = ["view", "edit", "delete", "a:x", "a:y", "b:x:z"]
RULE_ACTIONS = [*ACTIONS, "*", "a:*", "b:*", "b:**"]
GLOBALS = {"threshold": 3, "label": "g1", "list": ["t1", "t2"]}


def atoms(kind: str) -> list[str]:
    """Conditions the grammar draws from; some err on purpose (missing keys, double + int)."""
    return [
        "R.attr.owner == P.id",
        "R.attr.owner != P.id",
        "R.attr.n > 2",
        "R.attr.n >= 2.0",
        "R.attr.n == 3",
        "R.attr.n < P.attr.level",
        "R.attr.flag",
        "!R.attr.flag",
        "R.attr.flag == true",
        'R.attr.status in ["a", "b"]',
        '"t1" in R.attr.tags',
        'R.attr.tags.exists(t, t.startsWith("t2"))',
        "R.attr.tags.all(t, t.size() == 2)",
        "size(R.attr.tags) > 1",
        "P.attr.level >= 2",
        "P.attr.dept == R.attr.dept",
        "has(R.attr.missing)",
        "has(R.attr.n)",
        "R.attr.missing == 1",
        "R.attr.n + 1 > 3",
        "int(R.attr.n) + 1 > 3",
        "R.attr.n + 1.0 > 3.0",
        "V.big",
        "V.owned && V.big",
        "C.limit < R.attr.n",
        "C.names.exists(x, x == R.attr.status)",
        "G.threshold > R.attr.n",
        "G.label == P.attr.dept",
        "R.attr.tags.hasIntersection(G.list)",
        'R.attr.tags.except(["t1"]).size() > 0',
        'R.attr.tags.intersect(["t1", "t3"]) == ["t1"]',
        'R.attr.tags.isSubset(["t1", "t2", "t3"])',
        "hierarchy(R.attr.path).ancestorOf(hierarchy(P.attr.path))",
        "hierarchy(P.attr.path).descendentOf(hierarchy(R.attr.path))",
        "hierarchy(R.attr.path).siblingOf(hierarchy(P.attr.path))",
        "hierarchy(R.attr.path).overlaps(hierarchy(P.attr.path))",
        'P.attr.ip.inIPAddrRange("10.0.0.0/16")',
        "timestamp(R.attr.created) < now()",
        "timestamp(R.attr.created).getFullYear() == 2024",
        'timestamp(R.attr.created).getHours("Asia/Tokyo") > 12',
        'timestamp(R.attr.created) + duration("24h") > timestamp("2024-06-01T00:00:00Z")',
        'timestamp(R.attr.created).timeSince() > duration("1h")',
        'R.attr.status.matches("^a")',
        'R.attr.status.upperAscii() == "A"',
        'R.attr.status.startsWith("c") || R.attr.status.endsWith("b")',
        'R.id.startsWith("x1")',
        f'R.kind == "{kind}"',
        '"r1" in P.roles',
        '"owner" in runtime.effectiveDerivedRoles',
        "R.attr.n > 1 ? R.attr.flag : !R.attr.flag",
        "math.greatest([R.attr.n, 2.0]) > 2.0",
        'base64.encode(bytes(R.attr.status)) == "YQ=="',
        "R.attr.n / 0.0 > 1.0",
        "R.attr.n % 2 == 1",
        'R.attr.tags.map(t, t + "x").exists(t, t == "t1x")',
        'R.attr.tags.filter(t, t != "t1").size() == 1',
        'R.attr.meta.k == "v"',
        'R.attr.meta["k"] == "v"',
        "dyn(R.attr.n) == 2",
        "R.attr.status.size() == 1",
        'R.attr.status + P.attr.dept == "ag1"',
        'string(R.attr.n) == "2"',
        "R.attr.n in [1, 2, 3]",
        "R.attr.n == null",
        "P.attr.missing",
        'R.scope == ""',
        'P.id.matches("^p")',
    ]


@dataclass
class World:
    index: int
    kind: str
    scopes: list[str]
    policies: list[dict[str, Any]] = field(default_factory=list)
    principals: list[str] = field(default_factory=list)
    # Cerbos walks the rows of a scope in an order that changes between runs (Go map
    # iteration), so which outputs a DENY cuts short varies; worlds without DENY rules have
    # outputs that do not depend on it, and only theirs are compared.
    outputs_comparable: bool = False


def _condition(rng: random.Random, kind: str, depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth < 2 and roll < 0.25:
        op = rng.choice(["all", "any", "none"])
        return {op: {"of": [_condition(rng, kind, depth + 1) for _ in range(rng.randint(1, 3))]}}
    pool = atoms(kind)
    expr = rng.choice(pool)
    if rng.random() < 0.25:
        expr = f"({expr}) {rng.choice(['&&', '||'])} ({rng.choice(pool)})"
    return {"expr": expr}


def _maybe_condition(rng: random.Random, kind: str, chance: float = 0.6) -> dict[str, Any]:
    return {"condition": {"match": _condition(rng, kind)}} if rng.random() < chance else {}


def _output(rng: random.Random) -> dict[str, Any]:
    if rng.random() > 0.3:
        return {}
    when: dict[str, str] = {}
    exprs = [
        '"x:" + P.id',
        "R.attr.n",
        "R.attr.tags",
        "V.big",
        "R.attr.missing",
        "now() > timestamp(0)",
        '{"id": R.id, "n": 1}',
        'duration("90s")',
        "[1, 2.5]",
    ]
    if rng.random() < 0.7:
        when["ruleActivated"] = rng.choice(exprs)
    if rng.random() < 0.5:
        when["conditionNotMet"] = rng.choice(exprs)
    return {"output": {"when": when}} if when else {}


def _variables() -> dict[str, Any]:
    return {"local": {"big": "R.attr.n > C.limit", "owned": "R.attr.owner == P.id"}}


def _constants() -> dict[str, Any]:
    return {"local": {"limit": 2, "names": ["a", "c"]}}


def make_world(rng: random.Random, index: int) -> World:
    kind = f"k{index}"
    depth = rng.choice([0, 0, 1, 2])
    chain = [""] + [".".join(f"w{index}s{d}" for d in range(n + 1)) for n in range(depth)]
    world = World(index, kind, chain, outputs_comparable=index % 3 == 1)
    effects = (
        ["EFFECT_ALLOW"]
        if world.outputs_comparable
        else ["EFFECT_ALLOW", "EFFECT_ALLOW", "EFFECT_DENY"]
    )
    derived = f"dr{index}"
    world.policies.append(
        {
            "apiVersion": "api.cerbos.dev/v1",
            "derivedRoles": {
                "name": derived,
                "constants": _constants(),
                "variables": _variables(),
                "definitions": [
                    {
                        "name": "owner",
                        "parentRoles": rng.sample(ROLES, rng.randint(1, 2)),
                        **_maybe_condition(rng, kind, 0.9),
                    },
                    {
                        "name": "helper",
                        "parentRoles": rng.sample(ROLES, rng.randint(1, 3)),
                        **_maybe_condition(rng, kind, 0.8),
                    },
                ],
            },
        }
    )
    consent_leaf = depth > 0 and rng.random() < 0.4
    for position, scope in enumerate(chain):
        rules: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, 5)):
            rule: dict[str, Any] = {
                "actions": rng.sample(RULE_ACTIONS, rng.randint(1, 3)),
                "effect": rng.choice(effects),
            }
            if rng.random() < 0.75:
                rule["roles"] = rng.sample([*ROLES, "*"], rng.randint(1, 2))
            if "roles" not in rule or rng.random() < 0.3:
                rule["derivedRoles"] = rng.sample(["owner", "helper"], rng.randint(1, 2))
            if rng.random() < 0.3:
                rule["name"] = f"n{len(rules)}"
            rule.update(_maybe_condition(rng, kind))
            if "derivedRoles" not in rule:
                # Cerbos skips a rule the first time its derived role fails and reads a cached
                # "condition not met" afterwards, in an action order that varies between runs:
                # such outputs are not reproducible, even by Cerbos.
                rule.update(_output(rng))
            rules.append(rule)
        policy: dict[str, Any] = {
            "resource": kind,
            "version": "default",
            "importDerivedRoles": [derived],
            "constants": _constants(),
            "variables": _variables(),
            "rules": rules,
        }
        if scope:
            policy["scope"] = scope
        if consent_leaf and position == len(chain) - 1:
            policy["scopePermissions"] = "SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS"
        elif scope:
            policy["scopePermissions"] = "SCOPE_PERMISSIONS_OVERRIDE_PARENT"
        world.policies.append({"apiVersion": "api.cerbos.dev/v1", "resourcePolicy": policy})
    if rng.random() < 0.5:
        principal = f"p{index}"
        world.principals.append(principal)
        rules = []
        for target in [kind, "*"][: rng.randint(1, 2) if index % 3 == 0 else 1]:
            rules.append(
                {
                    "resource": target,
                    "actions": [
                        {
                            "action": rng.choice(RULE_ACTIONS),
                            "effect": rng.choice(effects),
                            **_maybe_condition(rng, kind, 0.5),
                            **_output(rng),
                        }
                        for _ in range(rng.randint(1, 3))
                    ],
                }
            )
        world.policies.append(
            {
                "apiVersion": "api.cerbos.dev/v1",
                "principalPolicy": {
                    "principal": principal,
                    "version": "default",
                    "constants": _constants(),
                    "variables": _variables(),
                    "rules": rules,
                },
            }
        )
    return world


def principal(rng: random.Random, world: World) -> dict[str, Any]:
    ids = [*world.principals, "u0", "u1", f"p{world.index + 1}"]
    attr: dict[str, Any] = {
        "level": rng.choice([0, 1, 2, 3, 2.5]),
        "dept": rng.choice(["g1", "g2", "a"]),
        "path": rng.choice(["a", "a.b", "a.b.c", "a.c", "x"]),
        "ip": rng.choice(["10.0.3.4", "10.1.0.1", "192.168.0.1", "nope"]),
    }
    if rng.random() < 0.2:
        attr.pop(rng.choice(list(attr)))
    return {"id": rng.choice(ids), "roles": rng.sample(ROLES, rng.randint(1, 3)), "attr": attr}


def resource(rng: random.Random, world: World, number: int) -> dict[str, Any]:
    attr: dict[str, Any] = {
        "owner": rng.choice(["u0", "u1", f"p{world.index}"]),
        "n": rng.choice([0, 1, 2, 3, 4, 2.0, 1.5]),
        "flag": rng.choice([True, False]),
        "status": rng.choice(["a", "b", "c", "ab"]),
        "tags": rng.sample(["t1", "t2", "t3", "tt"], rng.randint(0, 3)),
        "dept": rng.choice(["g1", "g2"]),
        "path": rng.choice(["a", "a.b", "a.b.c", "a.c", "x"]),
        "created": rng.choice(
            ["2024-03-05T10:20:30Z", "2023-12-31T23:00:00Z", "2031-01-01T00:00:00Z"]
        ),
        "meta": rng.choice([{"k": "v"}, {"k": "w"}, {}]),
    }
    for _ in range(rng.randint(0, 2)):
        attr.pop(rng.choice(list(attr)), None)
    out: dict[str, Any] = {"kind": world.kind, "id": f"x{number}", "attr": attr}
    scope = rng.choice([*world.scopes, world.scopes[-1] + ".nope" if world.scopes[-1] else "nope"])
    if scope:
        out["scope"] = scope
    return out
