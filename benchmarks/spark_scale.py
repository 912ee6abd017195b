"""Drift, performance and fairness on Spark at scale: time and driver memory against rows.

    python benchmarks/spark_scale.py [--sizes 1000000 10000000] [--master local[2]]
                                     [--folder DIR]

For each size N, generates inside Spark (seeded, `spark.range` and `rand`/`randn`) a
reference and a current table of N rows each: 6 numeric columns (normal, log-normal,
whole numbers with 5% missing values, a shifted one in the current table) and 2 text
columns (4 and 12 values), plus a binary label, writes both as Parquet (8 files each),
fits a logistic regression on 20,000 rows of the reference, then runs, as its own process,
one policy reading both tables with `spark: {path, format}`: every per-column drift test
(KS, PSI, Wasserstein, chi-square, missing share), performance on the current table
(accuracy, ROC AUC, recall per region) and fairness across `plan` (demographic parity,
equalized odds), the model scoring every row on the executors. Prints per size the wall
time of the check, the peak resident memory of the Python driver that runs mlcheck (its
own `getrusage`: what mlcheck holds; the local-mode JVM is Spark's, sized by
`spark.driver.memory`), and the verdict. `--drift-only` leaves performance and fairness
out (the numbers before they ran on Spark).

Evidently's legacy Spark engine: see benchmarks/README.md for why it is not compared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

POLICY = """
mlcheck: 1
name: spark scale
data:
  datasets:
    reference: {spark: {path: reference, format: parquet}}
    current: {spark: {path: current, format: parquet}}
drift:
  rules:
    - {test: ks}
    - {test: psi, max: 0.2}
    - {test: wasserstein, max: 0.1}
    - {test: chi2}
    - {test: missing_share, max: 0.01}
"""

MODEL_SECTIONS = """
model:
  path: model.skops
  task: binary_classification
  features: [normal, shifted, uniform]
data:
  target: label
statistics: {resamples: 1000, seed: 0}
performance:
  dataset: current
  rules:
    - {metric: accuracy, min: 0.5}
    - {metric: roc_auc, min: 0.5}
    - {metric: recall, min: 0.5, by: [region]}
fairness:
  dataset: current
  sensitive: [plan]
  rules:
    - {metric: demographic_parity_difference, max: 0.05}
    - {metric: equalized_odds_difference, max: 0.05}
"""

RUN = """
import os, sys, time
from pyspark.sql import SparkSession
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
spark = (SparkSession.builder.master(sys.argv[2]).config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "8").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
import mlcheck
start = time.perf_counter()
result = mlcheck.evaluate(sys.argv[1])
import resource
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{time.perf_counter() - start:.1f} {result.verdict} {len(result.checks)} {peak:.0f}")
"""


def generate(spark, rows: int, folder: Path) -> None:
    from pyspark.sql import functions as F

    for name, shift in (("reference", 0.0), ("current", 0.1)):
        frame = spark.range(rows, numPartitions=8).select(
            F.randn(1).alias("normal"),
            F.exp(F.randn(2) * 0.5 + 10).alias("income"),
            F.when(F.rand(3) > 0.05, F.floor(F.rand(4) * 70 + 18)).alias("age"),
            (F.randn(5) + shift).alias("shifted"),
            F.round(F.randn(6), 1).alias("rounded"),
            (F.rand(7) * 100).alias("uniform"),
            F.element_at(F.array(*[F.lit(c) for c in "abcd"]),
                         (F.floor(F.rand(8) * 4) + 1).cast("int")).alias("plan"),
            F.concat(F.lit("region-"), F.floor(F.rand(9) * 12).cast("string")).alias(
                "region"))
        frame = frame.withColumn("label", (F.col("normal") + F.col("uniform") / 100
                                           + F.randn(10) > 0.5).cast("int"))
        frame.write.mode("overwrite").parquet(str(folder / name))


def fit_model(spark, folder: Path) -> None:
    """A logistic regression on 20,000 reference rows, saved with skops."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    sample = spark.read.parquet(str(folder / "reference")).limit(20_000).toPandas()
    features = ["normal", "shifted", "uniform"]
    sio.dump(LogisticRegression().fit(sample[features], sample["label"]),
             folder / "model.skops")


def policy_text(drift_only: bool) -> str:
    """The benchmark's policy: drift, and unless `drift_only` performance and fairness."""
    if drift_only:
        return textwrap.dedent(POLICY)
    policy = textwrap.dedent(POLICY).replace("data:\n", "data:\n  target: label\n")
    sections = textwrap.dedent(MODEL_SECTIONS).replace("data:\n  target: label\n", "")
    return policy + sections


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--drift-only", action="store_true")
    args = parser.parse_args()
    from pyspark.sql import SparkSession

    print("| rows per side | check time | Python driver peak memory | verdict |")
    print("|---|---|---|---|")
    for rows in args.sizes:
        folder = args.folder or Path(tempfile.mkdtemp(prefix="mlcheck-spark-"))
        spark = (SparkSession.builder.master(args.master)
                 .config("spark.ui.enabled", "false").getOrCreate())
        generate(spark, rows, folder)
        fit_model(spark, folder)
        spark.stop()
        (folder / "policy.yaml").write_text(policy_text(args.drift_only))
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", RUN, str(folder / "policy.yaml"),
                                  args.master], stdout=subprocess.PIPE, text=True)
        _, status, _ = os.wait4(child.pid, 0)
        output = child.stdout.read().split()
        wall = time.perf_counter() - start
        if status != 0 or not output:
            sys.exit(f"the run at {rows:,} rows failed (status {status})")
        seconds, verdict, checks, driver = output
        print(f"| {rows:,} | {float(seconds):.1f} s (process {wall:.1f} s) | {driver} MB | "
              f"{verdict} ({checks} checks) |", flush=True)


if __name__ == "__main__":
    main()
