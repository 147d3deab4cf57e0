"""schemathesis over the OpenAPI document, as an admin: no operation answers a server error.

A bounded run with a fixed seed (hypothesis `derandomize`), a few cases per operation, so it
fits in CI; `scripts/fuzz_api.py` runs the long form and prints what it finds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_no_operation_answers_a_server_error(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    running = make_server(backend=backend)
    schema = schemathesis.openapi.from_url(f"{running.url}/api/v1/openapi.json")
    session = requests.Session()
    session.headers["Authorization"] = f"Api-Key {admin_api_key(running.url)}"
    # the key's own tenant: another one is refused before the operation runs
    pinned = {"X-Roost-Tenant": "default"}
    failures: list[str] = []
    statuses: Counter[int] = Counter()

    for result in schema.get_all_operations():
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
            response = case.call(base_url=running.url, session=session, headers=pinned, timeout=60)
            statuses[response.status_code] += 1
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except FailureGroup as exc:  # its message has the answer and a curl line
                failures.append(str(exc))

        call()

    assert not failures, "\n".join(failures)
    assert sum(statuses.values()) >= 200  # a few hundred cases,
    assert statuses[200] >= 50  # and enough of them valid to reach the operations' own code
