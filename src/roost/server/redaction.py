"""Credentials never reach a log line: the filter every server log passes through.

uvicorn's access log prints each request line with its query string, its WebSocket log the
path with `?access_token=` or `?api_key=` (how browsers authenticate a WebSocket), and a
signed storage link carries its token in the path. `RedactCredentials` rewrites each record
before any handler formats it; `LOG_CONFIG` (uvicorn's own, plus the filter on every logger and
handler, and Roost's loggers on the same handlers) is what every server mode runs with.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

REDACTED = "[redacted]"

_SECRET_NAME = (
    r"[\w.-]*?(?:token|key|secret|passw|pwd|auth|credential|session|signature|sig)[\w.-]*"
)
_NOT_DONE = r"(?!\[redacted\])"  # so that redacting twice changes nothing
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # query parameters named like a secret: ?api_key=..., &access_token=..., &X-Amz-Signature=
    (re.compile(rf"(?i)([?&;]{_SECRET_NAME}=){_NOT_DONE}[^&;#\s\"']+"), rf"\g<1>{REDACTED}"),
    # signed storage links: the token is the path segment
    (re.compile(rf"(/storage/signed/){_NOT_DONE}[^/?#\s\"']+"), rf"\g<1>{REDACTED}"),
    # header values (`Authorization: Bearer x`, trace dumps of `(b'cookie', b'x')`)
    (
        re.compile(
            r"(?i)((?:proxy-)?authorization|cookie|set-cookie|x-session-token|x-api-key)"
            rf"((?>['\"]?\s*[:,=]\s*b?['\"]?)){_NOT_DONE}[^'\"\r\n]+"
        ),
        rf"\g<1>\g<2>{REDACTED}",
    ),
    (re.compile(rf"(?i)\b(bearer|api-key|basic)\s+{_NOT_DONE}[\w.~+/=-]+"), rf"\g<1> {REDACTED}"),
    # Roost's opaque tokens anywhere (API keys, session and refresh tokens, mail links): the
    # display prefix stays, it names the row and opens nothing
    (re.compile(r"\b(r(?:ak|st|rt|ev|pr)_[^_\s]+_[0-9a-f]{24}_)[\w-]{16,}"), rf"\g<1>{REDACTED}"),
    # JWTs anywhere (access tokens)
    (re.compile(r"\beyJ[\w-]{6,}\.[\w-]{6,}\.[\w-]+"), REDACTED),
]


def redact(text: str) -> str:
    """`text` with every credential it shows replaced by `[redacted]`."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactCredentials(logging.Filter):
    """Rewrites a record's message and arguments so that no credential is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and all(
            isinstance(arg, str | int | float | None) for arg in record.args
        ):
            # keep the arguments apart: uvicorn's access formatter reads them one by one
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
            record.msg = redact(str(record.msg))
        else:  # dicts, scopes, bytes (uvicorn's trace log): redact the whole message
            record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging setup with `RedactCredentials` everywhere, and Roost's loggers on it."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": f"{__name__}.RedactCredentials"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    loggers = config["loggers"]
    # Roost's own loggers print through the same (redacting) handler; they still propagate,
    # and the root logger keeps whatever handlers the host process gave it
    loggers["roost"] = {"handlers": ["default"]}
    for logger in loggers.values():
        logger["filters"] = ["redact"]
    return config
