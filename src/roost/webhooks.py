"""Receiving Roost's webhooks: check that a delivery is genuine before acting on it.

A trigger whose target is a URL POSTs each event as JSON, signed by the Standard Webhooks
scheme (https://www.standardwebhooks.com/): the headers `webhook-id` (the event's id, the same
on every retry: drop repeats by it), `webhook-timestamp` (Unix seconds of the attempt) and
`webhook-signature` (`v1,<base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}">`, several
separated by spaces while a secret is rotated). Any Standard Webhooks library verifies them;
this module does it with the standard library alone, so a receiver needs nothing but `roost`:

    from roost.webhooks import verify, WebhookVerificationError

    async def receive(request):                    # e.g. a Starlette endpoint
        body = await request.body()                # the raw bytes: never re-encoded JSON
        try:
            verify(SECRET, request.headers, body)
        except WebhookVerificationError:
            return Response(status_code=401)
        event = json.loads(body)

Secrets are `whsec_` followed by base64 (24 to 64 random bytes), as Standard Webhooks
serialises them; a secret without that prefix is used as its own UTF-8 bytes.

Hand-written rather than the `standardwebhooks` package, for about 30 lines: its `verify`
decodes the body as text and parses it as JSON, reads the wall clock only (no `now` to check
with), and lets malformed headers escape as `ValueError` or `binascii.Error` rather than one
error class; the tests check both against the reference vectors and each other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from typing import Final

from roost.errors import ConfigurationError, WebhookVerificationError

__all__ = ["WebhookVerificationError", "generate_secret", "sign", "verify"]

SECRET_PREFIX: Final = "whsec_"
_TIMESTAMP: Final = re.compile(r"[0-9]{1,15}")  # integer Unix seconds, nothing else


def generate_secret() -> str:
    """A new signing secret in the Standard Webhooks form: `whsec_` + base64 of 32 random
    bytes.

        secret = generate_secret()    # 'whsec_k3J...'
    """
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError("a whsec_ secret must be followed by base64") from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ConfigurationError("the webhook secret is empty")
    return key


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one delivery: `v1,<base64 HMAC-SHA256>` over
    `{msg_id}.{timestamp}.{body}`.

        sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", msg_id="msg_1", timestamp=1614265330,
             body=b'{"test": 1}')     # 'v1,...'
    """
    signed = b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body)
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = 300,
    now: int | None = None,
) -> None:
    """Return if `body` with `headers` is a delivery signed with `secret` within `tolerance`
    seconds of `now` (default: this machine's clock); else raise WebhookVerificationError.
    `headers` may be any mapping (a framework's request headers); names are matched without
    regard to case. Pass the body's raw bytes, as received.

        verify(secret, request.headers, await request.body())
    """
    found = {name.lower(): value for name, value in headers.items()}
    msg_id = found.get("webhook-id", "")
    stamp = found.get("webhook-timestamp", "")
    signatures = found.get("webhook-signature", "")
    for name, value in (
        ("webhook-id", msg_id),
        ("webhook-timestamp", stamp),
        ("webhook-signature", signatures),
    ):
        if not value:
            raise WebhookVerificationError(f"the {name} header is missing")
    if not _TIMESTAMP.fullmatch(stamp):
        raise WebhookVerificationError("the webhook-timestamp header is not Unix seconds")
    timestamp = int(stamp)
    current = int(time.time()) if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("the delivery is too old (webhook-timestamp)")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("the delivery is from the future (webhook-timestamp)")
    expected = sign(secret, msg_id=msg_id, timestamp=timestamp, body=body).encode("ascii")
    matched = False
    for candidate in signatures.split(" "):
        # every entry is compared (no early exit), each in constant time
        matched |= hmac.compare_digest(candidate.encode("utf-8", "replace"), expected)
    if not matched:
        raise WebhookVerificationError("no signature in webhook-signature matches the secret")
