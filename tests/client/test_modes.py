from __future__ import annotations

from typing import assert_type

import pytest

from roost import AsyncClient, Client, ConfigurationError


def test_mode_selects_the_client_class() -> None:
    assert isinstance(Client(mode="async"), AsyncClient)
    assert isinstance(AsyncClient(mode="sync"), Client)
    assert type(Client()) is Client
    with pytest.raises(ConfigurationError):
        Client(mode="threads")


def test_mode_is_typed_as_the_class_it_makes() -> None:
    """`assert_type` is checked by mypy (`mypy --strict tests/`, with the roost.mypy plugin);
    at run time it only answers its argument."""
    switched = assert_type(Client(mode="async"), AsyncClient)
    assert isinstance(switched, AsyncClient)
    assert isinstance(assert_type(AsyncClient(mode="sync"), Client), Client)
    assert_type(Client(mode="sync"), Client)
    assert_type(AsyncClient(), AsyncClient)


def test_importing_roost_does_not_import_the_server() -> None:
    import subprocess
    import sys

    code = "import roost, sys; roost.Client(); print('starlette' in sys.modules)"
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
