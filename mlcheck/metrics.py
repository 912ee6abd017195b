"""The performance metrics a policy may name: one registry, scikit-learn underneath.

Binary tasks see `y_true`/`y_pred` as booleans (True = the positive label) and scores as
the positive-class probability; multiclass tasks see labels and a score matrix whose
columns follow `classes`; regression sees numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and the statistics load when a metric is computed, so that
    import numpy as np  # loading a policy (`mlcheck validate`) does not pay for them



class _LazyMetrics:
    """scikit-learn's metrics, imported on first use: a run without performance or
    fairness rules (drift only, schema only) does not pay for importing them."""

    def __getattr__(self, name: str):
        from sklearn import metrics

        return getattr(metrics, name)


skm = _LazyMetrics()


def _sk(name: str) -> Callable[..., float]:
    """A scikit-learn metric by name, looked up when it is called."""
    return lambda *args, **kwargs: getattr(skm, name)(*args, **kwargs)

BINARY = "binary_classification"
MULTICLASS = "multiclass_classification"
REGRESSION = "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)


@dataclass(frozen=True)
class Metric:
    """A named metric: which tasks it applies to, what it reads, and which way is better."""

    name: str
    tasks: frozenset[str]
    needs: str  # "labels" (predicted classes) or "scores" (probabilities / regression output)
    higher_is_better: bool
    compute: Callable[..., float]
    description: str
    probabilities: bool = False  # reads scores as probabilities in [0, 1]

    def resample(self, truth: np.ndarray, output: np.ndarray, classes: Sequence | None,
                 counts: np.ndarray) -> np.ndarray:
        """The metric on every bootstrap resample (rows of `counts`): vectorised where a
        weighted form exists, else one call per resample."""
        from mlcheck import stats

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.name in _NO_WEIGHTED_FORM:
                return stats.resampled_loop(self.compute, truth, output, classes, counts)
            if self.name == "roc_auc" and output.ndim == 1:
                return stats.resampled_auc(truth, output, counts)
            return stats.over_chunks(
                counts, lambda w: self.weighted(truth, output, classes, w))

    def weighted(self, truth: np.ndarray, output: np.ndarray, classes: Sequence | None,
                 weights: np.ndarray) -> np.ndarray:
        """The metric under each row of sample weights (bootstrap counts), vectorised."""
        from mlcheck import stats

        if REGRESSION in self.tasks:
            return stats.regression_metric(self.name)(truth, output, classes, weights)
        if self.needs == "scores":
            return stats.scores_metric(self.name)(truth, output, classes, weights)
        if truth.dtype == bool:
            return stats.binary_label_metric(self.name)(truth, output, classes, weights)
        return stats.multiclass_label_metric(self.name)(truth, output, classes, weights)


# Every metric takes `sample_weight` (rows standing for several: aggregated on Spark).

def _labels(fn: Callable[..., float], **kwargs: object) -> Callable[..., float]:
    def compute(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence | None,
                sample_weight: np.ndarray | None = None) -> float:
        extra = dict(kwargs)
        if "average" in extra and classes is not None:
            extra["labels"] = list(classes)
        return fn(y_true, y_pred, sample_weight=sample_weight, **extra)

    return compute


def _binary(fn: Callable[..., float], **kwargs: object) -> Callable[..., float]:
    return lambda y_true, y_pred, classes, sample_weight=None: fn(
        y_true, y_pred, pos_label=True, sample_weight=sample_weight, **kwargs)


def _roc_auc(y_true, y_score, classes, sample_weight=None, *, multi_class="raise",
             average="macro"):
    if y_score.ndim == 1:
        return skm.roc_auc_score(y_true, y_score, sample_weight=sample_weight)
    return skm.roc_auc_score(y_true, y_score, multi_class=multi_class, average=average,
                             labels=list(classes), sample_weight=sample_weight)


def _average_precision(y_true, y_score, classes, sample_weight=None):
    if not y_true.any():  # scikit-learn says 0 without positives; it is undefined
        return float("nan")
    return skm.average_precision_score(y_true, y_score, pos_label=True,
                                       sample_weight=sample_weight)


def _log_loss(y_true, y_score, classes, sample_weight=None):
    labels = [False, True] if y_score.ndim == 1 else list(classes)
    return skm.log_loss(y_true, y_score, labels=labels, sample_weight=sample_weight)


def _brier(y_true, y_score, classes, sample_weight=None):
    if y_score.ndim == 1:
        return skm.brier_score_loss(y_true, y_score, pos_label=True,
                                    sample_weight=sample_weight)
    return skm.brier_score_loss(y_true, y_score, labels=list(classes),
                                sample_weight=sample_weight)


def _regression(fn: Callable[..., float]) -> Callable[..., float]:
    return lambda y_true, y_pred, classes, sample_weight=None: fn(
        y_true, y_pred, sample_weight=sample_weight)


_NO_WEIGHTED_FORM = ("roc_auc_ovo",)
_CLASSIFICATION = frozenset({BINARY, MULTICLASS})
_BINARY_ONLY = frozenset({BINARY})
_MULTI_ONLY = frozenset({MULTICLASS})
_REGRESSION_ONLY = frozenset({REGRESSION})
_nan = float("nan")

_DEFINITIONS = [
    Metric("accuracy", _CLASSIFICATION, "labels", True,
           _labels(_sk("accuracy_score")), "share of correct predictions"),
    Metric("balanced_accuracy", _CLASSIFICATION, "labels", True,
           _labels(_sk("balanced_accuracy_score")), "mean recall over classes"),
    Metric("precision", _BINARY_ONLY, "labels", True,
           _binary(_sk("precision_score"), zero_division=_nan), "positive predictive value"),
    Metric("recall", _BINARY_ONLY, "labels", True,
           _binary(_sk("recall_score"), zero_division=_nan), "true positive rate"),
    Metric("f1", _BINARY_ONLY, "labels", True,
           _binary(_sk("f1_score"), zero_division=_nan), "harmonic mean of precision and recall"),
    Metric("roc_auc", _BINARY_ONLY, "scores", True, _roc_auc,
           "area under the ROC curve"),
    Metric("average_precision", _BINARY_ONLY, "scores", True, _average_precision,
           "area under the precision-recall curve"),
    Metric("log_loss", _CLASSIFICATION, "scores", False, _log_loss, "cross-entropy loss",
           probabilities=True),
    Metric("brier_score", _CLASSIFICATION, "scores", False, _brier,
           "mean squared error of the probabilities", probabilities=True),
    Metric("roc_auc_ovr", _MULTI_ONLY, "scores", True,
           partial(_roc_auc, multi_class="ovr", average="macro"),
           "one-vs-rest ROC AUC, macro average"),
    Metric("roc_auc_ovr_weighted", _MULTI_ONLY, "scores", True,
           partial(_roc_auc, multi_class="ovr", average="weighted"),
           "one-vs-rest ROC AUC, weighted by class frequency"),
    Metric("roc_auc_ovo", _MULTI_ONLY, "scores", True,
           partial(_roc_auc, multi_class="ovo", average="macro"),
           "one-vs-one ROC AUC, macro average"),
    Metric("mae", _REGRESSION_ONLY, "scores", False,
           _regression(_sk("mean_absolute_error")), "mean absolute error"),
    Metric("mse", _REGRESSION_ONLY, "scores", False,
           _regression(_sk("mean_squared_error")), "mean squared error"),
    Metric("rmse", _REGRESSION_ONLY, "scores", False,
           _regression(_sk("root_mean_squared_error")), "root mean squared error"),
    Metric("r2", _REGRESSION_ONLY, "scores", True, _regression(_sk("r2_score")),
           "coefficient of determination"),
    Metric("mape", _REGRESSION_ONLY, "scores", False,
           _regression(_sk("mean_absolute_percentage_error")),
           "mean absolute percentage error (a fraction, 0.1 = 10%)"),
]
for _base, _fn, _what in [
    ("precision", _sk("precision_score"), "precision"),
    ("recall", _sk("recall_score"), "recall"),
    ("f1", _sk("f1_score"), "F1"),
]:
    for _average in ("macro", "weighted"):
        _DEFINITIONS.append(
            Metric(f"{_base}_{_average}", _CLASSIFICATION, "labels", True,
                   _labels(_fn, average=_average, zero_division=_nan),
                   f"{_what} averaged over classes ({_average})")
        )

METRICS: dict[str, Metric] = {m.name: m for m in _DEFINITIONS}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


def metrics_for(task: str) -> list[str]:
    """Names of the metrics that apply to a task, in registry order."""
    return [m.name for m in _DEFINITIONS if task in m.tasks]


# Group rates for fairness, from the confusion counts of each group (binary tasks).
RATES: dict[str, str] = {
    "selection_rate": "share of rows predicted positive",
    "true_positive_rate": "recall: share of actual positives predicted positive",
    "false_positive_rate": "share of actual negatives predicted positive",
    "false_negative_rate": "share of actual positives predicted negative",
    "true_negative_rate": "share of actual negatives predicted negative",
}

# Disparity metrics (fairlearn's definitions): the rates compared across groups, and how.
DISPARITIES: dict[str, tuple[tuple[str, ...], str]] = {
    "demographic_parity_difference": (("selection_rate",), "difference"),
    "demographic_parity_ratio": (("selection_rate",), "ratio"),
    "equalized_odds_difference": (("true_positive_rate", "false_positive_rate"), "difference"),
    "equalized_odds_ratio": (("true_positive_rate", "false_positive_rate"), "ratio"),
    "equal_opportunity_difference": (("true_positive_rate",), "difference"),
    "equal_opportunity_ratio": (("true_positive_rate",), "ratio"),
    "false_positive_rate_difference": (("false_positive_rate",), "difference"),
    "false_positive_rate_ratio": (("false_positive_rate",), "ratio"),
    "false_negative_rate_difference": (("false_negative_rate",), "difference"),
    "false_negative_rate_ratio": (("false_negative_rate",), "ratio"),
}


def rates_from_counts(tp, fp, fn, tn) -> dict[str, np.ndarray]:
    """Every group rate from confusion counts (arrays of any shape)."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        total, positives, negatives = tp + fp + fn + tn, tp + fn, fp + tn
        return {
            "selection_rate": np.where(total > 0, (tp + fp) / total, np.nan),
            "true_positive_rate": np.where(positives > 0, tp / positives, np.nan),
            "false_positive_rate": np.where(negatives > 0, fp / negatives, np.nan),
            "false_negative_rate": np.where(positives > 0, fn / positives, np.nan),
            "true_negative_rate": np.where(negatives > 0, tn / negatives, np.nan),
        }
