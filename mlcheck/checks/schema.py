"""Schema checks: one per declared column (and one for strictness), pandera underneath.

Each dataset in scope is validated once, lazily, against one pandera schema; the failure
cases are then split by column, so every column check reports its own evidence.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from mlcheck.checks import Check, Outcome
from mlcheck.context import Context
from mlcheck.errors import CheckError
from mlcheck.policy import ColumnSpec, Policy

MAX_EXAMPLES = 5
PYSPARK_PANDAS_WARNING = "PySpark does not yet fully support pandas"


def pandera() -> Any:
    """pandera.pandas. With PySpark installed, pandera imports pyspark.pandas, which warns
    on every run that it does not support this pandas version yet: not the user's concern
    (mlcheck never uses pandas-on-Spark), so that one warning is silenced."""
    warnings.filterwarnings("ignore", message=PYSPARK_PANDAS_WARNING)
    import pandera.pandas as pa

    return pa


def _pandera_check(key: str, value: Any) -> Any:
    """The pandera built-in check for a policy key (pandera is imported when used)."""
    pa = pandera()
    return {
        "ge": pa.Check.ge, "gt": pa.Check.gt, "le": pa.Check.le, "lt": pa.Check.lt,
        "isin": lambda v: pa.Check.isin(list(v)), "notin": lambda v: pa.Check.notin(list(v)),
        "regex": pa.Check.str_matches,
        "min_length": lambda v: pa.Check.str_length(min_value=v),
        "max_length": lambda v: pa.Check.str_length(max_value=v),
    }[key](value)
STRICT_ID = "schema/strict"


def compile_checks(policy: Policy, context: Context) -> list[Check]:
    spec = policy.schema_
    if spec is None:
        return []
    datasets = list(spec.datasets or policy.data.datasets)
    where = policy.origin.locate
    checks = [
        Check(
            id=f"schema/{column}",
            family="schema",
            severity=col.severity or spec.severity,
            description=_describe(column, col),
            evaluate=_column_check(column, datasets),
            location=where("schema", "columns", column),
        )
        for column, col in spec.columns.items()
    ]
    if spec.strict:
        checks.append(Check(
            id=STRICT_ID, family="schema", severity=spec.severity,
            description="no columns beyond those declared (strict)",
            evaluate=_column_check(None, datasets),
            location=where("schema", "strict"),
        ))
    return checks


def build_schema(policy: Policy) -> Any:
    """The pandera schema (DataFrameSchema) for the policy's `schema` section."""
    pa = pandera()
    spec = policy.schema_
    columns = {}
    for name, col in spec.columns.items():
        given = col.checks.model_dump(exclude_none=True)
        columns[name] = pa.Column(
            col.dtype, checks=[_pandera_check(key, value) for key, value in given.items()],
            nullable=col.nullable, unique=col.unique, required=col.required, name=name,
        )
    return pa.DataFrameSchema(columns, strict=spec.strict)


def failure_cases(context: Context, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pandera's findings for one dataset, computed once per run: (failures, broken checks).

    A check that raised (a regex on numbers, `le` on text) did not measure anything, so it
    is kept apart: its column's check becomes an `error`, never a counted failure."""

    def validate() -> tuple[pd.DataFrame, pd.DataFrame]:
        pa = pandera()
        from pandera.errors import SchemaErrorReason

        try:
            build_schema(context.policy).validate(context.frame(dataset), lazy=True)
        except pa.errors.SchemaErrors as exc:
            cases = exc.failure_cases
            broken = {(getattr(e.schema, "name", None), getattr(e.check, "error", None))
                      for e in exc.schema_errors
                      if e.reason_code == SchemaErrorReason.CHECK_ERROR}
            raised = pd.Series([(c, k) in broken for c, k in zip(
                cases["column"], cases["check"], strict=True)], index=cases.index, dtype=bool)
            return cases[~raised], cases[raised]
        empty = pd.DataFrame(columns=["column", "check", "failure_case", "index"])
        return empty, empty

    return context.memo(("schema", dataset), validate)


def _column_check(column: str | None, datasets: list[str]):
    """Evaluate one column (None: the strictness check) across the datasets in scope."""

    def evaluate(context: Context) -> Outcome:
        per_dataset: dict[str, Any] = {}
        summaries: dict[str, str] = {}
        total = rows = 0
        broken = []
        for dataset in datasets:
            spark = context.spark_frame(dataset) is not None
            found, summaries[dataset], raised = (_spark_dataset if spark else _local_dataset)(
                context, dataset, column)
            broken.extend(f"{dataset}: {check} raised {error}" for check, error in raised)
            per_dataset[dataset] = found
            rows += found["rows"]
            total += found["failures"]
        if broken:
            raise CheckError("a check could not be applied to this column: "
                             + "; ".join(broken))
        if total:
            summary = "; ".join(f"{ds}: {summaries[ds]}"
                                for ds in datasets if per_dataset[ds]["failures"])
            message = f"{total} failure(s) — {summary}"
        else:
            message = f"valid in {', '.join(datasets)}"
        return Outcome(passed=total == 0, value=total, bounds={"max": 0}, n=rows,
                       message=message, evidence={"datasets": per_dataset})

    return evaluate


def _local_dataset(context: Context, dataset: str, column: str | None
                   ) -> tuple[dict[str, Any], str, list[tuple[str, str]]]:
    """One pandas dataset's evidence for a column, its failures in words, and the checks
    that raised on it (check, error), from pandera's failure cases."""
    cases, raised = failure_cases(context, dataset)
    mine_raised = _cases_for(raised, column)
    frame = context.frame(dataset)
    mine = _one_dtype_failure(_cases_for(cases, column), frame, column)
    found = {
        "rows": len(frame),
        "failures": len(mine),
        "by_check": {str(k): int(v) for k, v in mine["check"].value_counts().items()},
        "examples": [_plain(v) for v in mine["failure_case"].head(MAX_EXAMPLES)],
        "example_rows": [_plain(v) for v in mine["index"].head(MAX_EXAMPLES)],
    }
    return found, _summarise(mine) if len(mine) else "", list(zip(
        mine_raised["check"], mine_raised["failure_case"], strict=True))


def spark_findings(context: Context, dataset: str) -> dict[str | None, list[dict]]:
    """A Spark dataset's findings per column, counted on the executors once per run
    (mlcheck.spark.schema_findings)."""
    from mlcheck.spark import schema_findings

    return context.memo(("schema", dataset), lambda: schema_findings(
        context.spark_frame(dataset), context.policy, dataset))


def _spark_dataset(context: Context, dataset: str, column: str | None
                   ) -> tuple[dict[str, Any], str, list[tuple[str, str]]]:
    """As _local_dataset, for a Spark dataset: `failures` and `by_check` are the
    violations counted on the executors, `examples` the first failing values Spark found
    (at most MAX_EXAMPLES per check), and `example_rows` is None, since rows in Spark
    have no position."""
    findings = spark_findings(context, dataset).get(column, [])
    counted = [f for f in findings if "error" not in f]
    failures = sum(f["failures"] for f in counted)
    found = {
        "rows": context.subject.datasets[dataset].rows,
        "failures": failures,
        "by_check": {f["check"]: f["failures"] for f in sorted(
            counted, key=lambda f: -f["failures"])},
        "examples": [_plain(v) for f in counted for v in f["examples"]][:MAX_EXAMPLES],
        "example_rows": None,
    }
    summary = ", ".join(f"{f['check']}: found {f['examples'][0]}"
                        if f["check"].startswith("dtype(") else f"{f['check']} ({f['failures']})"
                        for f in counted)
    return found, summary, [(f["check"], f["error"]) for f in findings if "error" in f]


def _one_dtype_failure(cases: pd.DataFrame, frame: pd.DataFrame,
                       column: str | None) -> pd.DataFrame:
    """A wrong dtype is one failure, reported with the dtype found.

    (pandera checks some dtypes element by element and reports every row.)"""
    is_dtype = cases["check"].astype(str).str.startswith("dtype(")
    if column is None or not is_dtype.any() or column not in frame.columns:
        return cases
    first = cases[is_dtype].head(1).assign(failure_case=str(frame[column].dtype))
    return pd.concat([first, cases[~is_dtype]])


def _summarise(cases: pd.DataFrame) -> str:
    """`isin([...]) (3), dtype('int64'): found float64` for one dataset's failures."""
    parts = []
    for check, group in cases.groupby("check", sort=False):
        if str(check).startswith("dtype("):
            parts.append(f"{check}: found {group['failure_case'].iloc[0]}")
        else:
            parts.append(f"{check} ({len(group)})")
    return ", ".join(parts)


def _cases_for(cases: pd.DataFrame, column: str | None) -> pd.DataFrame:
    if column is None:  # strictness: columns present in the data but not in the schema
        return cases[cases["check"] == "column_in_schema"]
    missing = (cases["check"] == "column_in_dataframe") & (cases["failure_case"] == column)
    return cases[(cases["column"] == column) | missing]


def _describe(column: str, spec: ColumnSpec) -> str:
    parts = [spec.dtype or "any dtype", "nullable" if spec.nullable else "no missing values"]
    if spec.unique:
        parts.append("unique")
    parts.extend(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                 for k, v in spec.checks.model_dump(exclude_none=True).items())
    return f"column '{column}': " + ", ".join(str(p) for p in parts)


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value
