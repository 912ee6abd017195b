"""Fairness checks: disparities between groups, and floors, gaps and ratios every group meets.

Ids: `fairness/<metric or id>[<feature>]`, e.g. `fairness/demographic_parity_ratio[sex]`;
an intersection lists its columns, `fairness/recall[sex,race]`, with groups such as
`Female×Black`.

Group rates (selection rate, TPR, FPR, …) come from one grouped count of
(group, truth, prediction) per dataset, and per resample from one sparse product with
the shared bootstrap counts; fairlearn's MetricFrame would take seconds per rule on large
data (benchmarks/fairness_counts.py). Other per-group metrics (ROC AUC, MAE, …) are
computed with fairlearn's MetricFrame. fairlearn is the oracle for both in the tests.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from mlcheck.checks import Check, Outcome, bounds_text, doubt, interval_text, judge
from mlcheck.checks.performance import _label
from mlcheck.context import Context
from mlcheck.errors import CheckError
from mlcheck.metrics import DISPARITIES, METRICS, RATES, rates_from_counts
from mlcheck.policy import FairnessRule, FairnessSpec, Policy
from mlcheck.stats import Interval, over_chunks, percentile_interval
from mlcheck.subject import missing_column_message

SEPARATOR = "×"


def compile_checks(policy: Policy, context: Context) -> list[Check]:
    spec = policy.fairness
    if spec is None:
        return []
    checks = []
    for index, rule in enumerate(spec.rules):
        for feature in rule.sensitive or spec.sensitive:
            columns = (feature,) if isinstance(feature, str) else tuple(feature)
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


@dataclass(frozen=True)
class Groups:
    """Rows of a dataset grouped by sensitive columns (an intersection when several)."""

    codes: np.ndarray  # group index of each row
    labels: list[str]
    sizes: np.ndarray


def groups(context: Context, dataset: str, columns: tuple[str, ...]) -> Groups:
    """Group codes for a dataset and sensitive columns, computed once per run."""

    def build() -> Groups:
        frame = context.frame(dataset)
        for column in columns:
            if column not in frame.columns:
                raise CheckError(missing_column_message(column, frame, dataset))
        grouped = frame.groupby(list(columns), dropna=False, sort=True)
        sizes = grouped.size()
        keys = [k if isinstance(k, tuple) else (k,) for k in sizes.index]
        return Groups(grouped.ngroup().to_numpy(), [
            SEPARATOR.join(_label(v) for v in key) for key in keys], sizes.to_numpy())

    return context.memo(("groups", dataset, columns), build)


class GroupValues:
    """A metric per group: point values (G,) and per-resample values (B x G) or None."""

    def __init__(self, point: np.ndarray, samples: np.ndarray | None) -> None:
        self.point, self.samples = point, samples


def group_rates(context: Context, dataset: str, found: Groups) -> dict[str, GroupValues]:
    """Every rate per group, from one grouped count (and one product per resample block)."""

    def build() -> dict[str, GroupValues]:
        truth = context.truth(dataset).values
        predicted = context.labels("candidate", dataset)
        cells = found.codes * 4 + truth.astype(int) * 2 + predicted.astype(int)
        n_cells = 4 * len(found.labels)
        point = np.bincount(cells, minlength=n_cells).reshape(-1, 4).astype(float)
        counts = context.bootstrap_counts(dataset)
        samples = None
        if counts is not None:
            indicator = sparse.csr_matrix((np.ones(len(cells), np.float32),
                                           (np.arange(len(cells)), cells)),
                                          shape=(len(cells), n_cells))
            samples = over_chunks(counts, lambda w: (indicator.T @ w.T).T).reshape(
                counts.shape[0], -1, 4)
        # cells per group: [tn, fp, fn, tp] (index truth * 2 + prediction)
        point_rates = rates_from_counts(point[:, 3], point[:, 1], point[:, 2], point[:, 0])
        sample_rates = rates_from_counts(samples[..., 3], samples[..., 1], samples[..., 2],
                                         samples[..., 0]) if samples is not None else {}
        return {name: GroupValues(point_rates[name], sample_rates.get(name)) for name in RATES}

    return context.memo(("rates", dataset, tuple(found.labels)), build)


def group_metric(context: Context, dataset: str, found: Groups, name: str) -> GroupValues:
    """A performance metric per group: fairlearn's MetricFrame for the values, the shared
    resamples for their spread."""
    from fairlearn.metrics import MetricFrame

    metric = METRICS[name]
    truth = context.truth(dataset).values
    output = (context.labels if metric.needs == "labels" else context.scores)(
        "candidate", dataset)
    classes = context.classes(dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            frame = MetricFrame(metrics=lambda t, o: metric.compute(t, o, classes),
                                y_true=truth, y_pred=output, sensitive_features=found.codes)
        except ValueError as exc:
            raise CheckError(f"{name} cannot be computed for every group: {exc}") from None
        point = frame.by_group.reindex(range(len(found.labels))).to_numpy(dtype=float)
        counts = context.bootstrap_counts(dataset)
        samples = None
        if counts is not None:
            samples = np.stack([
                metric.resample(truth[rows], output[rows], classes, counts[:, rows])
                for rows in (found.codes == g for g in range(len(found.labels)))], axis=1)
    return GroupValues(point, samples)


def _values(rule: FairnessRule, context: Context, dataset: str, found: Groups,
            name: str) -> GroupValues:
    if name in RATES:
        return group_rates(context, dataset, found)[name]
    return group_metric(context, dataset, found, name)


# ---------------------------------------------------------------------- statistics

Statistic = Callable[[np.ndarray], np.ndarray]  # (..., G) -> (...)


def _fairness_check(rule: FairnessRule, spec: FairnessSpec, columns: tuple[str, ...]):
    min_size = rule.min_group_size or spec.min_group_size
    max_width = rule.max_interval_width or spec.max_interval_width
    dataset = spec.dataset

    def evaluate(context: Context) -> Outcome:
        found = groups(context, dataset, columns)
        confidence = context.policy.statistics.confidence
        table = _group_table(context, dataset, found, rule)
        evidence = {"sensitive": list(columns), "dataset": dataset, "groups": table}
        small = [f"{label} ({size})" for label, size in zip(found.labels, found.sizes,
                                                            strict=True) if size < min_size]
        if small:
            return Outcome(False, None, _bounds(rule), int(found.sizes.sum()),
                           f"{len(found.labels)} groups", evidence,
                           inconclusive=f"groups smaller than min_group_size {min_size}: "
                           + ", ".join(small))
        lower, upper, set_by = _statistics(rule, context, dataset, found)
        checks = []
        if rule.max_gap is not None:
            checks.append((upper, None, rule.max_gap))
        else:
            if rule.min is not None:
                checks.append((lower, rule.min, None))
            if rule.max is not None:
                checks.append((upper, None, rule.max))
        passed, shown, shown_interval, gated = True, None, None, "value"
        for (value, samples), low, high in checks:
            if np.isnan(value):
                raise CheckError(f"{rule.metric} is undefined for some group (no positives "
                                 "or no negatives in it)")
            interval = percentile_interval(samples, confidence) if samples is not None \
                else None
            ok, gated = judge(value, interval, low, high, rule.gate_on)
            if shown is None or not ok:
                shown, shown_interval = value, interval
            passed = passed and ok
        evidence["set_by"] = set_by
        message = (f"{_what(rule)} = {shown:.4f}{interval_text(shown_interval)}; {gated} "
                   f"{'satisfies' if passed else 'violates'} "
                   f"{bounds_text(*_limits(rule))} ({len(found.labels)} groups, "
                   f"set by {set_by})")
        return Outcome(passed, shown, _bounds(rule), int(found.sizes.sum()), message, evidence,
                       interval=shown_interval.to_dict() if shown_interval else None,
                       inconclusive=doubt(shown_interval, max_width, *_limits(rule)))

    return evaluate


def _statistics(rule: FairnessRule, context: Context, dataset: str, found: Groups):
    """(lower statistic, upper statistic, groups that set it); each statistic is
    (point value, per-resample values or None)."""
    labels = found.labels
    if rule.metric in DISPARITIES:
        rates, kind = DISPARITIES[rule.metric]
        per_rate = [_values(rule, context, dataset, found, r) for r in rates]
        if kind == "difference":
            stat = _spread(per_rate, lambda v: np.nanmax(v, -1) - np.nanmin(v, -1), np.fmax)
        else:
            stat = _spread(per_rate, lambda v: _safe_ratio(np.nanmin(v, -1), np.nanmax(v, -1)),
                           np.fmin)
        worst = max(per_rate, key=lambda gv: np.nanmax(gv.point) - np.nanmin(gv.point))
        set_by = f"{labels[int(np.nanargmax(worst.point))]} vs " \
                 f"{labels[int(np.nanargmin(worst.point))]}"
        return stat, stat, set_by
    values = _values(rule, context, dataset, found, rule.metric)
    if rule.reference is not None:
        ref = _reference_index(rule, found)
        keep = [g for g in range(len(labels)) if g != ref]
        point = _safe_ratio(values.point[keep], values.point[ref])
        samples = None if values.samples is None else _safe_ratio(
            values.samples[:, keep], values.samples[:, [ref]])
        values, labels = GroupValues(point, samples), [labels[g] for g in keep]
    lowest, highest = (_reduce(values, np.nanmin), _reduce(values, np.nanmax))
    if rule.max_gap is not None:
        gap = (highest[0] - lowest[0],
               None if values.samples is None else highest[1] - lowest[1])
        return gap, gap, f"{labels[int(np.nanargmax(values.point))]} vs " \
                         f"{labels[int(np.nanargmin(values.point))]}"
    set_by = labels[int(np.nanargmin(values.point))] if rule.min is not None \
        else labels[int(np.nanargmax(values.point))]
    return lowest, highest, set_by


def _spread(per_rate: list[GroupValues], across_groups: Statistic, across_rates) -> tuple:
    point = across_groups(per_rate[0].point)
    for gv in per_rate[1:]:
        point = across_rates(point, across_groups(gv.point))
    if per_rate[0].samples is None:
        return float(point), None
    samples = across_groups(per_rate[0].samples)
    for gv in per_rate[1:]:
        samples = across_rates(samples, across_groups(gv.samples))
    return float(point), samples


def _reduce(values: GroupValues, how) -> tuple[float, np.ndarray | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = float(how(values.point))
        return point, None if values.samples is None else how(values.samples, axis=1)


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
    if context.task == "binary_classification":
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
