"""Drift on reference + current data: mlcheck's drift section against Evidently's preset.

    python benchmarks/drift_vs_evidently.py [--sizes 10000 100000 1000000] [--repeats 3]

Generates reference and current data with a fixed seed (20 numeric and 5 categorical
columns, a shift injected into a few of them), writes them as Parquet, then runs each
tool as a whole separate process (import, read, compute) in alternating order, `repeats`
times per size, and prints the median wall time, the median CPU time (user + system, of
the process and its threads, from `os.wait4`), the median peak memory (RSS) and the
ratios, with the load average: on a shared machine, wall time moves with the load and
the CPU-time ratio much less. Evidently 0.7 needs pandas<3, so it runs from its own
virtual environment: `--evidently-python PATH`, or one this script creates in
benchmarks/.evidently-venv.
Each process also prints how many columns it found drifted, as a sanity check.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
NUMERIC, CATEGORICAL = 20, 5

MLCHECK_RUN = """
import json, resource, sys, time
started = time.perf_counter()
from mlcheck.engine import evaluate
result = evaluate(sys.argv[1])
drifted = next(c for c in result.checks if c.id == "drift/number_of_drifted_columns").value
print(json.dumps({"seconds": time.perf_counter() - started, "drifted": drifted,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

EVIDENTLY_RUN = """
import json, resource, sys, time
started = time.perf_counter()
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
numeric = [c for c in reference.columns if c.startswith("num")]
categorical = [c for c in reference.columns if c.startswith("cat")]
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
snapshot = Report([DataDriftPreset()]).run(
    Dataset.from_pandas(current, data_definition=definition),
    Dataset.from_pandas(reference, data_definition=definition))
count = next(m for m in snapshot.dict()["metrics"] if m["metric_name"].startswith(
    "DriftedColumnsCount"))["value"]["count"]
print(json.dumps({"seconds": time.perf_counter() - started, "drifted": count,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

POLICY = """
mlcheck: 1
name: drift-benchmark
data:
  datasets: {{reference: {reference}, current: {current}}}
statistics: {{resamples: 0}}
drift:
  rules:
    - {{test: ks, min_p_value: 0.05}}
    - {{test: psi, max: 0.2}}
    - {{test: wasserstein, max: 0.1}}
    - {{test: chi2, min_p_value: 0.05}}
    - {{test: jensen_shannon, max: 0.1}}
    - {{test: number_of_drifted_columns, max: 1000}}
"""


def make_data(rows: int, folder: Path, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)

    def frame(shift: float) -> pd.DataFrame:
        data = {f"num{i}": rng.normal(shift if i < 3 else 0, 1, rows) for i in range(NUMERIC)}
        for i in range(CATEGORICAL):
            weights = np.array([0.4, 0.3, 0.2, 0.1])
            if i == 0 and shift:
                weights = weights[::-1]
            data[f"cat{i}"] = rng.choice(["a", "b", "c", "d"], rows, p=weights)
        return pd.DataFrame(data)

    reference, current = folder / f"reference-{rows}.parquet", folder / f"current-{rows}.parquet"
    frame(0.0).to_parquet(reference)
    frame(0.3).to_parquet(current)
    return reference, current


def evidently_python(given: str | None) -> str:
    if given:
        return given
    venv = HERE / ".evidently-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with evidently 0.7 (pandas<3) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "evidently==0.7.*",
                        "pandas<3", "pyarrow"], check=True)
    return str(python)


def run(command: list[str]) -> dict:
    """Wall time, CPU time and peak RSS of one whole process (its own rusage)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{command[0]} failed: {err.read()}")
        measured = json.loads(out.read().strip().splitlines()[-1])
    process.returncode = os.waitstatus_to_exitcode(status)
    measured.update(wall=wall, cpu=usage.ru_utime + usage.ru_stime,
                    peak_mb=usage.ru_maxrss / 1024)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-python")
    args = parser.parse_args()
    evidently = evidently_python(args.evidently_python)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"{'rows':>10} {'mlcheck s':>10} {'evidently s':>12} {'speed-up':>9} "
              f"{'CPU m/e s':>14} {'CPU ratio':>10} {'mlcheck MB':>11} {'evidently MB':>13} "
              f"{'memory':>7} {'drifted (m/e)':>14} {'load':>5}")
        for rows in args.sizes:
            reference, current = make_data(rows, folder)
            policy = folder / f"policy-{rows}.yaml"
            policy.write_text(POLICY.format(reference=reference, current=current))
            ours, theirs = [], []
            for repeat in range(args.repeats):  # alternate which tool goes first
                order = [("m", [sys.executable, "-c", MLCHECK_RUN, str(policy)]),
                         ("e", [evidently, "-c", EVIDENTLY_RUN, str(reference), str(current)])]
                for name, command in order if repeat % 2 == 0 else order[::-1]:
                    (ours if name == "m" else theirs).append(run(command))
            m_wall = statistics.median(r["wall"] for r in ours)
            e_wall = statistics.median(r["wall"] for r in theirs)
            m_cpu = statistics.median(r["cpu"] for r in ours)
            e_cpu = statistics.median(r["cpu"] for r in theirs)
            m_mb = statistics.median(r["peak_mb"] for r in ours)
            e_mb = statistics.median(r["peak_mb"] for r in theirs)
            print(f"{rows:>10,} {m_wall:>10.2f} {e_wall:>12.2f} {e_wall / m_wall:>8.1f}x "
                  f"{m_cpu:>6.1f}/{e_cpu:<7.1f} {e_cpu / m_cpu:>9.1f}x {m_mb:>11.0f} "
                  f"{e_mb:>13.0f} {m_mb / e_mb:>7.2f} {ours[0]['drifted']:>7.0f}/"
                  f"{theirs[0]['drifted']:<6.0f} {os.getloadavg()[0]:>5.1f}", flush=True)


if __name__ == "__main__":
    main()
