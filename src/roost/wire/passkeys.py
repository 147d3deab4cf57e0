"""Types of passkey (WebAuthn) registration and sign-in.

The options and credentials are WebAuthn's own JSON (`PublicKeyCredentialCreationOptions`
and `PublicKeyCredentialRequestOptions` for the browser's `navigator.credentials.create` and
`.get`, and what their `toJSON()` answers), passed through as objects: the `webauthn` library
parses and checks them, and a credential it cannot read is a 400 naming `credential`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from msgspec import Meta, Struct

PasskeyName = Annotated[str, Meta(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]
PasskeyId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class PasskeyOptions(Struct):
    """What to hand to `navigator.credentials.create` (registration) or `.get` (sign-in) as
    `publicKey`, byte fields in base64url; its challenge works once, for `expires_in` s."""

    options: dict[str, Any]
    expires_in: int


class RegisterPasskeyRequest(Struct, forbid_unknown_fields=True):
    credential: dict[str, Any]  # the new credential's JSON (`PublicKeyCredential.toJSON()`)
    name: PasskeyName = ""


class PasskeySignIn(Struct, forbid_unknown_fields=True):
    credential: dict[str, Any]  # the assertion's JSON (`PublicKeyCredential.toJSON()`)
    session_token: bool = False


class PasskeyRef(Struct, forbid_unknown_fields=True):
    id: PasskeyId


class Passkey(Struct):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    backed_up: bool  # synced by its provider (a multi-device passkey)
