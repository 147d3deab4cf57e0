"""Cerbos' names for policies and rules, and its glob matching of actions, roles and kinds."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import lru_cache

__all__ = ["glob_matcher", "policy_key", "sanitize", "scope_parents"]

NO_MATCH = "NO_MATCH"
NO_MATCH_FOR_SCOPE_PERMISSIONS = "NO_MATCH_FOR_SCOPE_PERMISSIONS"
DEFAULT_VERSION = "default"

_OLD_NAME = re.compile(r"^[A-Za-z][\w@.\-/]*(:[A-Za-z][\w@.\-/]*)*$")
_INVALID = re.compile(r"[^\w.]+")


@lru_cache(maxsize=4096)
def sanitize(name: str) -> str:
    """Names that older Cerbos accepted have their special characters replaced, as Cerbos does
    for backward compatibility (`album:object` -> `album_object` in policy keys)."""
    return _INVALID.sub("_", name) if _OLD_NAME.match(name) else name


def _with_scope(key: str, scope: str) -> str:
    return f"{key}/{scope}" if scope else key


def policy_key(kind: str, name: str, version: str, scope: str) -> str:
    """`resource.leave_request.vdefault/acme` as Cerbos reports it in `matchedPolicy`."""
    if kind in ("resource", "principal", "role"):
        return _with_scope(f"{kind}.{sanitize(name)}.v{sanitize(version)}", scope)
    return f"{kind}.{sanitize(name)}"


def scope_parents(scope: str) -> Iterator[str]:
    """The ancestors of `a.b.c`: `a.b`, `a`, then the root ``""``."""
    if not scope:
        return
    parts = scope.split(".")
    for end in range(len(parts) - 1, 0, -1):
        yield ".".join(parts[:end])
    yield ""


def _glob_regex(glob: str) -> str:
    # gobwas/glob with ':' as the separator: `*` stops at ':', `**` does not; a lone `*`
    # matches everything (Cerbos treats it as `**`).
    if glob == "*":
        glob = "**"
    out: list[str] = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^:]*")
        elif char == "?":
            out.append("[^:]")
        elif char == "[":
            end = glob.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = glob[i + 1 : end]
                negate = body.startswith("!")
                body = body[1:] if negate else body
                out.append(("[^" if negate else "[") + body.replace("\\", "\\\\") + "]")
                i = end + 1
                continue
        elif char == "{":
            end = glob.find("}", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                options = glob[i + 1 : end].split(",")
                out.append("(?:" + "|".join(_glob_regex(opt) for opt in options) + ")")
                i = end + 1
                continue
        elif char == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def is_glob(text: str) -> bool:
    return any(char in text for char in "*?[{")


@lru_cache(maxsize=4096)
def glob_matcher(glob: str) -> Callable[[str], bool]:
    """A test of a name against a Cerbos glob (plain names compare equal)."""
    if not is_glob(glob):
        return glob.__eq__
    pattern = re.compile(_glob_regex(glob), re.DOTALL)
    return lambda value: pattern.fullmatch(value) is not None
