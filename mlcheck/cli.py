"""The `mlcheck` command line: a thin typer layer over the engine.

Exit codes: 0 passed, 1 blocked, 2 the policy or an input could not be used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from mlcheck.engine import evaluate
from mlcheck.errors import MlcheckError
from mlcheck.policy import load_policy, policy_json_schema
from mlcheck.report import render_html
from mlcheck.result import CheckResult, RunResult, write_atomic

EXIT_PASSED, EXIT_BLOCKED, EXIT_INVALID = 0, 1, 2
STYLES = {"pass": "green", "fail": "bold red", "error": "bold red", "inconclusive": "red",
          "warn": "yellow", "waived": "yellow"}

app = typer.Typer(
    name="mlcheck", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Policy-as-code for machine-learning models: evaluate a model against a YAML "
         "policy, gate its promotion, and write a governance report.",
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(EXIT_INVALID)


@app.command()
def check(
    policy: Annotated[Path, typer.Argument(help="The policy YAML file.")],
    json_path: Annotated[Optional[Path], typer.Option(  # noqa: UP045 - typer needs Optional
        "--json", help="Where to write the JSON record [default: reports/<policy name>.json]")
    ] = None,
    report_path: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--report", help="Where to write the HTML report [default: reports/<policy name>.html]")
    ] = None,
    trust_model: Annotated[bool, typer.Option(
        "--trust-model", help="Trust pickle/joblib model files and unreviewed skops types.")
    ] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the verdict and the checks that did not pass.")
    ] = False,
) -> None:
    """Evaluate the model a policy names; exit 0 passed, 1 blocked, 2 invalid input."""
    try:
        loaded = load_policy(policy)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("loading model and data", total=None)

            def advance(result: CheckResult, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=result.id)

            result = evaluate(loaded, trust_model=trust_model, progress=advance)
        name = _file_stem(loaded.name)
        json_path = json_path or Path("reports") / f"{name}.json"
        report_path = report_path or Path("reports") / f"{name}.html"
        record = result.to_dict()
        json_text, html_text = result.to_json(), render_html(record)
    except MlcheckError as exc:
        raise _fail(exc) from None
    write_atomic(json_path, json_text)
    write_atomic(report_path, html_text)
    _print_summary(result, quiet)
    out.print(f"record: {json_path}   report: {report_path}")
    raise typer.Exit(EXIT_BLOCKED if result.blocked else EXIT_PASSED)


@app.command()
def validate(policy: Annotated[Path, typer.Argument(help="The policy YAML file.")]) -> None:
    """Check a policy file without evaluating anything; exit 0 valid, 2 invalid."""
    try:
        loaded = load_policy(policy)
    except MlcheckError as exc:
        raise _fail(exc) from None
    sources = loaded.origin.sources
    extra = f" (extends {', '.join(p for p, _ in sources[1:])})" if len(sources) > 1 else ""
    out.print(f"{policy}: valid policy '{escape(loaded.name)}'{escape(extra)}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the policy language (for editors and validators)."""
    print(json.dumps(policy_json_schema(), indent=2))


@app.command()
def report(
    record: Annotated[Path, typer.Argument(help="A JSON record written by `mlcheck check`.")],
    output: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--output", "-o", help="Where to write the HTML [default: beside the record]")
    ] = None,
) -> None:
    """Re-render the HTML report from a stored JSON record alone."""
    try:
        result = RunResult.read(record)
    except FileNotFoundError:
        raise _fail(MlcheckError(f"record not found: {record}")) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise _fail(MlcheckError(f"{record} is not an mlcheck record: {exc}")) from None
    target = output or record.with_suffix(".html")
    write_atomic(target, render_html(result.to_dict()))
    out.print(f"report: {target}")


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")
                       ] = False,
) -> None:
    if version:
        from mlcheck.engine import package_version

        out.print(f"mlcheck {package_version('mlcheck')}")
        raise typer.Exit()


def _print_summary(result: RunResult, quiet: bool) -> None:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("verdict")
    table.add_column("check", overflow="fold")
    table.add_column("result", overflow="fold")
    for check in result.checks:
        if quiet and check.verdict == "pass":
            continue
        style = STYLES.get(check.verdict, "")
        table.add_row(f"[{style}]{check.verdict.upper()}[/]", escape(check.id),
                      escape(check.message))
    if table.row_count:
        out.print(table)
    counts = ", ".join(f"{n} {v}" for v, n in result.counts().items() if n)
    if result.blocked:
        blockers = [c.id for c in result.checks if c.blocking]
        out.print(f"[bold red]BLOCKED[/] ({counts}): blocking checks: "
                  f"{escape(', '.join(blockers))}")
    else:
        out.print(f"[bold green]PASSED[/] ({counts})")


def _file_stem(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name) or "mlcheck"
