"""`roost serve`'s own reading of its options (`plain_options`, which spares start-up Typer's
pydantic) gives `serve` what Typer gives it, and leaves every other command line to Typer."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, get_type_hints

import pytest
import typer
from typer.testing import CliRunner

from roost.cli.serve import for_typer, plain_options, serve

READ_ALIKE = [
    [],
    ["--port", "9000"],
    ["--port=9000", "--host", "0.0.0.0"],  # noqa: S104 - a command line, nothing listens
    ["--data-dir", "my data", "--database-url", "postgresql://db/roost"],
    ["--data-dir=./d", "--workers", "64", "--log-level", "debug"],
    ["--workers", "1", "--workers", "3"],  # the last one counts
    ["--host", "::1", "--port", "0"],
]

LEFT_TO_TYPER = [
    ["--help"],
    ["-h"],
    ["--port"],  # no value
    ["--port", "eighty"],
    ["--port", "+80"],
    ["--port", "٨٠"],  # Arabic-Indic digits: int() takes them, Typer need not
    ["--workers", "0"],
    ["--workers", "65"],
    ["--data-dir", "--port", "1"],
    ["--verbose"],
    ["extra"],
]


def typer_reads(args: list[str]) -> dict[str, Any]:
    """What Typer passes to `serve` for `args` (a function of the same options records it)."""
    received: dict[str, Any] = {}

    def record(**options: Any) -> None:
        received.update(options)

    command = for_typer(serve)
    record.__signature__ = inspect.signature(command)  # type: ignore[attr-defined]
    record.__annotations__ = get_type_hints(command, include_extras=True)
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("serve")(record)
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 0, result.output
    return received


@pytest.mark.parametrize("args", READ_ALIKE, ids=" ".join)
def test_plain_command_lines_are_read_as_typer_reads_them(args: list[str]) -> None:
    expected = typer_reads(args)
    given = plain_options(args)
    assert given is not None
    assert {**expected, **given} == expected  # what it leaves out, serve's defaults give


@pytest.mark.parametrize("args", LEFT_TO_TYPER, ids=" ".join)
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    assert plain_options(args) is None


def test_paths_are_paths() -> None:
    assert plain_options(["--data-dir", "x"]) == {"data_dir": Path("x")}
