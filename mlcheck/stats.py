"""Bootstrap machinery: Poisson resamples of a dataset, drawn in the form each metric needs.

The Poisson bootstrap draws every row Poisson(1) times, independently (Hanley and
MacGibbon, 2006); for more than a few dozen rows it behaves as the classical bootstrap.
Two exact consequences keep memory independent of the number of resamples:

- A metric of cell counts (confusion counts per group, of one model or of two jointly)
  needs only each cell's total, and a sum of independent Poisson(1) counts is Poisson of
  the cell's size. `CellBootstrap` draws those totals directly: resamples x cells.
- A metric that reads every row (ROC AUC, log loss, regression errors) is computed on
  per-row counts drawn in blocks of resamples (`RowBootstrap`): block x rows, bounded.

A metric on a resample is the metric with the resample's counts as sample weights.
Written by hand because no library computes weighted metrics for many weight vectors at
once; scikit-learn with `sample_weight` is the test oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

BLOCK_CELLS = 4_000_000  # weights per float32 block in `over_chunks` (16 MB)
ROW_BLOCK = 8_000_000  # per-row counts per block of resamples (8 MB, ~60 MB while in use)
CELL_BLOCK = 4_000_000  # per-cell counts per block of resamples (int64: 32 MB)
KEEP = 16_000_000  # draws of a dataset are kept for the run when they fit in this many bytes
CELLS_METHOD = "percentile bootstrap (Poisson, cell counts)"
ROWS_METHOD = "percentile bootstrap (Poisson, rows in blocks)"
_EPS = np.finfo(np.float64).eps
_CELLS, _ROWS = 0, 1  # streams of one dataset's seed: cell totals, per-row counts


def _poisson_table() -> np.ndarray:
    """Maps a uniform 16-bit number to a Poisson(1) count by inverting its CDF."""
    k = np.arange(16)
    pmf = np.exp(-1.0) / np.cumprod(np.r_[1, k[1:]])
    thresholds = np.round(np.cumsum(pmf) * 65536)
    return np.searchsorted(thresholds, np.arange(65536), side="right").astype(np.uint8)


_POISSON = _poisson_table()


def bootstrap_counts(n: int, resamples: int, seed: int | np.random.SeedSequence) -> np.ndarray:
    """(resamples x n) uint8 counts: row i is drawn counts[b, i] times in resample b.

    The whole table at once: for small samples (explained rows, tests). Drawn by table
    lookup from 16-bit random numbers, several times faster than `Generator.poisson`."""
    rng = np.random.default_rng(seed)
    by_row = np.empty((n, resamples), dtype=np.uint8)  # stored row-major: rows gather fast
    step = max(1, BLOCK_CELLS // max(1, resamples))
    for start in range(0, n, step):
        size = min(step, n - start)
        by_row[start:start + size] = _POISSON[rng.integers(0, 65536, size=(size, resamples),
                                                           dtype=np.uint16)]
    return by_row.T


def _spans(resamples: int, width: int, budget: int) -> list[tuple[int, int]]:
    """Blocks of resamples [start, stop) holding at most `budget` counts of `width` each."""
    step = max(1, budget // max(1, width))
    return [(start, min(start + step, resamples)) for start in range(0, resamples, step)]


def _block_seed(seed: np.random.SeedSequence, stream: int, block: int
                ) -> np.random.SeedSequence:
    """The seed of one block of one stream: any block can be drawn again on its own."""
    return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, stream, block))


class CellBootstrap:
    """Poisson resamples of a dataset's rows as totals per cell of a fixed partition.

    `cell_of_row` is the finest partition the run's count-based checks need (truth x each
    model's predicted label x each grouping column). Each resample draws Poisson(size) per
    cell, which is the row bootstrap exactly in distribution; every coarser count (one
    model's confusion counts, per group or not) is a sum of these, so all count-based
    intervals of a run come from the same draws: paired across checks, models and groups.
    Memory: resamples x cells, drawn in blocks when that is large, never rows x resamples.
    `weights`: how many rows each row stands for (aggregated rows, from Spark)."""

    method = CELLS_METHOD

    def __init__(self, cell_of_row: np.ndarray, resamples: int,
                 seed: np.random.SeedSequence, weights: np.ndarray | None = None) -> None:
        self.cell_of_row = cell_of_row
        self.sizes = np.bincount(cell_of_row) if weights is None else \
            np.bincount(cell_of_row, weights=weights).astype(np.int64)
        self.resamples, self.seed = resamples, seed
        self.spans = _spans(resamples, len(self.sizes), CELL_BLOCK)
        keep = resamples * len(self.sizes) * 4 <= KEEP
        self._kept: dict[int, np.ndarray] | None = {} if keep else None

    def _block(self, index: int) -> np.ndarray:
        if self._kept is not None and index in self._kept:
            return self._kept[index]
        start, stop = self.spans[index]
        rng = np.random.default_rng(_block_seed(self.seed, _CELLS, index))
        block = rng.poisson(self.sizes, size=(stop - start, len(self.sizes)))
        if self._kept is not None:
            block = block.astype(np.int32)
            self._kept[index] = block
        return block

    def counts(self, key: np.ndarray, k: int) -> np.ndarray:
        """(resamples x k) resampled counts of the cells `key` gives each row (0..k-1;
        k leaves a row out). `key` must be constant on each drawn cell."""
        mapping = np.full(len(self.sizes), k, dtype=np.int64)
        mapping[self.cell_of_row] = key
        if not np.array_equal(mapping[self.cell_of_row], key):
            raise ValueError("cells asked for split the drawn cells; declare what a check "
                             "groups by before the first draw (Context.need_cells)")
        used = np.flatnonzero(mapping < k)
        order = used[np.argsort(mapping[used], kind="stable")]
        targets = mapping[order]
        starts = np.flatnonzero(np.r_[True, targets[1:] != targets[:-1]]) if len(targets) \
            else np.empty(0, dtype=np.int64)
        out = np.zeros((self.resamples, k))
        for index, (start, stop) in enumerate(self.spans):
            if len(order):
                out[start:stop, targets[starts]] = np.add.reduceat(
                    self._block(index)[:, order], starts, axis=1)
        return out


class RowBootstrap:
    """Poisson resamples of a dataset's rows as per-row counts, drawn in blocks of
    resamples (block x rows <= ROW_BLOCK counts): each block comes from its own seed,
    so every check that reads rows sees the same resamples, and memory stays bounded.
    Kept for the run when the whole table is small (KEEP bytes). With `weights` (rows
    standing for several, aggregated on Spark) a row is drawn Poisson(weight) times: the
    sum of its rows' Poisson(1) draws, the same bootstrap in distribution."""

    method = ROWS_METHOD

    def __init__(self, n: int, resamples: int, seed: np.random.SeedSequence,
                 weights: np.ndarray | None = None) -> None:
        self.n, self.resamples, self.seed, self.weights = n, resamples, seed, weights
        width = 1 if weights is None else 4  # bytes a count: uint8, or int32 when weighted
        self.spans = _spans(resamples, n * width, ROW_BLOCK)
        self._kept: dict[int, np.ndarray] | None = {} \
            if resamples * n * width <= KEEP else None

    def _block(self, index: int) -> np.ndarray:
        if self._kept is not None and index in self._kept:
            return self._kept[index]
        start, stop = self.spans[index]
        rng = np.random.default_rng(_block_seed(self.seed, _ROWS, index))
        if self.weights is not None:
            block = rng.poisson(self.weights, size=(stop - start, self.n)).astype(np.int32)
        else:
            block = _POISSON[rng.integers(0, 65536, size=(stop - start, self.n),
                                          dtype=np.uint16)]
        if self._kept is not None:
            self._kept[index] = block
        return block

    def blocks(self) -> Iterator[np.ndarray]:
        """(block x n) uint8 counts, block after block, in resample order."""
        for index in range(len(self.spans)):
            yield self._block(index)

    def apply(self, statistic: Callable[[np.ndarray], np.ndarray],
              rows: np.ndarray | None = None) -> np.ndarray:
        """A statistic of a (block x rows) count matrix, over every block; `rows` selects
        (a slice's) columns. The statistic returns one value, or a row of values, per
        resample."""
        out = [statistic(block if rows is None else block[:, rows]) for block in self.blocks()]
        return np.concatenate(out) if out else np.empty(0)


@dataclass(frozen=True)
class Interval:
    """A confidence interval: percentile bootstrap (with how many resamples were usable,
    and how they were drawn), or DeLong's analytic interval for ROC AUC."""

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


def percentile_interval(samples: np.ndarray, confidence: float,
                        method: str = "percentile bootstrap") -> Interval:
    """The central `confidence` interval of a bootstrap distribution (NaNs set aside)."""
    defined = samples[np.isfinite(samples)]
    undefined = int(samples.size - defined.size)
    if defined.size == 0:
        return Interval(float("nan"), float("nan"), confidence, int(samples.size), undefined,
                        method)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return Interval(float(low), float(high), confidence, int(samples.size), undefined, method)


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


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean of the defined values; NaN (without a warning) when none is."""
    defined = ~np.isnan(values)
    return _divide(np.where(defined, values, 0).sum(axis=axis), defined.sum(axis=axis))


# ------------------------------------------------------------ confusion counts


def label_codes(classes: Sequence, *labels: np.ndarray) -> tuple[list[np.ndarray], int]:
    """Each array of labels as codes: the task's classes first (0..len(classes)-1, in
    their order), then labels met only in the data. Returns the codes and how many labels
    there are in all. Labels compare as scikit-learn compares them (1 == 1.0)."""
    import pandas as pd

    values = np.concatenate([np.asarray(list(classes), dtype=object),
                             *(np.asarray(a, dtype=object) for a in labels)])
    codes, uniques = pd.factorize(values)
    out, start = [], len(classes)
    for array in labels:
        out.append(codes[start:start + len(array)])
        start += len(array)
    return out, len(uniques)


def confusion_metric(name: str, confusion: np.ndarray, classes: int) -> np.ndarray:
    """A label metric from confusion counts (..., truth, prediction), with scikit-learn's
    definitions. The first `classes` labels are the task's (binary: False, True; the
    unaveraged binary metrics are of True); any others are labels met only in the data,
    which count for accuracy and balanced accuracy as they do in scikit-learn."""
    diagonal = np.diagonal(confusion, axis1=-2, axis2=-1)
    support, predicted = confusion.sum(axis=-1), confusion.sum(axis=-2)
    if name == "accuracy":
        return _divide(diagonal.sum(axis=-1), support.sum(axis=-1))
    if name == "balanced_accuracy":  # classes without actual rows are left out
        return _nanmean(_divide(diagonal, support), axis=-1)
    kind, _, average = name.partition("_")
    tp, support, predicted = (a[..., :classes] for a in (diagonal, support, predicted))
    values = {"precision": _divide(tp, predicted), "recall": _divide(tp, support),
              "f1": _divide(2 * tp, predicted + support)}[kind]
    if not average:
        return values[..., 1]
    if average == "macro":
        return _nanmean(values, axis=-1)
    defined = ~np.isnan(values)  # scikit-learn leaves a 0/0 class out of both sums
    return _divide(np.where(defined, values * support, 0).sum(axis=-1),
                   np.where(defined, support, 0).sum(axis=-1))


def binary_confusion(weights: np.ndarray, truth: np.ndarray, predicted: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted (tp, fp, fn, tn) per resample, for boolean truth and predictions."""
    cells = np.stack([truth & predicted, ~truth & predicted, truth & ~predicted,
                      ~truth & ~predicted], axis=1).astype(np.float32)
    tp, fp, fn, tn = (weights @ cells).T
    return tp, fp, fn, tn


def binary_label_metric(name: str) -> Callable:
    """Weighted binary metric from confusion counts (positive class True)."""

    def compute(truth, predicted, classes, weights):
        tp, fp, fn, tn = binary_confusion(weights, truth, predicted)
        confusion = np.stack([np.stack([tn, fp], axis=-1), np.stack([fn, tp], axis=-1)],
                             axis=-2).astype(np.float64)  # integers: float32 sums are exact
        return confusion_metric(name, confusion, 2)

    return compute


def multiclass_label_metric(name: str) -> Callable:
    """Weighted multiclass accuracy / balanced accuracy / precision / recall / f1."""

    def compute(truth, predicted, classes, weights):
        from scipy import sparse

        (truth_codes, predicted_codes), labels = label_codes(classes, truth, predicted)
        cell = truth_codes * labels + predicted_codes
        indicator = sparse.csr_matrix((np.ones(len(cell), np.float32),
                                       (np.arange(len(cell)), cell)),
                                      shape=(len(cell), labels * labels))
        confusion = np.asarray((indicator.T @ weights.T).T, dtype=np.float64)
        return confusion_metric(name, confusion.reshape(-1, labels, labels), len(classes))

    return compute


# ------------------------------------------------------------------ score metrics


def weighted_auc(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC per resample: the weighted Mann-Whitney statistic, ties counted 1/2.

    One sort (skipped when the rows come sorted by score), then a cumulative sum of
    negative weights. Integer counts are summed as integers, float weights as float32
    (exact for integer values below 2**24)."""
    if not np.all(scores[1:] >= scores[:-1]):
        order = np.argsort(scores, kind="mergesort")
        truth, scores, weights = truth[order], scores[order], weights[:, order]
    if weights.dtype.kind in "ui":  # uint8 counts would overflow in the sums
        weights = weights.astype(_wide(weights, len(scores)))
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


def auc_statistic(truth: np.ndarray, scores: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """ROC AUC of each row of a (block x n) count matrix, with the one sort of the rows
    done here, once. Without ties, per block: one cumulative sum over the negatives gives,
    for each positive, the count of negatives scored below it (integers: exact)."""
    order = np.argsort(scores, kind="mergesort")
    ordered, positive = scores[order], truth[order]
    if np.any(ordered[1:] == ordered[:-1]):  # ties count 1/2: the general form
        return lambda counts: weighted_auc(positive, ordered, counts[:, order])
    pos_rows, neg_rows = order[positive], order[~positive]
    before = np.cumsum(~positive)[positive]  # negatives scored below each positive

    def statistic(counts: np.ndarray) -> np.ndarray:
        if not len(pos_rows) or not len(neg_rows):
            return np.full(counts.shape[0], np.nan)
        wide = _wide(counts, len(scores))
        cumulative = np.zeros((counts.shape[0], len(neg_rows) + 1), dtype=wide)
        np.cumsum(counts[:, neg_rows], axis=1, dtype=wide, out=cumulative[:, 1:])
        weights = counts[:, pos_rows]
        numerator = (weights * cumulative[:, before]).sum(axis=1, dtype=np.float64)
        return _divide(numerator, weights.sum(axis=1, dtype=np.float64)
                       * cumulative[:, -1].astype(np.float64))

    return statistic


def _wide(counts: np.ndarray, rows: int) -> type:
    """The integer type sums of resample counts need: int32 for Poisson(1) counts of up
    to 50M rows, int64 for more, or for counts of aggregated rows (Poisson(weight))."""
    return np.int64 if rows > 50_000_000 or counts.dtype.itemsize > 1 else np.int32


def resampled_auc(truth: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC on every resample (rows of `counts`) with one sort of the rows."""
    statistic = auc_statistic(truth, scores)
    step = max(1, BLOCK_CELLS // max(1, len(scores)))
    out = [statistic(counts[start:start + step]) for start in range(0, counts.shape[0], step)]
    return np.concatenate(out) if out else np.empty(0)


def weighted_average_precision(truth: np.ndarray, scores: np.ndarray,
                               weights: np.ndarray) -> np.ndarray:
    """Average precision per resample (scikit-learn's step definition), ties as blocks.
    The sort is skipped when the rows come sorted by decreasing score."""
    if not np.all(scores[1:] <= scores[:-1]):
        order = np.argsort(-scores, kind="mergesort")
        scores, truth, weights = scores[order], truth[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
    w = weights.astype(np.int64 if weights.dtype.kind in "ui" else np.float64)
    pos_w = np.add.reduceat(np.where(truth, w, 0), starts, axis=1)
    tp = np.cumsum(pos_w, axis=1)
    precision = _divide(tp, np.cumsum(np.add.reduceat(w, starts, axis=1), axis=1))
    numerator = (np.nan_to_num(precision) * pos_w).sum(axis=1)
    return _divide(numerator, tp[:, -1])


def score_statistic(name: str, truth: np.ndarray, scores: np.ndarray, classes: Sequence | None
                    ) -> Callable[[np.ndarray], np.ndarray] | None:
    """The score metrics whose per-call work is a sort, as statistics of a (block x n)
    count matrix with the sorts done once; None for the others."""
    if scores.ndim == 1 and name == "roc_auc":
        return auc_statistic(truth, scores)
    if scores.ndim == 1 and name == "average_precision":
        order = np.argsort(-scores, kind="mergesort")
        ordered, positive = scores[order], truth[order]
        return lambda counts: weighted_average_precision(positive, ordered, counts[:, order])
    if scores.ndim == 2 and name in ("roc_auc_ovr", "roc_auc_ovr_weighted"):
        hot = np.stack([truth == c for c in classes], axis=1)
        per_class = [auc_statistic(hot[:, k], scores[:, k]) for k in range(len(classes))]

        def statistic(counts: np.ndarray) -> np.ndarray:
            aucs = np.stack([auc(counts) for auc in per_class], axis=1)
            if name == "roc_auc_ovr":
                return aucs.mean(axis=1)
            prevalence = counts @ hot.astype(np.float64)
            return _divide((aucs * prevalence).sum(axis=1), prevalence.sum(axis=1))

        return statistic
    return None


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


def _delong_components(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components (the midrank form of Sun and Xu, 2014, with rows
    that stand for `weights` rows each): per positive row, the share of negatives it
    outranks (ties 1/2); per negative row, the share of positives above it."""
    positives, negatives = scores[truth], scores[~truth]
    pos_w, neg_w = weights[truth], weights[~truth]

    def share_below(values: np.ndarray, others: np.ndarray, other_w: np.ndarray) -> np.ndarray:
        order = np.argsort(others, kind="mergesort")
        sorted_others = others[order]
        cumulative = np.r_[0.0, np.cumsum(other_w[order], dtype=np.float64)]
        below = cumulative[np.searchsorted(sorted_others, values, "left")]
        at_or_below = cumulative[np.searchsorted(sorted_others, values, "right")]
        return (below + at_or_below) / 2 / cumulative[-1]

    return share_below(positives, negatives, neg_w), 1 - share_below(negatives, positives,
                                                                      pos_w)


def _weighted_variance(values: np.ndarray, weights: np.ndarray) -> float:
    """The sample variance (ddof 1) of values each standing for `weights` rows."""
    total = weights.sum(dtype=np.float64)
    if total <= 1:
        return float("nan")
    mean = np.dot(weights, values) / total
    return float(np.dot(weights, (values - mean) ** 2) / (total - 1))


def delong_interval(truth: np.ndarray, scores: np.ndarray, confidence: float,
                    baseline: np.ndarray | None = None,
                    weights: np.ndarray | None = None) -> Interval:
    """DeLong's interval for ROC AUC, or, with `baseline` scores on the same rows, for the
    difference AUC(scores) - AUC(baseline) (paired: the covariance is taken into account).
    `weights`: how many rows each row stands for (aggregated rows, from Spark)."""
    from scipy.stats import norm

    if truth.all() or not truth.any():
        nan = float("nan")
        return Interval(nan, nan, confidence, 0, 0, "DeLong")
    weights = np.ones(len(truth)) if weights is None else np.asarray(weights, dtype=float)
    pos_w, neg_w = weights[truth], weights[~truth]
    v_pos, v_neg = _delong_components(truth, scores, weights)
    if baseline is not None:
        b_pos, b_neg = _delong_components(truth, baseline, weights)
        v_pos, v_neg = v_pos - b_pos, v_neg - b_neg
    estimate = np.dot(pos_w, v_pos) / pos_w.sum()
    m, n = pos_w.sum(), neg_w.sum()
    variance = _weighted_variance(v_pos, pos_w) / m + _weighted_variance(v_neg, neg_w) / n
    half = norm.ppf(0.5 + confidence / 2) * np.sqrt(variance)
    low, high = estimate - half, estimate + half
    if baseline is None:
        low, high = max(low, 0.0), min(high, 1.0)
    return Interval(float(low), float(high), confidence, 0, 0, "DeLong")
