"""The floor of benchmarks/gate_scale.py: the gate's values with numpy and scikit-learn alone.

    python benchmarks/gate_floor.py EVAL.parquet REFERENCE.parquet MODEL.skops

What a careful user would write by hand for the same policy, in one process: read both
Parquet files, call the pipeline's `predict_proba` once, in batches of 100,000 rows as
mlcheck does (so that the pipeline's encoded copies of the input take one batch's memory,
not the dataset's; labels: probability >= 0.5, which is the logistic regression's
`predict`), then ROC AUC with DeLong's interval, accuracy
with Wilson's interval, recall per `group` with Wilson's, the equalized odds difference
by `group` with a normal interval of the gap that sets it, and PSI of every feature column
over 10 reference-quantile bins (mlcheck's bins: empty shares floored at 1e-4). Prints one
JSON object keyed by the mlcheck check id each value stands for.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import skops.io as sio
from scipy.special import ndtri
from scipy.stats import rankdata
from sklearn.metrics import accuracy_score, recall_score, roc_auc_score

Z = float(ndtri(0.975))  # 95% intervals
TARGET, GROUP, BINS, FLOOR, BATCH = "y", "group", 10, 1e-4, 100_000


def wilson(successes: int, n: int) -> list[float]:
    p = successes / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * np.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return [centre - half, centre + half]


def delong(truth: np.ndarray, scores: np.ndarray) -> list[float]:
    positives, negatives = scores[truth], scores[~truth]
    m, n = len(positives), len(negatives)
    joint = rankdata(np.concatenate([positives, negatives]))
    v_pos = (joint[:m] - rankdata(positives)) / n
    v_neg = 1 - (joint[m:] - rankdata(negatives)) / m
    auc, se = v_pos.mean(), np.sqrt(v_pos.var(ddof=1) / m + v_neg.var(ddof=1) / n)
    return [auc - Z * se, auc + Z * se]


def psi(reference: pd.Series, current: pd.Series) -> float:
    if pd.api.types.is_numeric_dtype(reference):
        ref, cur = reference.to_numpy(float), current.to_numpy(float)
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, BINS + 1)[1:-1]))
        r = np.bincount(np.searchsorted(edges, ref, "left"), minlength=len(edges) + 1)
        c = np.bincount(np.searchsorted(edges, cur, "left"), minlength=len(edges) + 1)
    else:
        r_counts, c_counts = reference.value_counts(), current.value_counts()
        categories = r_counts.index.union(c_counts.index)
        r = r_counts.reindex(categories, fill_value=0).to_numpy()
        c = c_counts.reindex(categories, fill_value=0).to_numpy()
    r, c = np.maximum(r / r.sum(), FLOOR), np.maximum(c / c.sum(), FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def main(eval_path: str, reference_path: str, model_path: str) -> None:
    frame, reference = pd.read_parquet(eval_path), pd.read_parquet(reference_path)
    model = sio.load(model_path, trusted=sio.get_untrusted_types(file=model_path))
    truth = (frame[TARGET] == 1).to_numpy()
    features = frame.drop(columns=[TARGET])
    scores = np.concatenate([model.predict_proba(features.iloc[start:start + BATCH])[:, 1]
                             for start in range(0, len(features), BATCH)])
    predicted = scores >= 0.5
    out = {"performance/roc_auc": [roc_auc_score(truth, scores), delong(truth, scores)],
           "performance/accuracy": [accuracy_score(truth, predicted),
                                    wilson(int((truth == predicted).sum()), len(truth))]}
    group = frame[GROUP].to_numpy()
    tpr, fpr = {}, {}
    for value in sorted(pd.unique(group)):
        rows = group == value
        t, p = truth[rows], predicted[rows]
        hits, positives = int((t & p).sum()), int(t.sum())
        out[f"performance/recall[{GROUP}={value}]"] = [recall_score(t, p),
                                                      wilson(hits, positives)]
        tpr[value] = (hits, positives)
        fpr[value] = (int((~t & p).sum()), int((~t).sum()))
    gaps = []
    for rates in (tpr, fpr):  # the largest gap between two groups, with its normal interval
        shares = {g: k / n for g, (k, n) in rates.items()}
        high, low = max(shares, key=shares.get), min(shares, key=shares.get)
        gap = shares[high] - shares[low]
        se = np.sqrt(sum(shares[g] * (1 - shares[g]) / rates[g][1] for g in (high, low)))
        gaps.append([gap, [gap - Z * se, gap + Z * se]])
    out[f"fairness/equalized_odds_difference[{GROUP}]"] = max(gaps, key=lambda g: g[0])
    for column in frame.columns:
        if column != TARGET:
            out[f"drift/psi[{column}]"] = [psi(reference[column], frame[column]), None]
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:4])
