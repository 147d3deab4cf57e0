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
    BatchItemResult,
    GetResult,
    HistoryResult,
    NackResult,
    PublishResult,
    PubSubPublishResult,
    QueueMessage,
    QueueStats,
    ScanResult,
    SetResult,
    StreamEvent,
    StreamPublishResult,
    TableChange,
)
from roost.client._core.rpc import PoolStats
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
    KeyNotFoundError,
    NetworkError,
    NotAuthenticatedError,
    NotFoundError,
    PayloadTooLargeError,
    QueueNotFoundError,
    RateLimitError,
    ResponseError,
    RoomNotFoundError,
    RoostError,
    RpcError,
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
    "BatchItemResult",
    "GetResult",
    "HistoryResult",
    "NackResult",
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
    "Subscription",
    "AsyncSubscription",
    # errors
    "APIError",
    "AuthenticationError",
    "AuthorizationError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConflictError",
    "ConnectionError",
    "FunctionExecutionError",
    "KeyNotFoundError",
    "NetworkError",
    "NotAuthenticatedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "QueueNotFoundError",
    "RateLimitError",
    "ResponseError",
    "RoomNotFoundError",
    "RoostError",
    "SecretNotFoundError",
    "RpcError",
    "SecureTableError",
    "ServerError",
    "ServiceUnavailableError",
    "TimeoutError",
    "ValidationError",
    # version
    "__version__",
]
