"""The SDK's network-free parts: config, retry, circuit breaker, credentials."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from roost.client._core.breaker import CircuitBreaker
from roost.client._core.config import ClientConfig
from roost.client._core.credentials import Credential, TokenSession
from roost.client._core.retry import Backoff, Retry, parse_retry_after
from roost.errors import CircuitOpenError, ConfigurationError


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(base=1, multiplier=2, max_delay=5)
    for failures, ceiling in ((1, 1), (2, 2), (3, 4), (4, 5), (10, 5)):
        delay = backoff.compute(failures)
        assert ceiling / 2 <= delay <= ceiling


def test_retry_gives_up_after_retries_and_on_long_retry_after() -> None:
    retry = Retry(Backoff(0.1, 2, 10), retries=2)
    assert retry.delay(1) is not None
    assert retry.delay(3) is None
    assert retry.delay(1, retry_after=3) == 3
    assert retry.delay(1, retry_after=60) is None


def test_parse_retry_after_reads_seconds_and_dates() -> None:
    assert parse_retry_after("12") == 12
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_circuit_opens_after_threshold_and_half_opens_later() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, reset_after=10, clock=lambda: now[0])
    for _ in range(3):
        breaker.before_call("x")
        breaker.record_failure()
    with pytest.raises(CircuitOpenError) as caught:
        breaker.before_call("http://server")
    assert "3 failures" in caught.value.message
    now[0] = 11
    breaker.before_call("x")  # the trial call
    breaker.record_failure()
    with pytest.raises(CircuitOpenError):
        breaker.before_call("x")
    now[0] = 22
    breaker.record_success()
    assert breaker.state == "closed"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", 0),
        ("timeout", 301),
        ("max_retries", 11),
        ("max_retries", -1),
        ("api_url", "ftp://x"),
        ("format", "xml"),
        ("pool_size", 0),
        ("pool_timeout", 0),
        ("pool_timeout", 3601),
        ("calls_per_connection", 0),
        ("token_type", "basic"),
    ],
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ClientConfig.resolve(**{field: value})
    assert caught.value.details["field"] == field


def test_config_reads_env_then_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ROOST_TIMEOUT=12\nROOST_TENANT='acme'\nOTHER=1\n")
    monkeypatch.setenv("ROOST_TIMEOUT", "20")
    monkeypatch.setenv("ROOST_API_KEY", "rak_x_y_z")
    config = ClientConfig.resolve(max_retries=1)
    assert (config.timeout, config.tenant, config.max_retries) == (20, "acme", 1)
    assert (config.token, config.token_type) == ("rak_x_y_z", "api_key")
    assert ClientConfig.resolve(timeout=5).timeout == 5
    monkeypatch.setenv("ROOST_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError):
        ClientConfig.resolve()


def test_sdk_and_server_read_one_dotenv_alike(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from roost._environment import roost_variables
    from roost.settings import load_settings

    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("ROOST_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SHARED_HOST", "db.internal")
    (tmp_path / ".env").write_text(
        "# written by hand\n"
        "export ROOST_TENANT=acme   # a comment after a value\n"
        'ROOST_DATA_DIR="/srv/roost data"\n'
        "ROOST_API_URL=http://${SHARED_HOST}:8787\n"
        "ROOST_DATABASE_URL='postgresql://roost:p#ss@${SHARED_HOST}/roost'\n"
    )
    config = ClientConfig.resolve()
    settings = load_settings()
    assert (config.tenant, config.api_url) == ("acme", "http://db.internal:8787")
    assert str(settings.data_dir) == "/srv/roost data"
    # `#` inside quotes is no comment, and ${VAR} is filled in: the same on both sides
    assert settings.database_url == "postgresql://roost:p#ss@db.internal/roost"
    read_by_sdk = roost_variables()  # what ClientConfig.resolve reads
    assert read_by_sdk["ROOST_DATABASE_URL"] == settings.database_url
    assert read_by_sdk["ROOST_DATA_DIR"] == str(settings.data_dir)


def test_credential_headers_and_refusals() -> None:
    assert Credential("t", "jwt").headers() == {"Authorization": "Bearer t"}
    assert Credential("t", "api_key").headers() == {"Authorization": "Api-Key t"}
    assert Credential("t", "session_token").headers() == {"X-Session-Token": "t"}
    with pytest.raises(ConfigurationError):
        Credential("a\nb", "jwt")
    with pytest.raises(ConfigurationError):
        Credential("t", "cookie")  # type: ignore[arg-type]


def test_token_session_wants_refresh_near_expiry() -> None:
    now = [1000.0]
    session = TokenSession({"access": "a", "refresh": "r", "expires_in": 100}, clock=lambda: now[0])
    assert not session.needs_refresh()
    now[0] += 85
    assert session.needs_refresh()
