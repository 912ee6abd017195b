"""Bootstrap machinery, vectorised: one set of resamples per dataset, every metric from it.

A resample is stored as counts (how often each row was drawn), so a metric on a resample
is the metric with those counts as sample weights. That turns B resamples of a metric
into a few matrix products over a (B x n) weight matrix, instead of B metric calls.
Written by hand because no library computes weighted metrics for many weight vectors at
once; scikit-learn with `sample_weight` is the test oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BLOCK_CELLS = 4_000_000  # weights per float32 block in `over_chunks` (16 MB)
_EPS = np.finfo(np.float64).eps


def _poisson_table() -> np.ndarray:
    """Maps a uniform 16-bit number to a Poisson(1) count by inverting its CDF."""
    k = np.arange(16)
    pmf = np.exp(-1.0) / np.cumprod(np.r_[1, k[1:]])
    thresholds = np.round(np.cumsum(pmf) * 65536)
    return np.searchsorted(thresholds, np.arange(65536), side="right").astype(np.uint8)


_POISSON = _poisson_table()


def bootstrap_counts(n: int, resamples: int, seed: int | np.random.SeedSequence) -> np.ndarray:
    """(resamples x n) uint8 counts: row i is drawn counts[b, i] times in resample b.

    The Poisson bootstrap: each row is drawn Poisson(1) times, independently (Hanley and
    MacGibbon, 2006). For more than a few dozen rows it behaves as the classical bootstrap
    (n draws with replacement), and it is drawn by table lookup from 16-bit random numbers,
    several times faster. Deterministic for a seed; one byte per row and resample."""
    rng = np.random.default_rng(seed)
    by_row = np.empty((n, resamples), dtype=np.uint8)  # stored row-major: rows gather fast
    step = max(1, BLOCK_CELLS // max(1, resamples))
    for start in range(0, n, step):
        size = min(step, n - start)
        by_row[start:start + size] = _POISSON[rng.integers(0, 65536, size=(size, resamples),
                                                           dtype=np.uint16)]
    return by_row.T


@dataclass(frozen=True)
class Interval:
    """A confidence interval: percentile bootstrap (with how many resamples were usable),
    or DeLong's analytic interval for ROC AUC."""

    low: float
    high: float
    confidence: float
    resamples: int
    undefined: int  # resamples where the statistic was undefined (e.g. no positives)
    method: str = "percentile bootstrap"

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "confidence": self.confidence,
                "method": self.method, "resamples": self.resamples,
                "undefined_resamples": self.undefined}

    @property
    def width(self) -> float:
        return self.high - self.low


def percentile_interval(samples: np.ndarray, confidence: float) -> Interval:
    """The central `confidence` interval of a bootstrap distribution (NaNs set aside)."""
    defined = samples[np.isfinite(samples)]
    undefined = int(samples.size - defined.size)
    if defined.size == 0:
        return Interval(float("nan"), float("nan"), confidence, int(samples.size), undefined)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return Interval(float(low), float(high), confidence, int(samples.size), undefined)


def over_chunks(counts: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray]
                ) -> np.ndarray:
    """Apply a statistic of a (block x n) float weight matrix to all resamples, in blocks
    of about BLOCK_CELLS weights (large enough to amortise per-call work such as sorts)."""
    step = max(1, BLOCK_CELLS // max(1, counts.shape[1]))
    out = [statistic(counts[start:start + step].astype(np.float32))
           for start in range(0, counts.shape[0], step)]
    return np.concatenate(out) if out else np.empty(0)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


# ------------------------------------------------------------ confusion counts


def binary_confusion(weights: np.ndarray, truth: np.ndarray, predicted: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted (tp, fp, fn, tn) per resample, for boolean truth and predictions."""
    cells = np.stack([truth & predicted, ~truth & predicted, truth & ~predicted,
                      ~truth & ~predicted], axis=1).astype(np.float32)
    tp, fp, fn, tn = (weights @ cells).T
    return tp, fp, fn, tn


def binary_label_metric(name: str) -> Callable:
    """Weighted binary metric from confusion counts (positive class True)."""

    def per_class(tp, fp, fn, kind):
        precision, recall = _divide(tp, tp + fp), _divide(tp, tp + fn)
        if kind == "precision":
            return precision
        if kind == "recall":
            return recall
        return _divide(2 * tp, 2 * tp + fp + fn)

    def compute(truth, predicted, classes, weights):
        tp, fp, fn, tn = binary_confusion(weights, truth, predicted)
        total = tp + fp + fn + tn
        if name == "accuracy":
            return _divide(tp + tn, total)
        if name == "balanced_accuracy":
            return np.nanmean([_divide(tp, tp + fn), _divide(tn, tn + fp)], axis=0)
        kind, _, average = name.partition("_")
        positive = per_class(tp, fp, fn, kind)
        if not average:
            return positive
        negative = per_class(tn, fn, fp, kind)  # the False class seen as positive
        if average == "macro":
            return np.nanmean([positive, negative], axis=0)
        support = np.stack([tp + fn, tn + fp])
        values = np.stack([positive, negative])
        defined = ~np.isnan(values)  # scikit-learn leaves a 0/0 class out of both sums
        return _divide(np.where(defined, values * support, 0).sum(axis=0),
                       np.where(defined, support, 0).sum(axis=0))

    return compute


def multiclass_label_metric(name: str) -> Callable:
    """Weighted multiclass accuracy / balanced accuracy / precision / recall / f1."""

    def compute(truth, predicted, classes, weights):
        truth_hot = np.stack([truth == c for c in classes], axis=1).astype(np.float32)
        pred_hot = np.stack([predicted == c for c in classes], axis=1).astype(np.float32)
        tp = weights @ (truth_hot * pred_hot)
        support, predicted_count = weights @ truth_hot, weights @ pred_hot
        total = support.sum(axis=1)
        if name == "accuracy":
            return _divide(tp.sum(axis=1), total)
        recall = _divide(tp, support)
        if name == "balanced_accuracy":
            return np.nanmean(recall, axis=1)
        kind, _, average = name.partition("_")
        precision = _divide(tp, predicted_count)
        values = {"precision": precision, "recall": recall,
                  "f1": _divide(2 * tp, predicted_count + support)}[kind]
        if average == "macro":
            with np.errstate(all="ignore"):
                return np.nanmean(values, axis=1)
        defined = ~np.isnan(values)  # scikit-learn leaves a 0/0 class out of both sums
        return _divide(np.where(defined, values * support, 0).sum(axis=1),
                       np.where(defined, support, 0).sum(axis=1))

    return compute


# ------------------------------------------------------------------ score metrics


def weighted_auc(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC per resample: the weighted Mann-Whitney statistic, ties counted 1/2.

    One sort (skipped when the rows come sorted by score, as `presort` leaves them), then
    a cumulative sum of negative weights. Counts are integers, so float32 sums are exact."""
    if not np.all(scores[1:] >= scores[:-1]):
        order = np.argsort(scores, kind="mergesort")
        truth, scores, weights = truth[order], scores[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
    neg_w = weights * ~truth
    if starts.size < len(scores):  # ties: work on blocks of equal scores
        pos_w = np.add.reduceat(weights * truth, starts, axis=1)
        neg_w = np.add.reduceat(neg_w, starts, axis=1)
        below = np.cumsum(neg_w, axis=1) - neg_w  # negatives strictly lower
        numerator = (pos_w * (below + 0.5 * neg_w)).sum(axis=1, dtype=np.float64)
        positives = pos_w.sum(axis=1, dtype=np.float64)
    else:  # no ties: only the positives' columns matter
        below = np.cumsum(neg_w, axis=1)[:, truth]
        pos_w = weights[:, truth]
        numerator = (pos_w * below).sum(axis=1, dtype=np.float64)
        positives = pos_w.sum(axis=1, dtype=np.float64)
    return _divide(numerator, positives * neg_w.sum(axis=1, dtype=np.float64))


def resampled_auc(truth: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC on every resample with one sort of the rows.

    Rows are ordered by score once; then, per block of resamples, one cumulative sum over
    the negatives gives, for each positive, the weight of negatives scored below it."""
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    if np.any(ordered[1:] == ordered[:-1]):  # ties count 1/2: the general form
        truth, scores = truth[order], ordered
        by_row = counts.T[order]
        return over_chunks(by_row.T, lambda w: weighted_auc(truth, scores, w))
    positive = truth[order]
    by_row = counts.T[order]  # (n x B), rows by increasing score
    negatives, positives = by_row[~positive], by_row[positive]
    before = np.cumsum(~positive)[positive]  # negatives scored below each positive
    out = []
    step = max(1, BLOCK_CELLS // max(1, len(scores)))
    for start in range(0, counts.shape[0], step):
        cumulative = np.cumsum(negatives[:, start:start + step], axis=0, dtype=np.float32)
        if not len(cumulative):
            out.append(np.full(min(step, counts.shape[0] - start), np.nan))
            continue
        below = np.where((before > 0)[:, None], cumulative[np.maximum(before - 1, 0)], 0)
        weights = positives[:, start:start + step].astype(np.float32)
        numerator = (weights * below).sum(axis=0, dtype=np.float64)
        out.append(_divide(numerator, weights.sum(axis=0, dtype=np.float64)
                           * cumulative[-1].astype(np.float64)))
    return np.concatenate(out) if out else np.empty(0)


def weighted_average_precision(truth: np.ndarray, scores: np.ndarray,
                               weights: np.ndarray) -> np.ndarray:
    """Average precision per resample (scikit-learn's step definition), ties as blocks."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, positive = scores[order], truth[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order].astype(np.float64)
    pos_w = np.add.reduceat(np.where(positive, w, 0), starts, axis=1)
    all_w = np.add.reduceat(w, starts, axis=1)
    tp, seen = np.cumsum(pos_w, axis=1), np.cumsum(all_w, axis=1)
    precision = _divide(tp, seen)
    total_pos = tp[:, -1:]
    recall_step = _divide(pos_w, np.broadcast_to(total_pos, pos_w.shape))
    return np.where(total_pos[:, 0] > 0,
                    np.nansum(np.nan_to_num(precision) * recall_step, axis=1), np.nan)


def scores_metric(name: str) -> Callable:
    """Weighted score-based classification metrics (binary: 1-D scores)."""

    def compute(truth, scores, classes, weights):
        total = weights.sum(axis=1, dtype=np.float64)
        if scores.ndim == 1:
            if name == "roc_auc":
                return weighted_auc(truth, scores, weights)
            if name == "average_precision":
                return weighted_average_precision(truth, scores, weights)
            if name == "log_loss":
                p = np.clip(scores, _EPS, 1 - _EPS)
                return _divide(weights @ -np.where(truth, np.log(p), np.log1p(-p)), total)
            if name == "brier_score":
                return _divide(weights @ (scores - truth) ** 2, total)
        hot = np.stack([truth == c for c in classes], axis=1)
        if name == "log_loss":
            p = np.clip(scores / scores.sum(axis=1, keepdims=True), _EPS, 1 - _EPS)
            return _divide(weights @ -np.log((p * hot).sum(axis=1)), total)
        if name == "brier_score":
            return _divide(weights @ ((scores - hot) ** 2).sum(axis=1), total)
        # one-vs-rest AUC per class, macro or prevalence-weighted
        aucs = np.stack([weighted_auc(hot[:, k], scores[:, k], weights)
                         for k in range(len(classes))], axis=1)
        if name == "roc_auc_ovr":
            return aucs.mean(axis=1)
        prevalence = weights @ hot.astype(np.float32)
        return _divide((aucs * prevalence).sum(axis=1), prevalence.sum(axis=1))

    return compute


def regression_metric(name: str) -> Callable:
    """Weighted regression metrics."""

    def compute(truth, predicted, classes, weights):
        total = weights.sum(axis=1, dtype=np.float64)
        error = predicted - truth
        if name == "mae":
            return _divide(weights @ np.abs(error), total)
        if name in ("mse", "rmse"):
            mse = _divide(weights @ error**2, total)
            return np.sqrt(mse) if name == "rmse" else mse
        if name == "mape":
            return _divide(weights @ (np.abs(error) / np.maximum(np.abs(truth), _EPS)), total)
        if name == "r2":  # centred first: sums of squares of large values would cancel
            centred = truth - truth.mean()
            mean = _divide(weights @ centred, total)
            spread = weights @ centred**2 - total * mean**2
            return 1 - _divide(weights @ error**2, spread)
        raise KeyError(name)

    return compute


def resampled_loop(compute: Callable, truth: np.ndarray, output: np.ndarray,
                   classes: Sequence | None, counts: np.ndarray) -> np.ndarray:
    """Fallback for metrics without a weighted form: expand each resample and call."""
    rows = np.arange(len(truth))
    out = np.empty(counts.shape[0])
    for b in range(counts.shape[0]):
        drawn = np.repeat(rows, counts[b])
        try:
            out[b] = compute(truth[drawn], output[drawn], classes)
        except ValueError:
            out[b] = np.nan
    return out


def _delong_components(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components (fast midrank form, Sun and Xu 2014): per positive,
    the share of negatives it outranks; per negative, the share of positives above it."""
    from scipy.stats import rankdata

    positives, negatives = scores[truth], scores[~truth]
    m, n = len(positives), len(negatives)
    joint = rankdata(np.concatenate([positives, negatives]))
    v_pos = (joint[:m] - rankdata(positives)) / n
    v_neg = 1 - (joint[m:] - rankdata(negatives)) / m
    return v_pos, v_neg


def delong_interval(truth: np.ndarray, scores: np.ndarray, confidence: float,
                    baseline: np.ndarray | None = None) -> Interval:
    """DeLong's interval for ROC AUC, or, with `baseline` scores on the same rows, for the
    difference AUC(scores) - AUC(baseline) (paired: the covariance is taken into account)."""
    from scipy.stats import norm

    if truth.all() or not truth.any():
        nan = float("nan")
        return Interval(nan, nan, confidence, 0, 0, "DeLong")
    v_pos, v_neg = _delong_components(truth, scores)
    estimate = v_pos.mean()
    if baseline is not None:
        b_pos, b_neg = _delong_components(truth, baseline)
        estimate -= b_pos.mean()
        v_pos, v_neg = v_pos - b_pos, v_neg - b_neg
    variance = np.var(v_pos, ddof=1) / len(v_pos) + np.var(v_neg, ddof=1) / len(v_neg) \
        if min(len(v_pos), len(v_neg)) > 1 else float("nan")
    half = norm.ppf(0.5 + confidence / 2) * np.sqrt(variance)
    low, high = estimate - half, estimate + half
    if baseline is None:
        low, high = max(low, 0.0), min(high, 1.0)
    return Interval(float(low), float(high), confidence, 0, 0, "DeLong")
