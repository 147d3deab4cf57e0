"""`client.functions`: deploy Python functions and run them (Taruvi functions).

A handler is `def main(params, user_data)` (or `async def`, or a generator, whose items
`stream` yields). It runs in the server's sandboxed workers, never in your process.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from roost.client._core.functions import Source, deploy_source
from roost.client._core.namespace import Namespace, add_given

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncFunctions(Namespace):
    """Functions of the tenant: deploy, versions, run, results (scopes `functions:deploy`,
    `functions:execute`, `functions:read`)."""

    _client: AsyncClient

    async def deploy(
        self,
        name: str,
        source: Source | None = None,
        *,
        path: Source | None = None,
        entrypoint: str = "main",
        description: str = "",
        timeout: float | None = None,  # noqa: ASYNC109 - the function's own, on the server
        memory_mb: int | None = None,
        execution_mode: str = "both",
        secrets: list[str] | None = None,
        scopes: list[str] | None = None,
        params_schema: dict[str, Any] | None = None,
        app: str | None = None,
    ) -> dict[str, Any]:
        """Deploy a new version of function `name` and make it the active one. `source` is
        the code (a string), or a `.py` file, a folder or a zip (a path); `entrypoint` is the
        handler, `function` or `module:function`. `secrets` arrive as environment variables;
        `scopes` bound what the function may do when it calls Roost back (never more than its
        caller); `params_schema` (JSON Schema) checks params before each run.

        Example:
            await client.functions.deploy(
                "hello", "def main(params, user_data):\\n    return {'hi': params['name']}\\n"
            )
            await client.functions.deploy("orders", path="functions/orders/", scopes=["kv:read"])
        """
        body: dict[str, Any] = {
            "name": name,
            **deploy_source(source, path, entrypoint),
            "description": description,
            "execution_mode": execution_mode,
            "secrets": secrets or [],
            "scopes": scopes or [],
        }
        add_given(body, timeout=timeout, memory_mb=memory_mb, params_schema=params_schema, app=app)
        result: dict[str, Any] = await self._client.call("functions.deploy", body)
        return result

    async def list(
        self, limit: int = 100, offset: int = 0, *, app: str | None = None
    ) -> dict[str, Any]:
        """`{"results": [...], "count"}`: functions by name, with `name`, `slug`,
        `execution_mode`, `version`, ...

        Example:
            for function in (await client.functions.list(limit=50))["results"]:
                print(function["name"], function["slug"])
        """
        body: dict[str, Any] = {"limit": limit, "offset": offset}
        add_given(body, app=app)
        result: dict[str, Any] = await self._client.call("functions.list", body, idempotent=True)
        return result

    async def get(self, name: str) -> dict[str, Any]:
        """A function and the settings of its active version.

        Example:
            print((await client.functions.get("hello"))["execution_mode"])
        """
        result: dict[str, Any] = await self._client.call(
            "functions.get", {"name": name}, idempotent=True
        )
        return result

    async def versions(self, name: str) -> dict[str, Any]:
        """`{"results": [...], "count"}`: every version, newest first, `active` marked.

        Example:
            latest = (await client.functions.versions("hello"))["results"][0]["version"]
        """
        result: dict[str, Any] = await self._client.call(
            "functions.versions", {"name": name}, idempotent=True
        )
        return result

    async def rollback(self, name: str, version: int) -> dict[str, Any]:
        """Make `version` the active one again (its code and settings alike).

        Example:
            await client.functions.rollback("hello", 1)
        """
        result: dict[str, Any] = await self._client.call(
            "functions.rollback", {"name": name, "version": version}
        )
        return result

    async def delete(self, name: str) -> None:
        """Delete a function, all its versions and its invocations' records.

        Example:
            await client.functions.delete("hello")
        """
        await self._client.call("functions.delete", {"name": name})

    async def execute(
        self,
        name: str,
        params: Any = None,
        *,
        is_async: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - the run's limit, on the server
    ) -> dict[str, Any]:
        """Run a function: `{"data": result, "invocation": {"id", "status", "duration_ms",
        ...}}`. With `is_async=True` it answers at once; poll `get_result(invocation["id"])`
        (the id is also under `celery_task_id` and `task_id`). `timeout` (seconds, at least 1)
        may shorten the function's own, and lets the call wait that long. A handler that
        raises raises FunctionExecutionError (with `.traceback`); one that runs out of time,
        FunctionTimeoutError.

        Example:
            answer = await client.functions.execute("hello", {"name": "Ada"})
            print(answer["data"], answer["invocation"]["duration_ms"])
        """
        body: dict[str, Any] = {"name": name, "params": params, "is_async": is_async}
        add_given(body, timeout=timeout)
        wait = 0.0 if is_async or timeout is None else timeout
        result: dict[str, Any] = await self._client.call("functions.execute", body, wait=wait)
        return result

    async def stream(
        self,
        name: str,
        params: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the run's limit, on the server
    ) -> AsyncGenerator[Any, None]:
        """Run a function whose handler is a generator and yield its items as they come
        (over the realtime connection). Leaving the loop early cancels the run.

        Example:
            async for row in client.functions.stream("export", {"table": "orders"}):
                print(row)
        """
        body: dict[str, Any] = {"name": name, "params": params}
        add_given(body, timeout=timeout)
        async for item in self._client.realtime.stream("functions.stream", body):
            yield item

    async def get_result(self, task_id: str) -> dict[str, Any]:
        """`{"data": {"status", "result", "traceback", "logs", "duration_ms", ...}}` of an
        invocation; status is PENDING, STARTED, SUCCESS, FAILURE or TIMEOUT.

        Example:
            status = (await client.functions.get_result(task_id))["data"]["status"]
        """
        result: dict[str, Any] = await self._client.call(
            "functions.get_result", {"id": task_id}, idempotent=True
        )
        return result

    async def invocations(
        self,
        name: str | None = None,
        *,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """`{"results": [...], "count"}`: invocations, newest first, of one function or all,
        in one status or any.

        Example:
            failed = await client.functions.invocations("hello", status="FAILURE")
        """
        body: dict[str, Any] = {"limit": limit, "offset": offset}
        add_given(body, name=name, status=status)
        result: dict[str, Any] = await self._client.call(
            "functions.invocations", body, idempotent=True
        )
        return result
