"""Passkeys through the SDK against a real server, on every SQL backend, with the software
authenticator of `tests/passkeys.py` standing in for the browser."""

from __future__ import annotations

import pytest

from roost import AsyncClient, AuthenticationError, NotFoundError
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.passkeys import Authenticator

PASSWORD = "a-long-password"
ORIGIN = "https://app.example.com"


@pytest.mark.anyio
async def test_register_sign_in_list_and_delete_a_passkey(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.settings.update(
            {"passkey_rp_id": "app.example.com", "passkey_origins": [ORIGIN]}
        )
        name = unique("pk")
        await admin.users.create_user(name, PASSWORD)
        user = await client.auth.sign_in_with_password(name, PASSWORD)
        device = Authenticator(ORIGIN)

        created = await user.auth.passkeys.registration_options()
        options = created["options"]
        assert options["rp"] == {"id": "app.example.com", "name": "default"}
        assert options["authenticatorSelection"]["userVerification"] == "required"
        passkey = await user.auth.passkeys.register(device.create(options), name="laptop")
        assert (passkey["name"], passkey["last_used_at"]) == ("laptop", None)

        request = await client.auth.passkey_sign_in_options()
        assert request["options"]["rpId"] == "app.example.com"
        assert (
            "allowCredentials" not in request["options"]
            or not request["options"]["allowCredentials"]
        )
        signed_in = await client.auth.sign_in_with_passkey(device.get(request["options"]))
        assert (await signed_in.auth.get_current_user())["username"] == name
        [listed] = await user.auth.passkeys.list()
        assert listed["id"] == passkey["id"]
        assert listed["last_used_at"] is not None

        await user.auth.passkeys.delete(passkey["id"])
        assert await user.auth.passkeys.list() == []
        with pytest.raises(NotFoundError):
            await user.auth.passkeys.delete(passkey["id"])
        request = await client.auth.passkey_sign_in_options()
        with pytest.raises(AuthenticationError) as refused:
            await client.auth.sign_in_with_passkey(device.get(request["options"]))
        assert refused.value.code == "unknown_passkey"

        audit = await admin.logs.query(category="auth.audit", search=None, limit=100)
        mine = {e["message"] for e in audit["entries"] if e["username"] == name}
        assert {"passkey_registered", "signed_in_with_passkey", "passkey_deleted"} <= mine
