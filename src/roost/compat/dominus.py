"""CB Dominus on Roost: change `from dominus import ...` to `from roost.compat.dominus import
...` and nothing else (`docs/coming-from-dominus.md` lists what still differs).

    from roost.compat.dominus import dominus, NotFoundError

    value = await dominus.get("DATABASE_URL")

`dominus` is async, as Dominus is; `Dominus()` is the same client for sync code. Settings:
`DOMINUS_TOKEN` (a Roost API key stands for the PSK), `CB_PROJECT_SLUG` (the app), and the
server from `ROOST_API_URL`.
"""

from roost.compat._async.dominus import AsyncDominus, dominus
from roost.compat._core.dominus import (
    DominusConnectionError,
    DominusError,
    DominusTimeoutError,
    ServiceError,
)
from roost.compat._sync.dominus import Dominus
from roost.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    SecureTableError,
    ValidationError,
)

__all__ = [
    # clients
    "dominus",
    "AsyncDominus",
    "Dominus",
    # errors
    "DominusError",
    "AuthenticationError",
    "AuthorizationError",
    "NotFoundError",
    "ValidationError",
    "ConflictError",
    "ServiceError",
    "SecureTableError",
    "DominusConnectionError",
    "DominusTimeoutError",
]
