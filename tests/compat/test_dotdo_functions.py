"""DotDo's "Making RPC Calls" examples against your own methods: deployed functions are the
RPC methods `fn.<name>`, unary or streamed as their handler is (DotDo's hosted `ai.generate`
is no Roost method: tests/compat/_async/test_dotdo.py pins its `RpcError`). On the servers
that run functions, SQLite and PostgreSQL; DotDo is async, as the seed is."""

from __future__ import annotations

import httpx
import pytest

from roost.compat.dotdo import DotDo, RpcError
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer

GENERATE = "def main(params, user_data):\n    return {'text': params['prompt'] + ' there'}\n"
GENERATE_STREAM = (
    "def main(params, user_data):\n"
    "    for word in params['prompt'].split():\n"
    "        yield {'text': word}\n"
)
FAILS = "def main(params, user_data):\n    raise ValueError('no model')\n"


@pytest.fixture(scope="module")
def dotdo_functions(functions_server: RunningServer) -> tuple[str, str]:
    """The functions server's URL with `generate`, `generate-stream` and `fails` deployed,
    and an API key of its admin."""
    url = functions_server.url
    login = httpx.post(
        f"{url}/api/v1/auth/login",
        json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD},
        timeout=60,
    )
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['access']}"}
    for name, source in (
        ("generate", GENERATE),
        ("generate-stream", GENERATE_STREAM),
        ("fails", FAILS),
    ):
        deployed = httpx.post(
            f"{url}/api/v1/functions/deploy",
            json={"name": name, "code": source},
            headers=headers,
            timeout=60,
        )
        deployed.raise_for_status()
    key = httpx.post(
        f"{url}/api/v1/api_keys/create", json={"name": "dotdo"}, headers=headers, timeout=60
    )
    key.raise_for_status()
    return url, str(key.json()["key"])


@pytest.mark.anyio
async def test_rpc_calls_and_streams_run_your_functions(dotdo_functions: tuple[str, str]) -> None:
    url, api_key = dotdo_functions
    async with DotDo(api_key=api_key, endpoint=url.replace("http://", "ws://") + "/rpc") as client:
        # Making RPC Calls
        result = await client.call("fn.generate", {"prompt": "Hello"})
        assert result == {"text": "Hello there"}

        # With timeout override
        result = await client.call("fn.generate", {"prompt": "Hi"}, timeout=120.0)
        assert result == {"text": "Hi there"}

        # Streaming responses
        chunks = []
        async for chunk in client.stream("fn.generate-stream", {"prompt": "Hello big world"}):
            chunks.append(chunk["text"])
        assert chunks == ["Hello", "big", "world"]

        # A method that fails raises the seed's RpcError
        with pytest.raises(RpcError):
            await client.call("fn.fails", {})
        with pytest.raises(RpcError):
            await client.call("fn.no-such-function", {})
