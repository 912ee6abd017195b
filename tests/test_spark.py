"""Spark datasets: the same policy gives the same verdicts on Spark as on pandas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlcheck.checks.drift import make_profile
from mlcheck.engine import evaluate
from mlcheck.errors import InputError, PolicyError
from tests.conftest import INSTALL, needs_spark


def frames(rows: int = 3000, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Every kind of column the drift checks read: continuous, tied and whole numbers with
    missing values, text, booleans and timestamps."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10 + shift, 0.5, rows)
    income[rng.random(rows) < 0.05] = np.nan
    age = rng.integers(18, 90, rows).astype(float)
    age[rng.random(rows) < 0.03] = np.nan
    return pd.DataFrame({
        "income": income,
        "age": age,  # whole numbers with missing values: a float column of ties
        "score": np.round(rng.normal(shift, 1, rows), 1),
        "plan": rng.choice(["basic", "plus", "pro"] + (["team"] if shift else []), rows),
        "active": rng.random(rows) < 0.5 + shift / 4,
        "flag": pd.Series(rng.random(rows) < 0.3).astype(object).where(  # nulls: objects
            rng.random(rows) > (0.1 if shift else 0), None),
        "seen": pd.Timestamp("2024-01-01", tz="UTC")
        + pd.to_timedelta(rng.integers(0, 10**6, rows), unit="s"),
    })


RULES = """
          - {test: psi, max: 0.1}
          - {test: ks}
          - {test: wasserstein, max: 0.1}
          - {test: chi2}
          - {test: jensen_shannon, max: 0.1}
          - {test: total_variation, max: 0.1}
          - {test: unseen_categories, max: 0}
          - {test: missing_share, max: 0.01}
          - {test: share_of_drifted_columns, max: 0.5}
"""


def policy_text(reference: str, current: str, extra: str = "") -> str:
    return f"""
        mlcheck: 1
        name: drift on spark
        data:
          datasets:
            reference: {reference}
            current: {current}
        drift:
          {extra}
          rules:
        {RULES}
        """


def spark_path(name: str) -> str:
    return f"{{spark: {{path: {name}, format: parquet}}}}"


def same_verdicts(local, distributed) -> None:
    """Identical verdicts; identical counts, PSI, chi-square and binned evidence; KS and
    Wasserstein within the bounds the Spark run reports."""
    left = {c.id: c for c in local.checks}
    right = {c.id: c for c in distributed.checks}
    assert left.keys() == right.keys()
    for check_id, mine in left.items():
        theirs = right[check_id]
        assert (check_id, mine.verdict) == (check_id, theirs.verdict), theirs.message
        if any(t in check_id for t in ("/ks[", "/wasserstein[")):
            bounds = theirs.evidence["sketch"][
                "ks_bounds" if "/ks[" in check_id else "wasserstein_bounds"]
            assert bounds[0] - 1e-9 <= mine.value <= bounds[1] + 1e-9, (check_id, bounds)
            assert theirs.value == pytest.approx(bounds[1])
            assert mine.evidence["bins"] == theirs.evidence["bins"]
        else:
            assert mine.value == theirs.value, check_id
            if "bins" in mine.evidence:
                assert mine.evidence["bins"] == theirs.evidence["bins"], check_id


# ------------------------------------------------------------------ without Spark

def test_a_plain_policy_never_imports_pyspark(workspace):
    workspace.frame("reference.csv", frames(200))
    workspace.frame("current.csv", frames(200, seed=1))
    path = workspace.policy(policy_text("reference.csv", "current.csv"))
    code = ("import sys, mlcheck; r = mlcheck.evaluate(sys.argv[1]); "
            "print(len(r.checks), 'pyspark' in sys.modules, 'mlcheck.spark' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True)
    checks, pyspark_loaded, module_loaded = out.stdout.split()
    assert int(checks) > 10 and pyspark_loaded == module_loaded == "False"


def test_a_spark_dataset_without_pyspark_says_what_to_install(workspace, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark raises ImportError
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    path = workspace.policy(policy_text("{spark: {table: lake.reference}}",
                                        "{spark: {table: lake.current}}"))
    with pytest.raises(InputError) as caught:
        evaluate(path)
    assert INSTALL in str(caught.value) and "pip install mlcheck " not in str(caught.value)


@pytest.mark.parametrize(("source", "message"), [
    ("{spark: {path: ref}}", "`path` needs a `format`"),
    ("{spark: {table: t, path: x, format: csv}}", "exactly one of `table` or `path`"),
    ("{spark: {table: t}, path: x.csv}", "exactly one of `path` (a file) or `spark`"),
    ("{spark: {table: t}, format: csv}", "`format` is for files"),
])
def test_spark_source_keys_are_checked_with_their_line(workspace, source, message):
    path = workspace.policy(policy_text(source, "current.csv"))
    with pytest.raises(PolicyError) as caught:
        evaluate(path)
    assert message in str(caught.value) and "policy.yaml:5:" in str(caught.value)


def test_booleans_with_missing_values_are_the_same_categories_as_without(workspace):
    """Parquet gives pandas an object column for booleans with nulls: its categories must
    still be 1 and 0, as on Spark and as for a boolean column without nulls."""
    workspace.frame("reference.parquet", pd.DataFrame({"active": [True, False] * 100}))
    workspace.frame("current.parquet", pd.DataFrame({"active": [True, False, None] * 70}))
    path = workspace.policy(policy_text("reference.parquet", "current.parquet"))
    checks = {c.id: c for c in evaluate(path).checks}
    assert checks["drift/unseen_categories[active]"].value == 0
    assert checks["drift/chi2[active]"].verdict == "pass"


# ------------------------------------------------------------------ on Spark

@needs_spark
def test_parity_one_policy_through_pandas_and_through_spark(workspace, spark, monkeypatch):
    import mlcheck.spark as on_spark

    monkeypatch.setattr(on_spark, "SAMPLE_POINTS", 300)  # a grid coarser than the data
    workspace.frame("reference.parquet", frames(3000))
    workspace.frame("current.parquet", frames(2000, shift=0.3, seed=1))
    local = evaluate(workspace.policy(policy_text("reference.parquet", "current.parquet"),
                                      "local.yaml"))
    distributed = evaluate(workspace.policy(policy_text(
        spark_path("reference.parquet"), spark_path("current.parquet")), "spark.yaml"))
    same_verdicts(local, distributed)
    widths = [np.diff(c.evidence["sketch"]["ks_bounds"])[0] for c in distributed.checks
              if "sketch" in c.evidence]
    assert max(widths) > 0  # bounds, not a coincidence of an exact grid
    statuses = {c.verdict for c in distributed.checks}
    assert {"pass", "fail"} <= statuses  # the shift is caught, the rest is not drift
    described = distributed.to_dict()["subject"]["datasets"]["current"]
    assert described["rows"] == 2000 and described["path"].startswith("spark: parquet")
    assert "xxhash64" in described["digest_method"]
    distributed.save(workspace.root / "spark.json", workspace.root / "spark.html")
    assert "ks_bounds" in (workspace.root / "spark.json").read_text()


@needs_spark
def test_parity_against_a_reference_profile_and_a_spark_table(workspace, spark):
    import json

    reference = frames(3000)
    workspace.write("reference.json", json.dumps(make_profile(reference)))
    workspace.frame("current.parquet", frames(2000, shift=0.3, seed=1))
    spark.read.parquet(str(workspace.root / "current.parquet")).createOrReplaceTempView(
        "current_batch")
    extra = "reference_profile: reference.json"
    local = evaluate(workspace.policy(policy_text("current.parquet", "current.parquet",
                                                  extra), "local.yaml"))
    distributed = evaluate(workspace.policy(policy_text(
        "current.parquet", "{spark: {table: current_batch}}", extra), "spark.yaml"))
    same_verdicts(local, distributed)


@needs_spark
def test_parity_with_a_pandas_reference_and_a_spark_current_batch(workspace, spark):
    workspace.frame("reference.parquet", frames(1000))
    workspace.frame("current.parquet", frames(800, shift=0.3, seed=1))
    local = evaluate(workspace.policy(policy_text("reference.parquet", "current.parquet"),
                                      "local.yaml"))
    mixed = evaluate(workspace.policy(policy_text(
        "reference.parquet", spark_path("current.parquet")), "mixed.yaml"))
    same_verdicts(local, mixed)


@needs_spark
def test_a_spark_dataframe_passed_in_runs_where_it_is(workspace, spark):
    reference = frames(600)
    current = frames(500, shift=0.3, seed=1)
    workspace.frame("reference.csv", reference)
    workspace.frame("current.csv", current)
    path = workspace.policy(policy_text("reference.csv", "current.csv"))
    local = evaluate(path, datasets={"reference": reference, "current": current})
    distributed = evaluate(path, datasets={"reference": spark.createDataFrame(reference),
                                           "current": spark.createDataFrame(current)})
    same_verdicts(local, distributed)
    described = distributed.to_dict()["subject"]["datasets"]["current"]
    assert described["path"] == "<in memory>" and described["rows"] == 500


@needs_spark
def test_a_profile_made_on_spark_is_the_local_profile_but_for_the_sketch(workspace, spark):
    from mlcheck.checks.drift import as_numbers
    from mlcheck.spark import make_profile as spark_profile

    frame = frames(3000)
    workspace.frame("reference.parquet", frame)
    made = spark_profile(spark.read.parquet(str(workspace.root / "reference.parquet")), 10)
    local = make_profile(pd.read_parquet(workspace.root / "reference.parquet"), 10)
    assert made.keys() == local.keys() and made["rows"] == local["rows"]
    for name, column in local["columns"].items():
        theirs = made["columns"][name]
        assert theirs.keys() == column.keys(), name
        for key in column:
            if key == "quantiles":  # a sketch: each value reaches its probability first
                values = np.sort(as_numbers(frame[name].dropna()))
                below = np.searchsorted(values, theirs[key], "left") / len(values)
                upto = np.searchsorted(values, theirs[key], "right") / len(values)
                tolerance = 1e-9
                probabilities = np.linspace(0, 1, 1001)
                assert np.all((below - tolerance <= probabilities)
                              & (probabilities <= upto + tolerance)), name
            elif key == "std":
                assert theirs[key] == pytest.approx(column[key], rel=1e-9)
            else:
                assert theirs[key] == column[key], (name, key)


@needs_spark
def test_exact_bin_edges_when_each_slice_must_be_narrowed_again(spark, monkeypatch):
    import mlcheck.spark as on_spark

    monkeypatch.setattr(on_spark, "EXACT_SLICE", 3)  # forces the narrowing passes
    monkeypatch.setattr(on_spark, "SAMPLE_POINTS", 40)
    calls = []
    narrow = on_spark._order_statistics
    monkeypatch.setattr(on_spark, "_order_statistics",
                        lambda *a, **k: calls.append(k.get("depth", 0)) or narrow(*a, **k))
    values = np.random.default_rng(3).normal(size=1000)
    frame = spark.createDataFrame(pd.DataFrame({"x": values}))
    edges = on_spark.quantile_edges(frame, {"x": len(values)}, 2)["x"]
    expected = np.unique(np.quantile(np.sort(values), np.linspace(0, 1, 3)[1:-1]))
    assert np.array_equal(edges, expected)
    assert max(calls) >= 1  # an interval was narrowed again


@needs_spark
def test_spark_source_errors_name_the_dataset_and_line(workspace, spark):
    path = workspace.policy(policy_text("{spark: {table: no_such_table}}",
                                        spark_path("missing.parquet")))
    with pytest.raises(InputError) as caught:
        evaluate(path)
    assert "dataset 'reference': Spark cannot read table no_such_table" in str(caught.value)
    assert "policy.yaml:5:" in str(caught.value)
    workspace.frame("current.parquet", frames(100))
    pinned = workspace.policy(policy_text(spark_path("current.parquet").replace(
        "}}", "}, sha256: " + "a" * 64 + "}"), spark_path("current.parquet")), "pinned.yaml")
    with pytest.raises(InputError, match="SHA-256 mismatch for spark: parquet"):
        evaluate(pinned)
