"""Turning results and errors into HTTP responses, in the format the client asked for."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.requests import Request
from starlette.responses import Response

from roost.errors import RateLimitError, RoostError, ServerError, ServiceUnavailableError
from roost.wire.codec import JSON, Codec, codec_for, format_of

logger = logging.getLogger("roost.server")


def response_codec(request: Request, fallback: Codec = JSON) -> Codec:
    """The codec the client accepts (Accept header), else the one it sent."""
    fmt = format_of(request.headers.get("accept"))
    return codec_for(fmt) if fmt else fallback


def encoded(payload: Any, codec: Codec, status: int = 200) -> Response:
    return Response(codec.encode(payload), status_code=status, media_type=codec.content_type)


def as_roost_error(exc: BaseException, request_id: str) -> RoostError:
    """The RoostError to answer with; anything unexpected is logged and becomes a 500/503."""
    if isinstance(exc, RoostError):
        return exc
    if isinstance(exc, OperationalError | OSError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        logger.warning("backend unavailable (request %s): %s", request_id, exc)
        return ServiceUnavailableError(
            f"a backend is unavailable; retry later (request id {request_id})"
        )
    logger.exception("unexpected error in request %s", request_id, exc_info=exc)
    return ServerError(
        f"internal error; the server log has the details under request id {request_id}"
    )


def error_response(exc: RoostError, codec: Codec) -> Response:
    response = encoded({"error": exc.to_dict()}, codec, exc.status_code or 500)
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return response
