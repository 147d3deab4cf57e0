"""The RPC pool's rules without a server: defaults, timeouts, method names, array frames."""

from __future__ import annotations

import math

import msgspec
import pytest

from roost import ClientConfig, ValidationError
from roost.client._core.rpc import call_timeout, checked_method, pool_timed_out
from roost.client._realtime.connection import MAX_ARRAY_BYTES, MAX_FRAMES, arrays_of


def test_pool_options_default_to_dotdos_and_read_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = ClientConfig.resolve()
    assert (config.pool_size, config.pool_timeout, config.calls_per_connection) == (10, 30, 100)
    monkeypatch.setenv("ROOST_POOL_TIMEOUT", "2.5")
    monkeypatch.setenv("ROOST_CALLS_PER_CONNECTION", "7")
    config = ClientConfig.resolve(pool_size=3)
    assert (config.pool_size, config.pool_timeout, config.calls_per_connection) == (3, 2.5, 7)


def test_a_call_timeout_is_a_positive_number_of_seconds() -> None:
    assert call_timeout(None, 30.0) == 30.0
    assert call_timeout(2, 30.0) == 2.0
    for bad in (0, -1, math.inf, math.nan):
        with pytest.raises(ValueError, match="timeout"):
            call_timeout(bad, 30.0)
    for wrong in ("5", True):
        with pytest.raises(TypeError, match="timeout"):
            call_timeout(wrong, 30.0)  # type: ignore[arg-type]


def test_a_method_the_door_cannot_read_never_leaves_the_client() -> None:
    assert checked_method("fn.resize-image") == "fn.resize-image"
    for bad in ("", "x" * 101, 42, None):
        with pytest.raises(ValidationError) as caught:
            checked_method(bad)  # type: ignore[arg-type]
        assert caught.value.details == {"field": "method"}
        assert len(caught.value.message) < 200  # a huge name is not echoed whole


def test_pool_timeout_is_dotdos_timeout_error_with_a_code_of_its_own() -> None:
    error = pool_timed_out(0.5, 2, 3)
    assert isinstance(error, TimeoutError)  # the builtin, as DotDo users catch it
    assert error.code == "pool_timeout"
    assert error.details == {"pool_size": 2, "calls_per_connection": 3}


def test_calls_leave_in_arrays_the_server_takes() -> None:
    small = [msgspec.Raw(b"{}")] * (MAX_FRAMES + 5)
    assert [len(array) for array in arrays_of(small)] == [MAX_FRAMES, 5]
    big = msgspec.Raw(b"x" * (MAX_ARRAY_BYTES // 2 + 1))
    assert [len(array) for array in arrays_of([big, big, big])] == [1, 1, 1]
    huge = msgspec.Raw(b"x" * (MAX_ARRAY_BYTES + 1))  # alone; the server says if it takes it
    assert [len(array) for array in arrays_of([small[0], huge, small[0]])] == [1, 1, 1]
    assert arrays_of([]) == []
