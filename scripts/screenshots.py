"""Screenshots of every dashboard page, for the README and for looking at the pages.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Starts a server on a temporary data dir, fills it with a little of everything (a table with
records, a bucket with files, users, an API key, log entries, KV keys, a queue, secrets, a
function and its runs, a trigger with a delivery, a policy, a second tenant, usage, a stream
room, a mail template and a sent mail, settings and pages, a secure table with audit entries,
a tenant category and a membership), signs in through the page and writes one PNG per page at
1280x800, and the records, mail and sign-in pages at a phone's 390x844.
Needs /usr/bin/chromium (scripts/ensure-chromium).
"""

from __future__ import annotations

import argparse
import secrets
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import Page, sync_playwright

from roost import Client
from roost.server import create_app
from roost.server.serving import server_config
from roost.settings import load_settings

ADMIN, PASSWORD = "admin", "screenshot-password"
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000b49444154789c6360000200000500017a5eab3f0000000049454e44ae426082"
)

_LOGO = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="240" height="120" viewBox="0 0 240 120">'
    b'<rect width="240" height="120" rx="16" fill="#16243a"/><circle cx="60" cy="60" r="34" '
    b'fill="#ffbf47"/><text x="110" y="72" font-family="sans-serif" font-size="34" '
    b'fill="#fff">Roost</text></svg>'
)


def start(data_dir: Path) -> tuple[uvicorn.Server, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    settings = load_settings(
        data_dir=data_dir,
        admin_username=ADMIN,
        admin_password=PASSWORD,
        secret_key=secrets.token_urlsafe(40),
        functions_enabled=True,  # the functions page shows a deployed function and its runs
        functions_pool_size=1,
        # a uid range of its own: another server on this host may hold the default one
        functions_uid_base=2_000_000 + secrets.randbelow(1_000_000) * 16,
        functions_api_url=f"http://127.0.0.1:{port}",
        triggers_tick_seconds=0.1,
    )
    config = server_config(
        create_app(settings), settings, host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def fill(url: str) -> None:
    with Client(api_url=url) as client:
        admin = client.auth.sign_in_with_password(ADMIN, PASSWORD)
        admin.schema.add_table(
            "customers",
            [
                {"name": "name", "type": "text", "constraints": ["NOT NULL"]},
                {"name": "email", "type": "text", "constraints": ["UNIQUE"]},
                {"name": "plan", "type": "text"},
                {"name": "seats", "type": "integer"},
                {"name": "active", "type": "boolean"},
            ],
        )
        plans = ["free", "team", "business"]
        admin.database.bulk_insert(
            "customers",
            [
                {
                    "name": f"Customer {n}",
                    "email": f"owner{n}@example.com",
                    "plan": plans[n % 3],
                    "seats": (n * 7) % 50 + 1,
                    "active": n % 4 != 0,
                }
                for n in range(1, 61)
            ],
        )
        admin.schema.add_table("orders", [{"name": "total", "type": "decimal(12,2)"}])
        admin.storage.create_bucket("avatars")
        admin.storage.from_("avatars").upload([{"file": _PNG, "name": "dot.png"}])
        admin.storage.from_("avatars").upload([{"file": b"a,b\n1,2\n", "name": "export.csv"}])
        admin.storage.from_("avatars").upload(
            [{"file": _LOGO, "name": "logo.svg", "content_type": "image/svg+xml"}]
        )
        for name in ("alice", "bob"):
            admin.users.create_user(name, f"{name}-password-1", email=f"{name}@example.com")
        admin.api_keys.create("ci-deploy", ["database:read", "storage:*"])
        admin.kv.set("feature:search", {"enabled": True, "rollout": 0.25})
        admin.kv.set("session:count", 42)
        for n in range(3):
            admin.queue.publish("emails", {"to": f"user{n}@example.com"})
        admin.secrets.set("STRIPE_KEY", "sk_test_example", comment="payments")
        admin.secrets.set("SMTP_PASSWORD", "example-password", comment="mail relay")
        for n in range(12):
            level = ["info", "warn", "error", "debug"][n % 4]
            getattr(admin.logs, level)(f"order {1000 + n} processed", {"n": n}, category="orders")
        admin.functions.deploy(
            "welcome-email",
            "def main(params, user_data):\n"
            '    print("welcoming", params.get("to", "a new customer"))\n'
            '    return {"sent": True}\n',
            description="Sends the welcome mail",
        )
        for n in range(3):
            admin.functions.execute("welcome-email", {"to": f"user{n}@example.com"})
        admin.triggers.create(
            "on-customer",
            {"kind": "database", "table": "customers", "events": ["insert"]},
            {"kind": "function", "name": "welcome-email"},
        )
        admin.triggers.create(
            "nightly-report",
            {"kind": "cron", "schedule": "@daily"},
            {"kind": "function", "name": "welcome-email"},
        )
        admin.database.create("customers", {"name": "Customer 61", "email": "to@example.com"})
        admin.policies.put(
            [
                {
                    "apiVersion": "api.cerbos.dev/v1",
                    "resourcePolicy": {
                        "resource": "document",
                        "version": "default",
                        "rules": [
                            {"actions": ["view"], "effect": "EFFECT_ALLOW", "roles": ["user"]}
                        ],
                    },
                }
            ]
        )
        admin.tenants.create("acme", display_name="Acme Inc.")
        # issue 19's data pages: a schema history, a secure table and its audit log, a category
        admin.schema.add_column("customers", "region", "varchar(20)")
        admin.schema.add_index("customers", ["plan"])
        admin.schema.add_table("patients", [{"name": "name", "type": "text"}])
        admin.database.bulk_insert("patients", [{"name": "Ann"}, {"name": "Bob"}])
        admin.schema.set_secure("patients")
        for reason in ("ticket 4512", "monthly review"):
            admin.database.query("patients", reason=reason, actor="dr-grey")
        admin.tenants.create_category(
            "shop",
            [{"name": "orders", "columns": [{"name": "total", "type": "decimal(12,2)"}]}],
            description="An online shop's tables",
        )
        # a membership: the header's tenant switch, and switching in place on the tenants page
        admin.tenants.create(
            "globex", display_name="Globex", admin_username="owner", admin_password=PASSWORD
        )
        with Client(api_url=url, tenant="globex") as there:
            owner = there.auth.sign_in_with_password("owner", PASSWORD)
            owner.users.create_user("admin-at-globex", PASSWORD, roles=["admin"])
            code = owner.users.invite_member("admin-at-globex")["code"]
        admin.auth.accept_invitation(code)
        fill_messaging(admin, url)


def fill_messaging(admin: Client, url: str) -> None:
    """A stream room, a mail template and a sent mail, settings, pages, and calls by a key."""
    for n, text in enumerate(["hello", "how are you?", "fine, thanks", "see you"]):
        admin.stream.publish("chat", "message", {"from": ["ann", "bo"][n % 2], "text": text})
    admin.mail.templates.put(
        "order_shipped",
        "Order {{ order }} shipped",
        "Hi {{ name }}, order {{ order }} is on its way.",
        "<h1>On its way</h1><p>Hi {{ name }}, order <b>{{ order }}</b> is on its way.</p>",
    )
    admin.mail.send("order_shipped", "ann@example.com", model={"name": "Ann", "order": 1042})
    admin.settings.update({"site_name": "Acme shop", "theme": {"accent": "#1f5fbf"}})
    admin.pages.create("/reports", "Reports", scopes=["database:read"])
    admin.pages.create("/reports/sales", "Sales", parent="/reports", scopes=["database:read"])
    made = admin.api_keys.create("reporting", ["database:read"])
    with Client(api_url=url) as client:
        keyed = client.auth.sign_in_with_token(made["key"], "api_key")
        for _ in range(5):
            keyed.database.query("customers", limit=5)


def shoot(page: Page, url: str, hash_: str, out: Path, name: str, wait_text: str) -> None:
    page.goto(f"{url}/_/{hash_}")
    page.get_by_text(wait_text).first.wait_for()
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    print(f"wrote {out / f'{name}.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of the Roost dashboard")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    server, url = start(Path(tempfile.mkdtemp(prefix="roost-shots-")))
    try:
        fill(url)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
            for width, height, suffix in ((1280, 800, ""), (390, 844, "-phone")):
                context = browser.new_context(viewport={"width": width, "height": height})
                page = context.new_page()
                shoot(page, url, "", args.out, f"signin{suffix}", "Sign in to Roost")
                page.get_by_label("Username or email").fill(ADMIN)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("button", name="Sign out").wait_for()
                shoot(page, url, "#/tables/customers", args.out, f"records{suffix}", "61 records")
                if suffix:
                    shoot(page, url, "#/mail", args.out, "mail-phone", "order_shipped")
                    context.close()
                    continue
                shoot(page, url, "#/tables", args.out, "tables", "customers")
                shoot(page, url, "#/users", args.out, "users", "ci-deploy")
                shoot(page, url, "#/files/avatars", args.out, "files", "export.csv")
                shoot(page, url, "#/logs", args.out, "logs", "order 1011 processed")
                shoot(page, url, "#/kv", args.out, "kv", "feature:search")
                shoot(page, url, "#/queues/emails", args.out, "queues", "No dead letters")
                shoot(page, url, "#/secrets", args.out, "secrets", "STRIPE_KEY")
                shoot(page, url, "#/functions", args.out, "functions", "SUCCESS")
                page.get_by_role("button", name="Logs of").last.click()
                page.locator("pre.logs").wait_for()
                page.screenshot(path=str(args.out / "functions-logs.png"), full_page=True)
                shoot(page, url, "#/triggers", args.out, "triggers", "on-customer")
                page.get_by_role("button", name="Deliveries of on-customer").click()
                page.get_by_text("deliveries", exact=False).last.wait_for()
                page.screenshot(path=str(args.out / "triggers-deliveries.png"), full_page=True)
                shoot(page, url, "#/policies", args.out, "policies", "resource.document.vdefault")
                shoot(page, url, "#/tenants", args.out, "tenants", "An online shop's tables")
                shoot(page, url, "#/usage", args.out, "usage", "Requests per day")
                shoot(page, url, "#/streams/chat", args.out, "streams", "Live: new events")
                shoot(page, url, "#/pubsub", args.out, "pubsub", "Topic patterns")
                page.get_by_role("button", name="Watch").click()
                page.get_by_text("Live: watching").wait_for()
                page.get_by_label("Topic", exact=True).fill("orders.created")
                page.get_by_label("Message (JSON)").fill('{"id": 1042, "total": "19.90"}')
                page.get_by_role("button", name="Publish").click()
                page.get_by_role("cell", name="orders.created").wait_for()
                page.screenshot(path=str(args.out / "pubsub.png"), full_page=True)
                page.evaluate("document.querySelectorAll('.toast').forEach((t) => t.remove())")
                shoot(page, url, "#/mail", args.out, "mail", "order_shipped")
                page.get_by_role("button", name="Edit order_shipped").click()
                page.get_by_label("Sample data (JSON)").fill('{"name": "Ann", "order": 1042}')
                page.get_by_role("button", name="Preview").click()
                page.frame_locator("iframe.mail-html").locator("h1").wait_for()
                page.screenshot(path=str(args.out / "mail-preview.png"), full_page=True)
                shoot(page, url, "#/settings", args.out, "settings", "/reports/sales")
                shoot(page, url, "#/tables/customers/schema", args.out, "schema", "add_index")
                shoot(page, url, "#/tables/customers", args.out, "transfer", "61 records")
                page.get_by_text("Import and export").click()
                page.get_by_role("button", name="Export CSV").wait_for()
                page.screenshot(path=str(args.out / "transfer.png"), full_page=True)
                shoot(page, url, "#/tables/patients", args.out, "secure", "This table is secure")
                shoot(page, url, "#/audit", args.out, "audit", "monthly review")
                shoot(page, url, "#/files/avatars", args.out, "files-preview", "export.csv")
                page.get_by_role("button", name="Preview logo.svg").click()
                page.get_by_role("img", name="Preview of logo.svg").wait_for()
                page.screenshot(path=str(args.out / "files-preview.png"), full_page=True)
                context.close()
            browser.close()
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
