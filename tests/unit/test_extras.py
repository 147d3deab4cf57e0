"""Without the `server` extra the SDK works, and the server and the `roost` command say in one
line which extra to install. Each case runs a fresh interpreter that cannot import the extra."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

import roost
from roost._extras import INSTALL_SERVER, SERVER_MODULES

SRC = Path(roost.__file__).resolve().parents[1]
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

# a meta-path finder that refuses the given top-level modules, as if they were not installed
BLOCKER = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
"""


def _without(blocked: set[str], code: str) -> subprocess.CompletedProcess[str]:
    script = f"BLOCKED = {sorted(blocked)!r}\n{BLOCKER}\n{code}"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize("argv", [["roost", "--help"], ["roost", "serve"]])
def test_the_command_without_the_server_says_which_extra_to_install(argv: list[str]) -> None:
    code = f"import runpy, sys\nsys.argv = {argv!r}\nrunpy.run_module('roost.cli', run_name='__main__')"
    done = _without({"starlette"}, code)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"roost: the Roost server is not installed (no module 'starlette'): {INSTALL_SERVER}"
    ]


def test_importing_the_server_without_its_extra_names_the_extra() -> None:
    code = (
        "try:\n    import roost.server\n"
        "except ModuleNotFoundError as exc:\n    print(exc.name, '|', exc)\n"
    )
    done = _without({"sqlalchemy"}, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"sqlalchemy | the Roost server is not installed (no module 'sqlalchemy'): {INSTALL_SERVER}"
    )


def test_the_sdk_imports_without_the_server_extra() -> None:
    code = (
        "import roost, roost.webhooks\n"
        "print(roost.Client.__name__, roost.AsyncClient.__name__, roost.webhooks.verify.__name__)"
    )
    done = _without(set(SERVER_MODULES), code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Client", "AsyncClient", "verify"]


def test_server_modules_cover_every_distribution_of_the_server_extra() -> None:
    extra = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]["server"]
    provided: dict[str, set[str]] = {}
    for module, distributions in packages_distributions().items():
        for distribution in distributions:
            provided.setdefault(_normal(distribution), set()).add(module)
    for requirement in extra:
        if ";" in requirement:  # platform-only (the sandbox's): it says itself when missing
            continue
        distribution = _normal(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0])
        assert provided.get(distribution, set()) & set(SERVER_MODULES), requirement


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
