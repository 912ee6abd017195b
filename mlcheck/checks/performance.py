"""Performance checks: scikit-learn metrics against bounds, per slice, and against a baseline.

Ids: `performance/<metric>` for the whole dataset, `performance/<metric>[col=value,…]`
per slice (`by:`), and `performance/<metric>/vs_baseline` for champion comparison.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from mlcheck.checks import Check, Outcome, bounds_text, within
from mlcheck.context import Context
from mlcheck.errors import CheckError
from mlcheck.metrics import METRICS, Metric
from mlcheck.policy import PerformanceRule, Policy
from mlcheck.subject import missing_column_message

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
                    evaluate=_bounds_check(rule, spec.dataset, rows), location=location))
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
                    evaluate=_baseline_check(rule, spec.dataset, rows), location=location))
    return checks


def _slices(rule: PerformanceRule, context: Context, dataset: str) -> list[tuple[str, Rows]]:
    """(id suffix, row positions) per slice; a bad `by` compiles to one erroring check."""
    if not rule.by:
        return [("", None)]
    frame = context.frame(dataset)
    missing = [c for c in rule.by if c not in frame.columns]
    if missing:
        return [(f"[{','.join(rule.by)}]", _Unformable(missing_column_message(missing[0], frame,
                                                                         dataset)))]
    groups = frame.groupby(list(rule.by), dropna=False, sort=True).indices
    out = []
    for key, rows in groups.items():
        values = key if isinstance(key, tuple) else (key,)
        label = ",".join(f"{c}={_label(v)}" for c, v in zip(rule.by, values, strict=True))
        out.append((f"[{label}]", rows))
    return out


class _Unformable:
    """Placeholder rows for a slice that cannot be formed: evaluating it raises."""

    def __init__(self, message: str) -> None:
        self.message = message


def _label(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "<missing>"
    return str(value.item() if hasattr(value, "item") else value)


def measure(metric: Metric, context: Context, role: str, dataset: str, rows: Rows) -> float:
    """Compute one metric for one model on (a slice of) a dataset."""
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


def _bounds_check(rule: PerformanceRule, dataset: str, rows: Rows) -> Callable:
    metric = METRICS[rule.metric]

    def evaluate(context: Context) -> Outcome:
        value = measure(metric, context, "candidate", dataset, rows)
        n = _size(context, dataset, rows)
        passed = within(value, rule.min, rule.max)
        relation = "satisfies" if passed else "violates"
        return Outcome(
            passed=passed, value=value,
            bounds={k: v for k, v in (("min", rule.min), ("max", rule.max)) if v is not None},
            n=n, message=f"{rule.metric} = {value:.4f} {relation} {bounds_text(rule.min, rule.max)}"
            f" (n={n})",
            evidence={"metric": rule.metric, "dataset": dataset, "rows": n,
                      **_class_balance(context, dataset, rows)},
        )

    return evaluate


def _baseline_check(rule: PerformanceRule, dataset: str, rows: Rows) -> Callable:
    """Non-inferiority (`max_drop`) or superiority (`min_gain`) on the point estimates."""
    metric = METRICS[rule.metric]
    spec = rule.baseline

    def evaluate(context: Context) -> Outcome:
        candidate = measure(metric, context, "candidate", dataset, rows)
        baseline = measure(metric, context, "baseline", dataset, rows)
        # improvement > 0 means the candidate is better, whichever way the metric points
        improvement = candidate - baseline if metric.higher_is_better else baseline - candidate
        floor = -spec.max_drop if spec.max_drop is not None else spec.min_gain
        passed = improvement >= floor
        n = _size(context, dataset, rows)
        return Outcome(
            passed=passed, value=improvement, bounds={"min": floor}, n=n,
            message=f"{rule.metric}: candidate {candidate:.4f} vs baseline {baseline:.4f}, "
            f"improvement {improvement:+.4f} {'>=' if passed else '<'} {floor:+g} (n={n})",
            evidence={"metric": rule.metric, "dataset": dataset, "candidate": candidate,
                      "baseline": baseline, "improvement": improvement,
                      "higher_is_better": metric.higher_is_better,
                      "max_drop": spec.max_drop, "min_gain": spec.min_gain},
        )

    return evaluate


def _size(context: Context, dataset: str, rows: Rows) -> int:
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

