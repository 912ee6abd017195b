"""Bootstrap interval of ROC AUC: mlcheck's vectorised resamples against a loop.

    python benchmarks/bootstrap_auc.py [--rows 100000] [--resamples 1000]

Both sides draw the same kind of resamples (n rows with replacement) and compute the
AUC of each; the loop calls scikit-learn's roc_auc_score once per resample, mlcheck
computes all of them from counts with one sort (mlcheck/stats.py). Prints both times,
the ratio, and the largest difference between the two sets of AUCs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from mlcheck.metrics import METRICS
from mlcheck.stats import bootstrap_counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    truth = rng.random(args.rows) < 0.3
    scores = rng.normal(truth * 1.0, 1.0)

    started = time.perf_counter()
    loop = np.empty(args.resamples)
    for b in range(args.resamples):
        rows = rng.integers(0, args.rows, args.rows)
        loop[b] = roc_auc_score(truth[rows], scores[rows])
    loop_s = time.perf_counter() - started

    started = time.perf_counter()
    counts = bootstrap_counts(args.rows, args.resamples, seed=0)
    vectorised = METRICS["roc_auc"].resample(truth, scores, None, counts)
    vectorised_s = time.perf_counter() - started

    # correctness: the vectorised AUC of resample 0 against scikit-learn on the same rows
    drawn = np.repeat(np.arange(args.rows), counts[0])
    error = abs(vectorised[0] - roc_auc_score(truth[drawn], scores[drawn]))
    print(f"rows={args.rows:,} resamples={args.resamples:,}")
    print(f"loop of roc_auc_score:   {loop_s:7.2f} s  (mean AUC {loop.mean():.4f})")
    print(f"mlcheck vectorised:      {vectorised_s:7.2f} s  (mean AUC {vectorised.mean():.4f})")
    print(f"speed-up:                {loop_s / vectorised_s:7.1f}x")
    print(f"|difference| on one resample vs scikit-learn: {error:.2e}")


if __name__ == "__main__":
    main()
