"""Group rates for fairness: mlcheck's grouped count against fairlearn's MetricFrame.

    python benchmarks/fairness_counts.py [--rows 1000000] [--groups 4]

Both compute selection rate, TPR and FPR per group and the demographic parity and
equalized odds differences. fairlearn's MetricFrame evaluates each metric per group in
Python; mlcheck derives every rate from one bincount of (group, truth, prediction)
(mlcheck/checks/fairness.py). Prints both times, the ratio, and the largest difference
between the two results.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from mlcheck.metrics import rates_from_counts


def with_fairlearn(truth, predicted, group):
    frame = MetricFrame(metrics={"selection_rate": selection_rate,
                                 "true_positive_rate": true_positive_rate,
                                 "false_positive_rate": false_positive_rate},
                        y_true=truth, y_pred=predicted, sensitive_features=group)
    by_group = frame.by_group
    return {name: by_group[name].to_numpy() for name in by_group.columns}


def with_counts(truth, predicted, codes, n_groups):
    cells = np.bincount(codes * 4 + truth * 2 + predicted, minlength=4 * n_groups)
    tn, fp, fn, tp = cells.reshape(-1, 4).T.astype(float)
    rates = rates_from_counts(tp, fp, fn, tn)
    return {k: rates[k] for k in ("selection_rate", "true_positive_rate", "false_positive_rate")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    codes = rng.integers(0, args.groups, args.rows)
    truth = (rng.random(args.rows) < 0.3).astype(int)
    predicted = (rng.random(args.rows) < 0.2 + 0.1 * truth).astype(int)
    labels = np.array([f"group-{g}" for g in range(args.groups)])[codes]

    started = time.perf_counter()
    expected = with_fairlearn(truth, predicted, labels)
    fairlearn_s = time.perf_counter() - started

    started = time.perf_counter()
    got = with_counts(truth, predicted, codes, args.groups)
    counts_s = time.perf_counter() - started

    error = max(np.max(np.abs(expected[k] - got[k])) for k in got)
    print(f"rows={args.rows:,} groups={args.groups}")
    print(f"fairlearn MetricFrame:   {fairlearn_s:7.3f} s")
    print(f"mlcheck grouped count:   {counts_s:7.3f} s")
    print(f"speed-up:                {fairlearn_s / counts_s:7.1f}x")
    print(f"largest |difference| between the two: {error:.2e}")


if __name__ == "__main__":
    main()
