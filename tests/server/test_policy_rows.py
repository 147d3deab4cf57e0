"""A table bound to policies, on a real server over SQLite and PostgreSQL: each user sees and
changes only their own rows, through every door (SDK, REST, batch, WebSocket), and a policy
change (or binding) is in force on the next call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import pytest
from websockets.asyncio.client import connect

from roost import AsyncClient, AuthorizationError, NotFoundError, StreamEvent, TableChange
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.policy_documents import allow, kind_name, resource_policy
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio

PASSWORD = "rows-password-1"
ACTIONS = ["read", "create", "update", "delete"]


class Served(Protocol):
    """A server or a replica: anything with a URL."""

    @property
    def url(self) -> str: ...


@dataclass
class World:
    table: str
    kind: str
    role: str
    users: dict[str, str]  # username -> user id
    tokens: dict[str, str]  # username -> access token


def owners_only(kind: str, role: str, expr: str = "R.attr.owner == P.id") -> dict[str, Any]:
    """Users of `role` may do anything to the rows they own; admins to every row."""
    return resource_policy(kind, [allow(ACTIONS, [role], expr), allow(["*"], ["admin"])])


async def access_token(server: Served, username: str, password: str) -> str:
    """An access token of `username`, for the doors the SDK does not use."""
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(
            f"{server.url}/api/v1/auth/login", json={"username": username, "password": password}
        )
    return str(response.json()["access"])


async def make_world(server: Served, *, bind: bool = True) -> World:
    """A table of notes, a role with database scopes, users ann and ben (and their rows: two
    each), the owners-only policy, and the table bound to it."""
    table, kind, role = unique("notes_"), kind_name(), unique("writer")
    users: dict[str, str] = {}
    tokens: dict[str, str] = {}
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.schema.add_table(
            table, [{"name": "owner", "type": "text"}, {"name": "title", "type": "text"}]
        )
        await admin.roles.create(
            role,
            [
                "database:read",
                "database:write",
                "stream:read",
                "storage:read",
                "storage:write",
                "queue:write",
                "queue:consume",
                "queue:read",
                "analytics:execute",
            ],
        )
        for name in ("ann", "ben"):
            username = unique(name)
            made = await admin.users.create_user(username, PASSWORD, roles=[role])
            users[name] = str(made["id"])
            await admin.database.create(
                table,
                [
                    {"owner": users[name], "title": f"{name} 1"},
                    {"owner": users[name], "title": f"{name} 2"},
                ],
            )
            tokens[name] = await access_token(server, username, PASSWORD)
        await admin.policies.put(owners_only(kind, role))
        if bind:
            await admin.policies.bind("table", table, kind)
    return World(table, kind, role, users, tokens)


async def test_a_user_sees_and_changes_only_their_own_rows_through_the_sdk(
    server: RunningServer,
) -> None:
    world = await make_world(server)
    async with AsyncClient(api_url=server.url) as client:
        ann = await client.auth.sign_in_with_token(world.tokens["ann"])
        mine = await ann.database.query(world.table).get()
        assert sorted(r["title"] for r in mine) == ["ann 1", "ann 2"]
        assert await ann.database.query(world.table).count() == 2
        page = await ann.database.query(world.table).page_size(1).page(2).fetch()
        assert (page["total"], [r["title"] for r in page["rows"]]) == (2, ["ann 2"])
        theirs = (await all_rows(server, world))["ben"]
        with pytest.raises(NotFoundError):
            await ann.database.get(world.table, theirs[0]["id"])
        assert (await ann.database.get(world.table, mine[0]["id"]))["owner"] == world.users["ann"]
        # changes by filters reach only the caller's rows; by id, another's is not found
        changed = await ann.database.update(world.table, {"title": "x"}, filters={"title": "ben 1"})
        assert changed == []
        with pytest.raises(NotFoundError):
            await ann.database.update(world.table, {"title": "x"}, record_id=theirs[0]["id"])
        with pytest.raises(NotFoundError):
            await ann.database.delete(world.table, theirs[0]["id"])
        assert await ann.database.delete(world.table, all=True) == 2
        made = await ann.database.create(world.table, {"owner": world.users["ann"], "title": "n"})
        assert made["title"] == "n"
        assert [r["title"] for r in await ann.database.query(world.table).get()] == ["n"]
    assert sorted(r["title"] for r in (await all_rows(server, world))["ben"]) == ["ben 1", "ben 2"]


async def all_rows(server: RunningServer, world: World) -> dict[str, list[dict[str, Any]]]:
    """Every row of the world's table, by owner name, as the admin reads them."""
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        rows = await admin.database.query(world.table).get()
    names = {v: k for k, v in world.users.items()}
    found: dict[str, list[dict[str, Any]]] = {"ann": [], "ben": []}
    for row in rows:
        found[names[row["owner"]]].append(row)
    return found


async def test_every_door_enforces_the_same_rows(server: RunningServer) -> None:
    world = await make_world(server)
    theirs = (await all_rows(server, world))["ben"][0]["id"]
    headers = {"Authorization": f"Bearer {world.tokens['ann']}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:
        rest = await http.post("/api/v1/database/query", json={"table": world.table})
        assert sorted(r["title"] for r in rest.json()["rows"]) == ["ann 1", "ann 2"]
        got = await http.post("/api/v1/database/get", json={"table": world.table, "id": theirs})
        assert got.status_code == 404
        batch = await http.post(
            "/api/v1/batch",
            json={
                "operations": [
                    {"command": "database.query", "payload": {"table": world.table}},
                    {"command": "database.get", "payload": {"table": world.table, "id": theirs}},
                    {
                        "command": "database.create",
                        "payload": {"table": world.table, "rows": [{"owner": "someone"}]},
                    },
                ]
            },
        )
        listed, refused, forged = batch.json()["results"]
        assert len(listed["payload"]["rows"]) == 2
        assert (refused["status"], refused["error"]["code"]) == ("error", "not_found")
        assert (forged["status"], forged["error"]["code"]) == ("error", "policy_denied")
    url = server.url.replace("http://", "ws://") + "/api/v1/ws"
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(
            json.dumps({"id": 1, "method": "database.query", "params": {"table": world.table}})
        )
        frame = json.loads(await ws.recv())
        assert sorted(r["title"] for r in frame["result"]["rows"]) == ["ann 1", "ann 2"]
        params = {"table": world.table, "id": theirs, "data": {"title": "mine now"}}
        await ws.send(json.dumps({"id": 2, "method": "database.update", "params": params}))
        assert json.loads(await ws.recv())["error"]["code"] == "not_found"
    assert "mine now" not in [r["title"] for r in (await all_rows(server, world))["ben"]]


async def test_a_policy_change_and_a_binding_hold_from_the_next_call(
    server: RunningServer,
) -> None:
    world = await make_world(server, bind=False)
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        ann = await client.auth.sign_in_with_token(world.tokens["ann"])
        assert await ann.database.query(world.table).count() == 4  # not bound: scopes decide
        binding = await admin.policies.bind("table", world.table, world.kind)
        assert (binding.resource_kind, binding.updated_by) == (world.kind, ADMIN_USERNAME)
        assert await ann.database.query(world.table).count() == 2
        await admin.policies.put(owners_only(world.kind, world.role, 'R.attr.title != ""'))
        assert await ann.database.query(world.table).count() == 4
        await admin.policies.put(owners_only(world.kind, world.role, "false"))
        assert await ann.database.query(world.table).count() == 0
        assert [b.name for b in await admin.policies.bindings()].count(world.table) == 1
        await admin.policies.unbind("table", world.table)
        assert await ann.database.query(world.table).count() == 4
        with pytest.raises(NotFoundError):
            await admin.policies.unbind("table", world.table)
        with pytest.raises(AuthorizationError):  # binding is the policy admins' to do
            await ann.policies.bind("table", world.table, "anything")


async def test_a_change_feed_delivers_only_the_records_the_subscriber_may_read(
    server: RunningServer,
) -> None:
    world = await make_world(server)
    ann_id, ben_id = world.users["ann"], world.users["ben"]
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        ann = await client.auth.sign_in_with_token(world.tokens["ann"])
        changes: list[TableChange] = []
        await ann.database.subscribe(world.table, changes.append)
        theirs = await admin.database.create(world.table, {"owner": ben_id, "title": "b"})
        mine = await admin.database.create(world.table, {"owner": ann_id, "title": "a"})
        await admin.database.update(world.table, {"title": "b2"}, record_id=theirs["id"])
        await admin.database.update(world.table, {"title": "a2"}, record_id=mine["id"])
        await admin.database.delete(world.table, theirs["id"])
        await admin.database.delete(world.table, mine["id"])
        await wait_until(lambda: len(changes) >= 3)
        seen = [(c.type, c.record.get("title")) for c in changes]
        assert seen == [("insert", "a"), ("update", "a2"), ("delete", "a2")]
        # a policy change holds from the next event on
        await admin.policies.put(owners_only(world.kind, world.role, "true"))
        await admin.database.create(world.table, {"owner": ben_id, "title": "open"})
        await wait_until(lambda: len(changes) == 4)
        assert changes[-1].record["title"] == "open"


async def test_a_bound_stream_delivers_only_the_events_the_subscriber_may_read(
    server: RunningServer,
) -> None:
    world = await make_world(server, bind=False)
    room = unique("inbox-")
    ann_id, ben_id = world.users["ann"], world.users["ben"]
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.policies.put(owners_only(world.kind, world.role, "R.attr.data.to == P.id"))
        await admin.policies.bind("stream", room, world.kind)
        ann = await client.auth.sign_in_with_token(world.tokens["ann"])
        events: list[StreamEvent] = []
        await ann.stream.subscribe(room, events.append)
        await admin.stream.publish(room, "note", {"to": ben_id, "text": "for ben"})
        await admin.stream.publish(room, "note", {"to": ann_id, "text": "for ann"})
        await admin.stream.publish(room, "note", {"text": "for nobody"})
        await admin.stream.publish(room, "note", {"to": ann_id, "text": "again"})
        await wait_until(lambda: len(events) >= 2)
        assert [e.data["text"] for e in events] == ["for ann", "again"]
        history = await ann.stream.history(room, from_offset=0)
        assert [e.data["text"] for e in history.events] == ["for ann", "again"]
        assert len((await admin.stream.history(room, from_offset=0)).events) == 4


async def test_a_bound_bucket_serves_lists_and_links_only_files_the_caller_may_read(
    server: RunningServer,
) -> None:
    world = await make_world(server, bind=False)
    bucket = unique("files-")
    ann_id, ben_id = world.users["ann"], world.users["ben"]
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.storage.create_bucket(bucket)
        files = admin.storage.from_(bucket)
        await files.upload(
            [
                {"file": b"ann's", "name": f"{ann_id}/a.txt"},
                {"file": b"ben's", "name": f"{ben_id}/b.txt"},
            ]
        )
        await admin.policies.put(
            owners_only(world.kind, world.role, 'R.attr.name.startsWith(P.id + "/")')
        )
        await admin.policies.bind("bucket", bucket, world.kind)
        ann = await client.auth.sign_in_with_token(world.tokens["ann"])
        mine = ann.storage.from_(bucket)
        assert [f["name"] for f in await mine.list()] == [f"{ann_id}/a.txt"]
        assert await mine.download(f"{ann_id}/a.txt") == b"ann's"
        with pytest.raises(NotFoundError):
            await mine.download(f"{ben_id}/b.txt")
        with pytest.raises(NotFoundError):
            await mine.create_signed_url(f"{ben_id}/b.txt")
        with pytest.raises(NotFoundError):
            await mine.delete(f"{ben_id}/b.txt")
        with pytest.raises(AuthorizationError):  # nor can ann write over ben's files
            await mine.upload([{"file": b"mine now", "name": f"{ben_id}/b.txt"}])
        with pytest.raises(AuthorizationError):  # nor hand hers to him
            await mine.update(f"{ann_id}/a.txt", {"name": f"{ben_id}/a.txt"})
        await mine.upload([{"file": b"new", "name": f"{ann_id}/new.txt"}])
        link = await mine.create_signed_url(f"{ann_id}/new.txt")
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as anonymous:
            assert (await anonymous.get(link["signed_url"])).content == b"new"
        assert await files.download(f"{ben_id}/b.txt") == b"ben's"


async def test_a_bound_queue_takes_only_what_the_policies_allow(server: RunningServer) -> None:
    world = await make_world(server, bind=False)
    queue, ann_id = unique("jobs-"), world.users["ann"]
    rules = [
        allow(["publish"], [world.role], "R.attr.message.from == P.id && R.attr.priority < 9"),
        allow(["consume", "read", "replay"], [world.role]),
    ]
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.policies.put(resource_policy(world.kind, rules))
        await admin.policies.bind("queue", queue, world.kind)
        ann = await client.auth.sign_in_with_token(world.tokens["ann"])
        await ann.queue.publish(queue, {"from": ann_id, "job": 1})
        for message, priority in (({"from": "someone"}, 5), ({"from": ann_id}, 9)):
            with pytest.raises(AuthorizationError) as refused:
                await ann.queue.publish(queue, message, priority=priority)
            assert refused.value.code == "policy_denied"
        assert (await ann.queue.stats(queue)).ready == 1
        taken = await ann.queue.consume(queue, timeout=0)
        assert taken is not None
        await ann.queue.ack(queue, taken.message_id)
        with pytest.raises(AuthorizationError):
            await ann.queue.purge(queue)
        with pytest.raises(AuthorizationError):
            await ann.queue.configure(queue, max_deliveries=3)
        assert await ann.queue.replay(queue) == 0  # `replay` is an action of its own
        with pytest.raises(AuthorizationError):  # deleting dead letters is a `purge`
            await ann.queue.delete_dead_letters(queue)
