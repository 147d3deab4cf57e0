"""Refusals of a table bound to policies, on SQLite and PostgreSQL.

- A row is checked as it would be stored: creating a row for someone else, or handing one's
  row to someone else by an update (by id or by filters), is refused and nothing is written.
- Rows named by id that the caller may not read are not found (no way to tell they exist);
  a delete by ids that names another's row deletes nothing.
- A condition SQL cannot evaluate as the engine does refuses the query (422) instead of
  returning other rows; a caller with no role sees no row, whatever their scopes.
- `populate` does not reveal the rows of a bound table the caller may not read.
- Binding is for `policies:admin`; its input is checked (NUL, unknown target, missing table).
- An analytics query over a bound table runs only for callers the policies let read every
  row: its SQL cannot be filtered row by row.
"""

from __future__ import annotations

import httpx
import pytest

from roost import AsyncClient, AuthorizationError, NotFoundError, ValidationError
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.server.test_policy_rows import (
    PASSWORD,
    access_token,
    all_rows,
    make_world,
    owners_only,
)

pytestmark = pytest.mark.anyio


async def test_rows_are_checked_as_they_would_be_stored(server: RunningServer) -> None:
    world = await make_world(server)
    ann_id, ben_id = world.users["ann"], world.users["ben"]
    async with AsyncClient(api_url=server.url) as client:
        ann = await client.auth.sign_in_with_token(world.tokens["ann"])
        mine = await ann.database.query(world.table).get()
        with pytest.raises(AuthorizationError) as forged:  # one bad row: none is stored
            await ann.database.create(
                world.table, [{"owner": ann_id, "title": "ok"}, {"owner": ben_id, "title": "x"}]
            )
        assert forged.value.code == "policy_denied"
        with pytest.raises(AuthorizationError):
            await ann.database.update(world.table, {"owner": ben_id}, record_id=mine[0]["id"])
        with pytest.raises(AuthorizationError):
            await ann.database.update(world.table, {"owner": ben_id}, filters={"title": "ann 1"})
        with pytest.raises(AuthorizationError):
            await ann.database.update(world.table, [{"id": mine[1]["id"], "owner": ben_id}])
        theirs = (await all_rows(server, world))["ben"]
        with pytest.raises(AuthorizationError):
            await ann.database.delete(world.table, record_ids=[mine[0]["id"], theirs[0]["id"]])
    rows = await all_rows(server, world)
    assert sorted(r["title"] for r in rows["ann"]) == ["ann 1", "ann 2"]
    assert sorted(r["title"] for r in rows["ben"]) == ["ben 1", "ben 2"]


async def test_a_condition_sql_cannot_mean_refuses_the_query(server: RunningServer) -> None:
    world = await make_world(server)
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.policies.put(owners_only(world.kind, world.role, "size(R.attr.title) > 0"))
        ann = await client.auth.sign_in_with_token(world.tokens["ann"])
        with pytest.raises(ValidationError) as refused:
            await ann.database.query(world.table).get()
        assert (refused.value.status_code, refused.value.code) == (422, "policy_not_compilable")
        assert refused.value.details["field"] == "policy"
        assert "ben" not in str(refused.value)
        with pytest.raises(ValidationError):
            await ann.database.query(world.table).count()
        with pytest.raises(ValidationError):  # a delete by filters is a query too
            await ann.database.delete(world.table, all=True)
        # one record by id is checked by the engine itself, whatever its condition
        theirs = (await all_rows(server, world))["ben"][0]
        assert (await ann.database.get(world.table, theirs["id"]))["title"] == "ben 1"
    assert len((await all_rows(server, world))["ben"]) == 2


async def test_a_caller_with_no_role_sees_no_row(server: RunningServer) -> None:
    world = await make_world(server)
    name = unique("bare")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.users.create_user(name, PASSWORD, is_superuser=True)
        await admin.users.revoke_roles(["member"], [name])  # every scope, no role
        bare = await client.auth.sign_in_with_password(name, PASSWORD)
        assert await bare.database.query(world.table).count() == 0
        row = (await all_rows(server, world))["ann"][0]
        with pytest.raises(NotFoundError):
            await bare.database.get(world.table, row["id"])
        with pytest.raises(AuthorizationError):
            await bare.database.create(world.table, {"owner": "", "title": "x"})
        assert await bare.database.delete(world.table, all=True) == 0


async def test_populate_does_not_reveal_rows_the_caller_may_not_read(
    server: RunningServer,
) -> None:
    world = await make_world(server)
    links = unique("links_")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.schema.add_table(
            links,
            [{"name": "note", "type": "bigint", "constraints": [f"REFERENCES {world.table}(id)"]}],
        )
        rows = await all_rows(server, world)
        await admin.database.create(
            links, [{"note": rows["ann"][0]["id"]}, {"note": rows["ben"][0]["id"]}]
        )
        ann = await client.auth.sign_in_with_token(world.tokens["ann"])
        found = await ann.database.query(links).populate("note").get()
        titles = sorted(str(r["note"]["title"]) if r["note"] else "-" for r in found)
        assert titles == ["-", "ann 1"]
        link = next(
            r for r in await admin.database.query(links).get() if r["note"] == rows["ben"][0]["id"]
        )
        alone = await ann.database.get(links, link["id"], populate=["note"])
        assert alone["note"] is None


async def test_binding_is_for_policy_admins_and_its_input_is_checked(
    server: RunningServer,
) -> None:
    world = await make_world(server, bind=False)
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        with pytest.raises(NotFoundError) as missing:
            await admin.policies.bind("table", unique("nothing_"), world.kind)
        assert missing.value.details["field"] == "table"
        ann = await client.auth.sign_in_with_token(world.tokens["ann"])
        with pytest.raises(AuthorizationError):
            await ann.policies.bind("table", world.table, world.kind)
        with pytest.raises(AuthorizationError):
            await ann.policies.unbind("table", world.table)
    token = await access_token(server, ADMIN_USERNAME, ADMIN_PASSWORD)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:
        for body, field in (
            ({"target": "table", "name": world.table, "resource_kind": "a\x00b"}, "resource_kind"),
            ({"target": "tables", "name": world.table, "resource_kind": "k"}, "target"),
            ({"target": "table", "name": "x" * 201, "resource_kind": "k"}, "name"),
            ({"target": "table", "name": world.table, "resource_kind": "k", "extra": 1}, "extra"),
        ):
            answer = await http.post("/api/v1/policies/bind", json=body)
            assert answer.status_code == 400, body
            assert field in str(answer.json()["error"]), answer.json()
    async with AsyncClient(api_url=server.url) as client:
        ann = await client.auth.sign_in_with_token(world.tokens["ann"])
        assert await ann.database.query(world.table).count() == 4  # nothing was bound


async def test_analytics_cannot_read_around_the_policies(server: RunningServer) -> None:
    world = await make_world(server)
    report = unique("notes_count")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.analytics.define(report, f"SELECT count(*) AS n FROM {world.table}")
        ann = await client.auth.sign_in_with_token(world.tokens["ann"])
        with pytest.raises(AuthorizationError) as refused:
            await ann.analytics.execute(report)
        assert refused.value.code == "policy_denied"
        assert (await admin.analytics.execute(report))["data"] == [{"n": 4}]  # reads every row
        await admin.policies.put(owners_only(world.kind, world.role, "true"))
        assert (await ann.analytics.execute(report))["data"] == [{"n": 4}]
