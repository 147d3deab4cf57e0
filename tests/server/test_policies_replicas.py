"""A policy change made on one replica is in force on the next call to another: two server
processes on PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from roost import AsyncClient
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    drop_pg_schemas,
    require_postgres,
    require_redis,
)
from tests.policy_documents import allow, key_of, kind_name, resource_policy
from tests.replicas import Cluster
from tests.server.test_policy_rows import make_world, owners_only

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_postgres()
    require_redis()
    cluster = Cluster(tmp_path_factory.mktemp("policy-replicas"))
    cluster.start()
    cluster.start()
    yield cluster
    cluster.stop()
    drop_pg_schemas(cluster.prefix)


async def test_a_change_on_one_replica_holds_on_the_next_call_to_the_other(
    cluster: Cluster,
) -> None:
    kind = kind_name()
    first, second = cluster.replicas[:2]
    user = {"id": "u1", "roles": ["user"]}
    doc = {"kind": kind, "id": "d1", "attr": {"n": 1}}
    async with AsyncClient(api_url=first.url) as one, AsyncClient(api_url=second.url) as two:
        a = await one.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        b = await two.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)

        async def allowed_on_b() -> bool:
            return (await b.policy.check_resources(user, [doc], ["view"]))["d1"]["view"]

        assert not await allowed_on_b()  # b compiles and keeps the tenant's policies now
        for round_ in range(6):  # each change, made on a, in force at once on b
            allowed = round_ % 2 == 0
            rule = allow(["view"], ["user"], "true" if allowed else "false")
            await a.policies.put(resource_policy(kind, [rule]))
            assert await allowed_on_b() is allowed
            assert await allowed_on_b() is allowed  # from the engine b keeps now
        await b.policies.set_globals({"open": True})  # the other way round, and globals
        await b.policies.put(resource_policy(kind, [allow(["view"], ["user"], "G.open")]))
        assert (await a.policy.check_resources(user, [doc], ["view"]))["d1"]["view"]
        await b.policies.set_globals({"open": False})
        assert not (await a.policy.check_resources(user, [doc], ["view"]))["d1"]["view"]
        await a.policies.delete(key_of(kind))
        assert not await allowed_on_b()


async def test_rows_follow_a_change_made_on_the_other_replica_at_once(cluster: Cluster) -> None:
    first, second = cluster.replicas[:2]
    world = await make_world(first, bind=False)
    async with AsyncClient(api_url=first.url) as one, AsyncClient(api_url=second.url) as two:
        admin = await one.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        ann = await two.auth.sign_in_with_token(world.tokens["ann"])
        assert await ann.database.query(world.table).count() == 4  # b keeps the unbound state
        await admin.policies.bind("table", world.table, world.kind)
        assert await ann.database.query(world.table).count() == 2
        await admin.policies.put(owners_only(world.kind, world.role, "false"))
        assert await ann.database.query(world.table).count() == 0
        await admin.policies.put(owners_only(world.kind, world.role))
        assert await ann.database.query(world.table).count() == 2
        await admin.policies.unbind("table", world.table)
        assert await ann.database.query(world.table).count() == 4
