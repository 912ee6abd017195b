"""Schema checks on Spark: the same verdicts, counts and examples as pandera locally, with
only counts and a few failing values coming back to the driver."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcheck.checks.schema import MAX_EXAMPLES
from mlcheck.engine import evaluate
from tests.conftest import needs_spark

POLICY = """
mlcheck: 1
name: schema on spark
data:
  datasets:
    eval: {source}
schema:
  strict: true
  columns:
    age: {{dtype: int64, checks: {{ge: 18, le: 100, notin: [13]}}}}
    income: {{dtype: float64, nullable: true, checks: {{ge: 0}}}}
    score: {{dtype: int64, nullable: true, checks: {{lt: 3}}}}
    sex: {{dtype: str, checks: {{isin: [female, male]}}}}
    id: {{dtype: int64, unique: true}}
    code: {{dtype: str, nullable: true, checks: {{regex: '[A-Z]{{2}}\\d', min_length: 2,
                                                  max_length: 3}}}}
    active: {{dtype: bool, checks: {{isin: [true]}}}}
    seen: {{dtype: 'datetime64[ns]'}}
    level: {{checks: {{regex: '^a'}}}}
    region: {{dtype: str}}
    note: {{dtype: str, required: false}}
"""


def frame(rows: int = 300) -> pd.DataFrame:
    """Every kind of failure: out of range, not allowed, missing, repeated, unmatched and
    too long or short text, a wrong dtype, a missing and two unexpected columns."""
    rng = np.random.default_rng(3)
    age = rng.integers(18, 90, rows)
    age[[4, 50, 51]] = [13, 101, 7]
    income = rng.normal(50.0, 10.0, rows)
    income[[2, 9]] = np.nan
    income[[30, 31]] = [-1.5, -0.5]
    ids = np.arange(rows)
    ids[[1, 7]] = [0, 6]  # repeated: rows 0 and 1, rows 6 and 7
    sex = rng.choice(["female", "male"], rows).astype(object)
    sex[[3, 60, 61]] = ["x", None, "other"]
    code = np.array(["AB1"] * rows, dtype=object)
    code[[5, 6, 8, 10]] = ["xAB1", "AB12", "A", None]  # xAB1: matched only by a search
    return pd.DataFrame({
        "age": age, "income": income, "score": np.round(rng.normal(0, 2, rows), 1),
        "sex": sex, "id": ids, "code": code, "active": np.arange(rows) % 7 != 3,
        "seen": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(rows), unit="h"),
        "level": np.arange(rows), "extra": 1, "more": "x",
    }).astype({"seen": "datetime64[us]"})


def both(workspace, data: pd.DataFrame):
    """The policy run on one Parquet file through pandas and through Spark."""
    workspace.frame("eval.parquet", data)
    local = evaluate(workspace.policy(POLICY.format(source="eval.parquet"), "local.yaml"))
    spark = evaluate(workspace.policy(POLICY.format(
        source="{spark: {path: eval.parquet, format: parquet}}"), "spark.yaml"))
    return {c.id: c for c in local.checks}, {c.id: c for c in spark.checks}


def without_rows(evidence: dict) -> dict:
    return {ds: {k: v for k, v in found.items() if k != "example_rows"}
            for ds, found in evidence["datasets"].items()}


@needs_spark
def test_spark_reports_what_pandera_reports_locally(workspace, spark):
    local, distributed = both(workspace, frame())
    assert local.keys() == distributed.keys()
    verdicts = {check_id: check.verdict for check_id, check in local.items()}
    assert verdicts == {check_id: check.verdict for check_id, check in distributed.items()}
    assert verdicts == {
        "schema/age": "fail", "schema/income": "fail", "schema/score": "fail",
        "schema/sex": "fail", "schema/id": "fail", "schema/code": "fail",
        "schema/active": "fail", "schema/seen": "pass", "schema/level": "error",
        "schema/region": "fail", "schema/note": "pass", "schema/strict": "fail"}
    for check_id, mine in local.items():
        theirs = distributed[check_id]
        assert (check_id, mine.n, mine.value) == (check_id, theirs.n, theirs.value)
        if mine.verdict != "error":
            assert mine.message == theirs.message
            assert without_rows(mine.evidence) == without_rows(theirs.evidence), check_id
            assert theirs.evidence["datasets"]["eval"]["example_rows"] is None
    assert "str_matches('^a') raised TypeError" in distributed["schema/level"].message
    code = distributed["schema/code"].evidence["datasets"]["eval"]
    assert code["by_check"] == {"str_matches('[A-Z]{2}\\d')": 2, "str_length(2, None)": 1,
                                "str_length(None, 3)": 2}
    assert code["examples"] == ["xAB1", "A", "A", "xAB1", "AB12"]
    assert distributed["schema/id"].evidence["datasets"]["eval"]["examples"] == [0, 0, 6, 6]
    assert "dtype('int64'): found float64" in distributed["schema/score"].message
    assert distributed["schema/strict"].evidence["datasets"]["eval"]["examples"] == [
        "extra", "more"]


@needs_spark
def test_only_counts_and_a_few_failing_values_reach_the_driver(workspace, spark,
                                                               monkeypatch):
    data = frame(400).assign(age=5, sex="x")  # every row fails age and sex
    DataFrame = type(spark.range(1))
    received = []
    for method in ("collect", "toArrow", "toPandas"):
        original = getattr(DataFrame, method)

        def spy(self, *args, _original=original, **kwargs):
            out = _original(self, *args, **kwargs)
            received.append(len(out) if hasattr(out, "__len__") else out.num_rows)
            return out

        monkeypatch.setattr(DataFrame, method, spy)
    _, distributed = both(workspace, data)
    age = distributed["schema/age"].evidence["datasets"]["eval"]
    assert age["failures"] == 400 and age["by_check"] == {
        "greater_than_or_equal_to(18)": 400}
    assert age["examples"] == [5] * MAX_EXAMPLES
    assert distributed["schema/sex"].value == 400
    counted = sum(len(c.evidence["datasets"]["eval"]["by_check"])
                  for c in distributed.values() if c.verdict != "error")
    assert received and max(received) <= counted * MAX_EXAMPLES < 400


@needs_spark
def test_a_pattern_spark_cannot_compile_is_an_error_naming_the_dataset(workspace, spark):
    policy = POLICY.replace("regex: '[A-Z]{{2}}\\d'", "regex: '(?P<x>[A-Z])'")  # not Java
    assert policy != POLICY
    workspace.frame("eval.parquet", frame(100))
    result = evaluate(workspace.policy(policy.format(
        source="{spark: {path: eval.parquet, format: parquet}}")))
    checks = {c.id: c for c in result.checks}
    assert checks["schema/age"].verdict == "error"
    assert checks["schema/age"].message == (
        "Spark could not validate dataset 'eval' against the schema: "
        "java.util.regex.PatternSyntaxException: Unknown inline modifier")
    assert result.verdict == "blocked"


@pytest.mark.parametrize(("kind", "dtype", "found"), [
    ("LongType", "Int64", None), ("IntegerType", "int64", "int32"),
    ("StringType", "category", None), ("BooleanType", "boolean", None),
    ("TimestampType", "datetime64[ns]", None), ("DateType", "str", "object"),
    ("DoubleType", "float32", "float64")])
def test_spark_types_satisfy_the_dtypes_pandas_reads_them_as(kind, dtype, found):
    from mlcheck.spark import SCHEMA_DTYPES, pandas_dtype

    accepted = dtype in SCHEMA_DTYPES.get(kind, ("object",))
    assert accepted == (found is None)
    if found is not None:
        assert pandas_dtype(kind) == found


@needs_spark
def test_regex_classes_match_unicode_as_pandera_does(workspace, spark):
    """Python's \\d and \\D know every script's digits; Java's do only with (?U)."""
    data = pd.DataFrame({"code": ["a\u0661", "\u0661\u0662", "ab", "12"]})
    workspace.frame("eval.parquet", data)
    text = """
        mlcheck: 1
        name: unicode
        data: {{datasets: {{eval: {source}}}}}
        schema:
          columns:
            code: {{dtype: str, checks: {{regex: '\\D+$'}}}}
        """
    local = evaluate(workspace.policy(text.format(source="eval.parquet"), "l.yaml"))
    distributed = evaluate(workspace.policy(text.format(
        source="{spark: {path: eval.parquet, format: parquet}}"), "s.yaml"))
    assert local.checks[0].value == distributed.checks[0].value == 3
    assert local.checks[0].evidence["datasets"]["eval"]["by_check"] == \
        distributed.checks[0].evidence["datasets"]["eval"]["by_check"]
