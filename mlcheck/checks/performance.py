"""Performance checks: scikit-learn metrics against bounds, per slice, and against a baseline.

Ids: `performance/<metric>` for the whole dataset, `performance/<metric>[col=value,…]`
per slice (`by:`), and `performance/<metric>/vs_baseline` for champion comparison.
"""

from __future__ import annotations

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
from mlcheck.stats import delong_interval, percentile_interval

Rows = np.ndarray | None  # row positions of a slice; None = all rows


def compile_checks(policy: Policy, context: Context) -> list[Check]:
    spec = policy.performance
    if spec is None:
        return []
    checks: list[Check] = []
    for index, rule in enumerate(spec.rules):
        location = policy.origin.locate("performance", "rules", index)
        severity = rule.severity or spec.severity
        name = rule.id or rule.metric
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
    """Truth and model output for (a slice of) a dataset, checked for what the metric reads."""
    if isinstance(rows, _Unformable):
        raise CheckError(rows.message)
    truth = context.truth(dataset).values
    output = (context.labels if metric.needs == "labels" else context.scores)(role, dataset)
    if rows is not None:
        truth, output = truth[rows], output[rows]
    if len(truth) == 0:
        raise CheckError("the slice has no rows")
    if metric.probabilities and np.any((output < 0) | (output > 1)):
        raise CheckError(f"{metric.name} reads probabilities, but the {role} scores range "
                         f"from {output.min():g} to {output.max():g}")
    return truth, output


def measure(metric: Metric, context: Context, role: str, dataset: str, rows: Rows) -> float:
    """Compute one metric for one model on (a slice of) a dataset, with scikit-learn."""
    truth, output = _inputs(metric, context, role, dataset, rows)
    classes = context.classes(dataset)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(metric.compute(truth, output, classes))
    except ValueError as exc:
        raise CheckError(f"{metric.name} cannot be computed: {exc}") from None
    if np.isnan(value):
        if truth.dtype == bool:
            detail = f"{int(truth.sum())} actual positives, {int((~truth).sum())} negatives"
            if metric.needs == "labels":
                detail += f", {int(output.sum())} predicted positives"
        else:
            detail = "e.g. a class with no examples"
        raise CheckError(f"{metric.name} is undefined on these {len(truth)} rows ({detail})")
    return value


def resampled(metric: Metric, context: Context, role: str, dataset: str,
              rows: Rows) -> np.ndarray | None:
    """The metric on each bootstrap resample (shared by every check of the run), or None
    when intervals are off."""
    counts = context.bootstrap_counts(dataset)
    if counts is None:
        return None
    truth, output = _inputs(metric, context, role, dataset, rows)
    if rows is not None:
        counts = counts[:, rows]
    return metric.resample(truth, output, context.classes(dataset), counts)


def _bounds_check(rule: PerformanceRule, spec: PerformanceSpec, dataset: str,
                  rows: Rows) -> Callable:
    metric = METRICS[rule.metric]
    min_rows = rule.min_rows or spec.min_rows
    max_width = rule.max_interval_width or spec.max_interval_width

    def evaluate(context: Context) -> Outcome:
        n = _size(context, dataset, rows)
        bounds = {k: v for k, v in (("min", rule.min), ("max", rule.max)) if v is not None}
        evidence = {"metric": rule.metric, "dataset": dataset, "rows": n,
                    **_class_balance(context, dataset, rows)}
        if n < min_rows:
            return Outcome(False, None, bounds, n, f"{n} rows", evidence,
                           inconclusive=f"only {n} rows, fewer than min_rows {min_rows}")
        value = measure(metric, context, "candidate", dataset, rows)
        confidence = context.policy.statistics.confidence
        if rule.interval == "delong":
            interval = delong_interval(*_inputs(metric, context, "candidate", dataset, rows),
                                       confidence)
        else:
            samples = resampled(metric, context, "candidate", dataset, rows)
            interval = percentile_interval(samples, confidence) if samples is not None \
                else None
        passed, gated = judge(value, interval, rule.min, rule.max, rule.gate_on)
        relation = "satisfies" if passed else "violates"
        message = (f"{rule.metric} = {value:.4f}{interval_text(interval)}; {gated} {relation} "
                   f"{bounds_text(rule.min, rule.max)} (n={n})")
        return Outcome(passed, value, bounds, n, message, evidence,
                       interval=interval.to_dict() if interval else None,
                       inconclusive=doubt(interval, max_width, rule.min, rule.max))

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
                    "gate_on": margin.gate_on}
        if n < min_rows:
            return Outcome(False, None, {"min": floor}, n, f"{n} rows", evidence,
                           inconclusive=f"only {n} rows, fewer than min_rows {min_rows}")
        candidate = measure(metric, context, "candidate", dataset, rows)
        baseline = measure(metric, context, "baseline", dataset, rows)
        sign = 1 if metric.higher_is_better else -1  # improvement > 0: the candidate is better
        improvement = sign * (candidate - baseline)
        interval = None
        cand_samples = None if rule.interval == "delong" else resampled(
            metric, context, "candidate", dataset, rows)
        if rule.interval == "delong":  # paired DeLong interval of the AUC difference
            truth, cand = _inputs(metric, context, "candidate", dataset, rows)
            interval = delong_interval(truth, cand, context.policy.statistics.confidence,
                                       baseline=_inputs(metric, context, "baseline", dataset,
                                                        rows)[1])
        elif cand_samples is not None:
            base_samples = resampled(metric, context, "baseline", dataset, rows)
            interval = percentile_interval(sign * (cand_samples - base_samples),
                                           context.policy.statistics.confidence)
        passed, gated = judge(improvement, interval, floor, None, margin.gate_on)
        message = (f"{rule.metric}: candidate {candidate:.4f} vs baseline {baseline:.4f}, "
                   f"improvement {improvement:+.4f}{interval_text(interval)}; {gated} "
                   f"{'>=' if passed else '<'} {floor:+g} (n={n})")
        evidence.update(candidate=candidate, baseline=baseline, improvement=improvement)
        return Outcome(passed, improvement, {"min": floor}, n, message, evidence,
                       interval=interval.to_dict() if interval else None,
                       inconclusive=doubt(interval, max_width, floor))

    return evaluate


def _size(context: Context, dataset: str, rows: Rows) -> int:
    if isinstance(rows, _Unformable):
        raise CheckError(rows.message)
    return len(context.frame(dataset)) if rows is None else len(rows)


def _class_balance(context: Context, dataset: str, rows: Rows) -> dict:
    """What a binary number rests on: the positive label, the threshold, the class counts."""
    truth = context.truth(dataset)
    if truth.classes != (False, True):
        return {}
    values = truth.values if rows is None else truth.values[rows]
    return {"positive_label": truth.positive_label,
            "threshold": context.policy.model.threshold,
            "positives": int(values.sum()), "negatives": int((~values).sum())}

