"""`roost serve`'s access log written in batches (`server/access_lines.py`): the same lines as
uvicorn's access logger and Roost's redaction filter write, one at a time."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from uvicorn.logging import AccessFormatter

from roost.server.access_lines import FLUSH_AFTER, AccessLines
from roost.server.redaction import RedactCredentials

_FORMAT = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'
_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
_REQUESTS = [
    ("127.0.0.1:40000", "POST", "/api/v1/database/get", "1.1", 200),
    ("127.0.0.1:40001", "GET", f"/api/v1/health?access_token={_JWT}&x=1", "1.1", 404),
    ("10.0.0.1:1", "GET", "/api/v1/storage/signed/abcdef", "1.0", 403),
    ("10.0.0.1:2", "GET", "/api/v1/a\nINFO:     forged\x1b[31m", "1.1", 599),
]


def _logger(name: str, use_colors: bool) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter(_FORMAT, use_colors=use_colors))
    handler.addFilter(RedactCredentials())
    logger = logging.getLogger(name)
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    return logger, stream


def _batched(name: str, use_colors: bool) -> tuple[AccessLines, io.StringIO]:
    logger, written = _logger(name, use_colors)
    handler = logger.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    assert isinstance(handler.formatter, AccessFormatter)
    return AccessLines(logger, handler, handler.formatter), written


@pytest.mark.parametrize("colors", [False, True])
def test_the_lines_are_uvicorns_redacted_and_escaped(colors: bool) -> None:
    logger, expected = _logger(f"test.access.uvicorn.{colors}", colors)
    for request in _REQUESTS:
        logger.info('%s - "%s %s HTTP/%s" %d', *request)
    lines, written = _batched(f"test.access.batched.{colors}", colors)

    async def serve() -> str:
        for request in _REQUESTS:
            lines.info('%s - "%s %s HTTP/%s" %d', *request)
        waiting = written.getvalue()
        await asyncio.sleep(FLUSH_AFTER * 4)
        return waiting

    assert asyncio.run(serve()) == ""  # nothing is written at once
    text = written.getvalue()
    assert text == expected.getvalue()
    assert text.count("\n") == len(_REQUESTS)
    for secret in (_JWT, "abcdef", "\nINFO:     forged", "forged\x1b"):
        assert secret not in text


def test_the_level_still_decides_and_waiting_lines_are_written_on_flush() -> None:
    lines, written = _batched("test.access.level", False)
    logger = lines.logger

    async def serve() -> None:
        logger.setLevel(logging.WARNING)
        lines.info('%s - "%s %s HTTP/%s" %d', *_REQUESTS[0])
        logger.setLevel(logging.INFO)
        lines.info('%s - "%s %s HTTP/%s" %d', *_REQUESTS[1])
        lines.flush()  # what happens at exit

    asyncio.run(serve())
    assert written.getvalue().count("\n") == 1
    assert "/api/v1/health?access_token=[redacted]&x=1" in written.getvalue()
