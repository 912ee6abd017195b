"""False drift alarms from sampling noise alone, and the power to catch a real shift.

    .venv/bin/python benchmarks/drift_false_alarms.py [--runs 1000] [--sizes 100 1000 10000]

Each run draws a reference and a current sample of the same size from one distribution
(10 numeric columns: normal, log-normal, exponential, uniform and integer-valued ones with
ties; 3 categorical columns with 3, 5 and 12 categories, some rare), runs mlcheck's own
drift checks on them (the section compiled from the policy below, evaluated on an
in-memory context, so the decision rule measured is the shipped one) and counts the
alarms of each rule: the share of column checks that fail, and the share of runs in which
any column of the rule fails. Two more columns, drawn from their own random stream and
left out of the first six rules (so those rules measure what they measured before the
columns were added), serve unseen_categories and missing_share: `z`, 40 Zipf-distributed
categories (a 100-row sample misses a tenth of the next one's rows), and `gaps`, a normal
column with a fifth of its values missing. `--shift` injects a shift instead (0.7
standard deviations on one normal column, a share of 0.2 moved between two categories of
one categorical column, 5% of `z`'s rows in a category the reference never has, `gaps`
missing 30% instead of 20%) and reports how often those columns are caught, next to how
often their statistic alone exceeds its bound.

Seeded (`--seed`, default 12): the same command prints the same shares. The numbers in
docs/policy.md (drift section) come from the default command and `--shift`.
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from mlcheck.checks.drift import compile_checks
from mlcheck.context import Context
from mlcheck.errors import CheckError
from mlcheck.policy import load_policy

RULES = """
    - {test: psi, max: 0.2, exclude: [z, gaps]}
    - {test: jensen_shannon, max: 0.1, exclude: [z, gaps]}
    - {test: total_variation, max: 0.1, exclude: [z, gaps]}
    - {test: wasserstein, max: 0.1, exclude: [z, gaps]}
    - {test: ks, min_p_value: 0.01, exclude: [z, gaps]}
    - {test: chi2, min_p_value: 0.01, exclude: [z, gaps]}
    - {test: unseen_categories, max: 0.01}
    - {test: missing_share, max: 0.05}
"""
CATEGORY_SHARES = {
    "c0": [0.5, 0.3, 0.2],
    "c1": [0.4, 0.25, 0.15, 0.12, 0.08],
    "c2": list(np.array([1 / k for k in range(1, 13)]) / sum(1 / k for k in range(1, 13))),
}
ZIPF = np.array([1 / k for k in range(1, 41)]) / sum(1 / k for k in range(1, 41))
SHIFTED = ["n0", "c1", "z", "gaps"]
OWN_COLUMN = {"unseen_categories": "z", "missing_share": "gaps"}  # also shown on their own


def draw(rng: np.random.Generator, extra: np.random.Generator, n: int, shift: bool = False
         ) -> pd.DataFrame:
    """One sample: 10 numeric and 3 categorical columns from `rng`, `z` and `gaps` from
    `extra`; `shift` moves n0, c1, z and gaps."""
    frame = pd.DataFrame({
        "n0": rng.normal(0.7 if shift else 0.0, 1, n), "n1": rng.normal(0, 1, n),
        "n2": rng.normal(10, 3, n), "n3": rng.normal(-5, 0.1, n),
        "n4": rng.lognormal(0, 1, n), "n5": rng.lognormal(2, 0.5, n),
        "n6": rng.exponential(1, n), "n7": rng.uniform(0, 1, n),
        "n8": rng.poisson(3, n), "n9": rng.integers(0, 20, n),
    })
    for column, shares in CATEGORY_SHARES.items():
        shares = np.array(shares)
        if shift and column == "c1":
            shares = shares + np.r_[-0.2, 0.2, np.zeros(len(shares) - 2)]
        labels = np.array([f"{column}_{k}" for k in range(len(shares))])
        frame[column] = labels[rng.choice(len(shares), n, p=shares)]
    frame["z"] = np.array([f"z{k:02d}" for k in range(40)])[extra.choice(40, n, p=ZIPF)]
    if shift:
        frame.loc[extra.random(n) < 0.05, "z"] = "z_new"
    frame["gaps"] = np.where(extra.random(n) < (0.3 if shift else 0.2), np.nan,
                             extra.normal(0, 1, n))
    return frame


def load(folder: Path):
    """The drift policy, loaded once (its datasets are replaced by in-memory frames)."""
    (folder / "reference.csv").write_text("x\n1\n")
    (folder / "current.csv").write_text("x\n1\n")
    (folder / "policy.yaml").write_text(textwrap.dedent("""
        mlcheck: 1
        name: drift-false-alarms
        data: {datasets: {reference: reference.csv, current: current.csv}}
        drift:
          rules:
        """) + textwrap.indent(RULES.strip("\n"), "    ") + "\n")
    return load_policy(folder / "policy.yaml")


def outcomes(policy, reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    """Check id -> (alarmed, statistic over its bound), from mlcheck's drift checks."""
    subject = SimpleNamespace(profile=None, datasets={
        "reference": SimpleNamespace(frame=reference, spark=None),
        "current": SimpleNamespace(frame=current, spark=None)})
    context = Context(policy, subject)
    out = {}
    for check in compile_checks(policy, context):
        try:
            outcome = check.evaluate(context)
        except CheckError as exc:
            raise SystemExit(f"{check.id}: {exc}") from None
        bound = outcome.bounds.get("max")
        out[check.id] = (not outcome.passed and outcome.inconclusive is None,
                         bound is not None and outcome.value > bound)
    return out


def simulate(policy, size: int, runs: int, seed: int, shift: bool) -> pd.DataFrame:
    rows = []
    for run in range(runs):
        rng, extra = np.random.default_rng([seed, size, run]), np.random.default_rng(
            [seed, size, run, 1])
        found = outcomes(policy, draw(rng, extra, size), draw(rng, extra, size, shift))
        for check, (alarmed, over) in found.items():
            test, column = check.removeprefix("drift/").rstrip("]").split("[")
            rows.append((run, test, column, alarmed, over))
    return pd.DataFrame(rows, columns=["run", "test", "column", "alarm", "over"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--shift", action="store_true", help="measure power instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        policy = load(Path(folder))
    shifted = SHIFTED
    if args.shift:
        print(f"{args.runs} runs with {', '.join(shifted)} shifted: share of runs in which "
              "each is caught (its statistic over the bound); alarms on the other columns")
        header = ["rows per side", "test", *[f"caught {c}" for c in shifted], "other columns"]
    else:
        print(f"{args.runs} runs with no drift (11 numeric, 4 categorical columns): share of "
              "column checks over the bound and alarming; share of runs with any alarm")
        header = ["rows per side", "test", "over bound", "alarms", "runs with an alarm"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for size in args.sizes:
        started = time.perf_counter()
        table = simulate(policy, size, args.runs, args.seed, args.shift)
        for test, rows in table.groupby("test", sort=False):
            if args.shift:
                hit = rows[rows.column.isin(shifted)].groupby("column")[["alarm", "over"]]
                hit = hit.mean()
                other = rows[~rows.column.isin(shifted)].alarm.mean()
                cells = [("-" if c not in hit.index else f"{hit.alarm[c]:.1%}" + (
                    f" ({hit.over[c]:.1%})" if test not in ("ks", "chi2") else ""))
                    for c in shifted]
                cells.append(f"{other:.2%}")
            else:
                over = f"{rows.over.mean():.1%}" if test not in ("ks", "chi2") else "-"
                cells = [over, f"{rows.alarm.mean():.2%}",
                         f"{rows.groupby('run').alarm.any().mean():.1%}"]
                if test in OWN_COLUMN:
                    own = rows[rows.column == OWN_COLUMN[test]]
                    print(f"| {size:,} | {test}, column {OWN_COLUMN[test]} | "
                          f"{own.over.mean():.1%} | {own.alarm.mean():.2%} | - |")
            print(f"| {size:,} | {test} | " + " | ".join(cells) + " |")
        print(f"({size:,} rows: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
