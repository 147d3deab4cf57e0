"""`roost policies`: push a folder of Cerbos policies to a running server, list them, run
their test suites locally (no server: the engine runs in this process), and bind tables,
buckets, streams, queues and functions to the policies of a resource kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from roost.cli.remote import ApiKey, ApiUrl, Tenant, console, remote_client, reporting_errors
from roost.errors import ValidationError
from roost.wire.policy import Binding, BindingTarget

app = typer.Typer(
    help="Cerbos policies: push them to a server, list them, test them locally, bind them.",
    no_args_is_help=True,
)

Folder = Annotated[
    Path, typer.Argument(exists=True, file_okay=False, help="A folder of policy files.")
]


@app.command()
def push(
    folder: Folder, api_url: ApiUrl = None, api_key: ApiKey = None, tenant: Tenant = None
) -> None:
    """Send every policy file of FOLDER (YAML or JSON; not *_test files nor testdata/). The
    server validates them with what it stores: on any problem nothing changes and every
    problem is listed."""
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        try:
            result = client.policies.put(folder)
        except ValidationError as exc:
            if not exc.details.get("issues"):
                raise
            problems = len(exc.details["issues"])
            console.print(f"[red]refused[/] (nothing changed): {problems} problems")
            _print_issues(exc.details["issues"])
            raise typer.Exit(2) from None
    console.print(
        f"revision {result.revision}: {len(result.created)} created, "
        f"{len(result.updated)} updated, {len(result.unchanged)} unchanged"
    )
    for label, keys in (("created", result.created), ("updated", result.updated)):
        for key in keys:
            console.print(f"  [green]{label}[/] {key}")


@app.command("ls")
def list_policies(api_url: ApiUrl = None, api_key: ApiKey = None, tenant: Tenant = None) -> None:
    """List the server's policies, and the tenant's globals."""
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        listed = client.policies.list()
    table = Table("key", "kind", "revision", "updated", "by", title=f"revision {listed.revision}")
    for info in listed.policies:
        key = f"{info.key} [dim](disabled)[/]" if info.disabled else info.key
        table.add_row(
            key, info.kind, str(info.revision), info.updated_at.isoformat(), info.updated_by
        )
    console.print(table)
    if listed.globals:
        console.print(f"globals: {json.dumps(listed.globals)}")


@app.command("test")
def run_tests(
    folder: Folder,
    globals_json: Annotated[
        str | None,
        typer.Option("--globals", help="Globals as a JSON object (suites' own override them)."),
    ] = None,
    failures_only: Annotated[
        bool, typer.Option("--failures-only", help="List only the cases that failed.")
    ] = False,
) -> None:
    """Run the Cerbos test suites (*_test.yaml) under FOLDER against its policies, in this
    process. Exit code 1 when a case fails or a suite cannot run."""
    from roost.policy.loader import PolicyValidationError
    from roost.policy.testing import find_suites, run_suites

    try:
        globals_ = json.loads(globals_json) if globals_json else {}
    except json.JSONDecodeError as exc:
        console.print(f"[red]error:[/] --globals is not JSON: {exc}")
        raise typer.Exit(2) from None
    if not isinstance(globals_, dict):
        console.print("[red]error:[/] --globals must be a JSON object")
        raise typer.Exit(2)
    if not find_suites(folder):
        console.print(f"[yellow]no test suites (*_test.yaml) under {folder}[/]")
        raise typer.Exit(1)
    try:
        report = run_suites(folder, globals_)
    except PolicyValidationError as exc:
        console.print("[red]the policies are not valid:[/]")
        _print_issues(exc.details["issues"])
        raise typer.Exit(1) from None
    table = Table("suite", "test", "principal", "resource", "action", "expected", "actual", "")
    for case in report.cases:
        if failures_only and case.status != "failed":
            continue
        mark = {"passed": "[green]OK[/]", "failed": "[red]FAIL[/]", "skipped": "[dim]SKIP[/]"}
        table.add_row(
            case.suite,
            case.test,
            case.principal,
            case.resource,
            case.action,
            _short(case.expected),
            _short(case.actual),
            mark[case.status] + "".join(f"\n{problem}" for problem in case.problems),
        )
    console.print(table)
    for error in report.errors:
        console.print(f"[red]error[/] {error.file}: {error.where}: {error.message}")
    console.print(
        f"{report.count('passed')} passed, {report.count('failed')} failed, "
        f"{report.count('skipped')} skipped, {len(report.errors)} could not run"
    )
    if report.failed:
        raise typer.Exit(1)


# --- bindings ---------------------------------------------------------------------------------

TargetOptions = {
    "table": "A table: its rows (read, create, update, delete).",
    "bucket": "A storage bucket: its files.",
    "stream": "A stream: its events.",
    "queue": "A queue: its messages.",
    "function": "A function: its calls.",
}


def _target(
    table: str | None,
    bucket: str | None,
    stream: str | None,
    queue: str | None,
    function: str | None,
) -> tuple[BindingTarget, str]:
    given = [
        (target, name)
        for target, name in (
            ("table", table),
            ("bucket", bucket),
            ("stream", stream),
            ("queue", queue),
            ("function", function),
        )
        if name is not None
    ]
    if len(given) != 1:
        console.print(
            "[red]error:[/] name exactly one of --table, --bucket, --stream, --queue, --function"
        )
        raise typer.Exit(2)
    target, name = given[0]
    return target, name  # type: ignore[return-value]  # one of BindingTarget's literals


TableOpt = Annotated[str | None, typer.Option("--table", help=TargetOptions["table"])]
BucketOpt = Annotated[str | None, typer.Option("--bucket", help=TargetOptions["bucket"])]
StreamOpt = Annotated[str | None, typer.Option("--stream", help=TargetOptions["stream"])]
QueueOpt = Annotated[str | None, typer.Option("--queue", help=TargetOptions["queue"])]
FunctionOpt = Annotated[str | None, typer.Option("--function", help=TargetOptions["function"])]


@app.command()
def bind(
    kind: Annotated[str, typer.Argument(help="The resource kind whose policies guard it.")],
    table: TableOpt = None,
    bucket: BucketOpt = None,
    stream: StreamOpt = None,
    queue: QueueOpt = None,
    function: FunctionOpt = None,
    policy_version: Annotated[
        str, typer.Option("--policy-version", help="The policies' version (default: default).")
    ] = "",
    scope: Annotated[str, typer.Option("--scope", help="The policies' scope.")] = "",
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Guard a table, bucket, stream, queue or function by the policies of resource KIND:
    from the next call on, each of its rows, files, events or calls is checked for the
    caller. Replaces its binding, if it had one."""
    target, name = _target(table, bucket, stream, queue, function)
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        bound = client.policies.bind(target, name, kind, policy_version=policy_version, scope=scope)
    console.print(f"{bound.target} {bound.name} [green]bound[/] to {_kind_label(bound)}")


@app.command()
def unbind(
    table: TableOpt = None,
    bucket: BucketOpt = None,
    stream: StreamOpt = None,
    queue: QueueOpt = None,
    function: FunctionOpt = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Stop guarding a table, bucket, stream, queue or function by policies (its scopes alone
    decide again). Fails if it was not bound."""
    target, name = _target(table, bucket, stream, queue, function)
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        client.policies.unbind(target, name)
    console.print(f"{target} {name} [green]unbound[/]")


@app.command()
def bindings(api_url: ApiUrl = None, api_key: ApiKey = None, tenant: Tenant = None) -> None:
    """List the tables, buckets, streams, queues and functions the policies guard."""
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        found = client.policies.bindings()
    if not found:
        console.print("[dim]nothing is bound to policies[/]")
        return
    table = Table("target", "name", "resource kind", "updated", "by")
    for binding in found:
        table.add_row(
            binding.target,
            binding.name,
            _kind_label(binding),
            binding.updated_at.isoformat(),
            binding.updated_by,
        )
    console.print(table)


def _kind_label(binding: Binding) -> str:
    label = binding.resource_kind
    if binding.policy_version:
        label += f" (version {binding.policy_version})"
    if binding.scope:
        label += f" (scope {binding.scope})"
    return label


def _short(effect: str) -> str:
    return effect.removeprefix("EFFECT_")


def _print_issues(issues: list[dict[str, str]]) -> None:
    for issue in issues:
        where = f"{issue['policy']}: {issue['path']}" if issue.get("path") else issue["policy"]
        console.print(f"  [red]{where}[/]: {issue['message']}")
