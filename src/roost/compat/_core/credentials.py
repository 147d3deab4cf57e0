"""What kind of Roost credential a seed's token is, from its shape."""

from __future__ import annotations

from roost.client._core.config import TokenType


def credential_kind(token: str) -> TokenType:
    """How to send `token`: a Roost session token (`rst_...`), an access JWT (three dotted
    parts), else an API key (`rak_...`), which is what the seeds' service tokens (a Dominus
    PSK, a Synap API key) become on Roost."""
    if token.startswith("rst_"):
        return "session_token"
    if token.count(".") == 2:
        return "jwt"
    return "api_key"
