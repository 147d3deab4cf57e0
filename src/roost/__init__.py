"""Roost: a self-hosted backend platform for Python, and its SDK.

from roost import Client
with Client(api_url="http://127.0.0.1:8787") as client:
    admin = client.auth.sign_in_with_password("admin", "secret-password")
    print(admin.auth.get_current_user())
"""

from typing import TYPE_CHECKING

from roost._lazy import lazy_names
from roost._version import __version__
from roost.errors import (
    APIError,
    AuthenticationError,
    AuthorizationError,
    CircuitOpenError,
    ConfigurationError,
    ConflictError,
    ConnectionError,
    FunctionExecutionError,
    FunctionTimeoutError,
    NetworkError,
    NotAuthenticatedError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ResponseError,
    RoostError,
    SecondFactorRequired,
    SecretNotFoundError,
    SecureTableError,
    ServerError,
    ServiceUnavailableError,
    TimeoutError,
    ValidationError,
    WebhookVerificationError,
)

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient
    from roost.client._core.config import ClientConfig
    from roost.client._core.results import (
        BackendHealth,
        BatchItemResult,
        CheckResponse,
        CheckResult,
        GetResult,
        HealthReport,
        HistoryResult,
        NackResult,
        PageAccess,
        PlanResponse,
        Policy,
        PolicyChange,
        PolicyGlobals,
        PolicyInfo,
        PolicyList,
        PolicyPrincipal,
        PolicyResource,
        PolicyTestReport,
        PublishResult,
        PubSubPublishResult,
        PutPoliciesResult,
        QueueMessage,
        QueueStats,
        ResourceEntry,
        ScanResult,
        SetResult,
        StreamEvent,
        StreamPublishResult,
        TableChange,
        VerifyResult,
    )
    from roost.client._core.rpc import PoolStats
    from roost.client._core.runtime import (
        RuntimeMode,
        detect_runtime,
        get_function_context,
        is_inside_function,
    )
    from roost.client._realtime import AsyncSubscription, Subscription
    from roost.client._sync.client import Client

# The SDK's names are imported on first use: the server and the CLI import this package (for
# `roost.errors`, say) and must not pay for the whole SDK, ~0.3 s, to start.
_LAZY = {
    "AsyncClient": "roost.client._async.client",
    "ClientConfig": "roost.client._core.config",
    "BackendHealth": "roost.client._core.results",
    "BatchItemResult": "roost.client._core.results",
    "CheckResponse": "roost.client._core.results",
    "CheckResult": "roost.client._core.results",
    "GetResult": "roost.client._core.results",
    "HealthReport": "roost.client._core.results",
    "HistoryResult": "roost.client._core.results",
    "NackResult": "roost.client._core.results",
    "PageAccess": "roost.client._core.results",
    "PlanResponse": "roost.client._core.results",
    "Policy": "roost.client._core.results",
    "PolicyChange": "roost.client._core.results",
    "PolicyGlobals": "roost.client._core.results",
    "PolicyInfo": "roost.client._core.results",
    "PolicyList": "roost.client._core.results",
    "PolicyPrincipal": "roost.client._core.results",
    "PolicyResource": "roost.client._core.results",
    "PolicyTestReport": "roost.client._core.results",
    "PublishResult": "roost.client._core.results",
    "PubSubPublishResult": "roost.client._core.results",
    "PutPoliciesResult": "roost.client._core.results",
    "QueueMessage": "roost.client._core.results",
    "QueueStats": "roost.client._core.results",
    "ResourceEntry": "roost.client._core.results",
    "ScanResult": "roost.client._core.results",
    "SetResult": "roost.client._core.results",
    "StreamEvent": "roost.client._core.results",
    "StreamPublishResult": "roost.client._core.results",
    "TableChange": "roost.client._core.results",
    "VerifyResult": "roost.client._core.results",
    "PoolStats": "roost.client._core.rpc",
    "RuntimeMode": "roost.client._core.runtime",
    "detect_runtime": "roost.client._core.runtime",
    "get_function_context": "roost.client._core.runtime",
    "is_inside_function": "roost.client._core.runtime",
    "AsyncSubscription": "roost.client._realtime",
    "Subscription": "roost.client._realtime",
    "Client": "roost.client._sync.client",
}


__getattr__ = lazy_names(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    # clients
    "AsyncClient",
    "Client",
    "ClientConfig",
    # results
    "BackendHealth",
    "BatchItemResult",
    "GetResult",
    "HealthReport",
    "HistoryResult",
    "NackResult",
    "PageAccess",
    "PoolStats",
    "PublishResult",
    "PubSubPublishResult",
    "QueueMessage",
    "QueueStats",
    "ScanResult",
    "SetResult",
    "StreamEvent",
    "StreamPublishResult",
    "TableChange",
    "VerifyResult",
    "Subscription",
    "AsyncSubscription",
    # inside a deployed function
    "RuntimeMode",
    "detect_runtime",
    "get_function_context",
    "is_inside_function",
    # policies and checks
    "CheckResponse",
    "CheckResult",
    "PlanResponse",
    "Policy",
    "PolicyChange",
    "PolicyGlobals",
    "PolicyInfo",
    "PolicyList",
    "PolicyPrincipal",
    "PolicyResource",
    "PolicyTestReport",
    "PutPoliciesResult",
    "ResourceEntry",
    # errors
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
    "RoostError",
    "SecondFactorRequired",
    "SecretNotFoundError",
    "SecureTableError",
    "ServerError",
    "ServiceUnavailableError",
    "TimeoutError",
    "ValidationError",
    "WebhookVerificationError",
    # version
    "__version__",
]
