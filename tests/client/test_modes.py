from __future__ import annotations

import pytest

from roost import AsyncClient, Client, ConfigurationError


def test_mode_selects_the_client_class() -> None:
    assert isinstance(Client(mode="async"), AsyncClient)
    assert isinstance(AsyncClient(mode="sync"), Client)
    assert type(Client()) is Client
    with pytest.raises(ConfigurationError):
        Client(mode="threads")


def test_importing_roost_does_not_import_the_server() -> None:
    import subprocess
    import sys

    code = "import roost, sys; roost.Client(); print('starlette' in sys.modules)"
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
