"""`load_settings`: what the variables' text becomes, and how a bad one is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.errors import ConfigurationError
from roost.settings import is_given, load_settings


@pytest.fixture(autouse=True)
def no_roost_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    monkeypatch.chdir(tmp_path)  # no `.env` but the test's own
    for name in [k for k in os.environ if k.upper().startswith("ROOST_")]:
        monkeypatch.delenv(name)


def test_variables_convert_to_each_fields_type(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, text in {
        "ROOST_ALLOW_SIGNUP": "off",
        "ROOST_ACCESS_LOG": "Yes",
        "ROOST_FUNCTIONS_POOL_SIZE": "7",
        "ROOST_FUNCTIONS_DEFAULT_TIMEOUT": " 12.5 ",
        "ROOST_AUTH_CACHE_SECONDS": "0.5",
        "ROOST_POLICY_GLOBALS": '{"region": "eu"}',
        "ROOST_AUTH_REDIRECT_URLS": '["https://app.example"]',
        "ROOST_FUNCTIONS_RUN_DIR": "/srv/run",
        "ROOST_FUNCTIONS_ISOLATION": "fallback",
        "roost_mail_from": "Ops <ops@example.com>",  # names are not case-sensitive
    }.items():
        monkeypatch.setenv(name, text)
    settings = load_settings(functions_pool_size=3)  # an argument wins over the variable
    assert settings.allow_signup is False
    assert settings.access_log is True
    assert (settings.functions_pool_size, settings.auth_cache_seconds) == (3, 0.5)
    assert settings.functions_default_timeout == 12.5
    assert settings.policy_globals == {"region": "eu"}
    assert settings.auth_redirect_urls == ["https://app.example"]
    assert settings.functions_run_dir == Path("/srv/run")
    assert settings.functions_isolation == "fallback"
    assert settings.mail_from == "Ops <ops@example.com>"
    assert load_settings(data_dir="/srv/data").data_dir == Path("/srv/data")


def test_the_environment_wins_over_dotenv(monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("ROOST_ADMIN_USERNAME=from-file\nROOST_ADMIN_EMAIL=a@example.com\n")
    monkeypatch.setenv("ROOST_ADMIN_USERNAME", "from-environment")
    settings = load_settings()
    assert (settings.admin_username, settings.admin_email) == ("from-environment", "a@example.com")
    assert is_given("admin_email")
    assert not is_given("public_url")


def test_every_bad_value_is_named_and_none_is_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOST_ADMIN_PASSWORD", "s3cr3t!")  # shorter than 8
    monkeypatch.setenv("ROOST_POLICY_GLOBALS", "{not json")
    monkeypatch.setenv("ROOST_ALLOW_SIGNUP", "perhaps")
    monkeypatch.setenv("ROOST_FUNCTIONS_POOL_SIZE", "4096")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = caught.value.message
    for variable in ("ADMIN_PASSWORD", "POLICY_GLOBALS", "ALLOW_SIGNUP", "FUNCTIONS_POOL_SIZE"):
        assert f"ROOST_{variable}:" in message
    assert "must be JSON" in message
    assert "<= 1024" in message
    assert "s3cr3t" not in message
    assert "perhaps" not in message


def test_a_misspelt_argument_is_refused() -> None:
    with pytest.raises(TypeError, match="no such setting: fuctions_pool_size"):
        load_settings(fuctions_pool_size=2)
