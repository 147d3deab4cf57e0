"""A runaway analytics query is stopped at the time limit, and the server carries on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost import Client, ServiceUnavailableError
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer

ENDLESS = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_runaway_query_is_stopped_and_the_connection_reused(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    server = make_server(backend, analytics_time_limit=0.5)
    with Client(api_url=server.url, max_retries=0) as client:
        admin = client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        admin.schema.add_table("numbers", [{"name": "n", "type": "integer"}])
        admin.analytics.define("endless", ENDLESS)
        with pytest.raises(ServiceUnavailableError) as caught:
            admin.analytics.execute("endless")
        assert "0.5 s" in caught.value.message
        # every pooled connection still reads and writes
        for n in range(12):
            admin.database.create("numbers", {"n": n})
        assert admin.database.query("numbers").count() == 12
