"""The tenant's policies as managed data (`policies.*`): put, list, get, delete, their
versions and the tenant's globals, and Cerbos test suites run against them (`policies.test`).
Reading needs `policies:read`, changing `policies:admin`. Storage, validation and the
compiled engine are `policystore.py`'s; running suites is `roost.policy.testing`'s."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import policies, policy_changes, policy_state, utcnow
from roost.errors import NotFoundError, ValidationError
from roost.services.context import Context
from roost.services.payloads import json_text
from roost.services.policystore import (
    Change,
    Stored,
    apply_change,
    candidates,
    effective_globals,
    policy_engine,
    read_bindings,
    read_stored,
    write_binding,
)
from roost.services.registry import operation
from roost.services.schema import load_schema
from roost.wire.common import Done, Empty
from roost.wire.policy import (
    MAX_TEST_CASES,
    Binding,
    BindingRef,
    BindRequest,
    GlobalsRequest,
    Policy,
    PolicyChange,
    PolicyGlobals,
    PolicyInfo,
    PolicyKeys,
    PolicyList,
    PolicyRef,
    PolicyTestCase,
    PolicyTestData,
    PolicyTestError,
    PolicyTestReport,
    PolicyTestRequest,
    PolicyVersionsRequest,
    PutPoliciesAnswer,
    PutPoliciesRequest,
)

if TYPE_CHECKING:
    from roost.policy import Engine
    from roost.policy.testing import Fixtures, Report, Suite

# The policy engine and its test runner are imported by `policies.test` when it runs, first
# in the worker thread that parses the suite: the server starts without them.

_GLOBALS_LIMIT = 64 * 1024
_GLOBALS_COMPILES = 3  # sets of globals, other than the tenant's, one policies.test compiles


@operation("policies.put", scope="policies:admin")
async def put(ctx: Context, params: PutPoliciesRequest) -> PutPoliciesAnswer:
    """Store policies (YAML or JSON texts, each one document or several, or objects): each
    replaces the stored policy of the same key. The new set, with everything stored, is
    validated whole; on any problem nothing changes and the error lists every one. A policy
    sent again unchanged makes no new version."""
    # reading up to MAX_SOURCES texts of 1 MiB is long work: not on the event loop
    found, issues = await asyncio.to_thread(candidates, params.policies)

    def plan(stored: Stored) -> Change:
        return Change(puts=[c for c in found if stored.documents.get(c.key) != c.document])

    revision, stored, change = await apply_change(ctx, plan, "policies", issues)
    changed = {candidate.key for candidate in change.puts}
    return PutPoliciesAnswer(
        revision=revision,
        created=[c.key for c in found if c.key in changed and c.key not in stored.documents],
        updated=[c.key for c in found if c.key in changed and c.key in stored.documents],
        unchanged=[c.key for c in found if c.key not in changed],
    )


@operation("policies.delete", scope="policies:admin")
async def delete(ctx: Context, params: PolicyKeys) -> Done:
    """Delete policies by key, if what stays is still a valid set (a derived roles policy that
    others import cannot go alone)."""
    keys = list(dict.fromkeys(params.keys))

    def plan(stored: Stored) -> Change:
        if missing := [key for key in keys if key not in stored.documents]:
            more = f" (and {len(missing) - 1} more)" if missing[1:] else ""
            raise NotFoundError(
                f"no policy {missing[0]!r}{more}", details={"field": "keys", "missing": missing}
            )
        return Change(deletes=keys)

    await apply_change(ctx, plan, "keys")
    return Done(count=len(keys))


@operation("policies.set_globals", scope="policies:admin")
async def set_globals(ctx: Context, params: GlobalsRequest) -> PolicyGlobals:
    """Replace the tenant's globals (`G.x` in conditions), over the server's
    (`ROOST_POLICY_GLOBALS`) key by key; `{}` leaves the server's alone. At most 64 KiB of
    JSON. The policies are validated with them first."""
    json_text(params.globals, "globals", _GLOBALS_LIMIT)
    own = dict(params.globals)
    revision, _, _ = await apply_change(ctx, lambda _: Change(globals=own), "globals")
    return PolicyGlobals(
        globals=own, effective=effective_globals(ctx.platform, own), revision=revision
    )


@operation("policies.bind", scope="policies:admin")
async def bind(ctx: Context, params: BindRequest) -> Binding:
    """Guard a table, bucket, stream, queue or function by the policies of `resource_kind`
    (replacing its binding, if it had one): from the next call on, on every replica, each of
    its records, files, events or calls is checked for the caller (scopes still apply first).
    A table must exist; the others may be bound before they are made."""
    if params.target == "table":
        (await load_schema(ctx.platform, ctx.tenant)).definition(params.name)
    binding = Binding(
        target=params.target,
        name=params.name,
        resource_kind=params.resource_kind,
        policy_version=params.policy_version,
        scope=params.scope,
        updated_at=utcnow(),
        updated_by=ctx.require_principal().username,
    )
    await write_binding(ctx, binding)
    return binding


@operation("policies.unbind", scope="policies:admin")
async def unbind(ctx: Context, params: BindingRef) -> Done:
    """Stop guarding a table, bucket, stream, queue or function by policies (its scopes alone
    decide again)."""
    if not await write_binding(ctx, params):
        raise NotFoundError(
            f"{params.target} {params.name!r} is not bound to policies", details={"field": "name"}
        )
    return Done(count=1)


@operation("policies.bindings", scope="policies:read", read_only=True)
async def bindings(ctx: Context, params: Empty) -> list[Binding]:
    """Every table, bucket, stream, queue and function the policies guard, with its kind."""
    return await read_bindings(ctx.platform, ctx.tenant)


@operation("policies.list", scope="policies:read", read_only=True)
async def list_policies(ctx: Context, params: Empty) -> PolicyList:
    """Every stored policy (without its document) by key, the tenant's globals and its policy
    revision."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        state = (await conn.execute(select(policy_state))).mappings().one()
        rows = (
            (await conn.execute(select(*_INFO_COLUMNS).order_by(policies.c.key))).mappings().all()
        )
    return PolicyList(
        policies=[PolicyInfo(**row) for row in rows],
        globals=dict(state["globals"]),
        revision=state["revision"],
    )


@operation("policies.get", scope="policies:read", read_only=True)
async def get(ctx: Context, params: PolicyRef) -> Policy:
    """One stored policy with its document."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        row = (
            (await conn.execute(select(policies).where(policies.c.key == params.key)))
            .mappings()
            .first()
        )
    if row is None:
        raise NotFoundError(f"no policy {params.key!r}", details={"field": "key"})
    return Policy(**dict(row))


@operation("policies.get_globals", scope="policies:read", read_only=True)
async def get_globals(ctx: Context, params: Empty) -> PolicyGlobals:
    """The tenant's globals and what conditions see (the server's with the tenant's over them)."""
    stored = await read_stored(ctx.platform, ctx.tenant)
    return PolicyGlobals(
        globals=stored.globals,
        effective=effective_globals(ctx.platform, stored.globals),
        revision=stored.revision,
    )


@operation("policies.versions", scope="policies:read", read_only=True)
async def versions(ctx: Context, params: PolicyVersionsRequest) -> list[PolicyChange]:
    """The changes of one policy (`key`), or of every policy and the globals, newest first,
    each with what was put, who made it and when. Page with `before` (the last `id` seen)."""
    query = select(policy_changes).order_by(policy_changes.c.id.desc()).limit(params.limit)
    if params.key is not None:
        query = query.where(policy_changes.c.key == params.key)
    if params.before is not None:
        query = query.where(policy_changes.c.id < params.before)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(query)).mappings().all()
    if not rows and params.key is not None and params.before is None:
        raise NotFoundError(f"policy {params.key!r} never existed", details={"field": "key"})
    return [_change(row) for row in rows]


@operation("policies.test", scope="policies:read", read_only=True)
async def test(ctx: Context, params: PolicyTestRequest) -> PolicyTestReport:
    """Run a Cerbos test suite (the text of one `*_test.yaml`) against the tenant's stored
    policies, with `testdata` as a suite folder's `testdata/` holds it: every case with the
    effect expected and the one given, and the counts. Nothing is stored. At most 1000 cases
    (principals x resources x actions) and 3 sets of `globals` in the tests' options besides
    the tenant's; conditions have the cost budget of `policy.check`."""
    # off the event loop: a megabyte of YAML (the suite and three testdata documents) is
    # a second or more of parsing, which would hold every other request up meanwhile
    testdata = params.testdata or PolicyTestData()
    suite, fixtures = await asyncio.to_thread(_parse_suite, params.suite, testdata)
    from roost.policy import Engine  # loaded by `_parse_suite`'s thread: no import work here
    from roost.policy.testing import Engines, OverLimit, Report, run_suite

    engine = await policy_engine(ctx)
    stored = await read_stored(ctx.platform, ctx.tenant)
    base = effective_globals(ctx.platform, stored.globals)
    enforcement = ctx.platform.settings.policy_schema_enforcement

    def compile_with(globals_: dict[str, Any]) -> Engine:
        return Engine.from_policies(list(stored.documents.values()), globals_, enforcement)

    def run() -> Report:
        report = Report()
        engines = Engines(engine, base, compile_with, max_compiles=_GLOBALS_COMPILES)
        run_suite(engines, "suite", suite, fixtures, report, max_cases=MAX_TEST_CASES)
        return report

    try:
        report = await asyncio.to_thread(run)
    except OverLimit as exc:
        raise ValidationError(str(exc), details={"field": "suite"}) from None
    return _report(report)


def _parse_suite(text: str, testdata: PolicyTestData) -> tuple[Suite, Fixtures]:
    """The suite and its fixtures over the testdata's; a 400 naming the text that is not."""
    from roost.policy.testing import TESTDATA, Fixtures, Suite, SuiteInvalid, parse

    try:
        suite = parse(text, Suite)
    except SuiteInvalid as exc:
        raise ValidationError(f"suite: {exc}", details={"field": "suite"}) from None
    shared = Fixtures()
    for stem in TESTDATA:
        if document := getattr(testdata, stem):
            try:
                shared = parse(document, Fixtures).over(shared)
            except SuiteInvalid as exc:
                field = f"testdata.{stem}"
                raise ValidationError(f"{field}: {exc}", details={"field": field}) from None
    return suite, suite.over(shared)


def _report(report: Report) -> PolicyTestReport:
    return PolicyTestReport(
        cases=[
            PolicyTestCase(
                suite=case.suite,
                test=case.test,
                principal=case.principal,
                resource=case.resource,
                action=case.action,
                expected=case.expected,
                actual=case.actual,
                status=case.status,
                passed=case.status == "passed",
                problems=list(case.problems),
            )
            for case in report.cases
        ],
        errors=[PolicyTestError(error.where, error.message) for error in report.errors],
        passed=report.count("passed"),
        failed=report.count("failed"),
        skipped=report.count("skipped"),
    )


_INFO_COLUMNS = [
    policies.c[name]
    for name in (
        "key",
        "kind",
        "name",
        "version",
        "scope",
        "disabled",
        "revision",
        "updated_at",
        "updated_by",
    )
]


def _change(row: RowMapping) -> PolicyChange:
    document: Any = row["document"]
    return PolicyChange(
        id=row["id"],
        revision=row["revision"],
        key=row["key"],
        change=row["change"],
        document=dict(document) if document is not None else None,
        at=row["at"],
        by=row["by"],
    )
