"""Memory and time of bootstrap intervals: one table of rows x resamples (before) against
cell draws and per-row counts in blocks (after, mlcheck/stats.py).

    python benchmarks/bootstrap_memory.py [--rows 100000 1000000] [--resamples 1000]

The intervals of four checks on one binary dataset (30% positives, a 4-value group):
accuracy, recall per group (4 slice checks), equalized odds difference across the groups,
and ROC AUC. Each implementation runs in its own process per size, the four statistics
one after another as in one run (the resamples are drawn once and shared), timing each
and tracing its peak memory with tracemalloc (numpy's allocations included; the data
themselves are allocated before tracing starts).

`before` is the previous implementation, kept here as a reference: a (resamples x rows)
uint8 table of Poisson(1) counts, label metrics by matrix products with it (slices copy
their columns), group rates by one sparse product, ROC AUC from one sort and one
cumulative sum per block of resamples. `after` calls what the checks call now: Poisson
totals of the finest cells (truth x prediction x group) for the label metrics and rates,
per-row counts drawn in blocks of resamples for ROC AUC. Both sides must agree on the
intervals to Monte-Carlo precision (they are different draws); the script prints both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from mlcheck.stats import _POISSON as POISSON  # the old per-row draw used this table too

STATISTICS = ("draw", "accuracy", "recall by group", "equalized odds difference", "roc_auc")


def data(rows: int):
    rng = np.random.default_rng(0)
    truth = rng.random(rows) < 0.3
    scores = 1 / (1 + np.exp(-rng.normal(truth * 1.5 - 0.5, 1.0)))
    group = rng.choice(4, rows, p=[0.4, 0.3, 0.2, 0.1])
    return truth, scores, scores >= 0.5, group


# ------------------------------------------------------- before: the reference implementation

BLOCK_CELLS = 4_000_000


def old_bootstrap_counts(n: int, resamples: int, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    by_row = np.empty((n, resamples), dtype=np.uint8)
    step = max(1, BLOCK_CELLS // max(1, resamples))
    for start in range(0, n, step):
        size = min(step, n - start)
        by_row[start:start + size] = POISSON[rng.integers(0, 65536, size=(size, resamples),
                                                          dtype=np.uint16)]
    return by_row.T


def old_over_chunks(counts, statistic):
    step = max(1, BLOCK_CELLS // max(1, counts.shape[1]))
    return np.concatenate([statistic(counts[start:start + step].astype(np.float32))
                           for start in range(0, counts.shape[0], step)])


def divide(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def old_confusion(weights, truth, predicted):
    cells = np.stack([truth & predicted, ~truth & predicted, truth & ~predicted,
                      ~truth & ~predicted], axis=1).astype(np.float32)
    return (weights @ cells).T


def old_accuracy(counts, truth, predicted):
    def statistic(w):
        tp, fp, fn, tn = old_confusion(w, truth, predicted)
        return divide(tp + tn, tp + fp + fn + tn)
    return old_over_chunks(counts, statistic)


def old_recall(counts, truth, predicted):
    def statistic(w):
        tp, _, fn, _ = old_confusion(w, truth, predicted)
        return divide(tp, tp + fn)
    return old_over_chunks(counts, statistic)


def old_group_rates(counts, truth, predicted, group, groups):
    from scipy import sparse

    cells = group * 4 + truth.astype(int) * 2 + predicted.astype(int)
    indicator = sparse.csr_matrix((np.ones(len(cells), np.float32),
                                   (np.arange(len(cells)), cells)),
                                  shape=(len(cells), 4 * groups))
    samples = old_over_chunks(counts, lambda w: (indicator.T @ w.T).T).reshape(
        counts.shape[0], -1, 4).astype(np.float64)
    return samples  # [tn, fp, fn, tp] per group


def old_resampled_auc(truth, scores, counts):
    order = np.argsort(scores, kind="mergesort")
    positive = truth[order]
    by_row = counts.T[order]
    negatives, positives = by_row[~positive], by_row[positive]
    before = np.cumsum(~positive)[positive]
    out = []
    step = max(1, BLOCK_CELLS // max(1, len(scores)))
    for start in range(0, counts.shape[0], step):
        cumulative = np.cumsum(negatives[:, start:start + step], axis=0, dtype=np.float32)
        below = np.where((before > 0)[:, None], cumulative[np.maximum(before - 1, 0)], 0)
        weights = positives[:, start:start + step].astype(np.float32)
        numerator = (weights * below).sum(axis=0, dtype=np.float64)
        out.append(divide(numerator, weights.sum(axis=0, dtype=np.float64)
                          * cumulative[-1].astype(np.float64)))
    return np.concatenate(out)


def equalized_odds(confusion):
    """Worst of the TPR and FPR differences across groups, per resample, from
    [tn, fp, fn, tp] per group."""
    tn, fp, fn, tp = (confusion[..., i] for i in range(4))
    tpr, fpr = divide(tp, tp + fn), divide(fp, fp + tn)
    return np.maximum(tpr.max(axis=1) - tpr.min(axis=1), fpr.max(axis=1) - fpr.min(axis=1))


def before(rows: int, resamples: int):
    truth, scores, predicted, group = data(rows)
    state = {}
    seed = np.random.SeedSequence([0, *b"eval"])

    def draw():
        state["counts"] = old_bootstrap_counts(rows, resamples, seed)
        return None

    def recall_by_group():
        values = []
        for g in range(4):
            rows_g = np.flatnonzero(group == g)
            values.append(old_recall(state["counts"][:, rows_g], truth[rows_g],
                                     predicted[rows_g]))
        return values[0]

    return {
        "draw": draw,
        "accuracy": lambda: old_accuracy(state["counts"], truth, predicted),
        "recall by group": recall_by_group,
        "equalized odds difference": lambda: equalized_odds(
            old_group_rates(state["counts"], truth, predicted, group, 4)),
        "roc_auc": lambda: old_resampled_auc(truth, scores, state["counts"]),
    }


# ----------------------------------------------------------------- after: mlcheck now


def after(rows: int, resamples: int):
    import pandas as pd

    from mlcheck.stats import CellBootstrap, RowBootstrap, auc_statistic, confusion_metric

    truth, scores, predicted, group = data(rows)
    state = {}
    seed = np.random.SeedSequence([0, *b"eval"])
    t, p = truth.astype(np.int64), predicted.astype(np.int64)

    def draw():  # as Context._finest_cells and Context.cell_bootstrap do
        cells = np.zeros(rows, dtype=np.int64)
        for part in (truth, predicted, group):
            codes, uniques = pd.factorize(part)
            cells = pd.factorize(cells * len(uniques) + codes)[0]
        state["cells"] = CellBootstrap(cells, resamples, seed)
        state["rows"] = RowBootstrap(rows, resamples, seed)

    def confusion(key_group=None, groups=1):  # as performance.resampled_confusion does
        key = t * 2 + p
        if key_group is not None:
            key = np.where(key_group < groups, key_group * 4 + key, groups * 4)
        return state["cells"].counts(key, groups * 4).reshape(-1, groups, 2, 2)

    def recall_by_group():
        values = []
        for g in range(4):
            slice_group = np.where(group == g, 0, 1)
            values.append(confusion_metric("recall", confusion(slice_group)[:, 0], 2))
        return values[0]

    return {
        "draw": draw,
        "accuracy": lambda: confusion_metric("accuracy", confusion()[:, 0], 2),
        "recall by group": recall_by_group,
        "equalized odds difference": lambda: equalized_odds(
            confusion(group, 4).reshape(-1, 4, 4)),
        "roc_auc": lambda: state["rows"].apply(auc_statistic(truth, scores)),
    }


# --------------------------------------------------------------------------- driver


def one(implementation: str, rows: int, resamples: int) -> dict:
    """Run the statistics of one implementation in this process: time and peak each."""
    steps = (before if implementation == "before" else after)(rows, resamples)
    out = {}
    tracemalloc.start()
    for name in STATISTICS:
        tracemalloc.reset_peak()
        started = time.perf_counter()
        samples = steps[name]()
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        interval = None if samples is None else [
            float(v) for v in np.nanpercentile(samples, [2.5, 97.5])]
        out[name] = {"seconds": seconds, "peak_mb": peak / 1e6, "interval": interval}
    out["total"] = {"seconds": sum(v["seconds"] for v in out.values()),
                    "peak_mb": max(v["peak_mb"] for v in out.values()), "interval": None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--one", nargs=2, metavar=("IMPLEMENTATION", "ROWS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.resamples)))
        return
    print(f"resamples={args.resamples:,}; peak = tracemalloc peak during the step, "
          "resident resamples included")
    print("| rows | step | before s | after s | speed-up | before peak MB | after peak MB "
          "| memory ratio | before 95% interval | after 95% interval |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for rows in args.rows:
        results = {}
        for implementation in ("before", "after"):
            done = subprocess.run([sys.executable, __file__, "--one", implementation,
                                   str(rows), "--resamples", str(args.resamples)],
                                  capture_output=True, text=True, check=True)
            results[implementation] = json.loads(done.stdout)
        for name in (*STATISTICS, "total"):
            old, new = results["before"][name], results["after"][name]

            def span(v):
                return "" if v["interval"] is None else \
                    f"[{v['interval'][0]:.4f}, {v['interval'][1]:.4f}]"

            print(f"| {rows:,} | {name} | {old['seconds']:.2f} | {new['seconds']:.2f} | "
                  f"{old['seconds'] / max(new['seconds'], 1e-9):.1f}x | "
                  f"{old['peak_mb']:.1f} | {new['peak_mb']:.1f} | "
                  f"{old['peak_mb'] / max(new['peak_mb'], 1e-9):.1f}x | {span(old)} | "
                  f"{span(new)} |", flush=True)


if __name__ == "__main__":
    main()
