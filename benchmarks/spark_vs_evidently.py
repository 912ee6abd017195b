"""Drift on Spark: mlcheck's Spark engine against Evidently's legacy Spark engine.

    python benchmarks/spark_vs_evidently.py [--sizes 1000000 10000000] [--repeats 1]
                                            [--master local[2]] [--evidently-python PATH]

For each size N, generates inside Spark the tables of benchmarks/spark_scale.py (N rows
per side: 6 numeric columns, one of them shifted in the current table, with 5% missing
values in one; 2 text columns), writes both as Parquet, then runs each tool as a whole
separate process on the same files, in the same Spark mode, alternating which goes first:

- Evidently 0.7's legacy Spark engine (`evidently.legacy.spark`: a legacy `Report` of
  `DataDriftTable` run with `engine=SparkEngine`) with the tests it picks for more than
  1,000 rows: the Wasserstein distance normed by the reference's spread on numeric
  columns, at 0.05 (the shift is 0.1 standard deviations), and the Jensen-Shannon distance
  on text columns, at its default 0.1 (its Spark engine implements Wasserstein, PSI,
  Jensen-Shannon and chi-square, not KS);
- mlcheck, `mlcheck.evaluate` on a policy with the same tests and bounds (`wasserstein`
  on every numeric column, `jensen_shannon` on the text columns) and
  `number_of_drifted_columns`.

Prints per size the median time of the computation (reading and drift, after the
SparkSession is up), the median peak memory of the Python driver process (its own
`getrusage`) and of the driver's JVM (its VmHWM), the ratios, and how many columns each
tool found drifted (a sanity check; both should find the shifted column).

Evidently 0.7 needs pandas<3, so it runs from its own virtual environment:
`--evidently-python PATH`, or the one benchmarks/drift_vs_evidently.py creates in
benchmarks/.evidently-venv, with this environment's PySpark version added to it.
Evidently's `spark` extra asks for pyspark<4; its Spark engine runs on PySpark 4 as is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from drift_vs_evidently import evidently_python as evidently_venv  # one venv, one runner
from drift_vs_evidently import run

HERE = Path(__file__).resolve().parent
NUMERIC = ["normal", "income", "age", "shifted", "rounded", "uniform"]
TEXT = ["plan", "region"]

SESSION = """
import json, os, resource, sys, time
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master(sys.argv[1]).config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "8").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")


def report(started, drifted):
    try:  # the local-mode JVM (spark-submit execs java): its peak resident memory
        pid = spark.sparkContext._gateway.proc.pid
        with open(f"/proc/{pid}/status") as status:
            jvm = next(int(line.split()[1]) / 1024 for line in status
                       if line.startswith("VmHWM"))
    except Exception:
        jvm = None
    print(json.dumps({"seconds": time.perf_counter() - started, "drifted": drifted,
                      "python_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "jvm_mb": jvm}))
"""

MLCHECK_RUN = SESSION + """
started = time.perf_counter()
import mlcheck
result = mlcheck.evaluate(sys.argv[2])
report(started, next(c.value for c in result.checks
                     if c.id == "drift/number_of_drifted_columns"))
"""

EVIDENTLY_RUN = SESSION + """
started = time.perf_counter()
from evidently.legacy.metrics import DataDriftTable
from evidently.legacy.pipeline.column_mapping import ColumnMapping
from evidently.legacy.report import Report
from evidently.legacy.spark.engine import SparkEngine
mapping = ColumnMapping(target=None, prediction=None, numerical_features=json.loads(sys.argv[4]),
                        categorical_features=json.loads(sys.argv[5]))
drift = Report(metrics=[DataDriftTable(num_stattest_threshold=0.05)])
drift.run(reference_data=spark.read.parquet(sys.argv[2]),
          current_data=spark.read.parquet(sys.argv[3]), column_mapping=mapping,
          engine=SparkEngine)
report(started, drift.as_dict()["metrics"][0]["result"]["number_of_drifted_columns"])
"""

POLICY = """
mlcheck: 1
name: spark vs evidently
data:
  datasets:
    reference: {{spark: {{path: {reference}, format: parquet}}}}
    current: {{spark: {{path: {current}, format: parquet}}}}
drift:
  rules:
    - {{test: wasserstein, max: 0.05}}
    - {{test: jensen_shannon, max: 0.1, columns: {text}}}
    - {{test: number_of_drifted_columns, max: 1000}}
"""


def evidently_python(given: str | None) -> str:
    """The Python of benchmarks/drift_vs_evidently.py (Evidently 0.7, pandas<3), with this
    environment's PySpark version added."""
    import pyspark

    python = evidently_venv(given)
    if given:
        return python
    has = subprocess.run([python, "-c", "import pyspark; print(pyspark.__version__)"],
                         capture_output=True, text=True)
    if has.stdout.strip() != pyspark.__version__:
        print(f"adding pyspark {pyspark.__version__} to {python} ...", flush=True)
        subprocess.run([python, "-m", "pip", "install", "-q",
                        f"pyspark=={pyspark.__version__}"], check=True)
    return python


def median(runs: list[dict], key: str) -> float:
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--evidently-python")
    args = parser.parse_args()
    evidently = evidently_python(args.evidently_python)
    from pyspark.sql import SparkSession
    from spark_scale import generate  # the same tables as the scale benchmark

    print("| rows per side | mlcheck | Evidently | speed-up | Python driver mlcheck / "
          "Evidently | JVM driver mlcheck / Evidently | drifted columns mlcheck / Evidently |")
    print("|---|---|---|---|---|---|---|")
    for rows in args.sizes:
        with tempfile.TemporaryDirectory(prefix="mlcheck-spark-") as tmp:
            folder = Path(tmp)
            spark = (SparkSession.builder.master(args.master)
                     .config("spark.ui.enabled", "false")
                     .config("spark.ui.showConsoleProgress", "false").getOrCreate())
            spark.sparkContext.setLogLevel("ERROR")
            generate(spark, rows, folder)
            spark.stop()
            reference, current = folder / "reference", folder / "current"
            policy = folder / "policy.yaml"
            policy.write_text(textwrap.dedent(POLICY).format(
                reference=reference, current=current, text=json.dumps(TEXT)))
            ours, theirs = [], []
            for repeat in range(args.repeats):  # alternate which tool goes first
                order = [("m", [sys.executable, "-c", MLCHECK_RUN, args.master, str(policy)]),
                         ("e", [evidently, "-c", EVIDENTLY_RUN, args.master, str(reference),
                                str(current), json.dumps(NUMERIC), json.dumps(TEXT)])]
                for name, command in order if repeat % 2 == 0 else order[::-1]:
                    (ours if name == "m" else theirs).append(run(command))
        m_s, e_s = median(ours, "seconds"), median(theirs, "seconds")
        m_py, e_py = median(ours, "python_mb"), median(theirs, "python_mb")
        m_jvm, e_jvm = median(ours, "jvm_mb"), median(theirs, "jvm_mb")
        print(f"| {rows:,} | {m_s:.1f} s (process {median(ours, 'wall'):.1f} s) | "
              f"{e_s:.1f} s (process {median(theirs, 'wall'):.1f} s) | **{e_s / m_s:.1f}x** | "
              f"{m_py:,.0f} / {e_py:,.0f} MB ({m_py / e_py:.2f}) | "
              f"{m_jvm:,.0f} / {e_jvm:,.0f} MB ({m_jvm / e_jvm:.2f}) | "
              f"{ours[0]['drifted']:.0f} / {theirs[0]['drifted']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
