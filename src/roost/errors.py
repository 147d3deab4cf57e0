"""The one error hierarchy of Roost, shared by the server and the SDK.

```
RoostError
├── ConfigurationError
├── APIError                                (the server answered with an error)
│   ├── ValidationError              400
│   │   └── PayloadTooLargeError     413
│   ├── AuthenticationError          401
│   │   ├── NotAuthenticatedError    401
│   │   └── SecondFactorRequired     401  (challenge: sign in with auth.verify_totp)
│   ├── AuthorizationError           403
│   │   └── SecureTableError         403
│   ├── NotFoundError                404
│   │   └── SecretNotFoundError
│   ├── ConflictError                409
│   ├── FunctionExecutionError       422  (the function failed; `traceback`)
│   │   └── FunctionTimeoutError     422  (it ran past its timeout)
│   ├── RateLimitError               429  (retry_after)
│   ├── ServerError                  500
│   └── ServiceUnavailableError      503  (retry_after)
├── WebhookVerificationError                (roost.webhooks.verify: not a genuine delivery)
├── NetworkError                            (no answer from the server)
│   ├── TimeoutError                        (also a builtin TimeoutError)
│   ├── ConnectionError                     (also a builtin ConnectionError)
│   └── CircuitOpenError                    (the SDK stopped trying for a while)
└── ResponseError                           (the answer could not be read)
```

On the wire an error is `{"error": {"code", "message", "details"}}` with the HTTP status of its
class. `code` names the exact reason (`invalid_credentials`, `token_expired`, ...); the SDK
maps it back to the class through `ERROR_CODES`, and falls back on the status.

A deployed function that raises or runs out of time is an APIError too (the server answered),
with a 4xx status of its own: the SDK must not retry it (the function ran, and its side
effects happened), and an Idempotency-Key replays the failure rather than running it again.

Every class here is raised by the native API somewhere. A missing KV key, an empty queue or
room and an RPC failure are not errors of their own natively (`kv.get` answers `found`, queues
and rooms exist once used, an RPC call raises the class of its failure): the seeds' names for
them belong to the compatibility entry points (docs/architecture.md, "Errors").
"""

from __future__ import annotations

import builtins
from typing import Any, ClassVar

__all__ = [
    "ERROR_CODES",
    "APIError",
    "AuthenticationError",
    "AuthorizationError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConflictError",
    "ConnectionError",
    "FunctionExecutionError",
    "FunctionTimeoutError",
    "NetworkError",
    "NotAuthenticatedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitError",
    "ResponseError",
    "SecondFactorRequired",
    "SecretNotFoundError",
    "RoostError",
    "SecureTableError",
    "ServerError",
    "ServiceUnavailableError",
    "TimeoutError",
    "ValidationError",
    "WebhookVerificationError",
    "error_from_payload",
]


class RoostError(Exception):
    """Root of every error Roost raises, on the server and in the SDK."""

    default_code: ClassVar[str] = "error"
    default_status: ClassVar[int | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status_code = status_code if status_code is not None else self.default_status
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The error as the server sends it: `{"code", "message", "details"}`."""
        return {"code": self.code, "message": self.message, "details": self.details}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"


class ConfigurationError(RoostError):
    """A setting is missing or invalid (client arguments, environment, server settings)."""

    default_code = "configuration_error"


class APIError(RoostError):
    """The server answered with an error status."""

    default_code = "api_error"
    default_status = 400


class ValidationError(APIError):
    """The request is malformed or a field holds a value the operation does not accept."""

    default_code = "validation_error"
    default_status = 400


class PayloadTooLargeError(ValidationError):
    """The request body is larger than the server accepts."""

    default_code = "payload_too_large"
    default_status = 413


class AuthenticationError(APIError):
    """The credential is missing, wrong, expired, revoked or for another tenant."""

    default_code = "authentication_failed"
    default_status = 401


class NotAuthenticatedError(AuthenticationError):
    """The operation needs a credential and the request carried none."""

    default_code = "not_authenticated"
    default_status = 401


class SecondFactorRequired(AuthenticationError):
    """The first factor (password, magic link, mailed code) was right, and the user must also
    give a TOTP code: `client.auth.verify_totp(error.challenge, code)` signs in.
    `second_factor` is "totp", or "totp_enrolment" when the tenant requires two-factor sign-in
    for one of the user's roles and the user has not enrolled yet (`auth.totp_enrol` with the
    challenge first). An error, not an answer, so that a caller that knows nothing of two
    factors fails closed."""

    default_code = "second_factor_required"
    default_status = 401

    @property
    def challenge(self) -> str:
        return str(self.details.get("challenge", ""))

    @property
    def second_factor(self) -> str:
        return str(self.details.get("second_factor", "totp"))

    @property
    def expires_in(self) -> int:
        return int(self.details.get("expires_in", 0))


class AuthorizationError(APIError):
    """The caller is known but lacks the scope or permission the operation needs."""

    default_code = "permission_denied"
    default_status = 403


class SecureTableError(AuthorizationError):
    """A secure table was accessed without a `reason` and an `actor`."""

    default_code = "secure_table"
    default_status = 403


class NotFoundError(APIError):
    """The thing named does not exist (or is not visible to the caller)."""

    default_code = "not_found"
    default_status = 404


class SecretNotFoundError(NotFoundError):
    """No such secret (for the app asked, nor tenant-wide), or no such version of it."""

    default_code = "secret_not_found"


class ConflictError(APIError):
    """The change conflicts with the current state (duplicate name, constraint, race)."""

    default_code = "conflict"
    default_status = 409


class _RetryLater(APIError):
    """An error that says, in `retry_after`, how many seconds to wait before trying again
    (sent as the Retry-After header, and read back from it by the SDK)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        details = dict(details or {})
        if retry_after is None and isinstance(details.get("retry_after"), int | float):
            retry_after = float(details["retry_after"])
        if retry_after is not None:
            details["retry_after"] = retry_after
        super().__init__(message, code=code, status_code=status_code, details=details)
        self.retry_after = retry_after


class RateLimitError(_RetryLater):
    """Too many requests; `retry_after` says how many seconds to wait."""

    default_code = "rate_limited"
    default_status = 429


class ServerError(APIError):
    """The server failed; the request may be retried."""

    default_code = "internal_error"
    default_status = 500


class ServiceUnavailableError(_RetryLater):
    """The server or one of its backends is not available right now; `retry_after` says when
    to try again, if the server said."""

    default_code = "service_unavailable"
    default_status = 503


class WebhookVerificationError(RoostError):
    """A webhook delivery failed `roost.webhooks.verify`: a signature header is missing or
    malformed, its timestamp is outside the tolerance, or no signature matches the secret.
    Answer such a request with 400 or 401 and do not act on its body."""

    default_code = "webhook_verification_failed"


class NetworkError(RoostError):
    """The server could not be reached or did not answer in time."""

    default_code = "network_error"


class TimeoutError(NetworkError, builtins.TimeoutError):
    """The request did not complete within the client's timeout."""

    default_code = "timeout"


class ConnectionError(NetworkError, builtins.ConnectionError):
    """The connection to the server could not be made or was lost."""

    default_code = "connection_error"


class CircuitOpenError(NetworkError):
    """The SDK saw repeated failures and stops calling the server for a short while."""

    default_code = "circuit_open"


class FunctionExecutionError(APIError):
    """A deployed function raised (or was stopped: out of memory, killed, cancelled).

    `traceback` is the remote traceback, `invocation_id` the id `functions.get_result`
    answers for, and `status` the invocation's final status ("FAILURE" or "TIMEOUT").
    """

    default_code = "function_failed"
    default_status = 422

    @property
    def traceback(self) -> str:
        return str(self.details.get("traceback") or "")

    @property
    def invocation_id(self) -> str | None:
        found = self.details.get("invocation_id")
        return str(found) if found is not None else None

    @property
    def status(self) -> str:
        return str(self.details.get("status") or "FAILURE")


class FunctionTimeoutError(FunctionExecutionError):
    """A deployed function ran past its timeout and was stopped."""

    default_code = "function_timeout"


class ResponseError(RoostError):
    """The server's answer could not be decoded."""

    default_code = "response_error"


def _codes(*classes: type[APIError], extra: dict[str, type[APIError]]) -> dict[str, type[APIError]]:
    table = {cls.default_code: cls for cls in classes}
    table.update(extra)
    return table


#: Every error code the server sends, mapped to the class the SDK raises for it.
ERROR_CODES: dict[str, type[APIError]] = _codes(
    ValidationError,
    PayloadTooLargeError,
    AuthenticationError,
    NotAuthenticatedError,
    SecondFactorRequired,
    AuthorizationError,
    SecureTableError,
    NotFoundError,
    SecretNotFoundError,
    ConflictError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    FunctionExecutionError,
    FunctionTimeoutError,
    extra={
        "unsupported_media_type": ValidationError,
        "method_not_allowed": ValidationError,
        "invalid_credentials": AuthenticationError,
        "token_expired": AuthenticationError,
        "token_revoked": AuthenticationError,
        "wrong_tenant": AuthenticationError,
        "missing_scope": AuthorizationError,
        "idempotency_in_progress": ConflictError,
        "unique_violation": ConflictError,
        "foreign_key_violation": ConflictError,
        "not_null_violation": ValidationError,
        "check_violation": ConflictError,
        "range_not_satisfiable": ValidationError,
        "headers_too_large": ValidationError,
        "not_an_integer": ValidationError,
        "wrong_type": ValidationError,
        "lock_held": ConflictError,
        "too_many_in_flight": RateLimitError,
        "too_many_subscriptions": RateLimitError,
        "too_many_connections": RateLimitError,
        "tags_not_present": ValidationError,
        "destination_refused": ValidationError,
        "host_unresolved": ValidationError,
        "secret_unreadable": ServerError,
        "wrong_master_key": ServerError,
    },
)

_BY_STATUS: dict[int, type[APIError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: AuthorizationError,
    404: NotFoundError,
    405: ValidationError,
    408: ServerError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: ValidationError,
    422: ValidationError,
    431: ValidationError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_from_payload(status: int, payload: Any, retry_after: float | None = None) -> APIError:
    """Build the error the server described in `payload` (its `{"error": {...}}` body)."""
    body = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(body, dict):
        body = {"message": f"the server answered {status} without an error body"}
    code = str(body.get("code") or "")
    message = str(body.get("message") or f"HTTP {status}")
    details = body.get("details") if isinstance(body.get("details"), dict) else {}
    cls = (
        ERROR_CODES.get(code)
        or _BY_STATUS.get(status)
        or (ServerError if status >= 500 else APIError)
    )
    if issubclass(cls, _RetryLater):
        return cls(
            message, retry_after=retry_after, code=code or None, status_code=status, details=details
        )
    return cls(message, code=code or None, status_code=status, details=details)
