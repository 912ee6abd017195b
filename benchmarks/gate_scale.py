"""The whole gate at scale: `mlcheck check` against a numpy/scikit-learn floor, paired.

    python benchmarks/gate_scale.py [--sizes 100000 1000000 10000000] [--repeats 1]
                                    [--folder DIR] [--profile]

For each size N, generates (seeded) an evaluation set and a reference set of N labelled
rows each: 20 numeric columns, 8 text categorical columns (3-12 values), a 4-value `group`
column and the 0/1 target `y` (30 columns), with a small shift in 3 columns of the
evaluation set. Trains a scikit-learn pipeline (scaling, one-hot encoding, logistic
regression) on 20,000 separate rows, saves it with skops, writes both sets as Parquet and
a policy: performance (roc_auc, accuracy, recall by `group`), one fairness rule
(equalized odds difference by `group`), PSI drift on every column, default statistics
(95%, 1,000 resamples).

Then runs, as whole processes, paired (alternating which goes first, `--repeats` times):
(a) `mlcheck check POLICY` and (b) `benchmarks/gate_floor.py`, which computes the same
point values with analytic intervals in one process. Prints wall time and peak resident
memory of each process (`os.wait4`'s rusage of that child), their ratios, the in-memory
size of the columns the gate needs (Arrow's decoded size of both sets), and the largest
difference between the two sides' values (a check that both computed the same thing).
`--profile` also runs mlcheck once under cProfile per size and prints its top functions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NUMERIC, CATEGORICAL, CHUNK = 20, 8, 1_000_000
GROUPS, GROUP_SHARES = ["g0", "g1", "g2", "g3"], [0.4, 0.3, 0.2, 0.1]

POLICY = """\
mlcheck: 1
name: gate-scale
model:
  path: model.skops
  task: binary_classification
  trusted_types: {trusted}
data:
  target: y
  positive_label: 1
  datasets:
    eval: eval.parquet
    reference: reference.parquet
performance:
  dataset: eval
  rules:
    - {{metric: roc_auc, min: 0.7}}
    - {{metric: accuracy, min: 0.6}}
    - {{metric: recall, min: 0.3, by: [group]}}
fairness:
  dataset: eval
  sensitive: [group]
  rules:
    - {{metric: equalized_odds_difference, max: 0.5}}
drift:
  reference: reference
  current: eval
  rules:
    - {{test: psi, max: 0.2}}
"""


def chunk(rows: int, rng: np.random.Generator, shift: float) -> pd.DataFrame:
    """`rows` labelled rows; `shift` moves num0, num1 and cat0's mix (the drift to find)."""
    data = {f"num{i}": rng.normal(shift if i < 2 else 0.0, 1.0, rows) for i in range(NUMERIC)}
    logit = 0.9 * data["num0"] - 0.7 * data["num1"] + 0.5 * data["num2"] - 0.3
    for i in range(CATEGORICAL):
        values = 3 + i * 9 // (CATEGORICAL - 1)  # 3 to 12 categories
        weights = np.linspace(1, 2, values)[::-1 if (i == 0 and shift) else 1]
        codes = rng.choice(values, rows, p=weights / weights.sum())
        data[f"cat{i}"] = np.array([f"c{i}_{k}" for k in range(values)])[codes]
        if i < 2:
            logit += 0.15 * codes - 0.1 * values
    group = rng.choice(4, rows, p=GROUP_SHARES)
    data["group"] = np.array(GROUPS)[group]
    logit += np.array([0.0, 0.3, -0.3, 0.6])[group]
    data["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame(data)


def write_set(path: Path, rows: int, seed: int, shift: float) -> None:
    """Written a million rows at a time, so generating 10M rows stays small."""
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, CHUNK):
        table = pa.Table.from_pandas(chunk(min(CHUNK, rows - start), rng, shift),
                                     preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def prepare(folder: Path, rows: int) -> Path:
    """Model (trained once), both sets and the policy for one size; returns the policy."""
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    model = folder / "model.skops"
    if not model.exists():
        train = chunk(20_000, np.random.default_rng(99), 0.0)
        numeric = [f"num{i}" for i in range(NUMERIC)]
        categorical = [f"cat{i}" for i in range(CATEGORICAL)] + ["group"]
        pipeline = make_pipeline(
            ColumnTransformer([("num", StandardScaler(), numeric),
                               ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]),
            LogisticRegression(max_iter=1000))
        pipeline.fit(train.drop(columns=["y"]), train["y"])
        sio.dump(pipeline, model)
    size = folder / str(rows)
    size.mkdir(exist_ok=True)
    for name, seed, shift in (("eval", 1, 0.05), ("reference", 2, 0.0)):
        path = size / f"{name}.parquet"
        if not path.exists():
            write_set(path, rows, seed, shift)
    shutil.copy(model, size / "model.skops")
    policy = size / "policy.yaml"
    trusted = json.dumps(sio.get_untrusted_types(file=model))
    policy.write_text(POLICY.format(trusted=trusted))
    return policy


def needed_size(folder: Path) -> int:
    """Bytes of the columns the gate reads, decoded by Arrow (text: offsets + characters);
    a row group at a time, its memory given back, so this process stays small."""
    total = 0
    for name in ("eval", "reference"):
        file = pq.ParquetFile(folder / f"{name}.parquet")
        for group in range(file.num_row_groups):
            total += file.read_row_group(group).nbytes
    pa.default_memory_pool().release_unused()
    return total


def run(command: list[str], cwd: Path) -> dict:
    """Wall time and peak RSS of one whole process (its own rusage, from wait4)."""
    started = time.perf_counter()
    with open(cwd / "stdout.txt", "w") as out, open(cwd / "stderr.txt", "w") as err:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code
    if code not in (0, 1):
        raise SystemExit(f"{command[0]} exited {code}: {(cwd / 'stderr.txt').read_text()}")
    return {"wall": wall, "peak_mb": usage.ru_maxrss / 1024, "cpu": usage.ru_utime
            + usage.ru_stime}


def mlcheck_values(record: Path) -> dict:
    checks = json.loads(record.read_text())["checks"]
    return {c["id"]: c["value"] for c in checks}


def compare(ours: dict, floor: dict) -> tuple[float, int]:
    """Largest difference between the two sides' point values, over the ids both hold."""
    common = [k for k in floor if k in ours and ours[k] is not None]
    return max(abs(ours[k] - floor[k][0]) for k in common), len(common)


def profile(size_dir: Path) -> None:
    """mlcheck once under cProfile: the 25 functions with the most cumulative time."""
    out = size_dir / "profile.out"
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out),
                    str(Path(sys.executable).parent / "mlcheck"), "check", "policy.yaml",
                    "--json", "profiled.json", "--report", "profiled.html", "-q"],
                   cwd=size_dir, check=False)
    import pstats

    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--folder", type=Path, help="Keep the generated files here "
                        "(reused on the next run); default: a temporary folder.")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="gate-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    mlcheck = [str(Path(sys.executable).parent / "mlcheck")]
    rows_out = []
    try:
        print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
        for rows in args.sizes:
            policy = prepare(folder, rows)
            size_dir = policy.parent
            needed = needed_size(size_dir) / 2**20
            ours, theirs = [], []
            for repeat in range(args.repeats):
                order = [("m", [*mlcheck, "check", "policy.yaml", "--json", "record.json",
                                "--report", "report.html", "-q"]),
                         ("f", [sys.executable, str(HERE / "gate_floor.py"), "eval.parquet",
                                "reference.parquet", "model.skops"])]
                for name, command in order if repeat % 2 == 0 else order[::-1]:
                    measured = run(command, size_dir)
                    if name == "f":
                        measured["values"] = json.loads(
                            (size_dir / "stdout.txt").read_text().splitlines()[-1])
                    (ours if name == "m" else theirs).append(measured)
            diff, compared = compare(mlcheck_values(size_dir / "record.json"),
                                     theirs[0]["values"])
            row = {"rows": rows, "load": os.getloadavg()[0], "needed_mb": needed,
                   **{f"{side}_{key}": statistics.median(r[key] for r in runs)
                      for side, runs in (("m", ours), ("f", theirs))
                      for key in ("wall", "peak_mb", "cpu")},
                   "max_value_diff": diff, "values_compared": compared}
            rows_out.append(row)
            print(json.dumps(row), flush=True)
            if args.profile:
                profile(size_dir)
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    print("\n| rows (each set) | mlcheck | floor | time ratio | CPU mlcheck / floor "
          "| CPU ratio | mlcheck peak | floor peak | memory ratio | columns needed "
          "| mlcheck peak / columns | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows_out:
        print(f"| {r['rows']:,} | {r['m_wall']:.1f} s | {r['f_wall']:.1f} s "
              f"| {r['m_wall'] / r['f_wall']:.2f}x | {r['m_cpu']:.1f} / {r['f_cpu']:.1f} s "
              f"| {r['m_cpu'] / r['f_cpu']:.2f}x | {r['m_peak_mb']:,.0f} MB "
              f"| {r['f_peak_mb']:,.0f} MB | {r['m_peak_mb'] / r['f_peak_mb']:.2f}x "
              f"| {r['needed_mb']:,.0f} MB | {r['m_peak_mb'] / r['needed_mb']:.2f}x "
              f"| {r['load']:.1f} |")


if __name__ == "__main__":
    main()
