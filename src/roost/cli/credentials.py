"""Where `roost login` keeps its credentials: one API key per server URL, in a JSON file of
the user's config folder (platformdirs), readable by the user only (0600, written through a
temporary file and renamed, so a crash never leaves half a file)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from platformdirs import user_config_path

from roost.errors import ConfigurationError


def credentials_file() -> Path:
    """`ROOST_CREDENTIALS_FILE`, else `credentials.json` in the user's Roost config folder."""
    given = os.environ.get("ROOST_CREDENTIALS_FILE")
    return Path(given) if given else user_config_path("roost") / "credentials.json"


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(f"{path} is readable by others; run: chmod 600 {path}")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise ConfigurationError(f"{path} is not a credentials file; delete it") from None
    return data if isinstance(data, dict) else {}


def stored(url: str) -> dict[str, Any] | None:
    """What `roost login` stored for the server at `url` (`{"api_key", "key_id", "tenant",
    "username"}`), or None."""
    entry = _read(credentials_file()).get(url.rstrip("/"))
    return entry if isinstance(entry, dict) and isinstance(entry.get("api_key"), str) else None


def store(url: str, entry: dict[str, Any]) -> Path:
    """Keep `entry` for the server at `url` (replacing what was there); returns the file."""
    path = credentials_file()
    data = _read(path)
    data[url.rstrip("/")] = entry
    _write(path, data)
    return path


def forget(url: str) -> dict[str, Any] | None:
    """Drop what was stored for `url`; returns it (None if nothing was)."""
    path = credentials_file()
    data = _read(path)
    entry = data.pop(url.rstrip("/"), None)
    if entry is not None:
        _write(path, data)
    return entry if isinstance(entry, dict) else None


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(temporary, 0o600)  # O_CREAT's mode does not apply to a file left by a crash
    temporary.replace(path)
