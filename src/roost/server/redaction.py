"""Credentials never reach a log line: the filter every server log passes through.

uvicorn's access log prints each request line with its query string, its WebSocket log the
path with `?access_token=` or `?api_key=` (how browsers authenticate a WebSocket), and a
signed storage link carries its token in the path. Names and values count as the server
reads them: percent-decoded (`?access%5Ftoken=eyJ...%2E...` is an access token too).
`RedactCredentials` rewrites each record before any handler formats it, and escapes control
characters (CR, LF, ESC, ...) in the record's arguments, so that no client string forges a log
line; `LOG_CONFIG` (uvicorn's own, plus the filter on every logger and handler, and Roost's
loggers on the same handlers) is what every server mode runs with.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import unquote_plus

from uvicorn.config import LOGGING_CONFIG

REDACTED = "[redacted]"

# `code` and `state`: a provider sign-in's callback (`server/signin.py`) and one-time code
_SECRET_WORD = r"(?:token|key|secret|passw|pwd|auth|credential|session|signature|sig|code|state)"
_SECRET_NAME = rf"[\w.-]*?{_SECRET_WORD}[\w.-]*"
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


# a query string as uvicorn logs it (raw, still percent-encoded), and one name=value pair of it
_QUERY = re.compile(r"\?([^\s\"'#]+)")
_PAIR = re.compile(r"([^&;=]*)(=?)([^&;]*)")
_IS_SECRET_NAME = re.compile(rf"(?i){_SECRET_WORD}")
# a run between URL delimiters that holds a percent-escape: decoded, it may show a token
_ENCODED = re.compile(r"[^\s\"'/?&=;#,]*%[0-9A-Fa-f]{2}[^\s\"'/?&=;#,]*")
# control characters (C0, DEL, C1) and the Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Something each of the patterns above needs to match: a text with none of these is shown as it
# is, after one search instead of a dozen substitutions (most access lines: a plain path).
_MAY_SHOW = re.compile(
    r"(?i)[?&;]|%[0-9a-f]{2}|/storage/signed/|authorization|cookie|x-session-token|x-api-key"
    r"|bearer|api-key|basic|r(?:ak|st|rt|ev|pr)_|eyj"
)


def redact(text: str) -> str:
    """`text` with every credential it shows replaced by `[redacted]`, percent-encoded or not."""
    return redact_fully(text) if _MAY_SHOW.search(text) else text


def redact_fully(text: str) -> str:
    """`redact` without its shortcut for texts that cannot show a credential."""
    text = _QUERY.sub(_redact_query, text)
    text = _ENCODED.sub(_redact_encoded, text)
    return _redact_plain(text)


def escape_controls(text: str) -> str:
    """`text` with each control character written as its Python escape (`\\n`, `\\x1b`)."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


def _redact_plain(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_query(match: re.Match[str]) -> str:
    """A query string with the value of each pair whose name, decoded as Starlette decodes it,
    is secret-like, replaced."""
    return "?" + _PAIR.sub(_redact_pair, match.group(1))


def _redact_pair(pair: re.Match[str]) -> str:
    name, equals, value = pair.groups()
    if equals and value != REDACTED and _IS_SECRET_NAME.search(unquote_plus(name)):
        value = REDACTED
    return f"{name}{equals}{value}"


def _redact_encoded(match: re.Match[str]) -> str:
    encoded = match.group()
    decoded = unquote_plus(encoded)
    return REDACTED if _redact_plain(decoded) != decoded else encoded


class RedactCredentials(logging.Filter):
    """Rewrites a record's message and arguments so that no credential is logged, and no
    argument (what a client may have chosen) starts a line or drives the terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        # The filter sits on the loggers and on the handlers (a record that propagates to a
        # host's handlers is redacted too), so most records pass it twice: the second pass,
        # a dozen regular expressions over every access line, is skipped.
        if getattr(record, "roost_redacted", False):
            return True
        record.roost_redacted = True
        if isinstance(record.args, tuple) and all(
            isinstance(arg, str | int | float | None) for arg in record.args
        ):
            # keep the arguments apart: uvicorn's access formatter reads them one by one
            record.args = tuple(
                escape_controls(redact(arg)) if isinstance(arg, str) else arg for arg in record.args
            )
            record.msg = redact(str(record.msg))
        elif record.args:  # dicts, scopes, frames, bytes: each argument as the message shows it
            record.msg, record.args = _format(redact(str(record.msg)), record.args), None
        else:
            record.msg = redact(str(record.msg))
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class _Shown:
    """An argument as `%s` or `%r` shows it, redacted and with its control characters escaped."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return escape_controls(redact(str(self.value)))

    def __repr__(self) -> str:
        return escape_controls(redact(repr(self.value)))


def _shown(args: Any) -> Any:
    """`%`'s right operand with each argument wrapped in `_Shown`; numbers stay (for `%d`)."""

    def show(value: object) -> object:
        return value if isinstance(value, int | float) else _Shown(value)

    if isinstance(args, tuple):
        return tuple(show(arg) for arg in args)
    return {key: show(value) for key, value in args.items()}


def _format(message: str, args: Any) -> str:
    try:
        shown: str = message % _shown(args)
    except (TypeError, ValueError, KeyError):  # a mismatched call must not raise in the caller
        return f"{message} {_Shown(args)!r}"
    return shown


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
    # ROOST_ACCESS_LOG: one bare JSON line per request on stdout (server/metrics.py); the level
    # lets them through whatever the root logger's is, and they still propagate
    config["formatters"]["json_line"] = {"format": "%(message)s"}
    config["handlers"]["access_json"] = {
        "class": "logging.StreamHandler",
        "formatter": "json_line",
        "stream": "ext://sys.stdout",
        "filters": ["redact"],
    }
    loggers["roost.access"] = {"handlers": ["access_json"], "level": "INFO", "propagate": False}
    for logger in loggers.values():
        logger["filters"] = ["redact"]
    return config
