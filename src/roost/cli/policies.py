"""`roost policies`: push a folder of Cerbos policies to a running server, list them, and run
their test suites locally (no server: the engine runs in this process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from roost.cli.remote import ApiKey, ApiUrl, Tenant, console, remote_client, reporting_errors
from roost.errors import ValidationError

app = typer.Typer(
    help="Cerbos policies: push them to a server, list them, test them locally.",
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


def _short(effect: str) -> str:
    return effect.removeprefix("EFFECT_")


def _print_issues(issues: list[dict[str, str]]) -> None:
    for issue in issues:
        where = f"{issue['policy']}: {issue['path']}" if issue.get("path") else issue["policy"]
        console.print(f"  [red]{where}[/]: {issue['message']}")
