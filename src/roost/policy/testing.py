"""Cerbos policy test suites (`*_test.yaml`) run against a folder of policies, in process.

A suite names principals, resources and auxiliary data (its own, and the shared ones in a
`testdata/` folder beside it: `principals.yaml`, `resources.yaml`, `auxdata.yaml`, with their
groups), then tests: each checks every input principal against every input resource for every
input action. An action that no expectation names is expected to be denied, as in Cerbos.
Expected outputs are compared by rule (`src`) and value; other outputs do not matter.

Options (`now`, `globals`, `defaultPolicyVersion`, `defaultScope`, `lenientScopeSearch`) are
the suite's, or the test's own if it has any (as in Cerbos, they then replace the suite's
whole). Unlike Cerbos, a test without `now` whose policies call `now()` runs at the present
time instead of failing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from roost.errors import ValidationError
from roost.policy.engine import Engine
from roost.policy.loader import load
from roost.policy.names import DEFAULT_VERSION, sanitize, scope_parents
from roost.policy.yamlsafe import YamlRefused, load_all
from roost.wire.policy import POLICY_SUFFIXES, Principal, Resource

__all__ = [
    "TESTDATA",
    "Case",
    "Engines",
    "Fixtures",
    "Report",
    "Suite",
    "SuiteError",
    "SuiteInvalid",
    "OverLimit",
    "find_suites",
    "parse",
    "run_suite",
    "run_suites",
]

Effect = Literal["EFFECT_ALLOW", "EFFECT_DENY"]
_P = TypeVar("_P", Principal, Resource)
_S = TypeVar("_S", bound="Fixtures")
TESTDATA = ("principals", "resources", "auxdata")
"""The files of a `testdata` folder (each `.yaml`, `.yml` or `.json`), in reading order."""
DENY: Effect = "EFFECT_DENY"
_NAMED_PER_CASE = 10
"""Principals and resources a run's tests may name (inputs and expectations) per case allowed."""


class _Spec(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    pass


class Options(_Spec):
    now: str | None = None
    lenient_scope_search: bool | None = None
    globals: dict[str, Any] | None = None
    default_policy_version: str | None = None
    default_scope: str | None = None


class PrincipalGroup(_Spec):
    principals: list[str]


class ResourceGroup(_Spec):
    resources: list[str]


class AuxData(_Spec):
    jwt: dict[str, Any] = msgspec.field(default_factory=dict)


class Input(_Spec):
    actions: list[str]
    principals: list[str] = msgspec.field(default_factory=list)
    resources: list[str] = msgspec.field(default_factory=list)
    principal_groups: list[str] = msgspec.field(default_factory=list)
    resource_groups: list[str] = msgspec.field(default_factory=list)
    aux_data: str = ""


class ExpectedOutput(_Spec):
    src: str
    val: Any = None


class OutputExpectations(_Spec):
    action: str
    expected: list[ExpectedOutput]


class Expectation(_Spec):
    actions: dict[str, Effect]
    principal: str = ""
    resource: str = ""
    principals: list[str] = msgspec.field(default_factory=list)
    resources: list[str] = msgspec.field(default_factory=list)
    principal_groups: list[str] = msgspec.field(default_factory=list)
    resource_groups: list[str] = msgspec.field(default_factory=list)
    outputs: list[OutputExpectations] = msgspec.field(default_factory=list)


class SuiteTest(_Spec):
    name: str
    input: Input
    expected: list[Expectation] = msgspec.field(default_factory=list)
    description: str = ""
    skip: bool = False
    skip_reason: str = ""
    options: Options | None = None


class Fixtures(_Spec):
    """A suite's named things, or a `testdata` file's (which holds one kind of them)."""

    principals: dict[str, Principal] = msgspec.field(default_factory=dict)
    resources: dict[str, Resource] = msgspec.field(default_factory=dict)
    aux_data: dict[str, AuxData] = msgspec.field(default_factory=dict)
    principal_groups: dict[str, PrincipalGroup] = msgspec.field(default_factory=dict)
    resource_groups: dict[str, ResourceGroup] = msgspec.field(default_factory=dict)
    schema: str = msgspec.field(default="", name="$schema")

    def over(self, base: Fixtures) -> Fixtures:
        """These fixtures, with `base`'s where these have none of the name."""
        return Fixtures(
            principals={**base.principals, **self.principals},
            resources={**base.resources, **self.resources},
            aux_data={**base.aux_data, **self.aux_data},
            principal_groups={**base.principal_groups, **self.principal_groups},
            resource_groups={**base.resource_groups, **self.resource_groups},
        )


class Suite(Fixtures):
    name: str = ""
    tests: list[SuiteTest] = msgspec.field(default_factory=list)
    description: str = ""
    skip: bool = False
    skip_reason: str = ""
    options: Options = msgspec.field(default_factory=Options)


class Case(msgspec.Struct, frozen=True):
    """One action of one principal on one resource in one test, and how it came out."""

    file: str
    suite: str
    test: str
    principal: str
    resource: str
    action: str
    expected: Effect
    actual: Effect | Literal[""]  # "" when skipped
    status: Literal["passed", "failed", "skipped"]
    problems: tuple[str, ...] = ()  # why it failed, beyond the effect (outputs)


class SuiteError(msgspec.Struct, frozen=True):
    """A suite or test that could not run: the file, what, and why."""

    file: str
    where: str
    message: str


class Report(msgspec.Struct):
    cases: list[Case] = msgspec.field(default_factory=list)
    errors: list[SuiteError] = msgspec.field(default_factory=list)
    expected_pairs: int = 0  # (principal, resource) pairs the expectations named, all tests
    named: int = 0  # principals and resources the tests' inputs and expectations named

    @property
    def failed(self) -> bool:
        return bool(self.errors) or any(case.status == "failed" for case in self.cases)

    def count(self, status: str) -> int:
        return sum(1 for case in self.cases if case.status == status)


class _TestError(Exception):
    """A test names something its suite does not define, or cannot run for another reason."""


class SuiteInvalid(_TestError):
    """A suite or testdata text is not YAML within the limits, or not a suite's shape."""


class OverLimit(Exception):
    """A run would do more work than it may: more cases, or more compilations of the policies
    (one per set of globals the tests ask for)."""


def find_suites(folder: Path) -> list[Path]:
    """The test suites under `folder`: `*_test.yaml`, `.yml` or `.json`, not hidden."""
    return sorted(
        path
        for path in folder.rglob("*_test.*")
        if path.suffix in POLICY_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def run_suites(folder: Path, globals_: dict[str, Any] | None = None) -> Report:
    """Run every suite under `folder` against the policies in it (PolicyValidationError if
    they are not a valid set)."""
    base = dict(globals_ or {})
    engines = Engines(Engine(load(folder, base)), base, lambda other: Engine(load(folder, other)))
    report = Report()
    for path in find_suites(folder):
        name = str(path.relative_to(folder))
        try:
            suite = parse(_text(path), Suite)
            fixtures = suite.over(_testdata(path.parent))
        except _TestError as exc:
            report.errors.append(SuiteError(name, "suite", str(exc)))
            continue
        run_suite(engines, name, suite, fixtures, report)
    return report


def run_suite(
    engines: Engines,
    file: str,
    suite: Suite,
    fixtures: Fixtures,
    report: Report,
    max_cases: int | None = None,
) -> None:
    """Run one parsed suite (its `fixtures`: its own over its testdata) into `report`;
    OverLimit, before running the test that would pass it, when the report would hold more
    than `max_cases` cases (or from `engines`, past its compilations)."""
    for test in suite.tests:
        try:
            cases = _run_test(engines, file, suite, fixtures, test, max_cases, report)
            report.cases.extend(cases)
        except _TestError as exc:
            report.errors.append(SuiteError(file, f"{suite.name} / {test.name}", str(exc)))


def parse(text: str, kind: type[_S]) -> _S:
    """One suite or testdata document (YAML or JSON) as `kind`; SuiteInvalid saying why not."""
    try:
        documents = load_all(text)
    except YamlRefused as exc:
        raise SuiteInvalid(str(exc)) from None
    if len(documents) != 1:
        raise SuiteInvalid("a test suite file holds one YAML document")
    try:
        return msgspec.convert(documents[0], kind)
    except msgspec.ValidationError as exc:
        raise SuiteInvalid(str(exc)) from None


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _TestError(str(exc)) from None


def _testdata(folder: Path) -> Fixtures:
    found = Fixtures()
    for stem in TESTDATA:
        for suffix in POLICY_SUFFIXES:
            path = folder / "testdata" / f"{stem}{suffix}"
            if path.is_file():
                found = parse(_text(path), Fixtures).over(found)
    return found


class Engines:
    """The policies compiled once per set of globals the tests ask for: `engine` is compiled
    with `globals_`; `compile` compiles them with others."""

    def __init__(
        self,
        engine: Engine,
        globals_: dict[str, Any],
        compile: Callable[[dict[str, Any]], Engine],
        max_compiles: int | None = None,
    ) -> None:
        self.globals = globals_
        self.compile = compile
        self.compiles_left = max_compiles
        self.by_globals = {_globals_key(globals_): engine}

    def get(self, globals_: dict[str, Any] | None) -> Engine:
        """The engine for a test's globals (None: the base ones)."""
        wanted = self.globals if globals_ is None else globals_
        key = _globals_key(wanted)
        if key not in self.by_globals:
            if self.compiles_left is not None:
                if self.compiles_left <= 0:
                    raise OverLimit("the tests ask for more sets of globals than may be compiled")
                self.compiles_left -= 1
            try:
                self.by_globals[key] = self.compile(wanted)
            except ValidationError as exc:  # PolicyValidationError: not valid with these
                raise _TestError(f"the policies with the test's globals: {exc.message}") from None
        return self.by_globals[key]


def _globals_key(globals_: dict[str, Any]) -> str:
    return json.dumps(globals_, sort_keys=True, default=str)


def _run_test(
    engines: Engines,
    file: str,
    suite: Suite,
    fixtures: Fixtures,
    test: SuiteTest,
    max_cases: int | None,
    report: Report,
) -> list[Case]:
    options = test.options or suite.options  # a test's options replace the suite's, whole
    # what the input and the expectations name is counted before it is gathered, and bounded
    # as the cases are (groups of thousands, named again and again, cost as much as cases)
    report.named += _named(
        test.input.principals, test.input.principal_groups, fixtures, "principal"
    )
    report.named += _named(test.input.resources, test.input.resource_groups, fixtures, "resource")
    _within(report, max_cases)
    principals = _names(test.input.principals, test.input.principal_groups, fixtures, "principal")
    resources = _names(test.input.resources, test.input.resource_groups, fixtures, "resource")
    # each pair is checked even with no action: it counts as one case then
    size = len(principals) * len(resources) * max(len(test.input.actions), 1)
    if max_cases is not None and len(report.cases) + size > max_cases:
        raise OverLimit(
            f"the suite has more than {max_cases} cases (principals x resources x actions)"
        )
    for expectation in test.expected:
        for kind in ("principal", "resource"):
            one, many, groups = _expected_refs(expectation, kind)
            report.named += _named([one] if one else many, groups, fixtures, kind)
        _within(report, max_cases)
        report.expected_pairs += len(_expected_names(expectation, fixtures, "principal")) * len(
            _expected_names(expectation, fixtures, "resource")
        )
        _within(report, max_cases)
    return list(_cases(engines, file, suite, test, fixtures, options, principals, resources))


def _within(report: Report, max_cases: int | None) -> None:
    """OverLimit if the tests named more than the cases allow (`_run_test`)."""
    if max_cases is None:
        return
    if report.expected_pairs > max_cases:
        raise OverLimit(
            f"the suite's expectations name more than {max_cases} (principal, resource) pairs"
        )
    if report.named > _NAMED_PER_CASE * max_cases:
        raise OverLimit(
            f"the suite's tests name more than {_NAMED_PER_CASE * max_cases} principals and "
            "resources"
        )


def _cases(
    engines: Engines,
    file: str,
    suite: Suite,
    test: SuiteTest,
    fixtures: Fixtures,
    options: Options,
    principals: list[str],
    resources: list[str],
) -> Iterator[Case]:
    expected = _expectations(test, fixtures)
    skip = suite.skip or test.skip
    if skip:
        for principal, resource in _pairs(principals, resources):
            for action in test.input.actions:
                want = expected.get((principal, resource), {}).get(action, DENY)
                yield Case(
                    file, suite.name, test.name, principal, resource, action, want, "", "skipped"
                )
        return
    engine = engines.get(options.globals)
    aux = _aux_data(test.input.aux_data, fixtures)
    now = _moment(options.now)
    for principal, resource in _pairs(principals, resources):
        who = _with_defaults(fixtures.principals[principal], options, engine, "principal")
        what = _with_defaults(fixtures.resources[resource], options, engine, "resource")
        try:
            result = engine.check(
                who, [{"resource": what, "actions": test.input.actions}], aux, now=now
            ).results[0]
        except ValidationError as exc:  # over the cost budget, or attributes too deep
            raise _TestError(f"{principal} on {resource}: {exc.message}") from None
        wanted = expected.get((principal, resource), {})
        outputs = {output.action: output.expected for output in wanted.get("$outputs", [])}
        for action in test.input.actions:
            want = wanted.get(action, DENY)
            got = result.actions.get(action, DENY)
            problems = tuple(_output_problems(outputs.get(action, []), result.outputs, action))
            status: Literal["passed", "failed"] = (
                "passed" if want == got and not problems else "failed"
            )
            yield Case(
                file,
                suite.name,
                test.name,
                principal,
                resource,
                action,
                want,
                got,
                status,
                problems,
            )


def _pairs(principals: list[str], resources: list[str]) -> Iterator[tuple[str, str]]:
    for principal in principals:
        for resource in resources:
            yield principal, resource


def _names(
    names: list[str], groups: list[str], fixtures: Fixtures, kind: Literal["principal", "resource"]
) -> list[str]:
    defined = fixtures.principals if kind == "principal" else fixtures.resources
    group_of = fixtures.principal_groups if kind == "principal" else fixtures.resource_groups
    found = list(names)
    for group in dict.fromkeys(groups):  # a group named twice is gathered once
        if group not in group_of:
            raise _TestError(f"no {kind} group {group!r}")
        members = group_of[group]
        found.extend(
            members.principals if isinstance(members, PrincipalGroup) else members.resources
        )
    for name in found:
        if name not in defined:
            raise _TestError(f"no {kind} {name!r}")
    return list(dict.fromkeys(found))


def _expectations(test: SuiteTest, fixtures: Fixtures) -> dict[tuple[str, str], dict[str, Any]]:
    """(principal, resource) -> {action: effect, "$outputs": [OutputExpectations]}."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for expectation in test.expected:
        principals = _expected_names(expectation, fixtures, "principal")
        resources = _expected_names(expectation, fixtures, "resource")
        if not principals or not resources:
            raise _TestError("an expectation names no principal or no resource")
        for action in [*expectation.actions, *(o.action for o in expectation.outputs)]:
            if action not in test.input.actions:
                raise _TestError(f"an expectation names action {action!r}, not in the input")
        for pair in _pairs(principals, resources):
            entry = found.setdefault(pair, {})
            entry.update(expectation.actions)
            entry.setdefault("$outputs", []).extend(expectation.outputs)
    return found


def _expected_refs(
    expectation: Expectation, kind: Literal["principal", "resource"]
) -> tuple[str, list[str], list[str]]:
    """An expectation's principal (or resource), its list of them and its groups of them."""
    if kind == "principal":
        return expectation.principal, expectation.principals, expectation.principal_groups
    return expectation.resource, expectation.resources, expectation.resource_groups


def _expected_names(
    expectation: Expectation, fixtures: Fixtures, kind: Literal["principal", "resource"]
) -> list[str]:
    """The principals (or resources) an expectation names, its groups' included."""
    one, many, groups = _expected_refs(expectation, kind)
    return _names([one] if one else many, groups, fixtures, kind)


def _named(
    names: list[str], groups: list[str], fixtures: Fixtures, kind: Literal["principal", "resource"]
) -> int:
    """How many names `_names` would go through (each group once), before it does."""
    group_of = fixtures.principal_groups if kind == "principal" else fixtures.resource_groups
    counted = len(names)
    for group in dict.fromkeys(groups):
        members = group_of.get(group)
        if isinstance(members, PrincipalGroup):
            counted += len(members.principals)
        elif isinstance(members, ResourceGroup):
            counted += len(members.resources)
    return counted


def _aux_data(name: str, fixtures: Fixtures) -> dict[str, Any] | None:
    if not name:
        return None
    if name not in fixtures.aux_data:
        raise _TestError(f"no auxData {name!r}")
    return {"jwt": fixtures.aux_data[name].jwt}


def _moment(now: str | None) -> datetime | None:
    if not now:
        return None
    try:
        return datetime.fromisoformat(now)
    except ValueError:
        raise _TestError(f"options.now {now!r} is not an RFC 3339 time") from None


def _with_defaults(value: _P, options: Options, engine: Engine, kind: str) -> _P:
    """A principal or resource with the options' default version and scope, and with
    lenient scope search the nearest scope that has a policy."""
    version: str = value.policy_version or options.default_policy_version or ""
    requested: str = value.scope or options.default_scope or ""
    scope = requested
    if options.lenient_scope_search and requested:
        subject = sanitize(value.kind) if isinstance(value, Resource) else value.id
        table = engine.table.policies
        for candidate in (requested, *scope_parents(requested)):
            if (kind, subject, version or DEFAULT_VERSION, candidate) in table:
                scope = candidate
                break
    return msgspec.structs.replace(value, policy_version=version, scope=scope)


def _output_problems(
    expected: list[ExpectedOutput], actual: list[Any], action: str
) -> Iterator[str]:
    produced = {entry.src: entry.val for entry in actual if entry.action == action}
    for output in expected:
        if output.src not in produced:
            yield f"{action}: no output from {output.src}"
        elif produced[output.src] != output.val:
            yield (
                f"{action}: output of {output.src} is {json.dumps(produced[output.src])}, "
                f"expected {json.dumps(output.val)}"
            )
