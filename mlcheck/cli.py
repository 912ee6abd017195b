"""The `mlcheck` command line: a thin typer layer over the engine.

Exit codes: 0 passed, 1 blocked, 2 the policy or an input could not be used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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
from mlcheck.report import render_html  # jinja2 loads only when one is rendered

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


@contextmanager
def _exit_codes(interrupted: str) -> Iterator[None]:
    """A command's failures as exit codes: an input error is 2 with its message, Ctrl-C
    130 saying what was left undone, anything unexpected 2 (a crash is never a verdict)."""
    try:
        yield
    except MlcheckError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        err.print(f"[bold red]interrupted:[/] {interrupted}", soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except typer.Exit:
        raise
    except Exception as exc:
        raise _crash(exc) from None


def _fail(exc: Exception) -> typer.Exit:
    _print_error(exc)
    return typer.Exit(EXIT_INVALID)


def _print_error(exc: Exception) -> None:
    message = "\n".join(_safe(line) for line in str(exc).split("\n"))  # several problems
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)


def _crash(exc: Exception) -> typer.Exit:
    """An unexpected failure is not a verdict: exit 2, with the traceback on request."""
    if os.environ.get("MLCHECK_DEBUG"):
        err.print_exception()
    err.print(f"[bold red]internal error:[/] {_safe(type(exc).__name__)}: {_safe(exc)} "
              "(set MLCHECK_DEBUG=1 to see the traceback)", soft_wrap=True)
    return typer.Exit(EXIT_INVALID)


@app.command()
def check(
    policies: Annotated[list[Path], typer.Argument(
        help="Policy files, quoted globs, or folders (every YAML file in a folder with a "
        "top-level `mlcheck:` key).", show_default=False)],
    json_path: Annotated[Optional[Path], typer.Option(  # noqa: UP045 - typer needs Optional
        "--json", help="Where to write the JSON record [default: DIR/<policy name>.json; "
        "with several policies, the session's record: DIR/session.json]")
    ] = None,
    report_path: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--report", help="Where to write the HTML report [default: DIR/<policy name>.html; "
        "with several policies, the session's report: DIR/session.html]")
    ] = None,
    output_dir: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--output-dir", metavar="DIR", help="Where each policy's record and report go, as "
        "<policy name>.json and .html [default: reports]")] = None,
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
    keep_history: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--keep-history", metavar="DIR", help="Also keep a copy of the record as "
        "DIR/<policy name>-<UTC time>.json, never replaced, for `mlcheck history`.")] = None,
) -> None:
    """Evaluate the model each policy names; exit 0 passed, 1 blocked, 2 invalid input
    (with several policies, the worst of theirs)."""
    from mlcheck.ci import find_policies
    from mlcheck.engine import evaluate
    from mlcheck.integrity import load_private_key, seal
    from mlcheck.policy import load_policy
    from mlcheck.subject import input_files

    try:
        found = find_policies(policies)
        if len(found) > 1 and promote:
            raise MlcheckError(f"--promote gates one policy's candidate: name exactly one "
                               f"policy (got {len(found)})")
        if len(found) > 1 and keep_history:
            raise MlcheckError(f"--keep-history keeps one policy's records: name exactly one "
                               f"policy (got {len(found)})")
    except MlcheckError as exc:
        raise _fail(exc) from None
    if len(found) > 1:
        raise typer.Exit(_check_many(
            found, json_path=json_path, report_path=report_path, output_dir=output_dir,
            trust_model=trust_model, verbose=verbose, quiet=quiet, sign=sign, signer=signer,
            model_timeout=model_timeout))
    policy, folder = found[0], output_dir or Path("reports")
    secrets = [sign, sign.with_name(sign.name + ".pub")] if sign else []
    with _exit_codes("no verdict; no record or report was written"):
        try:
            if sign is not None:  # a bad key must fail before a long run, not after it
                if not signer:
                    raise MlcheckError('--sign needs --signer "Name <email>": a signature '
                                       "names the responsible person")
                load_private_key(sign)
            loaded = load_policy(policy)
        except MlcheckError:  # what these outputs said before must not look current
            check_output_paths(*[p for p in (json_path, report_path) if p],
                               inputs=[policy, *secrets])
            clear_previous([p for p in (json_path, report_path) if p])
            _clear_defaults_of(policy, folder, json_path is None, report_path is None)
            raise
        name = _file_stem(loaded.name)
        outputs = check_output_paths(json_path or folder / f"{name}.json",
                                     report_path or folder / f"{name}.html",
                                     inputs=[*input_files(loaded), *secrets])
        if json_path is None:
            _refuse_another_policys_record(outputs[0], loaded)
        clear_previous(outputs)
        _check_promotable(loaded, promote)  # before a long run, not after it
        with _progress() as advance:
            result = evaluate(loaded, trust_model=trust_model, progress=advance,
                              model_timeout=model_timeout)
        record = seal(result.to_dict(), sign, signer)
        files = dict(zip(outputs, (json.dumps(record, indent=2, allow_nan=False) + "\n",
                                   render_html(record)), strict=True))
        if keep_history is not None:  # the same bytes as the record, under a new name
            from mlcheck.history import history_path

            kept = history_path(keep_history, name, record["created_at"])
            check_output_paths(*outputs, kept, inputs=[*input_files(loaded), *secrets])
            files[kept] = files[outputs[0]]
        _write(files)
    _print_summary(result, verbose=verbose, quiet=quiet)
    out.print(f"record: {_safe(outputs[0])}   report: {_safe(outputs[1])}"
              + (f"   kept: {_safe(kept)}" if keep_history is not None else ""),
              soft_wrap=True)
    if promote:
        _promote(loaded, record, promote)
    raise typer.Exit(EXIT_BLOCKED if result.blocked else EXIT_PASSED)


@app.command()
def init(
    data: Annotated[Path, typer.Argument(help="The evaluation dataset (CSV or Parquet).")],
    target: Annotated[str, typer.Option("--target", help="The label column.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the policy "
                                         "(never overwritten).")],
    model: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--model", help="The fitted model (.skops; pickle with --trust-model): adds "
        "performance floors, fairness, explainability and robustness rules.")] = None,
    reference: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--reference", help="Training data: adds a drift section and writes its profile "
        "beside the policy.")] = None,
    sensitive: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--sensitive", help="A sensitive column (repeat for several): adds fairness rules.")
    ] = None,
    task: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--task", help="binary_classification, multiclass_classification or regression "
        "[default: guessed from the target]")] = None,
    name: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--name", help="The policy's name [default: the output file's stem]")] = None,
    trust_model: Annotated[bool, typer.Option(
        "--trust-model", help="Load a pickle model, or list a skops file's extra types "
        "under trusted_types (after you reviewed them).")] = False,
) -> None:
    """Write a starting policy from a dataset (and a model, a reference): every number in
    it says where it came from; it passes on the data it was made from."""
    from mlcheck.scaffold import Init, init_policy

    tasks = ("binary_classification", "multiclass_classification", "regression")
    with _exit_codes("no policy was written"):
        if task is not None and task not in tasks:
            raise MlcheckError(f"unknown --task {task!r}; choose one of {', '.join(tasks)}")
        inputs = [p for p in (data, model, reference) if p]
        check_output_paths(output, inputs=inputs)
        files = init_policy(Init(data=data, target=target, output=output, model=model,
                                 reference=reference, sensitive=list(sensitive or []),
                                 task=task, name=name, trust_model=trust_model))
        check_output_paths(*files, inputs=inputs)
        _write(files)
    for path in files:
        out.print(f"wrote {_safe(path)}", soft_wrap=True)
    out.print(f"next: review it, then `mlcheck check {_safe(output)}`", soft_wrap=True)


@app.command()
def validate(
    policies: Annotated[list[Path], typer.Argument(
        help="Policy files, quoted globs, or folders (every YAML file in a folder with a "
        "top-level `mlcheck:` key).", show_default=False)],
    only_policies: Annotated[bool, typer.Option(
        "--only-policies", help="Skip named YAML files without a top-level `mlcheck:` key "
        "(for pre-commit, which passes every changed YAML file).")] = False,
) -> None:
    """Check policy files without evaluating anything (no model or data is read); exit 0
    all valid, 2 any invalid. Every policy is checked, and each error names its line."""
    from mlcheck.ci import find_policies
    from mlcheck.policy import load_policy

    try:
        found = find_policies(policies, only_policies=only_policies)
    except MlcheckError as exc:
        raise _fail(exc) from None
    invalid = 0
    for policy in found:
        try:
            loaded = load_policy(policy)
        except MlcheckError as exc:
            _print_error(exc)
            invalid += 1
            continue
        except Exception as exc:
            _crash(exc)
            invalid += 1
            continue
        sources = loaded.origin.sources
        extra = f" (extends {', '.join(p for p, _ in sources[1:])})" if len(sources) > 1 else ""
        out.print(f"{_safe(policy)}: valid policy '{_safe(loaded.name)}'{_safe(extra)}",
                  soft_wrap=True)
    if len(found) != 1:
        out.print(f"{len(found) - invalid} of {len(found)} policies valid"
                  + ("" if found or not only_policies else
                     " (no named file has a top-level `mlcheck:` key)"), soft_wrap=True)
    raise typer.Exit(EXIT_INVALID if invalid else EXIT_PASSED)


@app.command()
def profile(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the profile.")],
    dataset: Annotated[Optional[Path], typer.Argument(  # noqa: UP045
        help="A CSV or Parquet reference dataset (or a Spark source: --spark-table, "
        "--spark-path).", show_default=False)] = None,
    bins: Annotated[int, typer.Option(help="Reference-quantile bins (as drift.bins).")] = 10,
    spark_table: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--spark-table", help="Profile this table through Spark, as a policy's `spark: "
        "{table: …}` (e.g. lake.events; needs the `spark` extra).", show_default=False)] = None,
    spark_path: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--spark-path", help="Profile this path or URI through Spark, with --spark-format "
        "(a relative path: to the current folder).", show_default=False)] = None,
    spark_format: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--spark-format", help="With --spark-path: parquet, csv, json, orc, delta…",
        show_default=False)] = None,
    spark_option: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--spark-option", metavar="KEY=VALUE", help="With --spark-path: a reader option "
        "(repeat for several), e.g. header=true.", show_default=False)] = None,
) -> None:
    """Store what drift checks need from a reference dataset, in a small JSON file. The
    dataset is a file, or a Spark table or path read in the active or standard session
    (docs/spark.md)."""
    with _exit_codes("no profile was written"):
        if (dataset, spark_table, spark_path).count(None) != 2:
            raise MlcheckError("give exactly one of DATASET, --spark-table or --spark-path")
        if spark_path is None and (spark_format or spark_option):
            raise MlcheckError("--spark-format and --spark-option go with --spark-path")
        if spark_path is not None and not spark_format:
            raise MlcheckError("--spark-path needs --spark-format (parquet, csv, json, orc, "
                               "delta…)")
        if not 2 <= bins <= 100:
            raise MlcheckError("--bins must be between 2 and 100")
        if dataset is not None:
            made = _profile_file(dataset, output, bins)
        else:
            made = _profile_spark(spark_table, spark_path, spark_format, spark_option or [],
                                  output, bins)
        _write({output: json.dumps(made, indent=1) + "\n"})
    (err if output == STDOUT else out).print(  # `-o -`: the profile alone on stdout
        f"profile of {len(made['columns'])} columns, {made['rows']:,} rows: "
        f"{_safe(output)}", soft_wrap=True)


def _profile_file(dataset: Path, output: Path, bins: int) -> dict:
    """The profile of a CSV or Parquet file, its source the path and the file's SHA-256."""
    from mlcheck.checks.drift import make_profile
    from mlcheck.inputs import DATASET, read_limited
    from mlcheck.subject import read_dataset

    check_output_paths(output, inputs=[dataset])
    if not dataset.exists():
        raise MlcheckError(f"dataset not found: {dataset}")
    try:
        content = read_limited(dataset, "dataset", DATASET)
    except OSError as exc:
        raise MlcheckError(f"cannot read {dataset}: {exc.strerror or exc}") from None
    frame = read_dataset(dataset, name=dataset.name, content=content)
    made = make_profile(frame, bins)
    made["source"] = {"path": str(dataset), "sha256": hashlib.sha256(content).hexdigest()}
    return made


SECRET_WORDS = ("password", "secret", "token", "credential", "key")


def _profile_spark(table: str | None, path: str | None, form: str | None, options: list[str],
                   output: Path, bins: int) -> dict:
    """The profile of a Spark table or path, read as a policy's `spark:` dataset is; its
    source the table or path with its content digest (as a `sha256:` pin computes it, over
    every column)."""
    pairs = {}
    for option in options:
        key, equals, value = option.partition("=")
        if not key or not equals:
            raise MlcheckError(f"--spark-option takes KEY=VALUE, got {option!r}")
        pairs[key] = value
    local: list[Path] = []
    if table is not None:
        source, shown = {"table": table}, f"table {table}"
    else:
        if not ("://" in path or path.startswith("/") or ":" in path.split("/")[0]):
            path = str(Path(path).resolve())  # the JVM's working folder may not be ours
            local.append(Path(path))
        shown_options = {k: "<redacted>" if any(w in (k + v).lower() for w in SECRET_WORDS)
                         else v for k, v in pairs.items()}  # a JDBC password is not kept
        kept = re.sub(r"//[^/@]*@", "//<redacted>@", path)  # user:password@host
        source = {"path": kept, "format": form, "options": shown_options}
        shown = f"{form} at {kept}"
    check_output_paths(output, inputs=local)
    from mlcheck import spark
    from mlcheck.spark import first_line

    spark.pyspark()  # the install message when PySpark is missing
    try:
        session = spark.session()
    except Exception as exc:  # no Java, an unreachable Spark Connect server, …
        raise MlcheckError(f"Spark could not start a session to read {shown}: "
                           f"{first_line(exc)}") from None
    try:
        frame = session.read.table(table) if table is not None else \
            session.read.format(form).options(**pairs).load(path)
        if not frame.columns:  # resolves the source: a missing table or path fails here
            raise MlcheckError(f"Spark {shown} has no columns")
    except MlcheckError:
        raise
    except Exception as exc:  # AnalysisException and friends
        raise MlcheckError(f"Spark cannot read {shown}: {first_line(exc)}") from None
    try:
        rows, digest = spark.fingerprint(frame)
        if rows == 0:
            raise MlcheckError(f"Spark {shown} has no rows")
        made = spark.make_profile(frame, bins)
    except MlcheckError:
        raise
    except Exception as exc:  # a corrupt file, a lost executor, …
        raise MlcheckError(f"Spark could not profile {shown}: {type(exc).__name__}: "
                           f"{first_line(exc)}") from None
    made["source"] = {"spark": source, "sha256": digest, "digest_method": spark.DIGEST}
    return made


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
        "scanning, at the rule's line in the policy), junit, model-card (Markdown in "
        "the Hugging Face layout, traced to the record's digest), or github (workflow "
        "annotations at each failing rule's line, for GitHub Actions).")] = "html",
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
        check_output_paths(target, inputs=[record] + ([compare] if compare else []),
                           appending=append)
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
def history(
    records: Annotated[list[Path], typer.Argument(
        help="JSON records (or HTML reports) of one policy over time, e.g. those `check "
        "--keep-history` kept.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the HTML "
                                         "page.")],
    group: Annotated[bool, typer.Option(
        "--group-by-policy", help="Records of several policies: one history per policy "
        "(refused otherwise).")] = False,
) -> None:
    """Per check, the value, interval and verdict across runs, and where the policy
    changed, as one self-contained HTML page."""
    from mlcheck.history import render_history
    from mlcheck.report.text import ALTERED_NOTE

    try:
        check_output_paths(output, inputs=records)
        read = []
        for path in records:
            record, status = _read(path)
            read.append((str(path), record, status))
        page = render_history(read, group=group)
        _write({output: page})
    except MlcheckError as exc:
        raise _fail(exc) from None
    except Exception as exc:
        raise _crash(exc) from None
    for label, _, status in read:
        if status == "altered":  # the page says so too, on the run's row
            err.print(f"[bold red]warning:[/] {_safe(label)}: {ALTERED_NOTE}", soft_wrap=True)
    (err if output == STDOUT else out).print(
        f"history of {len(read)} records: {_safe(output)}", soft_wrap=True)


@app.command()
def mutate(
    policy: Annotated[Path, typer.Argument(help="The policy file to test.", show_default=False)],
    families: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--families", help="Comma-separated mutation families [default: performance,"
        "subgroup,proxy,behaviour,data].")] = None,
    budget: Annotated[int, typer.Option(
        "--budget", min=1, help="Most mutants evaluated (each re-runs the affected checks).")
    ] = 40,
    model_calls: Annotated[int, typer.Option(
        "--model-calls", min=1, help="Most calls of the real model.")] = 5_000,
    levels: Annotated[int, typer.Option(
        "--levels", min=1, max=16, help="Severities per operator (searched by bisection).")
    ] = 4,
    groups: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--groups", help="Also confine subgroup harm to the groups of this column "
        "(repeatable).")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the mutants.")] = 0,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Also re-run explainability for proxy mutants (the permutation "
        "explainer on the wrapped model: slow on real data).")] = False,
    only: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--only", metavar="PATTERN", help="Keep only the operators whose family/operator "
        "matches (`*`: any text), e.g. 'subgroup/flip[race=*]' (repeatable).")] = None,
    json_path: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--json", help="Where to write the JSON record [default: DIR/<policy name>"
        ".mutation.json]")] = None,
    report_path: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--report", help="Where to write the HTML page [default: DIR/<policy name>"
        ".mutation.html]")] = None,
    output_dir: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--output-dir", metavar="DIR", help="[default: reports]")] = None,
    min_score: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--min-score", min=0, max=1, help="Exit 1 when the overall mutation score is lower.")
    ] = None,
    trust_model: Annotated[bool, typer.Option(
        "--trust-model", help="Trust pickle/joblib model files and unreviewed skops types.")
    ] = False,
) -> None:
    """Mutation-test a policy: damage its own subject on purpose (model decisions, groups,
    data, behaviour) and report which checks catch which damage; see docs/mutation.md."""
    from mlcheck.integrity import seal
    from mlcheck.mutate import Budget, render_html, render_text
    from mlcheck.mutate import mutate as run_mutate
    from mlcheck.policy import load_policy
    from mlcheck.subject import input_files

    with _exit_codes("nothing was written"):
        loaded = load_policy(policy)
        name, folder = _file_stem(loaded.name), output_dir or Path("reports")
        outputs = check_output_paths(json_path or folder / f"{name}.mutation.json",
                                     report_path or folder / f"{name}.mutation.html",
                                     inputs=input_files(loaded))
        clear_previous(outputs)
        chosen = tuple(f.strip() for f in families.split(",") if f.strip()) \
            if families else None
        with err.status("mutating…") as status:
            record = run_mutate(loaded, families=chosen, groups=tuple(groups or ()),
                                budget=Budget(mutants=budget, model_calls=model_calls,
                                              levels=levels),
                                seed=seed, trust_model=trust_model, explain=explain,
                                only=tuple(only or ()),
                                progress=lambda text: status.update(_safe(text, 200)))
        record = seal(record)
        _write(dict(zip(outputs, (json.dumps(record, indent=2, allow_nan=False) + "\n",
                                  render_html(record)), strict=True)))
    for line in render_text(record):
        out.print(_safe(line), soft_wrap=True)
    out.print(f"record: {_safe(outputs[0])}   page: {_safe(outputs[1])}", soft_wrap=True)
    if min_score is not None and record["score"] < min_score:
        err.print(f"[bold red]mutation score {record['score']:.0%} is below --min-score "
                  f"{min_score:.0%}[/]", soft_wrap=True)
        raise typer.Exit(EXIT_BLOCKED)


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
    paths: Annotated[list[Path], typer.Argument(
        help="JSON records or HTML reports.", show_default=False)],
    public_key: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--public-key", help="Require a signature by this key.")] = None,
    artifacts: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--artifacts", help="Also re-hash the model, data and policy files the record "
        "names, relative to this folder (where the check was run).")] = None,
    require_signature: Annotated[bool, typer.Option(
        "--require-signature", help="Fail an unsigned record or one not signed by "
        "--public-key (required with it): a digest alone detects accidental edits only, "
        "since anyone can recompute it.")] = False,
) -> None:
    """Check that records or reports are intact; exit 0 all intact, 1 any altered, unsealed
    or unverified, 2 any unreadable."""
    from mlcheck.integrity import verify as verify_file

    if require_signature and public_key is None:  # a key the record carries vouches for nothing
        raise _fail(MlcheckError(
            "--require-signature needs --public-key KEY.pub: a signature checked only against "
            "the key embedded in the record proves that someone signed it, not who"))
    worst = EXIT_PASSED
    for path in paths:
        try:
            if not path.exists():
                raise MlcheckError(f"not found: {path}")
            result = verify_file(path, public_key, artifacts,
                                 require_signature=require_signature)
        except MlcheckError as exc:
            worst = _fail(exc).exit_code
            continue
        except Exception as exc:  # malformed JSON or structure: unreadable, not "altered"
            worst = _fail(MlcheckError(f"{path} holds no readable mlcheck record: "
                                       f"{type(exc).__name__}: {exc}")).exit_code
            continue
        for line in result.checked:
            out.print(f"[green]OK[/]        {_safe(line)}", soft_wrap=True)
        for line in result.notes:
            out.print(f"[yellow]NOTE[/]      {_safe(line)}", soft_wrap=True)
        for line in result.problems:
            out.print(f"[bold red]MISMATCH[/]  {_safe(line)}", soft_wrap=True)
        for line in result.missing:
            out.print(f"[bold red]MISSING[/]   {_safe(line)}", soft_wrap=True)
        label = f"{_safe(path)}: " if len(paths) > 1 else ""
        out.print(f"{label}[bold {'green' if result.intact else 'red'}]{result.status}[/]",
                  soft_wrap=True)
        worst = max(worst, EXIT_PASSED if result.intact else EXIT_BLOCKED)
    raise typer.Exit(worst)


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


def _check_many(policies: list[Path], *, json_path: Path | None, report_path: Path | None,
                output_dir: Path | None, trust_model: bool, verbose: bool, quiet: bool,
                sign: Path | None, signer: str | None, model_timeout: float | None) -> int:
    """`mlcheck check` with several policies: each one's record and report under DIR as
    <name>.json/.html, the session's (the record `pytest --mlcheck` writes) at --json and
    --report; one line per policy at the end. Every policy is loaded before any runs; one
    that cannot be used is named in the session as not run. Returns the worst exit code
    (2 over 1 over 0); a run that completes nothing writes nothing."""
    from mlcheck.engine import evaluate
    from mlcheck.integrity import load_private_key, seal
    from mlcheck.policy import load_policy
    from mlcheck.result import session_record
    from mlcheck.subject import input_files

    folder = output_dir or Path("reports")
    session = (json_path or folder / "session.json", report_path or folder / "session.html")
    secrets = [sign, sign.with_name(sign.name + ".pub")] if sign else []
    not_run: list[dict[str, str]] = []
    lines: dict[Path, str] = {}  # the closing summary, one line per policy
    with _exit_codes("no verdict; no record or report was written"):
        if sign is not None:
            if not signer:
                raise MlcheckError('--sign needs --signer "Name <email>": a signature names '
                                   "the responsible person")
            load_private_key(sign)
        loaded: dict[Path, Policy] = {}
        for path in policies:  # a typo fails in seconds, before any long run
            try:
                loaded[path] = load_policy(path)
            except MlcheckError as exc:
                _print_error(exc)
                not_run.append({"policy": str(path), "reason": f"could not be loaded: {exc}"})
                _clear_defaults_of(path, folder, record=True, report=True)
                lines[path] = f"[bold red]INVALID[/]  {_safe(path)}: could not be loaded"
        names: dict[str, Path] = {}
        for path, policy in loaded.items():
            other = names.setdefault(_file_stem(policy.name), path)
            if other != path:
                raise MlcheckError(f"{other} and {path} are both named '{policy.name}', so "
                                   f"their records would be the same file in {folder}; "
                                   "rename one of them")
        outputs = {path: (folder / f"{stem}.json", folder / f"{stem}.html")
                   for stem, path in names.items()}
        check_output_paths(*session, *(p for pair in outputs.values() for p in pair),
                           inputs=[*policies, *secrets,
                                   *(f for policy in loaded.values()
                                     for f in input_files(policy))])
        for path, (record_path, _) in outputs.items():
            _refuse_another_policys_record(record_path, loaded[path])
        clear_previous([*session, *(p for pair in outputs.values() for p in pair)])
        runs, files = [], {}
        for path, policy in loaded.items():
            out.print(f"[bold]{_safe(path)}[/] ({_safe(policy.name)})", soft_wrap=True)
            try:
                with _progress() as advance:
                    result = evaluate(policy, trust_model=trust_model, progress=advance,
                                      model_timeout=model_timeout)
            except MlcheckError as exc:  # this policy's model or data: the others still run
                _print_error(exc)
                not_run.append({"policy": str(path), "reason": str(exc)})
                lines[path] = (f"[bold red]INVALID[/]  {_safe(path)}: its model or data "
                               "could not be used")
                continue
            _print_summary(result, verbose=verbose, quiet=quiet)
            record = seal(result.to_dict(), sign, signer)
            record_path, html_path = outputs[path]
            files[record_path] = json.dumps(record, indent=2, allow_nan=False) + "\n"
            files[html_path] = render_html(record)
            runs.append(result)
            counts = ", ".join(f"{n} {v}" for v, n in result.counts().items() if n)
            lines[path] = (f"[bold {'red' if result.blocked else 'green'}]"
                           f"{result.verdict.upper():<7}[/]  {_safe(path)} ({counts})   "
                           f"record: {_safe(record_path)}")
        if runs:
            record = seal(session_record(runs, not_run), sign, signer)
            files[session[0]] = json.dumps(record, indent=2, allow_nan=False) + "\n"
            files[session[1]] = render_html(record)
            _write(files)
    out.print(f"{len(policies)} policies:", soft_wrap=True)
    for path in policies:
        out.print(f"  {lines[path]}", soft_wrap=True)
    if not runs:
        err.print("[bold red]error:[/] no policy could be evaluated; nothing was written",
                  soft_wrap=True)
        return EXIT_INVALID
    verdict = record["verdict"]
    out.print(f"[bold {'green' if verdict == 'passed' else 'red'}]{verdict.upper()}[/] "
              f"({sum(not r.blocked for r in runs)} passed, {sum(r.blocked for r in runs)} "
              f"blocked, {len(not_run)} not run)   record: {_safe(session[0])}   "
              f"report: {_safe(session[1])}", soft_wrap=True)
    return EXIT_INVALID if not_run else EXIT_BLOCKED if verdict == "blocked" else EXIT_PASSED


def _clear_defaults_of(policy: Path, folder: Path, record: bool, report: bool) -> None:
    """A policy that does not load still names its default outputs (`name:`): remove
    the record and report an earlier run of this same file left there, so they cannot
    pass for this run's. Another policy's outputs are left alone."""
    import re

    from mlcheck.inputs import POLICY, read_limited

    try:  # a FIFO or a huge file may be why the policy did not load: read it bounded
        text = read_limited(policy, "policy file", POLICY).decode("utf-8", errors="replace")
    except (MlcheckError, OSError):
        return
    found = re.search(r"^name:[ \t]*['\"]?([^'\"#\n]*?)['\"]?[ \t]*(?:#.*)?$", text, re.M)
    if not found or not found.group(1):
        return
    stem = _file_stem(found.group(1))
    json_out, html_out = folder / f"{stem}.json", folder / f"{stem}.html"
    written_for = _recorded_policy(json_out)
    if written_for is not None and Path(written_for).resolve() == policy.resolve():
        clear_previous([p for p, default in ((json_out, record), (html_out, report))
                        if default])


def _recorded_policy(path: Path) -> str | None:
    """The policy file a run record at `path` was written for; None when there is no
    readable run record there (only a regular file, read within the record limit)."""
    from mlcheck.inputs import RECORD, read_limited

    try:
        return str(json.loads(read_limited(path, "record", RECORD))["policy"]["path"])
    except (MlcheckError, OSError, ValueError, KeyError, TypeError):
        return None


def _refuse_another_policys_record(path: Path, policy: Policy) -> None:
    """Two policy files with the same `name` share default outputs: never replace the
    record of one with the other's without being told to."""
    written_for = _recorded_policy(path)
    if written_for is None:
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

    with _exit_codes("while updating the registry: the candidate's mlcheck.promotion tag says "
                      "how far it got"):
        done = promote(policy, record, alias)
    (out if done.moved else err).print(f"{'[bold green]' if done.moved else '[yellow]'}"
                                       f"mlflow:[/] {_safe(done.message)}", soft_wrap=True)
    if done.refused:
        raise typer.Exit(EXIT_BLOCKED)


def _file_stem(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name) or "mlcheck"


if __name__ == "__main__":  # python -m mlcheck.cli
    app()
