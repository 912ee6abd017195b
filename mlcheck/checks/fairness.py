"""Fairness checks: disparities between groups, and floors, gaps and ratios every group meets.

Ids: `fairness/<metric or id>[<feature>]`, e.g. `fairness/demographic_parity_ratio[sex]`;
an intersection lists its columns, `fairness/recall[sex,race]`, with groups such as
`Female×Black`.

Group rates (selection rate, TPR, FPR, …) come from one grouped count of
(group, truth, prediction) per dataset, and per resample from the run's shared cell draws
(resamples x cells, never resamples x rows); fairlearn's MetricFrame would take seconds
per rule on large data (benchmarks/fairness_counts.py). Other per-group metrics are
computed with fairlearn's MetricFrame, and resampled from the same cell draws (label
metrics: accuracy, F1, …) or from per-row counts in blocks (ROC AUC, MAE, …). fairlearn
is the oracle for both in the tests.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from mlcheck.checks import (
    Check,
    Groups,
    Outcome,
    bounds_text,
    doubt,
    groups,
    interval_text,
    judge,
)
from mlcheck.checks.performance import (
    grid_doubt,
    grid_slack,
    on_spark,
    resampled_confusion,
    row_statistic,
)
from mlcheck.context import Context
from mlcheck.errors import CheckError
from mlcheck.metrics import DISPARITIES, METRICS, RATES, REGRESSION, rates_from_counts
from mlcheck.policy import FairnessRule, FairnessSpec, Policy
from mlcheck.stats import (
    CELLS_METHOD,
    ROWS_METHOD,
    Interval,
    confusion_metric,
    percentile_interval,
)


def compile_checks(policy: Policy, context: Context) -> list[Check]:
    spec = policy.fairness
    if spec is None:
        return []
    checks = []
    for index, rule in enumerate(spec.rules):
        for feature in rule.sensitive or spec.sensitive:
            columns = (feature,) if isinstance(feature, str) else tuple(feature)
            if context.task != REGRESSION:  # group rates and label metrics: cell draws
                context.need_cells(spec.dataset, ("candidate",), columns)
            checks.append(Check(
                id=f"fairness/{rule.id or rule.metric}[{','.join(columns)}]",
                family="fairness",
                severity=rule.severity or spec.severity,
                description=_describe(rule, columns),
                evaluate=_fairness_check(rule, spec, columns),
                location=policy.origin.locate("fairness", "rules", index),
                inconclusive_blocks=(rule.inconclusive or spec.inconclusive) != "warn",
            ))
    return checks


class GroupValues:
    """A metric per group: point values (G,) and per-resample values (B x G) or None, and
    how the resamples were drawn."""

    def __init__(self, point: np.ndarray, samples: np.ndarray | None,
                 method: str = CELLS_METHOD) -> None:
        self.point, self.samples, self.method = point, samples, method


def group_rates(context: Context, dataset: str, found: Groups) -> dict[str, GroupValues]:
    """Every rate per group, from one grouped count (and the resampled cell counts)."""

    def build() -> dict[str, GroupValues]:
        truth = context.truth(dataset).values
        predicted = context.labels("candidate", dataset)
        cells = found.codes * 4 + truth.astype(int) * 2 + predicted.astype(int)
        n_cells = 4 * len(found.labels)
        point = np.bincount(cells, weights=context.weights(dataset),
                            minlength=n_cells).reshape(-1, 4).astype(float)
        samples = None
        if context.policy.statistics.resamples:
            samples = resampled_confusion(context, "candidate", dataset, found.codes,
                                          len(found.labels)).reshape(-1, len(found.labels), 4)
        # cells per group: [tn, fp, fn, tp] (index truth * 2 + prediction)
        point_rates = rates_from_counts(point[:, 3], point[:, 1], point[:, 2], point[:, 0])
        sample_rates = rates_from_counts(samples[..., 3], samples[..., 1], samples[..., 2],
                                         samples[..., 0]) if samples is not None else {}
        return {name: GroupValues(point_rates[name], sample_rates.get(name)) for name in RATES}

    return context.memo(("rates", dataset, found.columns), build)


def group_metric(context: Context, dataset: str, found: Groups, name: str) -> GroupValues:
    """A performance metric per group: fairlearn's MetricFrame for the values, the shared
    resamples for their spread. Computed once per run and grouping."""
    return context.memo(("group-metric", dataset, found.columns, name),
                        lambda: _group_metric(context, dataset, found, name))


def _group_metric(context: Context, dataset: str, found: Groups, name: str) -> GroupValues:
    from fairlearn.metrics import MetricFrame

    metric = METRICS[name]
    truth = context.truth(dataset).values
    output = (context.labels if metric.needs == "labels" else context.scores)(
        "candidate", dataset)
    classes = context.classes(dataset)
    weights = context.weights(dataset)  # on Spark: rows stand for several
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if weights is None:
                frame = MetricFrame(metrics=lambda t, o: metric.compute(t, o, classes),
                                    y_true=truth, y_pred=output,
                                    sensitive_features=found.codes)
            else:
                frame = MetricFrame(
                    metrics=lambda t, o, sample_weight: metric.compute(
                        t, o, classes, sample_weight=sample_weight),
                    y_true=truth, y_pred=output, sensitive_features=found.codes,
                    sample_params={"sample_weight": weights})
        except ValueError as exc:
            raise CheckError(f"{name} cannot be computed for every group: {exc}") from None
        point = frame.by_group.reindex(range(len(found.labels))).to_numpy(dtype=float)
    if not context.policy.statistics.resamples:
        return GroupValues(point, None)
    if metric.needs == "labels":
        confusion = resampled_confusion(context, "candidate", dataset, found.codes,
                                        len(found.labels))
        return GroupValues(point, confusion_metric(name, confusion, len(classes)))
    members = [np.flatnonzero(found.codes == g) for g in range(len(found.labels))]
    statistics = [row_statistic(metric, truth[rows], output[rows], classes)
                  for rows in members]
    samples = context.row_bootstrap(dataset).apply(lambda counts: np.stack(
        [statistic(counts[:, rows]) for statistic, rows in zip(statistics, members,
                                                                 strict=True)], axis=1))
    return GroupValues(point, samples, ROWS_METHOD)


def _values(rule: FairnessRule, context: Context, dataset: str, found: Groups,
            name: str) -> GroupValues:
    if name in RATES:
        return group_rates(context, dataset, found)[name]
    return group_metric(context, dataset, found, name)


# ---------------------------------------------------------------------- statistics

@dataclass(frozen=True)
class Side:
    """One side of a rule: a statistic over the groups, its bounds, and who sets it."""

    what: str
    value: float
    samples: np.ndarray | None
    low: float | None
    high: float | None
    set_by: str
    method: str = CELLS_METHOD  # how the resamples were drawn
    slack: float = 0.0  # on Spark: the most the score grid can move `value`


class Undefined(Exception):
    """A group's value is undefined (e.g. no positives): the data cannot support a verdict."""


def _fairness_check(rule: FairnessRule, spec: FairnessSpec, columns: tuple[str, ...]):
    min_size = rule.min_group_size or spec.min_group_size
    max_width = rule.max_interval_width or spec.max_interval_width
    dataset = spec.dataset

    def evaluate(context: Context) -> Outcome:
        found = groups(context, dataset, columns)
        confidence = context.policy.statistics.confidence
        n = int(found.sizes.sum())
        if len(found.labels) < 2:
            raise CheckError(f"{' × '.join(columns)} has a single group ({found.labels[0]}) "
                             f"in dataset '{dataset}': there is nothing to compare")
        table = _group_table(context, dataset, found, rule)
        evidence = {"sensitive": list(columns), "dataset": dataset, "groups": table,
                    **on_spark(context, dataset)}
        small = [f"{label} ({size})" for label, size in zip(found.labels, found.sizes,
                                                            strict=True) if size < min_size]
        if small:
            return Outcome(False, None, _bounds(rule), n, f"{len(found.labels)} groups",
                           evidence, inconclusive="groups smaller than min_group_size "
                           f"{min_size}: " + ", ".join(small))
        try:
            sides = _sides(rule, context, dataset, found)
        except Undefined as exc:
            return Outcome(False, None, _bounds(rule), n, f"{len(found.labels)} groups",
                           evidence, inconclusive=str(exc))
        judged = []
        for side in sides:
            interval = percentile_interval(side.samples, confidence, side.method) \
                if side.samples is not None else None
            ok, gated = judge(side.value, interval, side.low, side.high, rule.gate_on)
            confident_fail = interval is not None and (  # beyond the grid's reach too
                (side.low is not None and interval.high + side.slack < side.low)
                or (side.high is not None and interval.low - side.slack > side.high))
            judged.append((side, interval, ok, gated, confident_fail,
                           doubt(interval, max_width, side.low, side.high) or grid_doubt(
                               side.value, interval, side.low, side.high, rule.gate_on,
                               side.slack)))
        passed = all(ok for _, _, ok, _, _, _ in judged)
        side, interval, _, gated, _, _ = next((j for j in judged if not j[2]), judged[0])
        inconclusive = None if any(j[4] for j in judged) else next(
            (j[5] for j in judged if j[5]), None)
        evidence["set_by"] = side.set_by
        if side.slack:
            evidence["grid_error_bound"] = side.slack
        message = (f"{side.what} = {side.value:.4f}{interval_text(interval)}; {gated} "
                   f"{'satisfies' if passed else 'violates'} {bounds_text(*_limits(rule))} "
                   f"({len(found.labels)} groups, set by {side.set_by})")
        return Outcome(passed, side.value, _bounds(rule), n, message, evidence,
                       interval=interval.to_dict() if interval else None,
                       inconclusive=inconclusive)

    return evaluate


def _sides(rule: FairnessRule, context: Context, dataset: str, found: Groups) -> list[Side]:
    """The statistics a rule bounds. NaN in any group's resample leaves that resample
    undefined (counted in the interval), never silently dropped."""
    labels = found.labels
    if rule.metric in DISPARITIES:
        rates, kind = DISPARITIES[rule.metric]
        candidates = []
        for rate in rates:
            values = _defined(_values(rule, context, dataset, found, rate), labels, rate)
            high, low = int(np.argmax(values.point)), int(np.argmin(values.point))
            if kind == "difference":
                point = values.point[high] - values.point[low]
                samples = None if values.samples is None else (
                    values.samples.max(axis=1) - values.samples.min(axis=1))
            else:
                point = float(_safe_ratio(values.point[low], values.point[high]))
                samples = None if values.samples is None else _safe_ratio(
                    values.samples.min(axis=1), values.samples.max(axis=1))
            candidates.append((float(point), samples, f"{labels[high]} vs {labels[low]}"))
        worst = (max if kind == "difference" else min)(candidates, key=lambda c: c[0])
        samples = None
        if candidates[0][1] is not None:  # the worst rate per resample, NaN if any is
            stacked = np.stack([c[1] for c in candidates])
            samples = stacked.max(axis=0) if kind == "difference" else stacked.min(axis=0)
        return [Side(rule.metric, worst[0], samples, rule.min, rule.max, worst[2])]
    values = _defined(_values(rule, context, dataset, found, rule.metric), labels, rule.metric)
    what = rule.metric
    slack = _grid_slack(context, dataset, found, rule.metric)  # 0 but for scores on Spark
    if rule.reference is not None:
        ref = _reference_index(rule, found)
        if not values.point[ref] > 0:
            raise CheckError(f"the reference group {labels[ref]} has {rule.metric} "
                             f"{values.point[ref]:g}: ratios to it are undefined")
        if slack:  # |a/r - a'/r'| <= (s + (a/r) s) / (r - s)
            ratio = float(np.max(values.point) / values.point[ref])
            margin = values.point[ref] - slack
            slack = slack * (1 + ratio) / margin if margin > 0 else float("inf")
        keep = [g for g in range(len(labels)) if g != ref]
        values = GroupValues(values.point[keep] / values.point[ref],
                             None if values.samples is None else _safe_ratio(
                                 values.samples[:, keep], values.samples[:, [ref]]),
                             values.method)
        labels = [labels[g] for g in keep]
        what = f"ratio of {rule.metric} to {rule.reference}"
    high, low = int(np.argmax(values.point)), int(np.argmin(values.point))
    samples = values.samples
    if rule.max_gap is not None:
        return [Side(f"gap in {what} between groups",
                     float(values.point[high] - values.point[low]),
                     None if samples is None else samples.max(axis=1) - samples.min(axis=1),
                     None, rule.max_gap, f"{labels[high]} vs {labels[low]}", values.method,
                     2 * slack)]
    sides = []
    if rule.min is not None:
        sides.append(Side(f"lowest {what}", float(values.point[low]),
                          None if samples is None else samples.min(axis=1),
                          rule.min, None, labels[low], values.method, slack))
    if rule.max is not None:
        sides.append(Side(f"highest {what}", float(values.point[high]),
                          None if samples is None else samples.max(axis=1),
                          None, rule.max, labels[high], values.method, slack))
    return sides


def _grid_slack(context: Context, dataset: str, found: Groups, name: str) -> float:
    """On Spark, the most the score grid can move a score metric in any group (0 for
    rates and label metrics, and off Spark)."""
    if name not in METRICS or METRICS[name].needs != "scores" \
            or context.spark_frame(dataset) is None:
        return 0.0
    return max(grid_slack(METRICS[name], context, "candidate", dataset,
                          np.flatnonzero(found.codes == g)) for g in range(len(found.labels)))


def _defined(values: GroupValues, labels: list[str], name: str) -> GroupValues:
    undefined = [labels[g] for g in np.flatnonzero(np.isnan(values.point))]
    if undefined:
        raise Undefined(f"{name} is undefined for {', '.join(undefined)} (no rows of the "
                        "class it is computed on, e.g. no actual positives)")
    return values


def _safe_ratio(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _reference_index(rule: FairnessRule, found: Groups) -> int:
    wanted = str(rule.reference)
    for g, label in enumerate(found.labels):
        if label == wanted:
            return g
    raise CheckError(f"reference group {wanted!r} not found; groups: "
                     f"{', '.join(found.labels)}")


def _group_table(context: Context, dataset: str, found: Groups,
                 rule: FairnessRule) -> list[dict]:
    """Per group: n, and for binary tasks selection rate, TPR, FPR; plus the rule's metric
    with its interval."""
    confidence = context.policy.statistics.confidence
    table = [{"group": label, "n": int(size)} for label, size in
             zip(found.labels, found.sizes, strict=True)]
    if context.task == "binary_classification" and _has_labels(context):
        rates = group_rates(context, dataset, found)
        for name in ("selection_rate", "true_positive_rate", "false_positive_rate"):
            for row, value in zip(table, rates[name].point, strict=True):
                row[name] = float(value)
    names = DISPARITIES[rule.metric][0] if rule.metric in DISPARITIES else (rule.metric,)
    for name in names:
        values = _values(rule, context, dataset, found, name)
        for g, row in enumerate(table):
            row[name] = float(values.point[g])
            if values.samples is not None:
                interval: Interval = percentile_interval(values.samples[:, g], confidence)
                row[f"{name}_interval"] = [interval.low, interval.high]
    return table


def _has_labels(context: Context) -> bool:
    """Whether predicted labels exist (a black box with scores only has none)."""
    source = context.policy.model
    return not source.black_box or bool(source.predictions) or source.threshold is not None


def _limits(rule: FairnessRule) -> tuple[float | None, float | None]:
    return (None, rule.max_gap) if rule.max_gap is not None else (rule.min, rule.max)


def _bounds(rule: FairnessRule) -> dict[str, float]:
    low, high = _limits(rule)
    return {k: v for k, v in (("min", low), ("max", high)) if v is not None}


def _what(rule: FairnessRule) -> str:
    if rule.metric in DISPARITIES:
        return rule.metric
    if rule.max_gap is not None:
        return f"gap in {rule.metric} between groups"
    if rule.reference is not None:
        side = "lowest" if rule.min is not None else "highest"
        return f"{side} ratio of {rule.metric} to {rule.reference}"
    return f"{'lowest' if rule.min is not None else 'highest'} group {rule.metric}"


def _describe(rule: FairnessRule, columns: tuple[str, ...]) -> str:
    return f"{_what(rule)} {bounds_text(*_limits(rule))} across {' × '.join(columns)}"
