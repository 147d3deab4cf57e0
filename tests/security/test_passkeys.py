"""Refusals of passkey (WebAuthn) registration and sign-in, one test each, over HTTP on SQLite
and PostgreSQL, with the software authenticator of `tests/passkeys.py`: a wrong origin, a
wrong or replayed challenge, a counter going back, another tenant's or another user's
credential, no user verification, a malformed credential, an API key."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from roost import (
    AsyncClient,
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    ValidationError,
)
from roost.services.auth.passkeys import OPTIONS_PER_CLIENT
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.factors import code_at, next_step
from tests.passkeys import Authenticator, Key, b64url

pytestmark = pytest.mark.anyio

PASSWORD = "a-long-password"
RP_ID = "app.example.com"
ORIGIN = "https://app.example.com"
SETTINGS = {"passkey_rp_id": RP_ID, "passkey_origins": [ORIGIN]}


async def _admin(client: AsyncClient) -> AsyncClient:
    admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
    await admin.settings.update(SETTINGS)
    return admin


async def _with_passkey(client: AsyncClient) -> tuple[AsyncClient, str, Authenticator]:
    """A new user (signed in) with a passkey on a device of their own: client, name, device."""
    admin = await _admin(client)
    name = unique("pk")
    await admin.users.create_user(name, PASSWORD)
    user = await client.auth.sign_in_with_password(name, PASSWORD)
    device = Authenticator(ORIGIN)
    options = (await user.auth.passkeys.registration_options())["options"]
    await user.auth.passkeys.register(device.create(options))
    return user, name, device


async def _sign_in_options(client: AsyncClient) -> dict[str, Any]:
    options: dict[str, Any] = (await client.auth.passkey_sign_in_options())["options"]
    return options


async def _refused(client: AsyncClient, credential: dict[str, Any], code: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await client.auth.sign_in_with_passkey(credential)
    assert caught.value.code == code, caught.value
    assert caught.value.details["field"] == "credential"


async def test_an_answer_from_another_origin_is_refused(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        user, _, device = await _with_passkey(client)
        phished = device.get(await _sign_in_options(client), origin="https://app.example.co")
        await _refused(client, phished, "invalid_passkey")
        options = (await user.auth.passkeys.registration_options())["options"]
        with pytest.raises(AuthenticationError):
            await user.auth.passkeys.register(device.create(options, origin="https://evil.test"))


async def test_an_answer_to_another_challenge_is_refused(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        _, _, device = await _with_passkey(client)
        await _sign_in_options(client)
        made_up = b64url(b"\x01" * 32)
        options = {"rpId": RP_ID, "challenge": made_up}
        await _refused(client, device.get(options), "invalid_challenge")
        # a registration challenge does not sign in
        other, _, _ = await _with_passkey(client)
        registration = (await other.auth.passkeys.registration_options())["options"]
        await _refused(
            client,
            device.get(await _sign_in_options(client), challenge=registration["challenge"]),
            "invalid_challenge",
        )


async def test_a_replayed_answer_is_refused(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        _, _, device = await _with_passkey(client)
        answer = device.get(await _sign_in_options(client))
        await client.auth.sign_in_with_passkey(answer)
        await _refused(client, answer, "invalid_challenge")


async def test_a_counter_going_back_is_refused(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client)
        _, name, device = await _with_passkey(client)
        await client.auth.sign_in_with_passkey(device.get(await _sign_in_options(client)))
        await client.auth.sign_in_with_passkey(device.get(await _sign_in_options(client)))
        # a copy of the key that signed once: its counter is behind the server's
        cloned = device.get(await _sign_in_options(client), count=1)
        await _refused(client, cloned, "passkey_counter")
        same = device.get(await _sign_in_options(client), count=device.keys[0].count)
        await _refused(client, same, "passkey_counter")
        audit = await admin.logs.query(category="auth.audit", search=None, limit=100)
        refusals = [
            e["data"].get("reason")
            for e in audit["entries"]
            if e["username"] == name and e["message"] == "passkey_sign_in_refused"
        ]
        assert refusals.count("passkey_counter") == 2


async def test_a_passkey_that_never_counts_still_signs_in(server: RunningServer) -> None:
    """Synced passkeys report 0 every time: allowed, as the spec allows it."""
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client)
        name = unique("pk")
        await admin.users.create_user(name, PASSWORD)
        user = await client.auth.sign_in_with_password(name, PASSWORD)
        device = Authenticator(ORIGIN, counting=False)
        options = (await user.auth.passkeys.registration_options())["options"]
        await user.auth.passkeys.register(device.create(options))
        for _ in range(2):
            await client.auth.sign_in_with_passkey(device.get(await _sign_in_options(client)))


async def test_another_tenants_credential_is_unknown(server: RunningServer) -> None:
    tenant = unique("t")
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client)
        _, _, device = await _with_passkey(client)
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            root = await other.auth.sign_in_with_password("root", "root-password")
            with pytest.raises(ConflictError) as off:
                await other.auth.passkey_sign_in_options()
            assert off.value.code == "passkeys_not_configured"
            await root.settings.update(SETTINGS)  # the same domain: still another tenant
            await _refused(other, device.get(await _sign_in_options(other)), "unknown_passkey")
            # nor is a challenge of one tenant good in the other
            answer = device.get(await _sign_in_options(client))
            await _refused(other, answer, "invalid_challenge")


async def test_another_users_credential_or_challenge_is_refused(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        victim, _, victim_device = await _with_passkey(client)
        attacker, _, attacker_device = await _with_passkey(client)
        # the victim's key answering with the attacker's user handle
        forged = victim_device.get(
            await _sign_in_options(client), user_handle=attacker_device.keys[0].user_handle
        )
        await _refused(client, forged, "invalid_passkey")
        # a key whose public half the server does not hold, under the victim's credential id
        impostor = Key(
            credential_id=victim_device.keys[0].credential_id,
            private_key=attacker_device.keys[0].private_key,
            rp_id=RP_ID,
            user_handle=victim_device.keys[0].user_handle,
            count=100,
        )
        await _refused(
            client, attacker_device.get(await _sign_in_options(client), impostor), "invalid_passkey"
        )
        # the victim's registration options answered by the attacker's session
        options = (await victim.auth.passkeys.registration_options())["options"]
        with pytest.raises(AuthenticationError) as caught:
            await attacker.auth.passkeys.register(attacker_device.create(options))
        assert caught.value.code == "invalid_challenge"
        # the victim's credential registered again by the attacker
        options = (await attacker.auth.passkeys.registration_options())["options"]
        again = attacker_device.create(options, credential_id=victim_device.keys[0].credential_id)
        with pytest.raises(ConflictError) as taken:
            await attacker.auth.passkeys.register(again)
        assert taken.value.details["field"] == "credential"
        [victims] = await victim.auth.passkeys.list()
        with pytest.raises(NotFoundError):
            await attacker.auth.passkeys.delete(victims["id"])
        assert len(await victim.auth.passkeys.list()) == 1


async def test_a_passkey_without_user_verification_is_refused(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client)
        name = unique("pk")
        await admin.users.create_user(name, PASSWORD)
        user = await client.auth.sign_in_with_password(name, PASSWORD)
        options = (await user.auth.passkeys.registration_options())["options"]
        with pytest.raises(AuthenticationError) as caught:
            await user.auth.passkeys.register(Authenticator(ORIGIN).create(options, verified=False))
        assert caught.value.code == "invalid_passkey"
        assert await user.auth.passkeys.list() == []


@pytest.mark.parametrize(
    "credential",
    [
        {},
        {"id": "x", "rawId": "x", "type": "public-key", "response": {"clientDataJSON": 5}},
        {
            "id": "AA",
            "rawId": "AA",
            "type": "public-key",
            "response": {
                "clientDataJSON": "%%%",
                "authenticatorData": "AA",
                "signature": "AA",
            },
        },
        {
            "id": "AA",
            "rawId": "AA",
            "type": "public-key",
            "response": {
                "clientDataJSON": base64.urlsafe_b64encode(json.dumps([1]).encode()).decode(),
                "authenticatorData": "AA",
                "signature": "AA",
            },
        },
    ],
)
async def test_a_malformed_credential_is_a_400_naming_it(
    server: RunningServer, credential: dict[str, Any]
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        await _admin(client)
        with pytest.raises(ValidationError) as caught:
            await client.auth.sign_in_with_passkey(credential)
        assert caught.value.details["field"] == "credential"


async def test_an_api_key_cannot_register_a_passkey(server: RunningServer) -> None:
    async with AsyncClient(api_url=server.url) as client:
        user, _, _ = await _with_passkey(client)
        key = await user.api_keys.create(unique("key"))
        service = await client.auth.sign_in_with_token(key["key"], token_type="api_key")
        with pytest.raises(AuthorizationError):
            await service.auth.passkeys.registration_options()
        with pytest.raises(AuthorizationError):
            await service.auth.passkeys.list()


async def test_a_passkey_sign_in_is_not_asked_for_a_totp_code(
    clocked_server: RunningServer,
) -> None:
    """The decision pinned (services/auth/passkeys.py): a user-verified passkey is two factors
    in one, so a user with TOTP on signs in with it alone; the password still asks."""
    async with AsyncClient(api_url=clocked_server.url) as client:
        user, name, device = await _with_passkey(client)
        secret = (await user.auth.totp_enrol())["secret"]
        await user.auth.totp_confirm(code_at(clocked_server, secret))
        next_step(clocked_server)
        signed_in = await client.auth.sign_in_with_passkey(
            device.get(await _sign_in_options(client))
        )
        assert (await signed_in.auth.whoami())["username"] == name


async def test_sign_in_options_are_limited_per_client_address(
    make_server: Callable[..., RunningServer],
) -> None:
    """Each options call keeps a challenge: one address cannot fill the table."""
    server = make_server()
    async with AsyncClient(api_url=server.url) as client:
        await _admin(client)
        for _ in range(OPTIONS_PER_CLIENT):
            await client.auth.passkey_sign_in_options()
        with pytest.raises(RateLimitError):
            await client.auth.passkey_sign_in_options()
