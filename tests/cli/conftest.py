"""The CLI's rich consoles are made at import, and take their width from COLUMNS then: under
pytest-xdist a worker's COLUMNS is 80, which would wrap the tables the tests read. And the
commands set ROOST_* variables for what they start (`--data-dir`, the functions' API URL):
run in-process, they must not leave them to the servers later tests start."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from roost.cli import remote, serve


@pytest.fixture(autouse=True)
def wide_consoles() -> Iterator[None]:
    consoles = (serve.console(), remote.console)
    widths = [console.width for console in consoles]
    for console in consoles:
        console.width = 250
    yield
    for console, width in zip(consoles, widths, strict=True):
        console.width = width


@pytest.fixture(autouse=True)
def environment_restored() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
