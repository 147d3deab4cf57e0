"""Every Python block of the README runs as pasted, in order, against a server started by
the README's first command (its `roost serve`, in a fresh folder, on a free port); every other
shell block is either that command or says here why it is not run.

The README names the only things a reader fills in (its "Names they use and leave to you"
sentence, the address the first command listens on, and the one setting the test gives a
value of its own); the test gives values to those and to nothing else. The Python blocks run
in one namespace, as one session would.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

README = Path(__file__).resolve().parents[1] / "README.md"
README_ADDRESS = "http://127.0.0.1:8787"
"""Where the first command listens; the test serves on a free port and puts it in its place."""
README_SETTINGS = ("ROOST_FUNCTIONS_UID_BASE",)
"""The settings the README says the test gives a value of its own (other servers of this
host hold the default uid range of function workers)."""


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int
    """the README line the block's code starts on (tracebacks point there)"""


def readme_blocks() -> list[Block]:
    text = README.read_text()
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        line = text.count("\n", 0, match.start(2)) + 1
        blocks.append(Block(match.group(1), match.group(2), line))
    return blocks


def readme_placeholders() -> set[str]:
    """The names the README says the reader supplies."""
    text = " ".join(README.read_text().split())
    found = re.search(r"Names they use and leave to you: (.*?)\.(?:\s|$)", text)
    assert found, "the README must say which names its blocks leave to the reader"
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", found.group(1)))


class PaymentError(Exception):
    pass


def _placeholders() -> dict[str, Any]:
    """A value for each name the README leaves to the reader, and for no other."""

    def charge(order: object) -> None:
        raise PaymentError("card declined")

    return {
        "pdf_bytes": b"%PDF-1.4 a report\n",
        "yesterday": datetime.now(UTC) - timedelta(days=1),
        "charge": charge,
        "order": {"id": 42},
        "PaymentError": PaymentError,
        "reset_url": "https://app.example.com/reset?token=abc",
    }


def _serve_command(block: Block) -> tuple[dict[str, str], list[str]]:
    """The environment and argv of the `roost serve` at the end of the first command."""
    last = block.code.strip().split("&&")[-1]
    words = shlex.split(last)
    environment = {}
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        environment[name] = value
    assert words[:2] == [".venv/bin/roost", "serve"], words
    return environment, [str(Path(sys.executable).with_name("roost")), *words[1:]]


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The README's first command, run in an empty folder on a free port."""
    first = readme_blocks()[0]
    assert first.language == "sh"
    assert 'pip install -e ".[server]"' in first.code
    environment, argv = _serve_command(first)
    folder = tmp_path_factory.mktemp("readme")
    port = free_port()
    # a fresh server: none of this machine's ROOST_ settings, only the README's
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    log = (folder / "serve.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - this venv's roost, argv from our README
        [*argv, "--port", str(port)],
        cwd=folder,
        env={**clean, **environment, "ROOST_FUNCTIONS_UID_BASE": str(_uid_base())},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = (folder / "serve.log").read_text()
                raise RuntimeError(f"the README's server did not start:\n{output}")
            time.sleep(0.05)
        assert (folder / "roost-data").is_dir()  # the embedded default, where it says
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _uid_base() -> int:
    return 3_000_000 + secrets.randbelow(1_000_000) * 16


def test_readme_names_exactly_the_placeholders_the_test_fills() -> None:
    assert readme_placeholders() == set(_placeholders())
    text = " ".join(README.read_text().split())
    for name in README_SETTINGS:
        assert f"with a `{name}` of its own" in text


NOT_RUN_HERE = {
    "pytest -n auto": "the test suite itself, which this test is part of",
    "CREATE ROLE roost": "makes the role and database `roost` for the whole PostgreSQL "
    "cluster, which a developer who followed it holds real data in (the test could not drop "
    "them after); the tests' servers run as such a role (tests/conftest.py, "
    "ensure_server_role)",
}


def test_every_shell_block_is_run_or_says_why_not() -> None:
    shell = [block for block in readme_blocks() if block.language not in ("python", "")]
    assert shell[0].language == "sh"  # the first command: `readme_server` runs it
    for block in shell[1:]:
        assert block.language == "sh", block
        reasons = [why for marker, why in NOT_RUN_HERE.items() if marker in block.code]
        assert reasons, f"README.md:{block.line}: a new shell block: run it here, or say why not"


def test_readme_blocks_run_as_pasted(
    readme_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # files the blocks write land here
    for name in [k for k in os.environ if k.startswith("ROOST_")]:
        monkeypatch.delenv(name)
    namespace: dict[str, Any] = {"__name__": "__readme__", **_placeholders()}
    ran = 0
    for block in readme_blocks():
        if block.language != "python":
            continue
        code = block.code.replace(README_ADDRESS, readme_server)
        # line numbers in tracebacks are the README's own
        compiled = compile("\n" * (block.line - 1) + code, str(README), "exec")
        exec(compiled, namespace)  # noqa: S102 - the README's own code, as a reader runs it
        ran += 1
    assert ran >= 10


def test_the_readme_s_tests_pass_under_pytest(tmp_path: Path) -> None:
    """The README's block of tests passes as the test file of a project that installed Roost:
    pytest runs it with the `roost.testing` plugin (its fixtures) and anyio's."""
    tests = [
        block
        for block in readme_blocks()
        if block.language == "python" and re.search(r"^(async )?def test_", block.code, re.M)
    ]
    assert len(tests) == 1
    (tmp_path / "test_app.py").write_text(tests[0].code)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    # plugins load from their entry points, as in a user's project (`roost` among them), but
    # the suite's own tools, which such a project lacks, stay out: schemathesis and
    # hypothesis alone are a quarter of the run's CPU
    unused = ["schemathesis", "hypothesispytest", "pytest_cov", "xdist", "xdist.looponfail"]
    pytest_args = ["-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "tmp")]
    pytest_args += [arg for plugin in unused for arg in ("-p", f"no:{plugin}")]
    done = subprocess.run(  # noqa: S603 - this venv's pytest on our README's tests
        [sys.executable, "-m", "pytest", *pytest_args, "test_app.py"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    count = len(re.findall(r"^(?:async )?def test_", tests[0].code, re.M))
    assert f"{count} passed" in done.stdout, done.stdout
