"""The Cerbos binary for the differential tests: skipped only when it cannot be had and
ROOST_REQUIRE_SERVICES is unset (`scripts/ensure-cerbos` installs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.policy.cerbos import find_binary


@pytest.fixture(scope="session")
def cerbos_binary() -> Path:
    binary = find_binary()
    if binary is None or not binary.exists():
        if os.environ.get("ROOST_REQUIRE_SERVICES"):
            pytest.fail("the Cerbos binary is required: run scripts/ensure-cerbos")
        pytest.skip("no Cerbos binary (run scripts/ensure-cerbos)")
    return binary
