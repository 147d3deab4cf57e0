"""Storage engines behind one protocol per capability, chosen by URL scheme.

Every family has one `open_*` function that reads the scheme of its URL, and nothing else
picks a backend:

| capability  | opener              | URL (setting)                      | backends             |
|-------------|---------------------|------------------------------------|----------------------|
| SQL         | `sql.Database`      | `sqlite://`, `postgresql://`       | SQLite, PostgreSQL   |
| KV          | `open_kv_store`     | none, `redis://` (`redis_url`)     | SQL tables, Redis    |
| queues      | `open_queue_store`  | none, `redis://` (`redis_url`)     | SQL tables, Redis    |
| streams     | `open_stream_store` | none, `redis://` (`redis_url`)     | SQL tables, Redis    |
| bus         | `open_bus`          | none, `redis://` (`redis_url`)     | this process, Redis  |
| rate limits | `open_limiter`      | none, `redis://` (`redis_url`)     | this process, Redis  |
| blobs       | `open_blob_store`   | `file://`, `s3://` (`storage_url`) | a folder, S3         |
| mail        | `open_mailer`       | none, `smtp://`, `smtps://`        | an outbox, SMTP      |

No URL picks the embedded backend (zero configuration).
"""

from __future__ import annotations

from typing import Literal

from roost.errors import ConfigurationError

Messaging = Literal["embedded", "redis"]
_MESSAGING: dict[str, Messaging] = {"redis": "redis", "rediss": "redis", "unix": "redis"}


def messaging_backend(url: str | None) -> Messaging:
    """Where KV, queues, streams, the bus and rate limits live for a `redis_url`: embedded
    (SQL tables and this process) without one, else Redis."""
    if not url:
        return "embedded"
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _MESSAGING:
        raise ConfigurationError(
            f"ROOST_REDIS_URL must start with redis:// or rediss://, not {url!r}"
        )
    return _MESSAGING[scheme]
