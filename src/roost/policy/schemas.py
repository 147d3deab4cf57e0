"""Cerbos' attribute schemas: JSON Schemas that principal and resource attributes must match.

A resource policy names them (`schemas: {principalSchema: {ref: cerbos:///principal.json},
resourceSchema: {ref: ..., ignoreWhen: {actions: [...]}}}`); the schemas themselves are files
under `_schemas/` of a Cerbos policy folder, and in Roost documents of their own in the policy
set (`{"apiVersion": "api.cerbos.dev/v1", "schema": {"id": "principal.json", "definition":
{...}}}`, made from those files by `policies.put(folder)`), stored and versioned as policies.

What a check does with them is the server's `schema.enforcement` (Roost:
`ROOST_POLICY_SCHEMA_ENFORCEMENT`): `none` ignores them, `warn` lists the problems in the
result's `validationErrors`, `reject` lists them and denies every action. A request whose
actions all match a schema's `ignoreWhen.actions` is not checked against it. A plan ignores
`required` (the resource's attributes are unknown), as Cerbos' planner does.

Validation is the `jsonschema` package, draft 2020-12, hardened as function params are
(`services/functions/schema_validator.py`): patterns matched by RE2 in linear time (a schema
whose patterns RE2 cannot take is refused when the policies load), and a budget of steps per
check; a check past it is a validation error (so `reject` denies). Formats are asserted as
Cerbos asserts them. The messages are jsonschema's, not those of Cerbos' Go library: the
`path` (a JSON pointer, `/` for the whole) and `source` are what agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import re2

from roost.policy.names import glob_matcher

# The hardened validator of function params (RE2 patterns, a budget of steps): a library
# module of its own, with no service behind it.
from roost.services.functions.schema_validator import TooCostly, budget, regex, validator_class

if TYPE_CHECKING:  # jsonschema and referencing load on first use (see schema_validator)
    from jsonschema.exceptions import ValidationError as SchemaError
    from referencing import Registry

__all__ = [
    "ENFORCEMENTS",
    "Enforcement",
    "SchemaSet",
    "SchemaRefs",
    "ref_id",
]

Enforcement = Literal["none", "warn", "reject"]
ENFORCEMENTS: tuple[Enforcement, ...] = ("none", "warn", "reject")
PREFIX = "cerbos:///"
MAX_ERRORS = 100  # per source: a request is not a way to make the server write a report
STEPS = 20_000  # per source and check (~0.1 s at most, as small function params have)


def ref_id(ref: str) -> str:
    """`cerbos:///principal.json` (or `principal.json`) -> `principal.json`."""
    return ref[len(PREFIX) :] if ref.startswith(PREFIX) else ref.lstrip("/")


class SchemaRefs(msgspec.Struct, frozen=True):
    """The schemas of one resource policy: refs and the actions each ignores."""

    principal: str = ""
    principal_ignore: tuple[str, ...] = ()
    resource: str = ""
    resource_ignore: tuple[str, ...] = ()


class SchemaSet:
    """The schemas of a policy set, compiled once: validators by id."""

    def __init__(self, definitions: Mapping[str, Mapping[str, Any]]) -> None:
        import jsonschema
        from referencing import Registry, Resource

        resources = [
            (PREFIX + name, Resource.from_contents(dict(definition), _default_spec()))
            for name, definition in definitions.items()
        ]
        self.registry: Registry[Any] = Registry().with_resources(resources)
        self.validators: dict[str, Any] = {
            name: validator_class()(
                dict(definition),
                registry=self.registry,
                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
            )
            for name, definition in definitions.items()
        }

    @staticmethod
    def problems(name: str, definition: Any) -> list[str]:
        """What is wrong with a schema document (empty: nothing)."""
        if not isinstance(definition, Mapping):
            return ["a schema is a JSON object"]
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(definition)
        except jsonschema.SchemaError as exc:
            return [f"not a valid JSON Schema (draft 2020-12): {exc.message}"]
        except RecursionError:
            return ["nested too deep to be checked"]
        patterns, unevaluated = _patterns(definition)
        problems = []
        for where, pattern in patterns:
            try:
                regex(pattern)
            except re2.error:
                problems.append(
                    f"the pattern at {where} is not one RE2 takes: patterns are matched in "
                    "linear time, without lookaround or backreferences"
                )
        if patterns and unevaluated:
            problems.append(
                "unevaluatedProperties together with patterns is refused (jsonschema would "
                "match them with a backtracking engine)"
            )
        return problems

    def validate(
        self,
        refs: SchemaRefs,
        principal_attr: Mapping[str, Any],
        resource_attr: Mapping[str, Any],
        actions: Iterable[str],
        *,
        plan: bool = False,
    ) -> list[dict[str, Any]]:
        """Cerbos' `validationErrors` of one request: the principal's, then the resource's."""
        actions = list(actions)
        errors: list[dict[str, Any]] = []
        for ref, ignore, attr, source in (
            (refs.principal, refs.principal_ignore, principal_attr, "SOURCE_PRINCIPAL"),
            (refs.resource, refs.resource_ignore, resource_attr, "SOURCE_RESOURCE"),
        ):
            if not ref or _all_ignored(ignore, actions):
                continue
            validator = self.validators.get(ref_id(ref))
            if validator is None:  # refs are checked when the policies load
                errors.append(_error("", f"schema {ref!r} not found", source))
                continue
            errors.extend(_check(validator, ref, attr, source, plan))
        return errors


def _check(
    validator: Any, ref: str, attr: Mapping[str, Any], source: str, plan: bool
) -> list[dict[str, Any]]:
    """The problems of `attr` against one schema, within the budget of steps."""
    from referencing.exceptions import Unresolvable

    errors: list[dict[str, Any]] = []
    try:
        with budget(STEPS):
            for error in _leaves(validator.iter_errors(dict(attr))):
                if plan and error.validator == "required" and source == "SOURCE_RESOURCE":
                    continue  # the resource's attributes are unknown in a plan
                errors.append(_error(_pointer(error), error.message, source))
                if len(errors) >= MAX_ERRORS:
                    break
    except TooCostly:
        message = f"too costly to check against schema {ref!r} (over {STEPS} steps)"
        errors.append(_error("/", message, source))
    except RecursionError:
        errors.append(_error("/", f"nested too deep to check against schema {ref!r}", source))
    except Unresolvable as exc:
        errors.append(_error("", f"failed to load schema {ref!r}: {exc}", source))
    return errors


def _error(path: str, message: str, source: str) -> dict[str, Any]:
    return {"path": path, "message": message, "source": source}


def _patterns(value: Any, where: str = "") -> tuple[list[tuple[str, str]], bool]:
    """The patterns of a schema (`pattern`, `patternProperties` keys) with where they are,
    and whether it uses `unevaluatedProperties`."""
    found: list[tuple[str, str]] = []
    unevaluated = False
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("pattern"), str):
                found.append((f"{path}/pattern", item["pattern"]))
            properties = item.get("patternProperties")
            if isinstance(properties, dict):
                found.extend((f"{path}/patternProperties", key) for key in properties)
            unevaluated = unevaluated or "unevaluatedProperties" in item
            stack.extend((child, f"{path}/{key}") for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, f"{path}/{index}") for index, child in enumerate(item))
    return found, unevaluated


def _default_spec() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


def _all_ignored(ignore: tuple[str, ...], actions: list[str]) -> bool:
    if not ignore:
        return False
    matchers = [glob_matcher(glob) for glob in ignore]
    return all(any(match(action) for match in matchers) for action in actions)


def _leaves(errors: Iterable[SchemaError]) -> Iterator[SchemaError]:
    """The innermost errors, as Cerbos reports its library's causes (anyOf, allOf...)."""
    for error in errors:
        if error.context:
            yield from _leaves(error.context)
        else:
            yield error


def _pointer(error: SchemaError) -> str:
    parts = [str(part).replace("~", "~0").replace("/", "~1") for part in error.absolute_path]
    return "/" + "/".join(parts)
