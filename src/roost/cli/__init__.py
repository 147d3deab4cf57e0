"""The `roost` command. It runs the server, so it needs the `server` extra: without it, the
command prints one line naming the extra to install rather than a traceback."""

from roost._extras import require_server_extra

try:
    require_server_extra()
except ModuleNotFoundError as exc:
    raise SystemExit(f"roost: {exc}") from None
