"""`client.triggers` through the SDK: the catalogue's calls and their refusals."""

from __future__ import annotations

import pytest

from roost import AsyncClient, NotFoundError, ValidationError
from tests.conftest import RunningServer, unique

pytestmark = pytest.mark.anyio

HOOK = {"kind": "url", "url": "http://93.184.216.34/hook"}  # public, and never called here
YEARLY = {"kind": "cron", "schedule": "@yearly", "timezone": "Europe/Paris"}


async def test_create_list_get_update_pause_resume_and_delete(
    server: RunningServer, admin_token: str
) -> None:
    name = unique("yearly")
    async with AsyncClient(api_url=server.url) as client:
        triggers = (await client.auth.sign_in_with_token(admin_token)).triggers
        made = await triggers.create(name, YEARLY, HOOK, description="new year")
        assert made["secret"].startswith("whsec_")
        assert (made["source"], made["target"], made["enabled"]) == (YEARLY, HOOK, True)
        assert name in [t["name"] for t in await triggers.list("cron")]
        assert (await triggers.get(name))["secret"] is None  # shown once, when made
        changed = await triggers.update(name, description="still yearly", enabled=False)
        assert (changed["description"], changed["enabled"]) == ("still yearly", False)
        assert (await triggers.resume(name))["enabled"] is True
        assert (await triggers.pause(name))["enabled"] is False
        renewed = await triggers.update(name, target={**HOOK, "url": HOOK["url"] + "/v2"})
        assert renewed["secret"].startswith("whsec_")
        assert renewed["secret"] != made["secret"]
        assert await triggers.deliveries(name) == {"results": [], "count": 0}
        await triggers.delete(name)
        with pytest.raises(NotFoundError):
            await triggers.deliveries(name)


async def test_a_bad_schedule_is_refused_naming_the_field(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        triggers = (await client.auth.sign_in_with_token(admin_token)).triggers
        with pytest.raises(ValidationError) as caught:
            await triggers.create(unique("bad"), {"kind": "cron", "schedule": "soon"}, HOOK)
        assert caught.value.details["field"] == "source.schedule"


async def test_loopback_is_refused_unless_the_deployment_allows_it(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        triggers = (await client.auth.sign_in_with_token(admin_token)).triggers
        for url in ("http://127.0.0.1:8080/", "http://localhost/", "http://[::1]/"):
            with pytest.raises(ValidationError) as caught:
                await triggers.create(unique("loop"), YEARLY, {"kind": "url", "url": url})
            assert caught.value.details["field"] == "target.url"
