"""The `ROOST_*` variables, as the server's settings and the SDK's configuration both read
them: the environment's over a `.env` file's."""

from __future__ import annotations

import os
from pathlib import Path


def roost_variables(dotenv: Path = Path(".env")) -> dict[str, str]:
    """The `ROOST_*` variables, names in capitals: the environment's over `.env`'s (read by
    python-dotenv: quotes, `export`, comments and `${VAR}`)."""
    found: dict[str, str] = {}
    if dotenv.is_file():
        from dotenv import dotenv_values  # only when there is a file to read

        found.update(
            (key.upper(), value)
            for key, value in dotenv_values(dotenv).items()
            if key.upper().startswith("ROOST_") and value is not None
        )
    found.update(
        (key.upper(), value)
        for key, value in os.environ.items()
        if key.upper().startswith("ROOST_")
    )
    return found
