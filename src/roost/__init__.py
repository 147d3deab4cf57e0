"""Roost: a self-hosted backend platform for Python, and its SDK.

from roost import Client
with Client(api_url="http://127.0.0.1:8787") as client:
    admin = client.auth.sign_in_with_password("admin", "secret-password")
    print(admin.auth.get_current_user())
"""

from roost._version import __version__
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
)

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
    # version
    "__version__",
]
