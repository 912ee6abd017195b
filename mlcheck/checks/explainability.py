"""Explainability: what the model relies on, read from SHAP attributions, as gate rules.

shap computes the attributions: its exact Tree and Linear explainers where they apply, its
model-agnostic Permutation explainer on a sample under a budget otherwise. Written here,
because no library does it for a fitted model in general: choosing the explainer, and
summing the attributions of encoded columns (one-hot, scaled, imputed) back to the input
column each came from, found by changing one input column at a time and seeing which
encoded columns move.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlcheck.checks import Check, Outcome
from mlcheck.context import Context
from mlcheck.errors import CheckError, suggest
from mlcheck.guard import time_limit
from mlcheck.metrics import BINARY, MULTICLASS
from mlcheck.policy import ExplainabilityRule, ExplainabilitySpec, Policy
from mlcheck.stats import bootstrap_counts, percentile_interval

DEFAULT_ROWS = 1000  # exact explainers: about 1 s for a 100-iteration boosted model, 11 s
# for a 100-tree depth-10 random forest (benchmarks/explainers.py)
PERMUTATION_ROWS = 200  # the model-agnostic explainer costs rows x evaluations model calls
OWNER_ROWS = 2000  # rows (a seeded sample) probed, besides the explained ones, to trace
# encoded columns to input columns
MAX_SHARED_SHARE = 0.05  # more attribution on encoded columns of several inputs: PCA-like
MAX_UNOWNED_SHARE = 0.01  # more attribution on encoded columns traced to no input
MIN_EXPLAINED_ROWS = 30  # fewer explained rows: the checks are inconclusive
EFFECT_BINS = 10


@dataclass(frozen=True)
class Attributions:
    """SHAP values of one model on the explained rows, per input column."""

    columns: list[str]
    signed: np.ndarray  # (rows, columns, outputs): one output, or one per class
    rows: pd.DataFrame  # the explained rows, as the model reads them
    about: dict[str, Any]  # explainer, output explained, budget, seed, time, additivity

    @property
    def magnitude(self) -> np.ndarray:
        """|SHAP| per row and column, summed over outputs (classes)."""
        return np.abs(self.signed).sum(axis=2)


@dataclass(frozen=True)
class Importance:
    """Global importance: mean |SHAP| per column, its bootstrap interval, share and rank."""

    columns: list[str]
    mean_abs: np.ndarray
    intervals: list[tuple[float, float]] | None
    share: np.ndarray
    share_resamples: np.ndarray | None  # (resamples, columns)
    rank: dict[str, int]  # 1 = most important

    def table(self, attributions: Attributions) -> list[dict[str, Any]]:
        rows = []
        for j in np.argsort([self.rank[c] for c in self.columns]):
            column = self.columns[j]
            row = {"feature": column, "rank": self.rank[column],
                   "mean_abs_shap": short(self.mean_abs[j]), "share": short(self.share[j])}
            if self.intervals is not None:
                row["mean_abs_shap_interval"] = [short(v) for v in self.intervals[j]]
            if attributions.signed.shape[2] == 1:
                row["mean_shap"] = short(attributions.signed[:, j, 0].mean())
                row["value_effect_correlation"] = short(effect_correlation(attributions, column))
            rows.append(row)
        return rows


def compile_checks(policy: Policy, context: Context) -> list[Check]:
    spec = policy.explainability
    if spec is None:
        return []
    checks = []
    for index, rule in enumerate(spec.rules):
        location = policy.origin.locate("explainability", "rules", index)
        severity = rule.severity or spec.severity
        name = rule.id or rule.test
        if rule.features is None:
            suffix = f"[{rule.against}]" if rule.test == "stability" else ""
            checks.append(Check(f"explainability/{name}{suffix}", "explainability", severity,
                                _describe(rule), _rule_check(rule, spec, None), location))
            continue
        for feature in rule.features:
            checks.append(Check(f"explainability/{name}[{feature}]", "explainability",
                                severity, _describe(rule), _rule_check(rule, spec, feature),
                                location))
    return checks


def _describe(rule: ExplainabilityRule) -> str:
    if rule.test == "not_in_top":
        return f"not among the top {rule.k} features by mean |SHAP|"
    if rule.test == "required_in_top":
        return f"among the top {rule.k} features by mean |SHAP|"
    if rule.test == "max_attribution_share":
        return f"no feature above {rule.max:g} of the total mean |SHAP|"
    if rule.test == "direction":
        return f"the effect is {rule.direction} in the feature's value"
    return f"importance ranking agrees with the {rule.against} (Spearman >= {rule.min:g})"


def _rule_check(rule: ExplainabilityRule, spec: ExplainabilitySpec, feature: str | None):
    def evaluate(context: Context) -> Outcome:
        found = attributions(context, "candidate")
        ranked = importance(context, "candidate")
        if feature is not None and feature not in found.columns:
            raise CheckError(f"'{feature}' is not an input column of the model"
                             + suggest(feature, found.columns)
                             + f"; inputs: {', '.join(found.columns)}")
        n = len(found.rows)
        evidence = {"explainer": found.about, "importance": ranked.table(found)}
        outcome = _judge(rule, context, found, ranked, feature, evidence)
        note = found.about.get("fallback")
        if note:
            outcome = dataclasses.replace(outcome, message=f"{outcome.message} ({note})")
        if n < MIN_EXPLAINED_ROWS:
            return dataclasses.replace(outcome, inconclusive=(
                f"only {n} rows explained, fewer than {MIN_EXPLAINED_ROWS}"))
        return outcome

    return evaluate


def _judge(rule: ExplainabilityRule, context: Context, found: Attributions,
           ranked: Importance, feature: str | None, evidence: dict) -> Outcome:
    """The rule's verdict on the candidate's attributions."""
    n, total = len(found.rows), len(found.columns)
    if rule.test in ("not_in_top", "required_in_top"):
        if rule.k >= total:
            raise CheckError(f"k = {rule.k}, but the model has {total} inputs: every "
                             "feature is in the top k")
        rank = ranked.rank[feature]
        j = found.columns.index(feature)
        share = ranked.share[j]
        in_top = rank <= rule.k and share > 0  # no attribution is never "in the top"
        passed = in_top if rule.test == "required_in_top" else not in_top
        where = (f"{feature} ranks {rank} of {total} by mean |SHAP| "
                 f"({ranked.mean_abs[j]:.4g}, {share:.1%} of the total)")
        demand = ("must be" if rule.test == "required_in_top" else "must not be")
        bounds = {"max": rule.k} if rule.test == "required_in_top" else {"min": rule.k + 1}
        return Outcome(passed, float(rank), bounds, n,
                       f"{where}; {demand} in the top {rule.k}", evidence)
    if rule.test == "max_attribution_share":
        j = int(np.argmax(ranked.share))
        value = float(ranked.share[j])
        interval = None
        if ranked.share_resamples is not None:
            interval = percentile_interval(ranked.share_resamples[:, j],
                                           context.policy.statistics.confidence).to_dict()
        passed = value <= rule.max
        return Outcome(passed, value, {"max": rule.max}, n,
                       f"{found.columns[j]} holds {value:.1%} of the total mean |SHAP| "
                       f"{'<=' if passed else '>'} {rule.max:.0%}",
                       {**evidence, "feature": found.columns[j]}, interval)
    if rule.test == "direction":
        return _direction(rule, found, feature, evidence)
    return _stability(rule, context, found, ranked, evidence)


def _direction(rule: ExplainabilityRule, found: Attributions, feature: str,
               evidence: dict) -> Outcome:
    """The sign of a numeric feature's effect: Spearman correlation of its value with its
    attribution over the explained rows (a feature without effect, 0, satisfies both)."""
    if found.signed.shape[2] != 1:
        raise CheckError("`direction` needs one score per row (binary or regression)")
    rho = effect_correlation(found, feature)
    if rho is None:
        raise CheckError(f"`direction` needs a numeric feature; '{feature}' is "
                         f"{found.rows[feature].dtype}")
    passed = rho >= 0 if rule.direction == "increasing" else rho <= 0
    evidence = {**evidence, "effect": effect_summary(found, feature)}
    bounds = {"min": 0.0} if rule.direction == "increasing" else {"max": 0.0}
    seen = "increasing" if rho > 0 else "decreasing" if rho < 0 else "flat"
    return Outcome(passed, rho, bounds, len(found.rows),
                   f"Spearman correlation of {feature} with its attribution is {rho:.3f}: "
                   f"the effect is {seen}, declared {rule.direction}", evidence)


def _stability(rule: ExplainabilityRule, context: Context, found: Attributions,
               ranked: Importance, evidence: dict) -> Outcome:
    """Rank agreement of two importance rankings: candidate and baseline on the same rows,
    or the candidate on the two halves of the explained rows."""
    if rule.against == "baseline":
        other = importance(context, "baseline")
        first = dict(zip(ranked.columns, ranked.mean_abs, strict=True))
        second = dict(zip(other.columns, other.mean_abs, strict=True))
        names = ("candidate", "baseline")
        baseline = attributions(context, "baseline")
        evidence = {**evidence, "baseline_explainer": baseline.about,
                    "baseline_importance": other.table(baseline)}
    else:
        spec = context.policy.explainability
        order = np.random.default_rng([spec.seed, 2]).permutation(len(found.rows))
        halves = np.array_split(order, 2)
        means = [found.magnitude[half].mean(axis=0) for half in halves]
        first, second = (dict(zip(found.columns, m, strict=True)) for m in means)
        names = ("first half", "second half")
    common = [c for c in first if c in second]
    if rule.k is not None:
        top = set(_top(first, rule.k)) | set(_top(second, rule.k))
        common = [c for c in common if c in top]
    if len(common) < 3:
        raise CheckError(f"a rank correlation needs at least 3 features in common; "
                         f"{len(common)} are")
    rho = spearman(np.array([first[c] for c in common]), np.array([second[c] for c in common]))
    passed = rho >= rule.min
    ranks = [_ranks(first), _ranks(second)]
    evidence = {**evidence, "compared": names, "features": [
        {"feature": c, f"{names[0]} rank": ranks[0][c], f"{names[1]} rank": ranks[1][c]}
        for c in sorted(common, key=ranks[0].get)]}
    return Outcome(passed, rho, {"min": rule.min}, len(found.rows),
                   f"Spearman correlation of the {names[0]}'s and {names[1]}'s importance "
                   f"over {len(common)} features is {rho:.3f} "
                   f"{'>=' if passed else '<'} {rule.min:g}", evidence)


def _top(values: dict[str, float], k: int) -> list[str]:
    return sorted(values, key=lambda c: (-values[c], c))[:k]


def _ranks(values: dict[str, float]) -> dict[str, int]:
    """1 + the number of features strictly more important: tied features share a rank,
    so a name's place in the alphabet never decides a verdict."""
    ordered = sorted(values.values(), reverse=True)
    return {c: 1 + sum(1 for v in ordered if v > values[c] * (1 + 1e-9) + 1e-15)
            for c in values}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; 0 when either side is constant (no order to agree on)."""
    from scipy.stats import rankdata

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(np.corrcoef(rankdata(a), rankdata(b))[0, 1])


def effect_correlation(found: Attributions, feature: str) -> float | None:
    """How a numeric feature's attribution moves with its value (None: not numeric)."""
    values = found.rows[feature]
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(float)  # a yes/no flag: does "yes" raise the score?
    if not _is_number(values) or found.signed.shape[2] != 1:
        return None
    present = values.notna().to_numpy()
    j = found.columns.index(feature)
    return spearman(values.to_numpy(dtype=float)[present], found.signed[present, j, 0])


def effect_summary(found: Attributions, feature: str) -> list[dict[str, Any]]:
    """Mean attribution per value bin (numeric, quantile bins) or per category: what a
    per-feature effect chart draws."""
    values, j = found.rows[feature], found.columns.index(feature)
    phi = pd.Series(found.signed[:, j, 0], index=values.index)
    if _is_number(values):
        bins = pd.qcut(values.astype(float), EFFECT_BINS, duplicates="drop")
        grouped = phi.groupby(bins, observed=True)
        return [{"from": short(b.left), "to": short(b.right), "rows": int(g.size),
                 "mean_shap": short(g.mean())} for b, g in grouped]
    grouped = phi.groupby(values.astype(str), observed=True)
    summary = [{"value": str(k), "rows": int(g.size), "mean_shap": short(g.mean())}
               for k, g in grouped]
    return sorted(summary, key=lambda row: -row["rows"])[:20]


def short(value: float | None) -> float | None:
    """6 significant digits: evidence tables stay readable and the record small."""
    return None if value is None else float(f"{value:.6g}")


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


# ------------------------------------------------------------------ attributions


def importance(context: Context, role: str) -> Importance:
    """Mean |SHAP| per input column with a bootstrap interval over the explained rows."""

    def build() -> Importance:
        found = attributions(context, role)
        magnitude = found.magnitude
        mean_abs = magnitude.mean(axis=0)
        total = mean_abs.sum()
        share = mean_abs / total if total > 0 else np.zeros_like(mean_abs)
        stats = context.policy.statistics
        intervals = share_resamples = None
        if stats.resamples:
            counts = bootstrap_counts(len(magnitude), stats.resamples,
                                      np.random.SeedSequence([stats.seed, 3]))
            weights = counts.sum(axis=1, keepdims=True).astype(float)
            means = (counts @ magnitude) / np.maximum(weights, 1)
            intervals = [(found.low, found.high) for found in (
                percentile_interval(means[:, j], stats.confidence)
                for j in range(means.shape[1]))]
            sums = means.sum(axis=1, keepdims=True)
            share_resamples = np.divide(means, sums, out=np.zeros_like(means), where=sums > 0)
        values = dict(zip(found.columns, mean_abs, strict=True))
        return Importance(found.columns, mean_abs, intervals, share, share_resamples,
                          _ranks(values))

    return context.memo(("shap-importance", role), build)


def attributions(context: Context, role: str) -> Attributions:
    """SHAP values of a model on the explained rows, computed once per model and run."""
    return context.memo(("shap", role), lambda: _explain(context, role))


def _explain(context: Context, role: str) -> Attributions:
    spec = context.policy.explainability
    model = context.model(role)
    if model.estimator is None:
        raise CheckError(f"explanations are unavailable: the {role} is a black box (score "
                         "columns only), and SHAP needs the model itself")
    try:
        with warnings.catch_warnings():  # shap's import warns about matplotlib's API
            warnings.simplefilter("ignore")
            import shap  # noqa: F401  (here: 0.5-2 s, paid only by policies that explain)
    except ImportError:
        raise CheckError("explainability needs shap: pip install shap") from None
    estimator = model.estimator
    features = _inputs(context.features(spec.dataset), estimator, role)
    if len(features) == 0:
        raise CheckError(f"dataset '{spec.dataset}' has no rows to explain")
    kind = spec.explainer if spec.explainer != "auto" else _auto_kind(estimator)
    fallback = None
    try:
        return _run(context, spec, role, estimator, features, kind)
    except _Unsuitable as exc:
        if spec.explainer != "auto":
            raise CheckError(f"`explainer: {kind}` cannot explain the {role}: {exc}") from None
        fallback = f"the {kind} explainer could not be used ({exc}); fell back to permutation"
    found = _run(context, spec, role, estimator, features, "permutation")
    return Attributions(found.columns, found.signed, found.rows,
                        {**found.about, "fallback": fallback})


def _inputs(features: pd.DataFrame, estimator: Any, role: str) -> pd.DataFrame:
    """The columns the model was fitted on, in its order (`feature_names_in_`), so a
    matrix is never matched to columns by position, and an unused column (an id) is not
    explained; models fitted without names read every feature column."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return features
    names = [str(n) for n in names]
    missing = [n for n in names if n not in features.columns]
    if missing:
        raise CheckError(f"the {role} was fitted on columns the data lacks: "
                         f"{', '.join(missing)}")
    return features[names]


class _Unsuitable(Exception):
    """The chosen exact explainer does not apply to this model."""


def _auto_kind(estimator: Any) -> str:
    final = _split(estimator)[1]
    if _is_tree(final):
        return "tree"
    if _is_linear(final):
        return "linear"
    return "permutation"


def _split(estimator: Any) -> tuple[Any, Any]:
    """(preprocessing or None, final estimator): a Pipeline is explained at its last step."""
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
        return estimator[:-1], estimator[-1]
    return None, estimator


def _is_tree(final: Any) -> bool:
    from sklearn.ensemble import (
        BaseEnsemble,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )
    from sklearn.tree import BaseDecisionTree

    module = type(final).__module__.split(".")[0]
    return isinstance(final, (BaseDecisionTree, HistGradientBoostingClassifier,
                              HistGradientBoostingRegressor)) or (
        isinstance(final, BaseEnsemble) and isinstance(
            getattr(final, "estimator", None) or getattr(final, "base_estimator", None),
            BaseDecisionTree)) or type(final).__name__ in (
        "GradientBoostingClassifier", "GradientBoostingRegressor") or module in (
        "xgboost", "lightgbm", "catboost")


def _is_linear(final: Any) -> bool:
    return type(final).__module__.startswith("sklearn.linear_model") and hasattr(final, "coef_")


def _sample(spec: ExplainabilitySpec, n: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded explained rows and background rows; the same for every model of a run."""
    rng = np.random.default_rng([spec.seed, 1])
    order = rng.permutation(n)
    explained = np.sort(order[:min(rows, n)])
    rest = order[min(rows, n):]
    pool = rest if len(rest) >= spec.background else order
    return explained, np.sort(pool[:min(spec.background, len(pool))])


def _run(context: Context, spec: ExplainabilitySpec, role: str, estimator: Any,
         features: pd.DataFrame, kind: str) -> Attributions:
    rows = spec.rows or (PERMUTATION_ROWS if kind == "permutation" else DEFAULT_ROWS)
    explained, background = _sample(spec, len(features), rows)
    sample = features.iloc[explained]
    started = time.perf_counter()
    output, select = _output(context, estimator)
    about: dict[str, Any] = {"explainer": kind, "output": output, "rows": len(sample),
                             "seed": spec.seed, "dataset": spec.dataset}
    if kind == "permutation":
        phi, base, residual, evaluations = _permutation(context, spec, estimator, features,
                                                        explained, background)
        about.update(background=len(background), evaluations_per_row=evaluations,
                     model_rows_scored=len(sample) * evaluations * len(background),
                     units="probability" if context.task in (BINARY, MULTICLASS)
                     else "prediction")
        signed = phi
    else:
        pre, final = _split(estimator)
        if kind == "tree" and not _is_tree(final):
            raise _Unsuitable(f"{type(final).__name__} is not a tree model")
        if kind == "linear" and not _is_linear(final):
            raise _Unsuitable(f"{type(final).__name__} is not a scikit-learn linear model")
        encoded = _encode(pre, sample)
        if kind == "tree":
            phi, base, explained_output, units = _tree(final, encoded)
        else:
            phi, base, explained_output, units = _linear(
                final, encoded, _encode(pre, features.iloc[background]))
            about["background"] = len(background)
        about["units"] = units
        phi, base, explained_output = select(phi, base, explained_output)
        residual = float(np.max(np.abs(phi.sum(axis=1) + base - explained_output)))
        if not _adds_up(residual, base):  # the model's own output, not shap's copy of it
            raise _Unsuitable(f"its SHAP values do not add up to the model's output "
                              f"(largest error {residual:.3g})")
        owners = _owners(context, role, pre, features, encoded.shape[1], explained)
        signed, unowned, shared = _to_inputs(phi, owners, len(features.columns))
        if shared > MAX_SHARED_SHARE:
            raise _Unsuitable(f"its preprocessing mixes input columns ({shared:.0%} of the "
                              "attributions fall on encoded columns made from several "
                              "inputs), so they cannot be given back to one input each")
        if unowned > MAX_UNOWNED_SHARE:
            raise _Unsuitable(f"{unowned:.0%} of the attributions fall on encoded columns "
                              "no input column could be traced to")
        about.update(encoded_columns=encoded.shape[1], unattributed_share=short(unowned),
                     shared_share=short(shared))
    about.update(seconds=round(time.perf_counter() - started, 3),
                 additivity_max_error=float(f"{residual:.3g}"))
    if not _adds_up(residual, base):
        raise CheckError(f"SHAP values do not add up to the model's output (largest error "
                         f"{residual:.3g}): the attributions cannot be trusted")
    return Attributions(list(map(str, features.columns)), signed, sample, about)


def _adds_up(residual: float, base: np.ndarray) -> bool:
    return residual <= 1e-3 * max(1.0, float(np.max(np.abs(base))))


def _output(context: Context, estimator: Any):
    """What is explained, and how to pick it from shap's outputs: the positive class for
    binary classifiers, every class for multiclass, the prediction for regression."""
    task = context.task
    if task == BINARY:
        classes = list(estimator.classes_)
        positive = context.positive_index(classes)

        def select(phi, base, out):
            phi, base, out = _three(phi), np.ravel(base), _two(out)
            if phi.shape[2] == 1:  # a margin for classes_[1]: negated for classes_[0]
                sign = 1.0 if positive == 1 else -1.0
                return sign * phi, sign * base, sign * out
            return (phi[:, :, positive:positive + 1], base[positive:positive + 1],
                    out[:, positive:positive + 1])

        return f"score of the positive class '{classes[positive]}'", select

    def select(phi, base, out):
        return _three(phi), np.ravel(base), _two(out)

    return ("score of each class" if task == MULTICLASS else "prediction"), select


def _three(phi: Any) -> np.ndarray:
    phi = np.stack(phi, axis=2) if isinstance(phi, list) else np.asarray(phi, dtype=float)
    return phi[:, :, None] if phi.ndim == 2 else phi


def _two(out: Any) -> np.ndarray:
    out = np.asarray(out, dtype=float)
    return out[:, None] if out.ndim == 1 else out


def _encode(pre: Any, frame: pd.DataFrame) -> np.ndarray:
    """The final estimator's input as a dense float matrix."""
    try:
        encoded = frame if pre is None else pre.transform(frame)
        if hasattr(encoded, "toarray"):
            encoded = encoded.toarray()
        return np.asarray(encoded, dtype=float)
    except (TypeError, ValueError) as exc:
        raise _Unsuitable(f"its input is not numeric ({exc})") from None


def _tree(final: Any, encoded: np.ndarray) -> tuple[Any, Any, Any, str]:
    import shap

    try:
        explainer = shap.TreeExplainer(final)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            phi = explainer.shap_values(encoded, check_additivity=False)
        units = str(getattr(explainer.model, "tree_output", "raw")).replace("_", "-")
        return phi, explainer.expected_value, _model_output(final, encoded, units,
                                                            explainer), units
    except Exception as exc:  # shap's message says which model type it does not support
        raise _Unsuitable(f"{type(exc).__name__}: {exc}") from None


def _model_output(final: Any, encoded: np.ndarray, units: str, explainer: Any) -> Any:
    """The model's own output in the units shap explains, to check additivity against
    (shap's copy of the trees can differ from the model, e.g. on categorical splits)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "X does not have valid feature names")
        if units == "log-odds" and hasattr(final, "decision_function"):
            return final.decision_function(encoded)
        if units == "probability" and hasattr(final, "predict_proba"):
            return final.predict_proba(encoded)
        if units == "raw-value" and type(final).__module__.startswith("sklearn"):
            return final.predict(encoded)
    return explainer.model.predict(encoded)  # other libraries: shap's reading of the model


def _linear(final: Any, encoded: np.ndarray, background: np.ndarray
            ) -> tuple[Any, Any, Any, str]:
    import shap

    try:
        explainer = shap.LinearExplainer(final, background)
        phi = explainer.shap_values(encoded)
    except Exception as exc:
        raise _Unsuitable(f"{type(exc).__name__}: {exc}") from None
    with warnings.catch_warnings():  # a model fitted on a frame, called on its matrix
        warnings.filterwarnings("ignore", "X does not have valid feature names")
        if hasattr(final, "decision_function"):  # a classifier's margin (logistic: log-odds)
            units = "log-odds" if type(final).__name__.startswith("LogisticRegression") \
                else "margin"
            return phi, explainer.expected_value, final.decision_function(encoded), units
        return phi, explainer.expected_value, final.predict(encoded), "prediction"


def _owners(context: Context, role: str, pre: Any, features: pd.DataFrame,
            width: int, explained: np.ndarray) -> list[list[int]]:
    """For each encoded column, the input columns it comes from: change one input column
    (its values shifted by one row) and see which encoded columns move. Probed on the
    explained rows plus a seeded sample of the rest, every shifted copy in one
    transform."""

    def build() -> list[list[int]]:
        if pre is None:
            return [[j] for j in range(width)]
        sample = np.random.default_rng([context.policy.explainability.seed, 5]).permutation(
            len(features))[:OWNER_ROWS]
        frame = features.iloc[np.union1d(explained, sample)].reset_index(drop=True)
        copies = [frame]
        for column in frame.columns:
            shifted = frame.copy()
            shifted[column] = np.roll(frame[column].to_numpy(), 1)
            copies.append(shifted)
        blocks = _encode(pre, pd.concat(copies, ignore_index=True)).reshape(
            len(copies), len(frame), width)
        base = blocks[0]
        owners: list[list[int]] = [[] for _ in range(width)]
        for j, moved in enumerate(blocks[1:]):
            changed = ~((moved == base) | (np.isnan(moved) & np.isnan(base)))
            for k in np.flatnonzero(changed.any(axis=0)):
                owners[k].append(j)
        return owners

    return context.memo(("shap-owners", role), build)


def _to_inputs(phi: np.ndarray, owners: list[list[int]], inputs: int
               ) -> tuple[np.ndarray, float, float]:
    """Sum encoded attributions into their input columns (an encoded column made from
    several inputs is split evenly among them); also the shares of the attributions that
    no input could claim, and that several inputs share."""
    mapping = np.zeros((phi.shape[1], inputs))
    for k, sources in enumerate(owners):
        for j in sources:
            mapping[k, j] = 1 / len(sources)
    signed = np.einsum("nqk,qp->npk", phi, mapping)
    total = float(np.abs(phi).sum())

    def share(columns: list[int]) -> float:
        return float(np.abs(phi[:, columns]).sum() / total) if total and columns else 0.0

    return (signed, share([k for k, sources in enumerate(owners) if not sources]),
            share([k for k, sources in enumerate(owners) if len(sources) > 1]))


def _permutation(context: Context, spec: ExplainabilitySpec, estimator: Any,
                 features: pd.DataFrame, explained: np.ndarray, background: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, float, int]:
    """shap's Permutation explainer on the raw input columns: text columns travel as
    integer codes, decoded before each model call, so any model that reads the frame can
    be explained."""
    import shap

    coded = _Coded(features)
    matrix = coded.matrix
    _, select = _output(context, estimator)
    method = "predict" if context.task not in (BINARY, MULTICLASS) else "predict_proba"

    def predict(values: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings(), time_limit(context.model_timeout,
                                                   f"the model's {method}"):
            warnings.filterwarnings("ignore", "X has feature names")  # fitted on a matrix
            return np.asarray(getattr(estimator, method)(coded.decode(values)), dtype=float)

    evaluations = spec.evaluations or 10 * (matrix.shape[1] + 1)
    evaluations = max(evaluations, 2 * matrix.shape[1] + 1)  # shap's minimum
    masker = shap.maskers.Independent(matrix[background], max_samples=len(background))
    explainer = shap.PermutationExplainer(predict, masker, seed=spec.seed)
    try:
        result = explainer(matrix[explained], max_evals=evaluations, silent=True)
    except Exception as exc:
        raise CheckError(f"the model raised while being explained: {type(exc).__name__}: "
                         f"{exc}") from None
    phi, base = np.asarray(result.values, dtype=float), np.asarray(result.base_values)
    out = predict(matrix[explained])
    if method == "predict_proba":  # shap's outputs are per class; keep what is explained
        phi, base, out = select(phi, base[0] if base.ndim > 1 else base, out)
    else:
        phi, base, out = _three(phi), np.ravel(base)[:1], _two(out)
    residual = float(np.max(np.abs(phi.sum(axis=1) + base - out)))
    return phi, base, residual, evaluations


class _Coded:
    """A frame as a float matrix (text columns as category codes) and back again."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.levels: dict[str, Any] = {}
        columns = []
        for name in frame.columns:
            values = frame[name]
            if _is_number(values):
                columns.append(values.to_numpy(dtype=float))
            else:
                codes, levels = pd.factorize(values, use_na_sentinel=True)
                self.levels[name] = levels
                columns.append(codes.astype(float))
        self.matrix = np.column_stack(columns)

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        out = {}
        for j, name in enumerate(self.frame.columns):
            values = matrix[:, j]
            if name in self.levels:
                codes = values.astype(int)
                decoded = self.levels[name].take(np.maximum(codes, 0))
                out[name] = pd.Series(decoded, dtype=self.frame[name].dtype).where(codes >= 0)
            else:
                dtype = self.frame[name].dtype
                out[name] = pd.Series(values).astype(dtype) if not np.isnan(values).any() \
                    else pd.Series(values)
        return pd.DataFrame(out)
