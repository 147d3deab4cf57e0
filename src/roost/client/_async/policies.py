"""`client.policies`: the tenant's Cerbos policies as managed data (put, list, get, delete,
their versions, and the globals their conditions read), and test suites run against them."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from roost.client._core.namespace import Namespace, add_given
from roost.client._core.policies import PolicySource, policy_sources
from roost.client._core.results import decode
from roost.wire.policy import (
    Binding,
    BindingTarget,
    Policy,
    PolicyChange,
    PolicyGlobals,
    PolicyList,
    PolicyTestReport,
    PutPoliciesAnswer,
)

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncPolicies(Namespace):
    """The tenant's policies. Reading needs the scope `policies:read`, changing them
    `policies:admin`. Every change is validated with everything stored (nothing changes when
    anything is wrong, and the ValidationError's `details["issues"]` lists every problem) and
    kept as a version."""

    _client: AsyncClient

    async def put(self, policies: PolicySource | Sequence[PolicySource]) -> PutPoliciesAnswer:
        """Store one or many policies: YAML or JSON text (several documents in one text are
        several policies), objects, or paths (a folder sends every policy file in it). Each
        replaces the stored policy of the same key; one sent again unchanged makes no new
        version.

        Example:
            result = await client.policies.put(Path("policies/"))
            print(result.created, result.updated)
        """
        sources = await asyncio.to_thread(policy_sources, policies)
        answer = await self._client.call("policies.put", {"policies": sources})
        return decode(answer, PutPoliciesAnswer)

    async def list(self) -> PolicyList:
        """Every stored policy (without its document), the tenant's globals and its policy
        revision.

        Example:
            for info in (await client.policies.list()).policies:
                print(info.key, info.updated_by)
        """
        return decode(await self._client.call("policies.list", {}, idempotent=True), PolicyList)

    async def get(self, key: str) -> Policy:
        """One stored policy with its document, by key (as `list` names it).

        Example:
            policy = await client.policies.get("resource.document.vdefault")
        """
        answer = await self._client.call("policies.get", {"key": key}, idempotent=True)
        return decode(answer, Policy)

    async def delete(self, *keys: str) -> int:
        """Delete policies by key, if what stays is still valid (NotFoundError if one is not
        stored). Returns how many were deleted.

        Example:
            await client.policies.delete("resource.document.vdefault")
        """
        answer = await self._client.call("policies.delete", {"keys": list(keys)})
        return int(answer["count"])

    async def versions(
        self, key: str | None = None, *, limit: int = 100, before: int | None = None
    ) -> builtins.list[PolicyChange]:
        """The changes of one policy, or of all of them and the globals, newest first, each
        with what was put, who made it and when. `before`: the `id` of the last change seen,
        for the next page.

        Example:
            history = await client.policies.versions("resource.document.vdefault")
        """
        params: dict[str, Any] = {"limit": limit}
        add_given(params, key=key, before=before)
        answer = await self._client.call("policies.versions", params, idempotent=True)
        return decode(answer, builtins.list[PolicyChange])

    async def set_globals(self, globals: dict[str, Any]) -> PolicyGlobals:
        """Replace the tenant's globals (`G.name` in conditions), over the server's
        (`ROOST_POLICY_GLOBALS`) name by name.

        Example:
            await client.policies.set_globals({"environment": "production"})
        """
        answer = await self._client.call("policies.set_globals", {"globals": globals})
        return decode(answer, PolicyGlobals)

    async def get_globals(self) -> PolicyGlobals:
        """The tenant's globals, and what conditions see (the server's with the tenant's over
        them).

        Example:
            effective = (await client.policies.get_globals()).effective
        """
        answer = await self._client.call("policies.get_globals", {}, idempotent=True)
        return decode(answer, PolicyGlobals)

    async def test(self, suite: str, testdata: Mapping[str, str] | None = None) -> PolicyTestReport:
        """Run a Cerbos test suite (the text of one `*_test.yaml`) against the stored policies,
        on the server; nothing is stored. `testdata`: the documents a suite folder's
        `testdata/` holds, by name (`principals`, `resources`, `auxdata`), as text. Every
        case comes back with the effect expected and the one given; a suite over 1000 cases
        (principals x resources x actions) or text that is not a suite is a ValidationError
        naming the field.

        Example:
            report = await client.policies.test(Path("album_test.yaml").read_text())
            print(report.passed, report.failed, report.ok)
        """
        params: dict[str, Any] = {"suite": suite}
        if testdata is not None:
            params["testdata"] = dict(testdata)
        answer = await self._client.call("policies.test", params, idempotent=True)
        return decode(answer, PolicyTestReport)

    async def bind(
        self,
        target: BindingTarget,
        name: str,
        resource_kind: str,
        *,
        policy_version: str = "",
        scope: str = "",
    ) -> Binding:
        """Guard a table, bucket, stream, queue or function (`target`, `name`) by the
        policies of `resource_kind`: from the next call on, every record, file, event or call
        of it is checked for the caller (`read`, `create`, `update`, `delete` on a table's
        rows). Replaces its binding, if it had one.

        Example:
            await client.policies.bind("table", "notes", "note")
        """
        params: dict[str, Any] = {"target": target, "name": name, "resource_kind": resource_kind}
        add_given(params, policy_version=policy_version or None, scope=scope or None)
        return decode(await self._client.call("policies.bind", params), Binding)

    async def unbind(self, target: BindingTarget, name: str) -> None:
        """Stop guarding a table, bucket, stream, queue or function by policies
        (NotFoundError if it was not bound).

        Example:
            await client.policies.unbind("table", "notes")
        """
        await self._client.call("policies.unbind", {"target": target, "name": name})

    async def bindings(self) -> builtins.list[Binding]:
        """Every table, bucket, stream, queue and function the policies guard.

        Example:
            for binding in await client.policies.bindings():
                print(binding.target, binding.name, binding.resource_kind)
        """
        answer = await self._client.call("policies.bindings", {}, idempotent=True)
        return decode(answer, builtins.list[Binding])
