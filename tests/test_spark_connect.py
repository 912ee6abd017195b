"""Spark Connect: the same policy through a Connect session (`sc://`, Databricks Connect)
gives the local engine's verdicts. Connect needs PySpark's `connect` extra; the session is
a local Connect server (`remote("local")`), in its own process, since a process holds one
kind of session."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlcheck.engine import evaluate
from tests.conftest import needs_spark

pytestmark = needs_spark

RUN = """
import json, os, sys
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
from pyspark.sql import SparkSession
spark = SparkSession.builder.remote("local[2]").getOrCreate()
import mlcheck
result = mlcheck.evaluate(sys.argv[1])
print(json.dumps({"session": type(spark).__module__, "checks": [
    [c.id, c.verdict, c.value, c.interval] for c in result.checks]}))
spark.stop()
"""

POLICY = """
mlcheck: 1
name: connect
model: {{path: model.skops, task: binary_classification, features: [x, z]}}
data:
  target: y
  datasets:
    eval: {eval}
    reference: {reference}
statistics: {{resamples: 200, seed: 5}}
schema:
  datasets: [eval]
  columns:
    x: {{dtype: float64, checks: {{ge: -3}}}}
    group: {{dtype: str, checks: {{isin: [a, b]}}}}
performance:
  rules:
    - {{metric: accuracy, min: 0.6}}
    - {{metric: recall, min: 0.6, by: [group]}}
fairness:
  sensitive: [group]
  rules: [{{metric: equalized_odds_difference, max: 0.2}}]
drift:
  reference: reference
  current: eval
  rules:
    - {{test: psi, max: 0.2, columns: [z, group]}}
    - {{test: chi2, columns: [group]}}
"""


def test_a_spark_connect_session_gives_the_local_verdicts(workspace):
    pytest.importorskip("grpc", reason='Spark Connect needs pip install "pyspark[connect]"')
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"x": rng.normal(size=2000), "z": rng.normal(size=2000),
                          "group": rng.choice(["a", "b", "c"], 2000)})
    frame["y"] = (frame["x"] + rng.normal(size=2000) > 0).astype(int)
    workspace.skops("model.skops", LogisticRegression().fit(frame[["x", "z"]], frame["y"]))
    workspace.frame("eval.parquet", frame.iloc[:1000])
    workspace.frame("reference.parquet", frame.iloc[1000:])
    local = evaluate(workspace.policy(POLICY.format(
        eval="eval.parquet", reference="reference.parquet"), "local.yaml"))

    def spark(name: str) -> str:
        return f"{{spark: {{path: {name}, format: parquet}}}}"

    policy = workspace.policy(POLICY.format(eval=spark("eval.parquet"),
                                            reference=spark("reference.parquet")))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run([sys.executable, "-c", RUN, str(policy)], capture_output=True,
                          text=True, env=env, cwd=workspace.root, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])
    assert remote["session"] == "pyspark.sql.connect.session"
    assert [c[:2] for c in remote["checks"]] == [[c.id, c.verdict] for c in local.checks]
    for (check_id, _, value, interval), mine in zip(remote["checks"], local.checks,
                                                     strict=True):
        assert value == pytest.approx(mine.value, abs=1e-12), check_id
        if check_id.startswith(("performance", "fairness")):
            assert interval == mine.interval, check_id
    assert any(c.verdict == "fail" for c in local.checks)  # a section that measures
