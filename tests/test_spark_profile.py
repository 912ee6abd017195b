"""`mlcheck profile` of a Spark source: a table or a path, the same profile as a file's."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlcheck.cli import app
from tests.conftest import INSTALL, needs_spark


def run(*args: object):
    """The CLI in this process, so the test session's SparkSession is the active one."""
    return CliRunner().invoke(app, [str(a) for a in args])


def reference(rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Continuous, tied and whole numbers with missing values, text and booleans."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.5, rows)
    income[rng.random(rows) < 0.05] = np.nan
    age = rng.integers(18, 90, rows).astype(float)
    age[rng.random(rows) < 0.03] = np.nan
    return pd.DataFrame({"income": income, "age": age,
                         "score": np.round(rng.normal(0, 1, rows), 1),
                         "plan": rng.choice(["basic", "plus", "pro"], rows),
                         "active": rng.random(rows) < 0.5})


def same_profile(spark_made: dict, local: dict) -> None:
    """Counts, bins, shares and categories identical; the spread equal to rounding; the
    quantile sketch as long (its points may differ by one grid interval, docs/spark.md)."""
    assert spark_made["rows"] == local["rows"] and spark_made["bins"] == local["bins"]
    assert spark_made["columns"].keys() == local["columns"].keys()
    for name, column in local["columns"].items():
        theirs = spark_made["columns"][name]
        assert theirs.keys() == column.keys(), name
        for key in column:
            if key == "quantiles":
                assert len(theirs[key]) == len(column[key]), name
                assert (theirs[key][0], theirs[key][-1]) == (column[key][0], column[key][-1])
            elif key == "std":
                assert theirs[key] == pytest.approx(column[key], rel=1e-9), name
            else:
                assert theirs[key] == column[key], (name, key)


# ------------------------------------------------------------------ without Spark

@pytest.mark.parametrize(("args", "message"), [
    ([], "give exactly one of DATASET, --spark-table or --spark-path"),
    (["ref.csv", "--spark-table", "t"], "give exactly one of DATASET, --spark-table or "
                                        "--spark-path"),
    (["--spark-table", "t", "--spark-path", "p", "--spark-format", "csv"],
     "give exactly one of DATASET, --spark-table or --spark-path"),
    (["--spark-path", "ref/"], "--spark-path needs --spark-format (parquet, csv, json, orc, "
                               "delta"),
    (["--spark-table", "t", "--spark-format", "csv"], "--spark-format and --spark-option go "
                                                      "with --spark-path"),
    (["ref.csv", "--spark-option", "header=true"], "--spark-format and --spark-option go with "
                                                   "--spark-path"),
    (["--spark-path", "ref/", "--spark-format", "csv", "--spark-option", "header"],
     "--spark-option takes KEY=VALUE, got 'header'"),
])
def test_the_source_is_one_of_a_file_a_table_or_a_path(workspace, args, message):
    done = run("profile", *args, "-o", "ref.json")
    assert done.exit_code == 2, done.output
    assert message in done.output
    assert not (workspace.root / "ref.json").exists()


def test_a_spark_source_without_pyspark_says_what_to_install(workspace, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark raises ImportError
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    done = run("profile", "--spark-table", "lake.events", "-o", "ref.json")
    assert done.exit_code == 2, done.output
    assert INSTALL in done.output and "pip install mlcheck " not in done.output
    assert not (workspace.root / "ref.json").exists()


# ------------------------------------------------------------------ on Spark

@needs_spark
def test_a_parquet_path_gives_the_profile_of_the_same_file(workspace, spark):
    from mlcheck.spark import DIGEST, fingerprint

    path = workspace.frame("ref.parquet", reference())
    assert run("profile", path, "-o", "local.json", "--bins", 8).exit_code == 0
    done = run("profile", "--spark-path", path, "--spark-format", "parquet",
               "-o", "spark.json", "--bins", 8)
    assert done.exit_code == 0, done.output
    assert "profile of 5 columns, 2,000 rows: spark.json" in done.output
    made = json.loads((workspace.root / "spark.json").read_text())
    same_profile(made, json.loads((workspace.root / "local.json").read_text()))
    assert made["source"] == {
        "spark": {"path": str(path), "format": "parquet", "options": {}},
        "sha256": fingerprint(spark.read.parquet(str(path)))[1], "digest_method": DIGEST}


@needs_spark
def test_a_relative_csv_path_with_reader_options(workspace, spark):
    workspace.frame("ref.csv", reference(300))
    done = run("profile", "--spark-path", "ref.csv", "--spark-format", "csv",
               "--spark-option", "header=true", "--spark-option", "inferSchema=true",
               "--spark-option", "password=hunter2", "--spark-option",
               "url=jdbc:x?password=hunter3", "-o", "ref.json")
    assert done.exit_code == 0, done.output
    made = json.loads((workspace.root / "ref.json").read_text())
    assert made["source"]["spark"] == {"path": str(workspace.root / "ref.csv"),
                                       "format": "csv",
                                       "options": {"header": "true", "inferSchema": "true",
                                                   "password": "<redacted>",
                                                   "url": "<redacted>"}}
    assert "hunter" not in (workspace.root / "ref.json").read_text()
    assert made["rows"] == 300 and made["columns"]["income"]["kind"] == "numeric"
    assert made["columns"]["plan"]["counts"].keys() == {"basic", "plus", "pro"}


@needs_spark
def test_a_table_gives_the_profile_of_its_rows(workspace, spark):
    from mlcheck.checks.drift import make_profile

    frame = reference(1500, seed=1)
    spark.createDataFrame(frame).createOrReplaceTempView("events_for_profile")
    done = run("profile", "--spark-table", "events_for_profile", "-o", "ref.json")
    assert done.exit_code == 0, done.output
    made = json.loads((workspace.root / "ref.json").read_text())
    same_profile(made, make_profile(frame, 10))
    assert made["source"]["spark"] == {"table": "events_for_profile"}
    assert len(made["source"]["sha256"]) == 64


@needs_spark
def test_a_missing_source_or_an_empty_one_is_named_and_nothing_is_written(workspace, spark):
    done = run("profile", "--spark-table", "no_such_table", "-o", "ref.json")
    assert done.exit_code == 2, done.output
    assert "Spark cannot read table no_such_table" in done.output
    missing = workspace.root / "missing.parquet"
    done = run("profile", "--spark-path", missing, "--spark-format", "parquet", "-o", "ref.json")
    assert done.exit_code == 2, done.output
    assert f"Spark cannot read parquet at {missing}" in done.output
    spark.createDataFrame(reference(10)).limit(0).createOrReplaceTempView("empty_events")
    done = run("profile", "--spark-table", "empty_events", "-o", "ref.json")
    assert done.exit_code == 2, done.output
    assert "Spark table empty_events has no rows" in done.output
    broken = workspace.write("broken.parquet", "not a parquet file")
    done = run("profile", "--spark-path", broken, "--spark-format", "parquet", "-o", "ref.json")
    assert done.exit_code == 2, done.output
    assert f"parquet at {broken}" in done.output
    done = run("profile", "--spark-path", "nosuchfs://reader:s3cr3t@lake/x", "--spark-format",
               "parquet", "-o", "ref.json")
    assert done.exit_code == 2 and "parquet at nosuchfs://<redacted>@lake/x" in done.output
    assert "s3cr3t" not in done.output
    assert not (workspace.root / "ref.json").exists()


@needs_spark
def test_the_output_may_not_be_the_file_it_profiles(workspace, spark):
    path = workspace.frame("ref.parquet", reference(50))
    before = path.read_bytes()
    done = run("profile", "--spark-path", "ref.parquet", "--spark-format", "parquet",
               "-o", "ref.parquet")
    assert done.exit_code == 2 and "is an input of this run" in done.output
    assert path.read_bytes() == before
