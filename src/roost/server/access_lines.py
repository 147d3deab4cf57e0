"""The access log of `roost serve`: uvicorn's line per HTTP request, written in batches.

uvicorn logs each request through the `uvicorn.access` logger: a log record, two passes of the
redaction filter, a formatter that copies the record, then a write and a flush of its own. For
a server that reads a record in ~360 µs of CPU that was ~130 µs more on every request
(`roost serve --log-level info` against the same server with uvicorn's access log off).

`AccessLines` stands in for that logger in Roost's HTTP protocol (`serving.BoundedHttpTools`)
when the logger is configured as Roost configures it (`redaction.log_config`): it makes the
same line, each argument redacted and escaped as `RedactCredentials` would, and writes the lines
of many requests at once, at most `FLUSH_AFTER` seconds after the first of them (and at exit).
The level of the logger still decides whether a line is written. A logger set up any other way
(a host that configured logging itself) is used as it is.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from typing import Any, TextIO

from uvicorn.logging import AccessFormatter

from roost.server.redaction import escape_controls, redact

FLUSH_AFTER = 0.05  # seconds a line may wait for others to be written with
MAX_WAITING = 256  # lines: more are written at once

_ACCESS_LOGGER = "uvicorn.access"
# The one for the logger's handler now, shared by every connection and server of the process.
# Each server's logging setup installs a handler of its own: the lines of the one before are
# written when it is replaced.
_current: AccessLines | None = None
_current_lock = threading.Lock()


def access_logger() -> logging.Logger:
    """What an HTTP connection logs its requests to: `AccessLines` when the `uvicorn.access`
    logger writes through Roost's one stream handler, else the logger itself."""
    logger = logging.getLogger(_ACCESS_LOGGER)
    handlers = logger.handlers
    if logger.propagate or len(handlers) != 1:
        return logger
    handler = handlers[0]
    formatter = handler.formatter
    if type(handler) is not logging.StreamHandler or type(formatter) is not AccessFormatter:
        return logger
    global _current
    with _current_lock:
        if _current is None or _current.handler is not handler:
            if _current is not None:
                _current.flush()
            _current = AccessLines(logger, handler, formatter)
        return _current


@atexit.register
def _flush_at_exit() -> None:
    if _current is not None:
        _current.flush()


class AccessLines(logging.Logger):
    """The `uvicorn.access` logger's `info`, as uvicorn's HTTP protocol calls it, writing the
    lines its handler would write, in batches. (A `Logger` only to stand where one is typed.)"""

    def __init__(
        self,
        logger: logging.Logger,
        handler: logging.StreamHandler[TextIO],
        formatter: AccessFormatter,
    ) -> None:
        super().__init__(_ACCESS_LOGGER)
        self.logger = logger
        self.handler = handler
        self.formatter = formatter
        level = "INFO"
        if formatter.use_colors:
            level = formatter.color_level_name(level, logging.INFO)
        self.prefix = level + ":    "
        self.statuses: dict[int, str] = {}  # status code -> "200 OK", coloured as configured
        self.waiting: list[str] = []
        self.flush_due = False
        self.lock = threading.Lock()

    def info(self, msg: object, *args: Any, **_: Any) -> None:
        """One request's line: `'%s - "%s %s HTTP/%s" %d'` with the client address, method,
        path and query, HTTP version and status code (what uvicorn passes)."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        client, method, path, version, status = args
        request = f"{_shown(method)} {_shown(path)} HTTP/{_shown(version)}"
        if self.formatter.use_colors:
            request = f"\x1b[1m{request}\x1b[0m"
        line = f'{self.prefix} {_shown(client)} - "{request}" {self._status(status)}\n'
        with self.lock:
            self.waiting.append(line)
            if len(self.waiting) >= MAX_WAITING:
                self._write()
            elif not self.flush_due:
                self.flush_due = True
                asyncio.get_running_loop().call_later(FLUSH_AFTER, self.flush)

    def flush(self) -> None:
        """Write the lines waiting, if any."""
        with self.lock:
            self._write()

    def _write(self) -> None:
        self.flush_due = False
        if not self.waiting:
            return
        text, self.waiting = "".join(self.waiting), []
        handler = self.handler
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        except Exception:  # a closed or broken stream: reported as logging reports it
            handler.handleError(logging.makeLogRecord({"msg": text}))
        finally:
            handler.release()

    def _status(self, code: int) -> str:
        shown = self.statuses.get(code)
        if shown is None:
            shown = self.statuses[code] = self.formatter.get_status_code(code)
        return shown


def _shown(value: object) -> str:
    """An argument as `RedactCredentials` leaves it: credentials redacted, controls escaped."""
    return escape_controls(redact(value)) if isinstance(value, str) else str(value)
