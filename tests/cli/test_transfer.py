"""`roost export` / `roost import` on a real server: a tenant round-trips into a new one, and
the refusals (a key that may not read, another tenant's key, a bad line) change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from roost import Client
from roost.cli.main import app
from roost.errors import ConflictError, ValidationError
from tests.conftest import RunningServer, unique

runner = CliRunner()
PASSWORD = "tenant-password-1"
EVERY_TYPE: list[dict[str, Any]] = [
    {"name": "label", "type": "text", "constraints": ["NOT NULL"]},
    {"name": "code", "type": "varchar(20)", "constraints": ["UNIQUE"]},
    {"name": "small", "type": "integer", "constraints": ["CHECK (small >= 0)"]},
    {"name": "big", "type": "bigint"},
    {"name": "price", "type": "decimal(12,4)", "default": 0},
    {"name": "active", "type": "boolean", "default": True},
    {"name": "seen", "type": "timestamp"},
    {"name": "at", "type": "timestamptz"},
    {"name": "day", "type": "date"},
    {"name": "ref", "type": "uuid"},
    {"name": "extra", "type": "json"},
    {"name": "blob", "type": "bytes"},
]
ROWS: list[dict[str, Any]] = [
    {
        "label": "ünïcödé ✓ 雪 🐦",
        "code": "A-1",
        "small": 2**31 - 1,
        "big": -(2**63),
        "price": "12345678.1234",
        "active": False,
        "seen": "2024-02-29T23:59:59.123456",
        "at": "1999-12-31T23:00:00+00:00",
        "day": "2000-01-01",
        "ref": "12345678-1234-5678-1234-567812345678",
        "extra": {"nested": [1, 2.5, None, {"deep": "x"}], "flag": True},
        "blob": "AAEC/w==",
    },
    {"label": "all nulls", "code": None, "small": None, "big": None, "price": None},
    *({"label": f"row {n}", "small": n, "price": f"{n}.5"} for n in range(40)),
]


@dataclass
class Tenant:
    name: str
    key: str
    client: Client


@pytest.fixture
def tenants(server: RunningServer) -> Iterator[list[Tenant]]:
    """Two new tenants, each with an admin API key (all scopes) and a signed-in client."""
    made: list[Tenant] = []
    with Client(api_url=server.url) as client:
        admin = client.auth.sign_in_with_password("admin", "admin-password-1")
        for _ in range(2):
            name = unique("x")
            admin.tenants.create(name, admin_username="root", admin_password=PASSWORD)
            tenant_client = Client(api_url=server.url, tenant=name)
            signed_in = tenant_client.auth.sign_in_with_password("root", PASSWORD)
            made.append(Tenant(name, signed_in.api_keys.create("cli")["key"], signed_in))
    yield made
    for tenant in made:
        tenant.client.close()


def _everything(client: Client, *, stamps: bool = False) -> dict[str, Any]:
    """Every row and document; without created_at/updated_at unless `stamps` (an import's
    server sets them anew)."""
    kept = () if stamps else ("created_at", "updated_at")
    tables = {
        t["name"]: [
            {k: v for k, v in row.items() if k not in kept}
            for row in client.database.query(t["name"]).sort("id").iter()
        ]
        for t in client.database.tables()
        if not t["secure"]
    }
    tables["vault"] = [
        {k: v for k, v in row.items() if k not in kept}
        for row in client.database.query("vault").sort("slug").audited("check", "test").iter()
    ]
    documents = {
        name: list(client.collection(name).query().sort("id").iter())
        for name in client.database.collections()
    }
    return {"tables": tables, "documents": documents}


def test_a_tenant_round_trips_into_a_new_one(
    server: RunningServer, tenants: list[Tenant], tmp_path: Path
) -> None:
    source, target = tenants
    admin = source.client
    admin.schema.add_table("things", EVERY_TYPE)
    admin.schema.add_index("things", ["big", "day"])
    admin.schema.add_table(
        "notes",
        [
            {"name": "thing", "type": "bigint", "constraints": ["REFERENCES things(id)"]},
            {"name": "body", "type": "text"},
        ],
        timestamps=False,
    )
    admin.schema.add_table(
        "vault",
        [
            {"name": "slug", "type": "varchar(40)", "constraints": ["PRIMARY KEY"]},
            {"name": "note", "type": "text"},
        ],
        secure=True,
    )
    things = admin.database.create("things", ROWS)
    admin.database.create("notes", [{"thing": t["id"], "body": t["label"]} for t in things[:5]])
    admin.database.create(
        "vault", [{"slug": "a", "note": "ä"}, {"slug": "b", "note": None}], reason="r", actor="t"
    )
    with pytest.raises(ValidationError):  # the server refuses NUL; nothing to round-trip
        admin.database.create("notes", {"body": "a\x00b"})
    admin.collection("people").set("ada", {"name": "Ada ✓", "tags": ["x", None], "n": 1.5})
    admin.collection("people").set("bob", {"nested": {"a": {"b": [True, False, None]}}})
    admin.collection("empty_ish").set("only", {})
    admin.secrets.set("STRIPE_KEY", "sk-secret-value-never-exported")

    url = ["--api-url", server.url]
    file = tmp_path / "tenant.jsonl"
    exported = runner.invoke(app, ["export", str(file), *url, "--api-key", source.key])
    assert exported.exit_code == 0, exported.output
    assert "3 table(s), 49 row(s), 2 collection(s), 3 document(s)" in exported.output
    text = file.read_text()
    assert "sk-secret-value-never-exported" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["kind"] == "header"
    assert lines[0]["tenant"] == source.name
    assert {"kind": "secret", "name": "STRIPE_KEY"} in lines
    # the referenced table comes before the table that references it
    table_order = [line["name"] for line in lines if line["kind"] == "table"]
    assert table_order.index("things") < table_order.index("notes")

    target_key = ["--api-key", target.key]
    imported = runner.invoke(app, ["import", str(file), *url, *target_key])
    assert imported.exit_code == 0, imported.output
    assert "STRIPE_KEY" in imported.output  # to be set again: its value never left
    assert _everything(target.client) == _everything(source.client)
    assert target.client.database.describe("things") == source.client.database.describe("things")
    with pytest.raises(ConflictError):  # the UNIQUE came along
        target.client.database.create("things", {"label": "dup", "code": "A-1"})
    # ids were kept, and a new row gets a free one (PostgreSQL's sequence moved past them;
    # the refused insert above took a number of it too)
    new = target.client.database.create("things", {"label": "new"})
    assert new["id"] > things[-1]["id"]
    target.client.database.delete("things", new["id"])

    # again: refused, the tables exist; with --merge, an upsert that changes nothing
    again = runner.invoke(app, ["import", str(file), *url, *target_key])
    assert (again.exit_code, "--merge" in again.output) == (2, True), again.output
    before = _everything(target.client, stamps=True)
    merged = runner.invoke(app, ["import", str(file), *url, *target_key, "--merge"])
    assert merged.exit_code == 0, merged.output
    assert _everything(target.client, stamps=True) == before  # not even updated_at moved
    # a changed row in the file updates the row of that key
    changed = [
        {**line, "data": {**line["data"], "note": "changed"}}
        if line["kind"] == "row" and line["table"] == "vault" and line["data"]["slug"] == "a"
        else line
        for line in lines
    ]
    file.write_text("".join(json.dumps(line) + "\n" for line in changed))
    merged = runner.invoke(app, ["import", str(file), *url, *target_key, "--merge"])
    assert merged.exit_code == 0, merged.output
    vault = _everything(target.client)["tables"]["vault"]
    assert [(r["slug"], r["note"]) for r in vault] == [("a", "changed"), ("b", None)]


def test_refusals_change_nothing(
    server: RunningServer, tenants: list[Tenant], tmp_path: Path
) -> None:
    source, target = tenants
    source.client.schema.add_table("t", [{"name": "v", "type": "text"}])
    source.client.database.create("t", {"v": "x"})
    url = ["--api-url", server.url]

    # a key that may not read the tables
    narrow = source.client.api_keys.create("narrow", ["kv:read"])["key"]
    file = tmp_path / "out.jsonl"
    refused = runner.invoke(app, ["export", str(file), *url, "--api-key", narrow])
    assert refused.exit_code == 2
    assert "database:read" in refused.output
    assert not file.exists()
    assert list(tmp_path.iterdir()) == []  # nor a partial file

    exported = runner.invoke(app, ["export", str(file), *url, "--api-key", source.key])
    assert exported.exit_code == 0, exported.output

    # into a tenant the key is not for
    foreign = runner.invoke(
        app, ["import", str(file), *url, "--api-key", source.key, "--tenant", target.name]
    )
    assert foreign.exit_code == 2, foreign.output
    assert target.client.database.tables() == []

    # a bad line is named, and nothing is written (the whole file is checked first)
    good = file.read_text().splitlines()
    for bad, why in (
        ("{not json", "line 3"),
        (json.dumps({"kind": "row", "table": "other", "data": {}}), "line 3"),
        (json.dumps({"kind": "spell", "name": "x"}), "line 3"),
        (json.dumps({"kind": "table", "name": "u", "definition": {"name": "u"}}), "line 3"),
    ):
        broken = tmp_path / "broken.jsonl"
        broken.write_text("\n".join([*good[:2], bad, *good[2:]]) + "\n")
        answer = runner.invoke(app, ["import", str(broken), *url, "--api-key", target.key])
        assert (answer.exit_code, why in answer.output) == (2, True), answer.output
    headless = tmp_path / "headless.jsonl"
    headless.write_text("\n".join(good[1:]) + "\n")
    answer = runner.invoke(app, ["import", str(headless), *url, "--api-key", target.key])
    assert (answer.exit_code, "line 1" in answer.output) == (2, True), answer.output
    assert target.client.database.tables() == []

    # a NUL the file carries is refused by the server, with the field named
    nul = tmp_path / "nul.jsonl"
    nul.write_text(
        "\n".join([*good[:2], json.dumps({"kind": "row", "table": "t", "data": {"v": "a\x00"}})])
    )
    answer = runner.invoke(app, ["import", str(nul), *url, "--api-key", target.key])
    assert answer.exit_code == 2, answer.output
    assert target.client.database.query("t").count() == 0
