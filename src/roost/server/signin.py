"""The door of sign-ins with outside providers: the callback a provider sends the browser to.

It only speaks HTTP; the sign-in is `services/auth/oidc.py`. The tenant is in the path (the
callback URL registered with each provider names it), never taken from a header the browser
could not have been sent with.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from roost.errors import ValidationError
from roost.server.dispatch import Dispatcher, error_response, headers_of
from roost.server.responses import request_id, response_codec
from roost.services.auth.oidc import finish
from roost.services.tenants import ensure_exists
from roost.wire.common import TENANT_NAME

_TENANT = re.compile(TENANT_NAME)
_MAX_PARAM = 4096


def signin_routes(dispatcher: Dispatcher) -> list[Route]:
    async def callback(request: Request) -> Response:
        headers = headers_of(request.scope)
        rid = request_id(headers.get("x-request-id"))
        ctx = None
        try:
            tenant = request.path_params["tenant"]
            if not _TENANT.fullmatch(tenant):
                raise ValidationError(
                    "no such tenant in this callback URL", details={"field": "tenant"}
                )
            query = request.query_params
            for name in ("state", "code", "error"):
                value = query.get(name, "")
                if len(value) > _MAX_PARAM or "\0" in value:
                    raise ValidationError(
                        f"{name} is not one a provider sends", details={"field": name}
                    )
            if not query.get("state"):
                raise ValidationError("the provider sent no state", details={"field": "state"})
            await ensure_exists(dispatcher.platform, tenant)  # NotFoundError, not a 500
            ctx = await dispatcher.context_from_scope(request.scope, headers, rid, tenant=tenant)
            location = await finish(ctx, query["state"], query.get("code"), query.get("error"))
        except Exception as exc:
            codec = response_codec(headers.get("accept"))
            response = error_response(exc, rid, codec).as_response()
        else:
            # the one-time code must not leak on from the app's page through Referer
            response = RedirectResponse(
                location,
                status_code=303,
                headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
            )
        dispatcher.meter(ctx)
        response.headers["X-Request-Id"] = rid
        return response

    return [Route("/api/v1/auth/providers/{tenant}/callback", callback, methods=["GET"])]
