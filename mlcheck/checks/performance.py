"""Performance checks: scikit-learn metrics against bounds, per slice, and against a baseline.

Ids: `performance/<metric>` for the whole dataset, `performance/<metric>[col=value,…]`
per slice (`by:`), and `performance/<metric>/vs_baseline` for champion comparison.

Values come from scikit-learn. Intervals: label metrics are functions of confusion counts,
resampled from the run's shared cell draws (`Context.cell_bootstrap`); score and
regression metrics read every row, resampled from per-row counts drawn in blocks
(`Context.row_bootstrap`). Within each kind, every check and model sees the same
resamples. ROC AUC on `DELONG_ROWS` rows or more takes DeLong's analytic interval instead
(`interval: auto`, the default), paired for baseline comparisons.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np

from mlcheck.checks import (
    Check,
    Outcome,
    bounds_text,
    doubt,
    groups,
    interval_text,
    judge,
)
from mlcheck.context import Context
from mlcheck.errors import CheckError
from mlcheck.metrics import METRICS, Metric
from mlcheck.policy import PerformanceRule, PerformanceSpec, Policy
from mlcheck.stats import (
    CELLS_METHOD,
    ROWS_METHOD,
    Interval,
    confusion_metric,
    delong_interval,
    label_codes,
    percentile_interval,
    score_statistic,
)

Rows = np.ndarray | None  # row positions of a slice; None = all rows
# `interval: auto`: ROC AUC of a dataset or slice with at least this many rows gets DeLong's
# interval, which is as accurate as the bootstrap there (a U-statistic, normal well before
# this size) and takes one sort instead of resamples x rows of work.
DELONG_ROWS = 100_000


def compile_checks(policy: Policy, context: Context) -> list[Check]:
    spec = policy.performance
    if spec is None:
        return []
    checks: list[Check] = []
    for index, rule in enumerate(spec.rules):
        location = policy.origin.locate("performance", "rules", index)
        severity = rule.severity or spec.severity
        name = rule.id or rule.metric
        if METRICS[rule.metric].needs == "labels":  # resampled from the shared cell draws
            context.need_cells(spec.dataset, ("candidate", "baseline") if rule.baseline
                               else ("candidate",), rule.by)
        for suffix, rows in _slices(rule, context, spec.dataset):
            if rule.min is not None or rule.max is not None:
                checks.append(Check(
                    id=f"performance/{name}{suffix}", family="performance", severity=severity,
                    description=f"{rule.metric} {bounds_text(rule.min, rule.max)}"
                    + (f" on slice {suffix}" if suffix else ""),
                    evaluate=_bounds_check(rule, spec, spec.dataset, rows), location=location,
                    inconclusive_blocks=(rule.inconclusive or spec.inconclusive) != "warn"))
            if rule.baseline is not None:
                kind = ("may drop by at most" if rule.baseline.max_drop is not None
                        else "must gain at least")
                margin = rule.baseline.max_drop if rule.baseline.max_drop is not None \
                    else rule.baseline.min_gain
                checks.append(Check(
                    id=f"performance/{name}/vs_baseline{suffix}", family="performance",
                    severity=severity,
                    description=f"{rule.metric} {kind} {margin:g} against the baseline"
                    + (f" on slice {suffix}" if suffix else ""),
                    evaluate=_baseline_check(rule, spec, spec.dataset, rows), location=location,
                    inconclusive_blocks=(rule.inconclusive or spec.inconclusive) != "warn"))
    return checks


def _slices(rule: PerformanceRule, context: Context, dataset: str) -> list[tuple[str, Rows]]:
    """(id suffix, row positions) per slice; a bad `by` compiles to one erroring check."""
    if not rule.by:
        return [("", None)]
    try:
        found = groups(context, dataset, tuple(rule.by))
    except CheckError as exc:
        return [(f"[{','.join(rule.by)}]", _Unformable(str(exc)))]
    return [("[" + ",".join(f"{c}={v}" for c, v in zip(rule.by, key, strict=True)) + "]",
             np.flatnonzero(found.codes == code)) for code, key in enumerate(found.keys)]


class _Unformable:
    """Placeholder rows for a slice that cannot be formed: evaluating it raises."""

    def __init__(self, message: str) -> None:
        self.message = message


def _inputs(metric: Metric, context: Context, role: str, dataset: str, rows: Rows):
    """Truth, model output and row weights (None: one row each; on Spark, how many rows
    each aggregated row stands for) for (a slice of) a dataset, checked for what the
    metric reads."""
    if isinstance(rows, _Unformable):
        raise CheckError(rows.message)
    truth = context.truth(dataset).values
    output = (context.labels if metric.needs == "labels" else context.scores)(role, dataset)
    weights = context.weights(dataset)
    if rows is not None:
        truth, output = truth[rows], output[rows]
        weights = None if weights is None else weights[rows]
    if len(truth) == 0:
        raise CheckError("the slice has no rows")
    if metric.probabilities and np.any((output < 0) | (output > 1)):
        raise CheckError(f"{metric.name} reads probabilities, but the {role} scores range "
                         f"from {output.min():g} to {output.max():g}")
    return truth, output, weights


def measure(metric: Metric, context: Context, role: str, dataset: str, rows: Rows) -> float:
    """Compute one metric for one model on (a slice of) a dataset, with scikit-learn."""
    truth, output, weights = _inputs(metric, context, role, dataset, rows)
    classes = context.classes(dataset)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(metric.compute(truth, output, classes) if weights is None
                          else metric.compute(truth, output, classes, sample_weight=weights))
    except ValueError as exc:
        raise CheckError(f"{metric.name} cannot be computed: {exc}") from None
    if np.isnan(value):
        count = np.ones(len(truth), dtype=np.int64) if weights is None else weights
        if truth.dtype == bool:
            detail = (f"{int(count[truth].sum())} actual positives, "
                      f"{int(count[~truth].sum())} negatives")
            if metric.needs == "labels":
                detail += f", {int(count[output].sum())} predicted positives"
        else:
            detail = "e.g. a class with no examples"
        raise CheckError(f"{metric.name} is undefined on these {int(count.sum())} rows "
                         f"({detail})")
    return value


def resampled(metric: Metric, context: Context, roles: tuple[str, ...], dataset: str,
              rows: Rows) -> tuple[list[np.ndarray], str] | None:
    """The metric of each model (`roles`) on every resample, and how the resamples were
    drawn; None when intervals are off. Checks and models see the same resamples, so a
    difference between models is paired."""
    if context.policy.statistics.resamples == 0:
        return None
    classes = context.classes(dataset)
    if metric.needs == "labels":
        group = None
        if rows is not None:  # group 0: the slice; 1: left out
            group = np.ones(len(context.frame(dataset)), dtype=np.int64)
            group[rows] = 0
        return [confusion_metric(metric.name, resampled_confusion(context, role, dataset,
                                                                  group)[:, 0], len(classes))
                for role in roles], CELLS_METHOD
    statistics = [row_statistic(metric, *_inputs(metric, context, role, dataset, rows)[:2],
                                classes) for role in roles]
    values = context.row_bootstrap(dataset).apply(
        lambda counts: np.stack([statistic(counts) for statistic in statistics], axis=1),
        None if rows is None else rows)
    return list(values.T), ROWS_METHOD


def resampled_confusion(context: Context, role: str, dataset: str,
                        group: np.ndarray | None = None, groups: int = 1) -> np.ndarray:
    """(resamples x groups x labels x labels) confusion counts [truth, prediction] of a
    model, per group (`group[i] == groups` leaves row i out), from the run's cell draws.
    Labels are coded as `label_codes` codes them (binary: False, True)."""
    truth, predicted, labels = _codes(context, role, dataset)
    key = truth * labels + predicted
    if group is not None:
        key = np.where(group < groups, group * labels * labels + key, groups * labels * labels)
    draws = context.cell_bootstrap(dataset)
    return draws.counts(key, groups * labels * labels).reshape(-1, groups, labels, labels)


def _codes(context: Context, role: str, dataset: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Truth and a model's predicted labels as codes (the task's classes first), and how
    many labels there are; once per run."""

    def build() -> tuple[np.ndarray, np.ndarray, int]:
        truth, predicted = context.truth(dataset).values, context.labels(role, dataset)
        if truth.dtype == bool:
            return truth.astype(np.int64), predicted.astype(np.int64), 2
        (truth, predicted), labels = label_codes(context.classes(dataset), truth, predicted)
        return truth, predicted, labels

    return context.memo(("label-codes", role, dataset), build)


def row_statistic(metric: Metric, truth: np.ndarray, output: np.ndarray,
                  classes: tuple | None) -> Callable[[np.ndarray], np.ndarray]:
    """The metric on a (block x rows) matrix of resample counts: with the rows sorted once
    where the metric sorts (ROC AUC, average precision), else its weighted form."""
    presorted = score_statistic(metric.name, truth, output, classes) \
        if metric.needs == "scores" else None
    return presorted or (lambda counts: metric.resample(truth, output, classes, counts))


def _bounds_check(rule: PerformanceRule, spec: PerformanceSpec, dataset: str,
                  rows: Rows) -> Callable:
    metric = METRICS[rule.metric]
    min_rows = rule.min_rows or spec.min_rows
    max_width = rule.max_interval_width or spec.max_interval_width

    def evaluate(context: Context) -> Outcome:
        n = _size(context, dataset, rows)
        bounds = {k: v for k, v in (("min", rule.min), ("max", rule.max)) if v is not None}
        evidence = {"metric": rule.metric, "dataset": dataset, "rows": n,
                    **_class_balance(context, dataset, rows), **on_spark(context, dataset)}
        if n < min_rows:
            return Outcome(False, None, bounds, n, f"{n} rows", evidence,
                           inconclusive=f"only {n} rows, fewer than min_rows {min_rows}")
        value = measure(metric, context, "candidate", dataset, rows)
        confidence = context.policy.statistics.confidence
        if _uses_delong(rule, context, n):
            truth, scores, weights = _inputs(metric, context, "candidate", dataset, rows)
            interval = delong_interval(truth, scores, confidence, weights=weights)
        else:
            found = resampled(metric, context, ("candidate",), dataset, rows)
            interval = percentile_interval(found[0][0], confidence, found[1]) if found \
                else None
        passed, gated = judge(value, interval, rule.min, rule.max, rule.gate_on)
        relation = "satisfies" if passed else "violates"
        message = (f"{rule.metric} = {value:.4f}{interval_text(interval)}; {gated} {relation} "
                   f"{bounds_text(rule.min, rule.max)} (n={n})")
        slack = grid_slack(metric, context, "candidate", dataset, rows)
        if slack:
            evidence["grid_error_bound"] = slack
        return Outcome(passed, value, bounds, n, message, evidence,
                       interval=interval.to_dict() if interval else None,
                       inconclusive=doubt(interval, max_width, rule.min, rule.max) or grid_doubt(
                           value, interval, rule.min, rule.max, rule.gate_on, slack))

    return evaluate


def _baseline_check(rule: PerformanceRule, spec: PerformanceSpec, dataset: str,
                    rows: Rows) -> Callable:
    """Non-inferiority (`max_drop`) or superiority (`min_gain`), on a paired bootstrap:
    candidate and baseline are scored on the same resamples."""
    metric = METRICS[rule.metric]
    margin = rule.baseline
    min_rows = rule.min_rows or spec.min_rows
    max_width = rule.max_interval_width or spec.max_interval_width

    def evaluate(context: Context) -> Outcome:
        n = _size(context, dataset, rows)
        floor = -margin.max_drop if margin.max_drop is not None else margin.min_gain
        evidence = {"metric": rule.metric, "dataset": dataset, "rows": n,
                    "higher_is_better": metric.higher_is_better,
                    "max_drop": margin.max_drop, "min_gain": margin.min_gain,
                    "gate_on": margin.gate_on, **on_spark(context, dataset)}
        if n < min_rows:
            return Outcome(False, None, {"min": floor}, n, f"{n} rows", evidence,
                           inconclusive=f"only {n} rows, fewer than min_rows {min_rows}")
        candidate = measure(metric, context, "candidate", dataset, rows)
        baseline = measure(metric, context, "baseline", dataset, rows)
        sign = 1 if metric.higher_is_better else -1  # improvement > 0: the candidate is better
        improvement = sign * (candidate - baseline)
        interval = None
        confidence = context.policy.statistics.confidence
        if _uses_delong(rule, context, n):  # paired DeLong interval of the AUC difference
            truth, cand, weights = _inputs(metric, context, "candidate", dataset, rows)
            interval = delong_interval(truth, cand, confidence, baseline=_inputs(
                metric, context, "baseline", dataset, rows)[1], weights=weights)
        elif found := resampled(metric, context, ("candidate", "baseline"), dataset, rows):
            (cand_samples, base_samples), method = found
            interval = percentile_interval(sign * (cand_samples - base_samples), confidence,
                                           method)
        passed, gated = judge(improvement, interval, floor, None, margin.gate_on)
        message = (f"{rule.metric}: candidate {candidate:.4f} vs baseline {baseline:.4f}, "
                   f"improvement {improvement:+.4f}{interval_text(interval)}; {gated} "
                   f"{'>=' if passed else '<'} {floor:+g} (n={n})")
        evidence.update(candidate=candidate, baseline=baseline, improvement=improvement)
        slack = grid_slack(metric, context, "candidate", dataset, rows) + grid_slack(
            metric, context, "baseline", dataset, rows)
        if slack:
            evidence["grid_error_bound"] = slack
        return Outcome(passed, improvement, {"min": floor}, n, message, evidence,
                       interval=interval.to_dict() if interval else None,
                       inconclusive=doubt(interval, max_width, floor) or grid_doubt(
                           improvement, interval, floor, None, margin.gate_on, slack))

    return evaluate


def grid_slack(metric: Metric, context: Context, role: str, dataset: str, rows: Rows) -> float:
    """On a Spark dataset, the most the score grid can move a score metric (0 otherwise)."""
    if context.spark_frame(dataset) is None or metric.needs != "scores":
        return 0.0
    from mlcheck.spark import grid_error

    truth, scores, weights = _inputs(metric, context, role, dataset, rows)
    model = context.model(role)
    exact = context.scored(dataset).exact_range(
        role if model.estimator is not None else str(model.source.scores))
    if exact is None or scores.ndim != 1:
        return 0.0
    low, high = (part if rows is None else part[rows] for part in exact)
    return grid_error(metric.name, truth, scores, weights, low, high)


def grid_doubt(value: float, interval: Interval | None, low: float | None,
               high: float | None, gate_on: str, slack: float) -> str | None:
    """Why the score grid cannot decide: the judged number moved by the grid's bound, up
    or down, would get different verdicts (never a pass by rounding)."""
    if not slack:
        return None

    def verdict(shift: float) -> bool:
        moved = None if interval is None else dataclasses.replace(
            interval, low=interval.low + shift, high=interval.high + shift)
        return judge(value + shift, moved, low, high, gate_on)[0]

    # the shifts that pass form one interval: both ends passing means every shift does
    at, ends = verdict(0.0), (verdict(-slack), verdict(slack))
    if (at and all(ends)) or (not at and not any(ends)):
        return None
    return (f"within {slack:.2g} of the bound, the most the Spark score grid can move this "
            "metric: the exact scores could decide either way")


def on_spark(context: Context, dataset: str) -> dict:
    """For a Spark dataset: what was computed on the executors and, where scores were put
    on a grid, what that can change (the evidence's `spark` entry)."""
    if context.spark_frame(dataset) is None:
        return {}
    return {"spark": context.scored(dataset).description}


def _uses_delong(rule: PerformanceRule, context: Context, n: int) -> bool:
    """Whether a rule's interval is DeLong's: asked for, or chosen by `interval: auto` for
    ROC AUC on at least DELONG_ROWS rows when intervals are on."""
    if rule.interval != "auto":
        return rule.interval == "delong"
    return rule.metric == "roc_auc" and n >= DELONG_ROWS \
        and context.policy.statistics.resamples > 0


def _size(context: Context, dataset: str, rows: Rows) -> int:
    if isinstance(rows, _Unformable):
        raise CheckError(rows.message)
    return context.size(dataset, rows)


def _class_balance(context: Context, dataset: str, rows: Rows) -> dict:
    """What a binary number rests on: the positive label, the threshold, the class counts."""
    truth = context.truth(dataset)
    if truth.classes != (False, True):
        return {}
    values = truth.values if rows is None else truth.values[rows]
    weights = context.weights(dataset)
    count = np.ones(len(values), dtype=np.int64) if weights is None else \
        (weights if rows is None else weights[rows])
    return {"positive_label": truth.positive_label,
            "threshold": context.policy.model.threshold,
            "positives": int(count[values].sum()), "negatives": int(count[~values].sum())}

