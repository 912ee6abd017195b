"""The `mlcheck` command line: a thin typer layer over the engine.

Exit codes: 0 passed, 1 blocked, 2 the policy or an input could not be used.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from mlcheck.engine import evaluate
from mlcheck.errors import MlcheckError
from mlcheck.outputs import check_output_paths, write_files
from mlcheck.policy import load_policy, policy_json_schema
from mlcheck.report import render_html
from mlcheck.report.text import detail_lines
from mlcheck.result import CheckResult, RunResult, read_record
from mlcheck.subject import input_files

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


def _crash(exc: Exception) -> typer.Exit:
    """An unexpected failure is not a verdict: exit 2, with the traceback on request."""
    if os.environ.get("MLCHECK_DEBUG"):
        err.print_exception()
    err.print(f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))} "
              "(set MLCHECK_DEBUG=1 to see the traceback)", soft_wrap=True)
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
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="List every check, passed ones too.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the verdict.")] = False,
    sign: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--sign", help="Sign the record with this Ed25519 private key (`mlcheck keygen`).")
    ] = None,
    signer: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--signer", help='Who signs: "Name <email>" (required with --sign).')] = None,
    model_timeout: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--model-timeout", min=0.001, help="Longest time one model call may take, in "
        "seconds (overrides the policy's model.timeout).")] = None,
) -> None:
    """Evaluate the model a policy names; exit 0 passed, 1 blocked, 2 invalid input."""
    from mlcheck.integrity import load_private_key, seal

    try:
        if sign is not None:  # a bad key must fail before a long run, not after it
            if not signer:
                raise MlcheckError('--sign needs --signer "Name <email>": a signature names '
                                   "the responsible person")
            load_private_key(sign)
        loaded = load_policy(policy)
        name = _file_stem(loaded.name)
        outputs = check_output_paths(json_path or Path("reports") / f"{name}.json",
                                     report_path or Path("reports") / f"{name}.html",
                                     inputs=input_files(loaded))
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("loading model and data", total=None)

            def advance(result: CheckResult, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=result.id)

            result = evaluate(loaded, trust_model=trust_model, progress=advance,
                              model_timeout=model_timeout)
        record = seal(result.to_dict(), sign, signer)
        _write(dict(zip(outputs, (json.dumps(record, indent=2, allow_nan=False) + "\n",
                                  render_html(record)), strict=True)))
    except MlcheckError as exc:
        raise _fail(exc) from None
    except Exception as exc:
        raise _crash(exc) from None
    _print_summary(result, verbose=verbose, quiet=quiet)
    out.print(f"record: {escape(str(outputs[0]))}   report: {escape(str(outputs[1]))}",
              soft_wrap=True)
    raise typer.Exit(EXIT_BLOCKED if result.blocked else EXIT_PASSED)


@app.command()
def validate(policy: Annotated[Path, typer.Argument(help="The policy YAML file.")]) -> None:
    """Check a policy file without evaluating anything; exit 0 valid, 2 invalid."""
    try:
        loaded = load_policy(policy)
    except MlcheckError as exc:
        raise _fail(exc) from None
    except Exception as exc:
        raise _crash(exc) from None
    sources = loaded.origin.sources
    extra = f" (extends {', '.join(p for p, _ in sources[1:])})" if len(sources) > 1 else ""
    out.print(f"{escape(str(policy))}: valid policy '{escape(loaded.name)}'{escape(extra)}",
              soft_wrap=True)


@app.command()
def profile(
    dataset: Annotated[Path, typer.Argument(help="A CSV or Parquet reference dataset.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the profile.")],
    bins: Annotated[int, typer.Option(help="Reference-quantile bins (as drift.bins).")] = 10,
) -> None:
    """Store what drift checks need from a reference dataset, in a small JSON file."""
    from mlcheck.checks.drift import make_profile
    from mlcheck.subject import read_dataset

    try:
        check_output_paths(output, inputs=[dataset])
        if not dataset.is_file():
            raise MlcheckError(f"dataset not found: {dataset}")
        if not 2 <= bins <= 100:
            raise MlcheckError("--bins must be between 2 and 100")
        content = dataset.read_bytes()
        frame = read_dataset(dataset, name=dataset.name, content=content)
        made = make_profile(frame, bins)
        made["source"] = {"path": str(dataset), "sha256": hashlib.sha256(content).hexdigest()}
        _write({output: json.dumps(made, indent=1) + "\n"})
    except MlcheckError as exc:
        raise _fail(exc) from None
    out.print(f"profile of {len(made['columns'])} columns, {made['rows']:,} rows: "
              f"{escape(str(output))}", soft_wrap=True)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the policy language (for editors and validators)."""
    print(json.dumps(policy_json_schema(), indent=2))


@app.command()
def report(
    record: Annotated[Path, typer.Argument(
        help="A JSON record written by `mlcheck check` or `pytest --mlcheck-json`.")],
    output: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--output", "-o", help="Where to write it [default: beside the record]")
    ] = None,
    form: Annotated[str, typer.Option(
        "--format", "-f", help="html, markdown (a pull-request comment), sarif (code "
        "scanning, at the rule's line in the policy) or junit.")] = "html",
    compare: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--compare", help="A previous record: what changed since it (html and markdown).")
    ] = None,
) -> None:
    """Render a stored JSON record, alone, as a report."""
    from mlcheck.report.formats import FORMATS, SUFFIXES

    try:
        if form not in FORMATS:
            raise MlcheckError(f"unknown --format {form!r}; choose one of "
                               f"{', '.join(FORMATS)}")
        target = output or record.with_suffix(SUFFIXES[form])
        check_output_paths(target, inputs=[record] + ([compare] if compare else []))
        previous = _read(compare) if compare else None
        current = _read(record)
        try:
            text = FORMATS[form](current, previous)
        except Exception as exc:  # a record that parses but lacks what a report shows
            raise MlcheckError(f"{record} is not a complete mlcheck record: "
                               f"{type(exc).__name__}: {exc}") from None
        _write({target: text})
    except MlcheckError as exc:
        raise _fail(exc) from None
    out.print(f"report: {escape(str(target))}", soft_wrap=True)


def _read(path: Path) -> dict:
    """A stored record: a JSON record, or the one an HTML report embeds."""
    from mlcheck.integrity import embedded_record
    from mlcheck.result import normalise_record

    try:
        text = path.read_text(encoding="utf-8")
        if text.lstrip().startswith("<"):
            return normalise_record(embedded_record(text))
        return read_record(path)
    except FileNotFoundError:
        raise MlcheckError(f"record not found: {path}") from None
    except MlcheckError:
        raise
    except Exception as exc:  # malformed JSON or structure: say so, without a traceback
        raise MlcheckError(f"{path} is not a complete mlcheck record: "
                           f"{type(exc).__name__}: {exc}") from None


@app.command()
def keygen(
    output: Annotated[Path, typer.Option("--output", "-o", help="The private key file; the "
                                         "public key goes beside it with .pub.")],
) -> None:
    """Make an Ed25519 key pair for signing records."""
    from mlcheck.integrity import generate_key

    try:
        private, public = generate_key(output)
    except MlcheckError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        raise _fail(MlcheckError(f"cannot write the key to {output}: "
                                 f"{exc.strerror or exc}")) from None
    out.print(f"private key: {escape(str(private))} (keep it secret)   public key: "
              f"{escape(str(public))}", soft_wrap=True)


@app.command()
def verify(
    path: Annotated[Path, typer.Argument(help="A JSON record or an HTML report.")],
    public_key: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--public-key", help="Require a signature by this key.")] = None,
    artifacts: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--artifacts", help="Also re-hash the model, data and policy files the record "
        "names, relative to this folder (where the check was run).")] = None,
) -> None:
    """Check that a record or report is intact; exit 0 intact, 1 altered, 2 unreadable."""
    from mlcheck.integrity import verify as verify_file

    try:
        if not path.is_file():
            raise MlcheckError(f"not found: {path}")
        result = verify_file(path, public_key, artifacts)
    except MlcheckError as exc:
        raise _fail(exc) from None
    except Exception as exc:  # malformed JSON or structure: unreadable, not "altered"
        raise _fail(MlcheckError(f"{path} holds no readable mlcheck record: "
                                 f"{type(exc).__name__}: {exc}")) from None
    for line in result.checked:
        out.print(f"[green]OK[/]        {escape(line)}", soft_wrap=True)
    for line in result.problems:
        out.print(f"[bold red]MISMATCH[/]  {escape(line)}", soft_wrap=True)
    out.print("[bold green]INTACT[/]" if result.intact else "[bold red]ALTERED[/]")
    raise typer.Exit(EXIT_PASSED if result.intact else EXIT_BLOCKED)


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")
                       ] = False,
) -> None:
    for stream in (sys.stdout, sys.stderr):  # a message never crashes on a narrow encoding
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if version:
        from mlcheck.engine import package_version

        out.print(f"mlcheck {package_version('mlcheck')}")
        raise typer.Exit()


def _write(files: dict[Path, str]) -> None:
    try:
        write_files(files)
    except OSError as exc:
        raise MlcheckError(f"cannot write {exc.filename or ', '.join(map(str, files))}: "
                           f"{exc.strerror or exc}") from None


def _print_summary(result: RunResult, *, verbose: bool, quiet: bool) -> None:
    """One line per check that did not pass (every check with --verbose), then the verdict.

    Plain lines, never wrapped, so ids stay whole in CI logs and can be grepped."""
    if not quiet:
        width = max((len(c.verdict) for c in result.checks), default=4)
        for check in result.checks:
            if check.verdict != "pass" or verbose:
                style = STYLES.get(check.verdict, "")
                out.print(f"[{style}]{check.verdict.upper():<{width}}[/]  {escape(check.id)}  "
                          f"{escape(check.message)}", soft_wrap=True)
                for line in detail_lines(check.family, check.evidence, check.verdict):
                    out.print(" " * (width + 2) + escape(line), style="dim", soft_wrap=True)
        if not verbose:
            passed: dict[str, int] = {}
            for check in result.checks:
                if check.verdict == "pass":
                    passed[check.family] = passed.get(check.family, 0) + 1
            if passed:
                out.print("passed: " + ", ".join(f"{n} {family}" for family, n in passed.items())
                          + " checks (--verbose lists them)", style="dim", soft_wrap=True)
    for waiver in result.waivers:
        if waiver["status"] == "stale":
            out.print(f"[yellow]STALE WAIVER[/]  {escape(waiver['check'])} names no check of "
                      "this policy: remove it or fix the id", soft_wrap=True)
        elif waiver["status"] == "expired":
            out.print(f"[yellow]EXPIRED WAIVER[/]  {escape(waiver['check'])} expired "
                      f"{waiver['expires']} (approved by {escape(waiver['approved_by'])})",
                      soft_wrap=True)
    counts = ", ".join(f"{n} {v}" for v, n in result.counts().items() if n)
    if result.blocked:
        blockers = ", ".join(c.id for c in result.checks if c.blocking)
        out.print(f"[bold red]BLOCKED[/] ({counts}): blocking checks: {escape(blockers)}",
                  soft_wrap=True)
    else:
        out.print(f"[bold green]PASSED[/] ({counts})", soft_wrap=True)


def _file_stem(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name) or "mlcheck"


if __name__ == "__main__":  # python -m mlcheck.cli
    app()
