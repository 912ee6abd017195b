"""The `mlcheck` command line: a thin typer layer over the engine.

Exit codes: 0 passed, 1 blocked, 2 the policy or an input could not be used.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from mlcheck.errors import MlcheckError
from mlcheck.outputs import (
    STDOUT,
    check_output_paths,
    clear_previous,
    is_step_summary,
    write_files,
)

# Everything else is imported where a command needs it: `--help`, `validate` and `schema`
# must not pay for numpy, pandas, scipy or scikit-learn (tests/test_startup.py).
if TYPE_CHECKING:
    from rich.progress import ProgressColumn, Task

    from mlcheck.checks import Check
    from mlcheck.policy import Policy
    from mlcheck.result import CheckResult, RunResult

EXIT_PASSED, EXIT_BLOCKED, EXIT_INVALID = 0, 1, 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C
STYLES = {"pass": "green", "fail": "bold red", "error": "bold red", "inconclusive": "red",
          "warn": "yellow", "waived": "yellow"}

app = typer.Typer(
    name="mlcheck", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Policy-as-code for machine-learning models: evaluate a model against a YAML "
         "policy, gate its promotion, and write a governance report.",
)
out = Console(highlight=False, emoji=False)
err = Console(stderr=True, highlight=False, emoji=False)


def _safe(value: object, limit: int = 4_000) -> str:
    """Data or policy text for a terminal line: no control characters (they could erase
    or rewrite the verdict line), no rich markup, bounded."""
    from mlcheck.report.text import terminal_text

    return escape(terminal_text(value, limit))


def _fail(exc: Exception) -> typer.Exit:
    message = "\n".join(_safe(line) for line in str(exc).split("\n"))  # several problems
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(EXIT_INVALID)


def _crash(exc: Exception) -> typer.Exit:
    """An unexpected failure is not a verdict: exit 2, with the traceback on request."""
    if os.environ.get("MLCHECK_DEBUG"):
        err.print_exception()
    err.print(f"[bold red]internal error:[/] {_safe(type(exc).__name__)}: {_safe(exc)} "
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
    promote: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--promote", metavar="ALIAS", help="MLflow registry: tag the candidate version with "
        "the verdict, log the record and report to a run, and on a pass move ALIAS (e.g. "
        "champion) to it. See docs/mlflow.md.")] = None,
) -> None:
    """Evaluate the model a policy names; exit 0 passed, 1 blocked, 2 invalid input."""
    from mlcheck.engine import evaluate
    from mlcheck.integrity import load_private_key, seal
    from mlcheck.policy import load_policy
    from mlcheck.subject import input_files

    secrets = [sign, sign.with_name(sign.name + ".pub")] if sign else []
    try:
        if sign is not None:  # a bad key must fail before a long run, not after it
            if not signer:
                raise MlcheckError('--sign needs --signer "Name <email>": a signature names '
                                   "the responsible person")
            load_private_key(sign)
        try:
            loaded = load_policy(policy)
        except MlcheckError:  # what these outputs said before must not look current
            check_output_paths(*[p for p in (json_path, report_path) if p],
                               inputs=[policy, *secrets])
            clear_previous([p for p in (json_path, report_path) if p])
            raise
        name = _file_stem(loaded.name)
        outputs = check_output_paths(json_path or Path("reports") / f"{name}.json",
                                     report_path or Path("reports") / f"{name}.html",
                                     inputs=[*input_files(loaded), *secrets])
        if json_path is None:
            _refuse_another_policys_record(outputs[0], loaded)
        clear_previous(outputs)
        _check_promotable(loaded, promote)  # before a long run, not after it
        with _progress() as advance:
            result = evaluate(loaded, trust_model=trust_model, progress=advance,
                              model_timeout=model_timeout)
        record = seal(result.to_dict(), sign, signer)
        _write(dict(zip(outputs, (json.dumps(record, indent=2, allow_nan=False) + "\n",
                                  render_html(record)), strict=True)))
    except MlcheckError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        err.print("[bold red]interrupted:[/] no verdict; no record or report was written",
                  soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        raise _crash(exc) from None
    _print_summary(result, verbose=verbose, quiet=quiet)
    out.print(f"record: {_safe(outputs[0])}   report: {_safe(outputs[1])}",
              soft_wrap=True)
    if promote:
        _promote(loaded, record, promote)
    raise typer.Exit(EXIT_BLOCKED if result.blocked else EXIT_PASSED)


@app.command()
def validate(policy: Annotated[Path, typer.Argument(help="The policy YAML file.")]) -> None:
    """Check a policy file without evaluating anything; exit 0 valid, 2 invalid."""
    from mlcheck.policy import load_policy

    try:
        loaded = load_policy(policy)
    except MlcheckError as exc:
        raise _fail(exc) from None
    except Exception as exc:
        raise _crash(exc) from None
    sources = loaded.origin.sources
    extra = f" (extends {', '.join(p for p, _ in sources[1:])})" if len(sources) > 1 else ""
    out.print(f"{_safe(policy)}: valid policy '{_safe(loaded.name)}'{_safe(extra)}",
              soft_wrap=True)


@app.command()
def profile(
    dataset: Annotated[Path, typer.Argument(help="A CSV or Parquet reference dataset.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the profile.")],
    bins: Annotated[int, typer.Option(help="Reference-quantile bins (as drift.bins).")] = 10,
) -> None:
    """Store what drift checks need from a reference dataset, in a small JSON file."""
    from mlcheck.checks.drift import make_profile
    from mlcheck.inputs import DATASET, read_limited
    from mlcheck.subject import read_dataset

    try:
        check_output_paths(output, inputs=[dataset])
        if not dataset.exists():
            raise MlcheckError(f"dataset not found: {dataset}")
        if not 2 <= bins <= 100:
            raise MlcheckError("--bins must be between 2 and 100")
        try:
            content = read_limited(dataset, "dataset", DATASET)
        except OSError as exc:
            raise MlcheckError(f"cannot read {dataset}: {exc.strerror or exc}") from None
        frame = read_dataset(dataset, name=dataset.name, content=content)
        made = make_profile(frame, bins)
        made["source"] = {"path": str(dataset), "sha256": hashlib.sha256(content).hexdigest()}
        _write({output: json.dumps(made, indent=1) + "\n"})
    except MlcheckError as exc:
        raise _fail(exc) from None
    (err if output == STDOUT else out).print(  # `-o -`: the profile alone on stdout
        f"profile of {len(made['columns'])} columns, {made['rows']:,} rows: "
        f"{_safe(output)}", soft_wrap=True)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the policy language (for editors and validators)."""
    from mlcheck.policy import policy_json_schema

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
    append: Annotated[bool, typer.Option(
        "--append", help="Add to the end of the output file (markdown only; automatic "
        "when the output is $GITHUB_STEP_SUMMARY).")] = False,
) -> None:
    """Render a stored JSON record, alone, as a report (`-o -`: standard output)."""
    from mlcheck.report.formats import FORMATS, SUFFIXES
    from mlcheck.report.text import ALTERED_NOTE, UNSEALED_NOTE

    try:
        if form not in FORMATS:
            raise MlcheckError(f"unknown --format {form!r}; choose one of "
                               f"{', '.join(FORMATS)}")
        target = output or record.with_suffix(SUFFIXES[form])
        append = append or is_step_summary(target)
        if append and form != "markdown":
            raise MlcheckError(f"--append is for markdown (a step summary or a comment); "
                               f"a {form} file cannot be appended to")
        check_output_paths(target, inputs=[record] + ([compare] if compare else []))
        previous = _read(compare)[0] if compare else None
        current, status = _read(record)
        try:
            text = FORMATS[form](current, previous, status=status)
        except Exception as exc:  # a record that parses but lacks what a report shows
            raise MlcheckError(f"{record} is not a complete mlcheck record: "
                               f"{type(exc).__name__}: {exc}") from None
        _write({target: text}, append=append)
    except MlcheckError as exc:
        raise _fail(exc) from None
    if status == "altered":  # the report says so too, in its banner
        err.print(f"[bold red]warning:[/] {_safe(record)}: {ALTERED_NOTE}", soft_wrap=True)
    elif status == "unsealed":
        err.print(f"[yellow]note:[/] {_safe(record)}: {UNSEALED_NOTE}", soft_wrap=True)
    (err if target == STDOUT else out).print(
        f"report: {_safe(target)}{' (appended)' if append else ''}", soft_wrap=True)


def _read(path: Path) -> tuple[dict, str]:
    """A stored record (a JSON record, or the one an HTML report embeds), and whether its
    digest matches its content as stored (`record_status`, before it is normalised)."""
    from mlcheck.integrity import read_stored
    from mlcheck.report.text import record_status
    from mlcheck.result import normalise_record

    try:
        stored = read_stored(path)[0]
        return normalise_record(stored), record_status(stored)
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
    require_signature: Annotated[bool, typer.Option(
        "--require-signature", help="Fail an unsigned record: a digest alone detects "
        "accidental edits only, since anyone can recompute it.")] = False,
) -> None:
    """Check that a record or report is intact; exit 0 intact, 1 altered, unsealed or
    unverified, 2 unreadable."""
    from mlcheck.integrity import verify as verify_file

    try:
        if not path.exists():
            raise MlcheckError(f"not found: {path}")
        result = verify_file(path, public_key, artifacts, require_signature=require_signature)
    except MlcheckError as exc:
        raise _fail(exc) from None
    except Exception as exc:  # malformed JSON or structure: unreadable, not "altered"
        raise _fail(MlcheckError(f"{path} holds no readable mlcheck record: "
                                 f"{type(exc).__name__}: {exc}")) from None
    for line in result.checked:
        out.print(f"[green]OK[/]        {_safe(line)}", soft_wrap=True)
    for line in result.notes:
        out.print(f"[yellow]NOTE[/]      {_safe(line)}", soft_wrap=True)
    for line in result.problems:
        out.print(f"[bold red]MISMATCH[/]  {_safe(line)}", soft_wrap=True)
    for line in result.missing:
        out.print(f"[bold red]MISSING[/]   {_safe(line)}", soft_wrap=True)
    out.print(f"[bold {'green' if result.intact else 'red'}]{result.status}[/]")
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
        import importlib.metadata

        from mlcheck import DISTRIBUTION

        try:  # not through the engine, which would load pandas and scikit-learn first
            number = importlib.metadata.version(DISTRIBUTION)
        except importlib.metadata.PackageNotFoundError:
            number = None
        out.print(f"mlcheck {number}")
        raise typer.Exit()


def render_html(record: dict) -> str:
    """The HTML report of a record (jinja2 loads only when a report is written)."""
    from mlcheck.report import render_html as render

    return render(record)


ELAPSED_AFTER_S = 3.0  # a run shorter than this shows no clock


@contextmanager
def _progress() -> Iterator[Callable[[Check, CheckResult | None, int, int], None]]:
    """A transient line on stderr while checks run, on a terminal only: the check running
    now, how many are done, and the elapsed time once the run takes a while."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  _elapsed_column(), console=err, transient=True,
                  disable=not err.is_terminal) as bar:
        task = bar.add_task("loading model and data", total=None)

        def show(check: Check, result: CheckResult | None, done: int, total: int) -> None:
            if result is None:  # starting: name it while it runs, not after
                bar.update(task, completed=done, total=total, description=_safe(check.id))
            else:
                bar.update(task, completed=done, total=total)

        yield show


def _elapsed_column() -> ProgressColumn:
    """Seconds since the run started, blank for the first ELAPSED_AFTER_S of it."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Elapsed(ProgressColumn):
        def render(self, task: Task) -> Text:
            seconds = task.elapsed or 0.0
            if seconds < ELAPSED_AFTER_S:
                return Text("")
            minutes, seconds = divmod(int(seconds), 60)
            return Text(f"{minutes}:{seconds:02d}" if minutes else f"{seconds}s",
                        style="progress.elapsed")

    return Elapsed()


def _write(files: dict[Path, str], *, append: bool = False) -> None:
    try:
        write_files(files, append=append)
    except OSError as exc:
        raise MlcheckError(f"cannot write {exc.filename or ', '.join(map(str, files))}: "
                           f"{exc.strerror or exc}") from None


def _print_summary(result: RunResult, *, verbose: bool, quiet: bool) -> None:
    """One line per check that did not pass (every check with --verbose), then the verdict.

    Plain lines, never wrapped, so ids stay whole in CI logs and can be grepped."""
    from mlcheck.report.formats import sample_notes
    from mlcheck.report.text import detail_lines
    from mlcheck.result import MAX_TEXT

    if not quiet:
        width = max((len(c.verdict) for c in result.checks), default=4)
        for check in result.checks:
            if check.verdict != "pass" or verbose:
                style = STYLES.get(check.verdict, "")
                out.print(f"[{style}]{check.verdict.upper():<{width}}[/]  "
                          f"{_safe(check.id, MAX_TEXT)}  {_safe(check.message, MAX_TEXT)}",
                          soft_wrap=True)
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
            out.print(f"[yellow]STALE WAIVER[/]  {_safe(waiver['check'])} names no check of "
                      "this policy: remove it or fix the id", soft_wrap=True)
        elif waiver["status"] == "expired":
            out.print(f"[yellow]EXPIRED WAIVER[/]  {_safe(waiver['check'])} expired "
                      f"{waiver['expires']} (approved by {_safe(waiver['approved_by'])})",
                      soft_wrap=True)
    for note in sample_notes({"subject": result.subject}):  # an exploratory run says so
        out.print(f"[yellow]SAMPLE[/]  {_safe(note)}", soft_wrap=True)
    counts = ", ".join(f"{n} {v}" for v, n in result.counts().items() if n)
    if result.blocked:
        blockers = ", ".join(_safe(c.id, MAX_TEXT) for c in result.checks if c.blocking)
        out.print(f"[bold red]BLOCKED[/] ({counts}): blocking checks: {blockers}",
                  soft_wrap=True)
    else:
        out.print(f"[bold green]PASSED[/] ({counts})", soft_wrap=True)


def _refuse_another_policys_record(path: Path, policy: Policy) -> None:
    """Two policy files with the same `name` share default outputs: never replace the
    record of one with the other's without being told to."""
    try:
        if not path.is_file() or path.stat().st_size > 64 << 20:
            return
        earlier = json.loads(path.read_text(encoding="utf-8"))
        written_for = earlier["policy"]["path"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # not a run record: clear_previous decides whether it may go
    current = policy.origin.sources[0][0]
    if Path(written_for).resolve() != Path(current).resolve():
        raise MlcheckError(
            f"{path} holds the record of another policy file with the same name "
            f"'{policy.name}' ({written_for}, not {current}); pass --json and --report to "
            "write this one elsewhere, rename one of the policies, or delete the old record")


def _check_promotable(policy: Policy, alias: str | None) -> None:
    """`--promote` needs a registered candidate version and MLflow (mlcheck/registry.py,
    imported only then)."""
    if alias is not None:
        from mlcheck.registry import check_promotable

        check_promotable(policy, alias)


def _promote(policy: Policy, record: dict, alias: str) -> None:
    """After the record is written: tag, log, and on a pass move the alias. Exit 1 when the
    promotion is refused (the candidate alias moved during the run), 2 on registry errors."""
    from mlcheck.registry import promote

    try:
        done = promote(policy, record, alias)
    except MlcheckError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/] while updating the registry: the candidate's "
                  "mlcheck.promotion tag says how far it got", soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        raise _crash(exc) from None
    (out if done.moved else err).print(f"{'[bold green]' if done.moved else '[yellow]'}"
                                       f"mlflow:[/] {_safe(done.message)}", soft_wrap=True)
    if done.refused:
        raise typer.Exit(EXIT_BLOCKED)


def _file_stem(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name) or "mlcheck"


if __name__ == "__main__":  # python -m mlcheck.cli
    app()
