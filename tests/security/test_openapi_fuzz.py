"""schemathesis over the OpenAPI document, as an admin: no operation answers a server error.

A bounded run with a fixed seed (hypothesis `derandomize`), a few cases per operation, so it
fits in CI; `scripts/fuzz_api.py` runs the long form and prints what it finds. Each case is
generated once and sent to a server on each backend (generating is most of the run's CPU), and
the operations are dealt into shards that run as tests of their own, side by side.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.errors import FailureGroup

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer

CASES_PER_OPERATION = 2
SHARDS = 3
BACKENDS = ("sqlite", "postgresql")


def admin_api_key(url: str) -> str:
    """An API key of every scope (it outlives the sessions a fuzzed logout ends)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        tokens = http.post(
            "/api/v1/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        ).json()
        created = http.post(
            "/api/v1/api_keys/create",
            json={"name": "fuzz", "scopes": ["*"]},
            headers={"authorization": f"Bearer {tokens['access']}"},
        )
        return str(created.json()["key"])


@dataclass
class Target:
    """A fresh server on one backend, called with an admin key of its own."""

    backend: str
    url: str
    session: requests.Session

    @classmethod
    def start(cls, make_server: Callable[..., RunningServer], backend: str) -> Target:
        running = make_server(backend=backend)
        session = requests.Session()
        session.headers["Authorization"] = f"Api-Key {admin_api_key(running.url)}"
        return cls(backend, running.url, session)


@pytest.mark.parametrize("shard", range(SHARDS))
def test_no_operation_answers_a_server_error(
    make_server: Callable[..., RunningServer], shard: int
) -> None:
    targets = [Target.start(make_server, backend) for backend in BACKENDS]
    schema = schemathesis.openapi.from_url(f"{targets[0].url}/api/v1/openapi.json")
    # the key's own tenant: another one is refused before the operation runs
    pinned = {"X-Roost-Tenant": "default"}
    failures: list[str] = []
    statuses: Counter[int] = Counter()

    operations = list(schema.get_all_operations())
    for result in operations[shard::SHARDS]:
        assert isinstance(result, Ok), f"our OpenAPI document is invalid: {result.err()}"
        operation = result.ok()

        @settings(
            max_examples=CASES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case[Any]) -> None:
            for target in targets:
                response = case.call(
                    base_url=target.url, session=target.session, headers=pinned, timeout=60
                )
                statuses[response.status_code] += 1
                try:
                    case.validate_response(response, checks=[not_a_server_error])
                except FailureGroup as exc:  # its message has the answer and a curl line
                    failures.append(f"[{target.backend}] {exc}")

        call()

    assert not failures, "\n".join(failures)
    # a few hundred cases in all, and enough of them valid to reach the operations' own code
    # (about 120 answered 200 over the shards and backends: at least 25 in each shard)
    assert sum(statuses.values()) >= 400 // SHARDS, statuses
    assert statuses[200] >= 25, statuses
