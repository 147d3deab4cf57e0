"""Mail through the SDK, on SQLite and PostgreSQL, with no relay configured (the outbox):
templates, rendering, the outbox, and each refusal. Delivery over SMTP is in
tests/server/test_mail_smtp.py."""

from __future__ import annotations

import pytest

from roost import AsyncClient, AuthorizationError, NotFoundError, ValidationError
from roost.errors import PayloadTooLargeError
from tests.client._async.calls import Call
from tests.conftest import RunningServer, unique


@pytest.mark.anyio
async def test_built_in_templates_fill_and_land_in_the_outbox(
    server: RunningServer, admin_token: str
) -> None:
    to = f"{unique('ann')}@example.com"
    async with AsyncClient(api_url=server.url) as client:
        mail = (await client.auth.sign_in_with_token(admin_token)).mail
        sent = await mail.send_welcome(to, {"name": "Ann"})
        assert (sent["status"], sent["to"]) == ("outbox", [to])
        await mail.send_password_reset(to, {"name": "Ann", "link": "https://x.test/r/abc"})
        await mail.send_email_verification(to, {"name": "Ann", "link": "https://x.test/v/abc"})
        await mail.send_invitation(to, {"inviter": "Bob", "link": "https://x.test/i/abc"})
        box = await mail.outbox(to=to.upper())  # addresses match in any case
        assert [m["template"] for m in box] == [
            "invitation",
            "email_verification",
            "password_reset",
            "welcome",
        ]
        welcome = box[-1]
        assert welcome["subject"] == "Welcome, Ann"
        assert welcome["text"].startswith("Hello Ann,")
        assert (welcome["status"], welcome["error"], welcome["id"]) == ("outbox", None, sent["id"])
        assert "https://x.test/r/abc" in box[2]["text"]
        assert (await mail.outbox(to=to, limit=1))[0]["template"] == "invitation"


@pytest.mark.anyio
async def test_tenant_templates_replace_and_escape(server: RunningServer, admin_token: str) -> None:
    alias, to = unique("shipped"), f"{unique('bo')}@example.com"
    async with AsyncClient(api_url=server.url) as client:
        mail = (await client.auth.sign_in_with_token(admin_token)).mail
        made = await mail.templates.put(
            alias,
            "Order {{ order.id }} shipped",
            "Hi {{ name }}, order {{ order.id }} ({{ order.items }} items) is on its way.",
            "<p>Hi {{ name }}</p>",
        )
        assert made["builtin"] is False
        await mail.send(
            alias,
            [to],
            "Shop <shop@example.com>",
            {"name": "<b>Bo</b>", "order": {"id": 7, "items": 3}},
        )
        message = (await mail.outbox(to=to))[0]
        assert message["subject"] == "Order 7 shipped"
        assert message["text"] == "Hi <b>Bo</b>, order 7 (3 items) is on its way."
        assert message["html"] == "<p>Hi &lt;b&gt;Bo&lt;/b&gt;</p>"  # escaped in HTML only
        assert message["sender"] == "Shop <shop@example.com>"
        assert alias in [t["alias"] for t in await mail.templates.list()]
        await mail.templates.put("welcome", "Hey {{ name }}!", "Glad you came, {{ name }}.")
        assert (await mail.templates.get("welcome"))["builtin"] is False
        await mail.send_welcome(to, {"name": "Bo"})
        assert (await mail.outbox(to=to))[0]["subject"] == "Hey Bo!"
        await mail.templates.delete("welcome")
        assert (await mail.templates.get("welcome"))["builtin"] is True
        await mail.templates.delete(alias)
        with pytest.raises(NotFoundError) as caught:
            await mail.send(alias, to)
        assert caught.value.code == "template_not_found"
        assert "mail.templates.list()" in caught.value.message  # the SDK's name of the listing
        assert callable(mail.templates.list)


@pytest.mark.anyio
async def test_a_model_value_cannot_add_a_header(server: RunningServer, admin_token: str) -> None:
    to = f"{unique('cy')}@example.com"
    async with AsyncClient(api_url=server.url) as client:
        mail = (await client.auth.sign_in_with_token(admin_token)).mail
        await mail.send_welcome(to, {"name": "Cy\r\nBcc: thief@example.com"})
        assert (await mail.outbox(to=to))[0]["subject"] == "Welcome, Cy Bcc: thief@example.com"


@pytest.mark.anyio
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_sent(
    server: RunningServer, admin_token: str
) -> None:
    to = f"{unique('di')}@example.com"
    async with AsyncClient(api_url=server.url) as client:
        mail = (await client.auth.sign_in_with_token(admin_token)).mail
        refusals: list[tuple[str, Call]] = [
            ("model.name", lambda: mail.send_welcome(to, {})),
            ("model.link", lambda: mail.send("invitation", to, model={"inviter": "x"})),
            ("to", lambda: mail.send("welcome", "not-an-address", model={"name": "x"})),
            ("to", lambda: mail.send("welcome", "a@b.com\r\nBcc: c@d.com", model={"name": "x"})),
            (
                "to",
                lambda: mail.send(
                    "welcome", [f"u{n}@x.com" for n in range(51)], model={"name": "x"}
                ),
            ),
            ("from_email", lambda: mail.send("welcome", to, "no address", {"name": "x"})),
            ("template_alias", lambda: mail.send("Not An Alias", to)),
            ("subject", lambda: mail.templates.put(unique("t"), "", "text")),
            ("alias", lambda: mail.templates.put("Bad Alias", "s", "t")),
        ]
        for field, call in refusals:
            with pytest.raises(ValidationError) as caught:
                await call()
            where = str(caught.value.details) + caught.value.message
            assert field.split(".")[0] in where or field in where, field
        assert await mail.outbox(to=to) == []
        with pytest.raises(NotFoundError):
            await mail.templates.delete(unique("never"))


@pytest.mark.anyio
async def test_sending_reading_and_changing_templates_need_their_scopes(
    server: RunningServer, admin_token: str
) -> None:
    to = f"{unique('ed')}@example.com"
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        sender_key = await admin.api_keys.create(unique("sender"), ["mail:send"])
        sender = await client.auth.sign_in_with_token(sender_key["key"], "api_key")
        await sender.mail.send_welcome(to, {"name": "Ed"})
        with pytest.raises(AuthorizationError) as caught:
            await sender.mail.outbox()
        assert caught.value.details["scope"] == "mail:read"
        reader_key = await admin.api_keys.create(unique("reader"), ["mail:read"])
        reader = await client.auth.sign_in_with_token(reader_key["key"], "api_key")
        assert len(await reader.mail.outbox(to=to)) == 1
        with pytest.raises(AuthorizationError) as caught:
            await reader.mail.templates.put(unique("t"), "s", "t")
        assert caught.value.details["scope"] == "mail:admin"
        with pytest.raises(AuthorizationError) as caught:
            await reader.mail.send_welcome(to, {"name": "Ed"})
        assert caught.value.details["scope"] == "mail:send"


@pytest.mark.anyio
async def test_preview_fills_a_draft_as_sending_would_and_keeps_nothing(
    server: RunningServer, admin_token: str
) -> None:
    alias = unique("draft")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        newest = await admin.mail.outbox(limit=1)
        shown = await admin.mail.templates.preview(
            alias,
            "Order {{ order.id }} shipped",
            "Hi {{ name }}, {{ order.items }} items.",
            "<p>Hi {{ name }}</p><script>alert(1)</script>",
            {"name": "<b>Bo</b>", "order": {"id": 7, "items": 3}},
        )
        assert shown == {
            "subject": "Order 7 shipped",
            "text": "Hi <b>Bo</b>, 3 items.",
            "html": "<p>Hi &lt;b&gt;Bo&lt;/b&gt;</p><script>alert(1)</script>",  # as written
        }
        plain = await admin.mail.templates.preview(alias, "Hi", "Hello {{ who }}", model={"who": 1})
        assert plain == {"subject": "Hi", "text": "Hello 1", "html": None}
        assert alias not in [t["alias"] for t in await admin.mail.templates.list()]
        assert await admin.mail.outbox(limit=1) == newest  # nothing recorded or sent

        preview = admin.mail.templates.preview
        refusals: list[tuple[str, Call]] = [
            ("model", lambda: preview(alias, "s", "Hi {{ name }}")),
            ("model.name", lambda: preview(alias, "s", "{{ name }}", model={"name": "a\x00"})),
            ("template.text", lambda: preview(alias, "s", "nul \x00")),
            ("template.alias", lambda: preview("Not An Alias", "s", "t")),
            # a security mail's link stays where the server puts it, as saving would refuse
            ("text", lambda: preview("password_reset", "s", "go {{ link }} now")),
        ]
        for field, call in refusals:
            with pytest.raises(ValidationError) as caught:
                await call()
            assert field in str(caught.value.details) + caught.value.message, field
        huge = {"name": "x" * 300_000}  # renders over ROOST_MAIL_MAX_BYTES (256 KiB)
        with pytest.raises(PayloadTooLargeError) as too_big:
            await admin.mail.templates.preview(alias, "s", "{{ name }}", model=huge)
        assert too_big.value.details["field"] == "model"

        sender_key = await admin.api_keys.create(unique("sender"), ["mail:send"])
        sender = await client.auth.sign_in_with_token(sender_key["key"], "api_key")
        with pytest.raises(AuthorizationError) as denied:
            await sender.mail.templates.preview(alias, "s", "t")
        assert denied.value.details["scope"] == "mail:read"
        reader_key = await admin.api_keys.create(unique("reader"), ["mail:read"])
        reader = await client.auth.sign_in_with_token(reader_key["key"], "api_key")
        assert (await reader.mail.templates.preview(alias, "s", "t"))["text"] == "t"
