"""What importing the server loads: start-up time is mostly imports (issue 20)."""

from __future__ import annotations

import subprocess
import sys


def test_the_server_imports_neither_sqlglot_nor_the_sdk_nor_redis() -> None:
    # sqlglot (CHECK constraints, analytics), the SDK client and redis load on first use
    code = (
        "import sys, roost.server; "
        "print(sorted(m for m in ('sqlglot', 'roost.client._async.client', 'redis') "
        "if m in sys.modules))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
