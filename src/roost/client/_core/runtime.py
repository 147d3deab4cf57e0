"""Where the SDK runs: inside a deployed function, or anywhere else.

Inside a function the runtime sets `ROOST_RUNTIME=roost-functions` and the rest of the
function's context (`ROOST_FUNCTION_ID`, `ROOST_FUNCTION_NAME`, `ROOST_FUNCTION_VERSION`,
`ROOST_EXECUTION_ID`, `ROOST_TENANT`, `ROOST_APP`), with `ROOST_API_URL` and a short-lived
`ROOST_TOKEN` (and the sandbox's one way out: `ROOST_API_SOCKET`, a Unix socket, or
`ROOST_API_DOOR`, where the runtime hands out connections), so that `Client()` with no
arguments calls Roost back as the function's caller.

Example:
    from roost import Client, get_function_context, is_inside_function

    def main(params, user_data):
        if is_inside_function():
            print("execution", get_function_context()["execution_id"])
        with Client() as client:  # configured from the environment
            return client.functions.execute("helper", {"test": True})["data"]
"""

from __future__ import annotations

import enum
import os
from typing import Any

RUNTIME = "roost-functions"


class RuntimeMode(enum.Enum):
    """Whether the SDK runs inside a deployed function (FUNCTION) or not (EXTERNAL)."""

    FUNCTION = "function"
    EXTERNAL = "external"


def detect_runtime() -> RuntimeMode:
    """RuntimeMode.FUNCTION inside a deployed function, else RuntimeMode.EXTERNAL.

    Example:
        if detect_runtime() is RuntimeMode.FUNCTION: ...
    """
    inside = os.environ.get("ROOST_RUNTIME") == RUNTIME
    return RuntimeMode.FUNCTION if inside else RuntimeMode.EXTERNAL


def is_inside_function() -> bool:
    """Whether the SDK runs inside a deployed function.

    Example:
        client = Client() if is_inside_function() else Client(api_url="http://127.0.0.1:8787")
    """
    return detect_runtime() is RuntimeMode.FUNCTION


def get_function_context() -> dict[str, Any]:
    """The running function's `function_id`, `function_name`, `function_version`,
    `execution_id`, `tenant` and `app`; an empty dict outside a function.

    Example:
        print(get_function_context()["execution_id"])
    """
    if not is_inside_function():
        return {}
    env = os.environ
    version = env.get("ROOST_FUNCTION_VERSION", "")
    return {
        "function_id": env.get("ROOST_FUNCTION_ID"),
        "function_name": env.get("ROOST_FUNCTION_NAME"),
        "function_version": int(version) if version.isdigit() else None,
        "execution_id": env.get("ROOST_EXECUTION_ID"),
        "tenant": env.get("ROOST_TENANT"),
        "app": env.get("ROOST_APP"),
    }
