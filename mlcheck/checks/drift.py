"""Drift checks: per-column shift between a reference and a current dataset.

Ids: `drift/<test>[<column>]` per column, `drift/share_of_drifted_columns` and
`drift/number_of_drifted_columns` for the dataset. Numeric statistics are read from the
two sorted samples (each column is sorted once per run and side); categorical ones from
integer category codes counted with `bincount`. Written here rather than taken from scipy
one statistic at a time so that one sort serves KS, Wasserstein and the binned measures;
tests compare every statistic with scipy.

A distance (PSI, Jensen-Shannon, total variation, Wasserstein) is never zero on two finite
samples: at 100 rows a side, PSI over 10 bins averages about 0.18 with no drift at all. So
a column drifts under a distance rule only when the distance exceeds its bound *and* the
two samples are distinguishable from sampling noise: a test of the same data (chi-square
of the binned counts, or KS for Wasserstein) whose p-value, corrected across the rule's
columns, is below 0.01. On large samples the test is significant long before a distance
reaches a usual bound, so there the bound decides, as before.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from mlcheck.checks import Check, Outcome, bounds_text
from mlcheck.context import Context
from mlcheck.errors import CheckError
from mlcheck.policy import DriftRule, DriftSpec, Policy

NUMERIC_TESTS = ("ks", "psi", "wasserstein", "jensen_shannon", "missing_share")
CATEGORICAL_TESTS = ("chi2", "psi", "jensen_shannon", "total_variation", "unseen_categories",
                     "missing_share")
DATASET_TESTS = ("share_of_drifted_columns", "number_of_drifted_columns")
DEFAULT_MIN_P = 0.01   # p-value tests: drift when the corrected p-value is below this ...
DEFAULT_MIN_EFFECT = 0.1  # ... and the effect (KS statistic, Cramér's V) is at least this
PSI_FLOOR = 1e-4  # share given to an empty bin, so PSI stays finite
# the p-value each test is judged by (distances: the test that their shift is not noise)
P_VALUE = {"ks": "ks_p", "chi2": "chi2_p", "psi": "binned_p", "jensen_shannon": "binned_p",
           "total_variation": "binned_p", "wasserstein": "ks_p"}
PREDICTION = "prediction"


@dataclass
class Sample:
    """One column on one side: sorted non-missing values (numeric) or category counts."""

    numeric: bool
    rows: int
    missing: int
    values: np.ndarray | None = None  # sorted (or a profile's quantile sketch), numeric only
    counts: dict[Any, int] = field(default_factory=dict)  # categorical only
    size: int | None = None  # values behind `values` (differs for a sketch)
    spread: float | None = None  # standard deviation (stored in a profile)
    bins: tuple | None = None  # (inner edges, shares) stored in a profile

    @classmethod
    def from_profile(cls, column: dict) -> Sample:
        if column["kind"] == "numeric":
            return cls(True, column["rows"], column["missing"],
                       np.asarray(column["quantiles"], dtype=float), size=column["values"],
                       spread=column["std"], bins=(np.asarray(column["edges"]),
                                                   np.asarray(column["shares"])))
        return cls(False, column["rows"], column["missing"], counts=column["counts"])


SKETCH_POINTS = 1001  # quantiles kept per numeric column in a profile (every 0.1%)
PROFILE_VERSION = 1


def make_profile(frame: pd.DataFrame, bins: int = 10) -> dict[str, Any]:
    """What drift needs from a reference dataset, per column: missing share, and either a
    quantile sketch with the reference-quantile bins and the spread (numeric) or the
    category counts. A production batch is then compared with this small file."""
    columns = {}
    for name in frame.columns:
        series = frame[name]
        present = series.dropna()
        base = {"rows": len(series), "missing": int(series.isna().sum())}
        if is_numeric(series) and len(present):
            values = np.sort(as_numbers(present))
            edges, shares, _ = quantile_bins(values, values[:1], bins)
            columns[str(name)] = {**base, "kind": "numeric", "values": len(values),
                                  "std": float(np.std(values)),
                                  "quantiles": np.quantile(
                                      values, np.linspace(0, 1, SKETCH_POINTS)).tolist(),
                                  "edges": edges.tolist(), "shares": shares.tolist()}
        else:
            columns[str(name)] = {**base, "kind": "categorical", "counts": {
                str(k): int(v) for k, v in category_text(present).value_counts().items()}}
    return {"mlcheck_profile": PROFILE_VERSION, "bins": bins, "rows": len(frame),
            "columns": columns}


def compile_checks(policy: Policy, context: Context) -> list[Check]:
    spec = policy.drift
    if spec is None:
        return []
    checks = []
    where = policy.origin.locate
    for index, rule in enumerate(spec.rules):
        location = where("drift", "rules", index)
        severity = rule.severity or spec.severity
        name = rule.id or rule.test
        if rule.test in DATASET_TESTS:
            checks.append(Check(f"drift/{name}", "drift", severity,
                                f"{rule.test.replace('_', ' ')} {bounds_text(None, rule.max)}",
                                _dataset_check(rule, spec), location))
            continue
        try:
            columns = select_columns(rule, spec, context)
            problem = None if columns else (
                f"`{rule.test}` selects no column it applies to (it applies to "
                f"{_kinds(rule.test)} columns): a rule that tests nothing never passes")
        except CheckError as exc:
            columns, problem = [], str(exc)
        if problem:
            checks.append(Check(f"drift/{name}", "drift", severity, rule.test,
                                _raises(problem), location))
            continue
        for column in columns:
            checks.append(Check(f"drift/{name}[{column}]", "drift", severity,
                                _describe(rule), _column_check(rule, spec, column), location))
    return checks


def _raises(message: str):
    def evaluate(context: Context) -> Outcome:
        raise CheckError(message)

    return evaluate


def select_columns(rule: DriftRule, spec: DriftSpec, context: Context) -> list[str]:
    """Columns a rule applies to: named, or all of the reference's (the target only with
    `target: true` and when the current data has it, the model's scores with
    `prediction: true`), minus exclusions. With `all`, only columns of the kind the test
    applies to; a named column of the wrong kind, or an unknown exclusion, is an error."""
    target = context.policy.data.target
    profile = context.subject.profile
    available = list(profile.columns) if profile is not None else list(
        context.frame(spec.reference).columns)
    if spec.prediction and PREDICTION in available:
        raise CheckError(f"the data has a column named '{PREDICTION}', which `prediction: "
                         "true` uses for the model's scores; rename the column")
    for column in rule.exclude:
        if column not in available:
            from mlcheck.errors import suggest

            raise CheckError(f"`exclude` names '{column}', which is not a column"
                             + suggest(column, available))
    if rule.columns == "all":
        names = [c for c in available if c != target]
        if spec.target and target and target in context.frame(spec.current).columns:
            names.append(target)
        if spec.prediction:
            names.append(PREDICTION)
    else:
        names = list(rule.columns)
    names = [c for c in names if c not in rule.exclude]
    for column in names:  # missing on a side: a clear error
        if column == PREDICTION and spec.prediction:
            continue
        if column not in available:
            where = f"the reference profile {profile.artifact.path}" if profile is not None \
                else f"dataset '{spec.reference}'"
            from mlcheck.errors import suggest

            raise CheckError(f"column '{column}' not found in {where}"
                             + suggest(column, available))
    kinds = {c: NUMERIC_TESTS if _is_numeric(context, spec, c) else CATEGORICAL_TESTS
             for c in names}
    if rule.columns != "all":
        wrong = [c for c in names if rule.test not in kinds[c]]
        if wrong:
            raise CheckError(f"`{rule.test}` applies to {_kinds(rule.test)} columns, and "
                             f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not")
    return [c for c in names if rule.test in kinds[c]]


def _column_values(context: Context, spec: DriftSpec, dataset: str, column: str) -> pd.Series:
    if column == PREDICTION and spec.prediction:
        scores = context.scores("candidate", dataset)
        if scores.ndim != 1:
            raise CheckError("prediction drift needs one score per row (binary or regression)")
        return pd.Series(scores)
    frame = context.frame(dataset)
    if column not in frame.columns:
        from mlcheck.subject import missing_column_message

        raise CheckError(missing_column_message(column, frame, dataset))
    return frame[column]


def _is_numeric(context: Context, spec: DriftSpec, column: str) -> bool:
    if column == PREDICTION and spec.prediction:
        return True
    profile = context.subject.profile
    if profile is not None and column in profile.columns:
        return profile.columns[column]["kind"] == "numeric"
    frame = context.frame(spec.reference if profile is None else spec.current)
    return is_numeric(frame[column])


def is_numeric(series: pd.Series) -> bool:
    """Numbers and timestamps are drift-tested as numbers; bools and text as categories."""
    return (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
            ) or pd.api.types.is_datetime64_any_dtype(series)


def as_numbers(values: pd.Series) -> np.ndarray:
    """Non-missing values as floats; timestamps as seconds since 1970 (UTC), whatever
    their resolution, so a reference stored in ns compares with a batch stored in us."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values, utc=True)
        return ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(
            dtype=float)
    return values.to_numpy(dtype=float)


def _prepare(series: pd.Series, numeric: bool) -> Sample:
    """Sort (numeric) or count (categorical) one column's values."""
    missing = int(series.isna().sum())
    present = series.dropna()
    if numeric:
        try:
            values = as_numbers(present)
        except (TypeError, ValueError):
            raise CheckError(f"column '{series.name}' is numeric in the reference but holds "
                             f"non-numeric values here ({series.dtype})") from None
        return Sample(True, len(series), missing, np.sort(values))
    return Sample(False, len(series), missing,
                  counts=category_text(present).value_counts(sort=False).to_dict())


def category_text(values: pd.Series) -> pd.Series:
    """Categories as text, with 1, 1.0 and True one category (a column of codes read as
    float because of missing values, or as bool, still matches its reference)."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(int).astype(str)
    if pd.api.types.is_float_dtype(values):
        whole = np.isfinite(values) & (values == np.floor(values))
        return values.astype(object).where(~whole, values[whole].astype("int64")).astype(str)
    return values.astype(str)


def _prefetch(context: Context, spec: DriftSpec) -> None:
    """Prepare every data column the section tests, on all cores at once (numpy's sort
    releases the GIL), before the first statistic is computed."""
    key = ("drift-prefetch", spec.reference, spec.current)
    done = context.__dict__.setdefault("_drift_prefetched", set())
    if key in done:
        return
    done.add(key)
    columns = set()
    for rule in spec.rules:
        if rule.test not in DATASET_TESTS:
            with contextlib.suppress(CheckError):  # the rule's own check reports it
                columns.update(select_columns(rule, spec, context))
    jobs = []
    for side in ("reference", "current"):
        if side == "reference" and context.subject.profile is not None:
            continue
        frame = context.frame(getattr(spec, side))
        jobs += [(side, c, frame[c], _is_numeric(context, spec, c))
                 for c in sorted(columns) if not (c == PREDICTION and spec.prediction)
                 and c in frame.columns]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        prepared = list(pool.map(lambda job: _prepare_or_none(job[2], job[3]), jobs))
        for (side, column, _, _), found in zip(jobs, prepared, strict=True):
            if found is not None:  # a failure is raised again by the column's own check
                context.memo(("drift-sample", side, getattr(spec, side), column),
                             lambda f=found: f)
        # then every column's statistics, also on all cores (sorting merges release the GIL)
        current = context.frame(spec.current)
        ready = [c for c in sorted(columns) if not (c == PREDICTION and spec.prediction)
                 and c in current.columns]
        pairs = []
        for column in ready:
            with contextlib.suppress(CheckError):  # reported by the column's own checks
                pairs.append((column, sample(context, spec, "reference", column),
                              sample(context, spec, "current", column)))
        computed = list(pool.map(lambda p: _statistics_or_none(p[1], p[2], spec.bins, p[0]),
                                 pairs))
    for (column, _, _), found in zip(pairs, computed, strict=True):
        if found is not None:  # a failure is raised again by the column's own check
            context.memo(("drift", spec.reference, spec.current, column, spec.bins),
                         lambda f=found: f)


def _prepare_or_none(series: pd.Series, numeric: bool) -> Sample | None:
    try:
        return _prepare(series, numeric)
    except CheckError:
        return None


def _statistics_or_none(ref: Sample, cur: Sample, bins: int, column: str) -> dict | None:
    try:
        return statistics(ref, cur, bins, column)
    except CheckError:
        return None


def sample(context: Context, spec: DriftSpec, side: str, column: str) -> Sample:
    """A column on one side, prepared once per run (sorted, or counted)."""
    dataset = getattr(spec, side)
    _prefetch(context, spec)

    def build() -> Sample:
        profile = context.subject.profile if side == "reference" else None
        if profile is not None:
            if column not in profile.columns:
                raise CheckError(f"column '{column}' is not in the reference profile "
                                 f"{profile.artifact.path}")
            return Sample.from_profile(profile.columns[column])
        return _prepare(_column_values(context, spec, dataset, column),
                        _is_numeric(context, spec, column))

    return context.memo(("drift-sample", side, dataset, column), build)


# --------------------------------------------------------------------- statistics


def ks_and_wasserstein(ref: np.ndarray, cur: np.ndarray, ref_size: int | None = None
                       ) -> tuple[float, float, float]:
    """KS statistic, its asymptotic two-sided p-value (as scipy's ks_2samp with
    method='asymp') and the first Wasserstein distance, from one merge of the two sorted
    samples: both read the gap between the two distribution functions. `ref_size`: the
    number of values behind `ref` when it is a quantile sketch."""
    merged_order = np.argsort(np.concatenate([ref, cur]), kind="stable")  # merges two runs
    values = np.concatenate([ref, cur])[merged_order]
    from_ref = merged_order < len(ref)
    cdf_ref = np.cumsum(from_ref) / len(ref)
    cdf_cur = np.cumsum(~from_ref) / len(cur)
    last_of_tie = np.r_[values[1:] != values[:-1], True]  # evaluate after each tied block
    gap = np.abs(cdf_ref - cdf_cur)[last_of_tie]
    d = float(gap.max())
    distinct = values[last_of_tie]
    w = float(np.sum(gap[:-1] * np.diff(distinct)))
    n_ref = ref_size or len(ref)
    en = n_ref * len(cur) / (n_ref + len(cur))
    return d, float(np.clip(sps.kstwo.sf(d, np.round(en)), 0, 1)), w


def ks(ref: np.ndarray, cur: np.ndarray, ref_size: int | None = None) -> tuple[float, float]:
    """Two-sample KS statistic and asymptotic p-value from sorted samples."""
    d, p, _ = ks_and_wasserstein(ref, cur, ref_size)
    return d, p


def wasserstein(ref: np.ndarray, cur: np.ndarray) -> float:
    """First Wasserstein distance between two sorted samples (as scipy computes it)."""
    return ks_and_wasserstein(ref, cur)[2]


def quantile_bins(ref: np.ndarray, cur: np.ndarray, bins: int) -> tuple[np.ndarray, ...]:
    """Shares of each sample in bins whose inner edges are reference quantiles."""
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.diff(np.r_[0, np.searchsorted(ref, edges, "right"), len(ref)])
    cur_counts = np.diff(np.r_[0, np.searchsorted(cur, edges, "right"), len(cur)])
    return edges, ref_counts / len(ref), cur_counts / len(cur)


def psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    """Population stability index: sum of (cur - ref) * ln(cur / ref), empty bins floored."""
    r, c = np.maximum(ref_share, PSI_FLOOR), np.maximum(cur_share, PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def _distributions(context: Context, spec: DriftSpec, column: str) -> dict[str, Any]:
    """Every statistic of one column, computed once per run."""
    return context.memo(("drift", spec.reference, spec.current, column, spec.bins),
                        lambda: statistics(sample(context, spec, "reference", column),
                                           sample(context, spec, "current", column),
                                           spec.bins, column))


def statistics(ref: Sample, cur: Sample, bins: int, column: str) -> dict[str, Any]:
    """Every drift statistic of one column from its two prepared samples."""
    out: dict[str, Any] = {
        "missing_share": abs(cur.missing / max(cur.rows, 1) - ref.missing / max(ref.rows, 1)),
        "reference_rows": ref.rows, "current_rows": cur.rows,
        "reference_values": ref.rows - ref.missing, "current_values": cur.rows - cur.missing,
    }
    if ref.numeric:
        r, c = ref.values, cur.values
        if len(r) == 0 or len(c) == 0:
            return {**out, "empty": f"column '{column}' has no values on one side"}
        out["ks"], out["ks_p"], distance = ks_and_wasserstein(r, c, ref.size)
        spread = ref.spread if ref.spread is not None else float(np.std(r))
        out["wasserstein"] = distance / (spread if spread > 0 else 1.0)
        if ref.bins is not None:  # a profile: its exact reference-quantile bins
            edges, r_share = ref.bins
            c_share = np.diff(np.r_[0, np.searchsorted(c, edges, "right"), len(c)]) / len(c)
        else:
            edges, r_share, c_share = quantile_bins(r, c, bins)
        out["bins"] = {"edges": edges.tolist(), "reference": r_share.tolist(),
                       "current": c_share.tolist()}
        n_ref = ref.size or len(r)  # a profile's shares are of its `values` values
        out["binned_chi2"], out["binned_p"], out["binned_df"] = homogeneity(
            np.round(np.asarray(r_share) * n_ref), np.round(c_share * len(c)))
    else:
        categories = sorted(set(ref.counts) | set(cur.counts))
        r_counts = np.array([ref.counts.get(k, 0) for k in categories], dtype=float)
        c_counts = np.array([cur.counts.get(k, 0) for k in categories], dtype=float)
        if r_counts.sum() == 0 or c_counts.sum() == 0:
            return {**out, "empty": f"column '{column}' has no values on one side"}
        r_share, c_share = r_counts / r_counts.sum(), c_counts / c_counts.sum()
        chi2, p, df = homogeneity(r_counts, c_counts)
        out["chi2"], out["chi2_p"] = chi2, p
        out["cramers_v"] = float(np.sqrt(chi2 / (r_counts.sum() + c_counts.sum())))  # 2 rows
        out["binned_chi2"], out["binned_p"], out["binned_df"] = chi2, p, df
        out["total_variation"] = float(0.5 * np.abs(r_share - c_share).sum())
        unseen = [k for k in categories if ref.counts.get(k, 0) == 0]
        out["unseen_categories"] = float(sum(cur.counts.get(k, 0) for k in unseen)
                                         / c_counts.sum())
        out["unseen"] = unseen[:20]
        out["psi"] = psi(r_share, c_share)
        out["jensen_shannon"] = float(jensenshannon(r_share, c_share, base=2))
        out["bins"] = {"categories": categories[:50], "reference": r_share[:50].tolist(),
                       "current": c_share[:50].tolist()}  # the evidence shows the first 50
        return out
    r_share, c_share = np.array(out["bins"]["reference"]), np.array(out["bins"]["current"])
    out["psi"] = psi(r_share, c_share)
    out["jensen_shannon"] = float(jensenshannon(r_share, c_share, base=2))
    return out


def homogeneity(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float, int]:
    """Chi-square test that two samples' counts over the same bins (or categories) come
    from one distribution: statistic, p-value, degrees of freedom (bins used - 1). Bins
    empty on both sides carry no information and are left out; fewer than two: no test.
    Under no drift, PSI * n*m/(n+m) approximately follows the same chi-square law."""
    table = np.stack([ref_counts, cur_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    chi2, p, df, _ = sps.chi2_contingency(table, correction=False)
    return float(chi2), float(p), int(df)


def corrected_p_values(rule: DriftRule, spec: DriftSpec, context: Context) -> dict[str, float]:
    """p-values of a rule's columns, corrected across them (BH by default)."""

    def build() -> dict[str, float]:
        # only columns measured with enough data: one broken column spoils no other's p
        columns, raw = [], []
        for column in select_columns(rule, spec, context):
            try:
                found = _distributions(context, spec, column)
            except CheckError:
                continue
            p = found.get(P_VALUE[rule.test])
            if p is not None and np.isfinite(p) and _enough(found, spec):
                columns.append(column)
                raw.append(p)
        raw = np.array(raw)
        if spec.correction == "bonferroni":
            adjusted = np.minimum(raw * len(raw), 1.0)
        elif spec.correction == "benjamini_hochberg" and len(raw):
            adjusted = sps.false_discovery_control(raw, method="bh")
        else:
            adjusted = raw
        return dict(zip(columns, adjusted.tolist(), strict=True))

    return context.memo(("drift-p", id(rule)), build)


def _enough(found: dict, spec: DriftSpec) -> bool:
    return min(found["current_values"], found["reference_values"]) >= spec.min_rows


def _column_check(rule: DriftRule, spec: DriftSpec, column: str):
    def evaluate(context: Context) -> Outcome:
        found = _distributions(context, spec, column)
        if rule.test == "missing_share":
            value = found["missing_share"]
            return Outcome(value <= rule.max, value, {"max": rule.max}, found["current_rows"],
                           f"missing share changed by {value:.4g} "
                           f"{'<=' if value <= rule.max else '>'} {rule.max:g}",
                           {k: found[k] for k in ("reference_rows", "current_rows")})
        if "empty" in found:
            raise CheckError(found["empty"])
        profile = context.subject.profile
        if profile is not None and profile.bins != spec.bins and "edges" in found["bins"] \
                and rule.test in ("psi", "jensen_shannon"):
            raise CheckError(f"the reference profile was made with {profile.bins} bins; the "
                             f"policy asks for {spec.bins}: make the profile with "
                             f"`--bins {spec.bins}` or set `bins: {profile.bins}`")
        evidence = {key: found[key] for key in ("reference_rows", "current_rows", "bins")}
        if not _enough(found, spec):
            return Outcome(False, None, {}, found["current_values"], "too few values",
                           evidence, inconclusive=f"{found['current_values']} current and "
                           f"{found['reference_values']} reference values, fewer than "
                           f"min_rows {spec.min_rows}")
        if rule.test in ("ks", "chi2"):
            statistic = found[rule.test]
            effect = found["ks"] if rule.test == "ks" else found["cramers_v"]
            raw_p = found[f"{rule.test}_p"]
            p = corrected_p_values(rule, spec, context)[column]
            min_p = rule.min_p_value if rule.min_p_value is not None else DEFAULT_MIN_P
            min_effect = rule.min_effect if rule.min_effect is not None else DEFAULT_MIN_EFFECT
            drifted = p < min_p and effect >= min_effect
            evidence.update(statistic=statistic, p_value=raw_p, p_value_corrected=p,
                            correction=spec.correction, effect=effect,
                            min_p_value=min_p, min_effect=min_effect)
            message = (f"{rule.test} = {statistic:.4g}, p = {raw_p:.3g} (corrected "
                       f"{p:.3g}), effect {effect:.3f}: "
                       + ("drift" if drifted else "no drift") + f" (p < {min_p:g} and "
                       f"effect >= {min_effect:g})")
            return Outcome(not drifted, effect, {"max_effect": min_effect,
                                                 "min_p_value": min_p},
                           found["current_rows"], message, evidence)
        value = found[rule.test]
        if rule.test == "unseen_categories":
            evidence["unseen"] = found["unseen"]
        name = f"{rule.test.replace('_', ' ')} = {value:.4g}"
        if rule.test not in P_VALUE:
            passed = value <= rule.max
            return Outcome(passed, value, {"max": rule.max}, found["current_rows"],
                           f"{name} {'<=' if passed else '>'} {rule.max:g}", evidence)
        # a distance: drift only when its shift is also distinguishable from noise
        raw_p = found[P_VALUE[rule.test]]
        p = corrected_p_values(rule, spec, context).get(column, raw_p)
        min_p = rule.min_p_value if rule.min_p_value is not None else DEFAULT_MIN_P
        over, significant = value > rule.max, p < min_p
        test = "two-sample KS test" if rule.test == "wasserstein" else (
            f"chi-square test of the binned counts, {found['binned_df']} degrees of freedom")
        evidence.update(p_value=raw_p, p_value_corrected=p, correction=spec.correction,
                        min_p_value=min_p, p_value_test=test)
        noise = f"p = {raw_p:.3g} (corrected {p:.3g})"
        if not over:
            message = f"{name} <= {rule.max:g} ({noise}): no drift"
        elif significant:
            message = f"{name} > {rule.max:g} and {noise} < {min_p:g}: drift"
        else:
            message = (f"{name} > {rule.max:g} but {noise} >= {min_p:g}: within sampling "
                       f"noise of {found['reference_values']} reference and "
                       f"{found['current_values']} current values, no drift")
        return Outcome(not (over and significant), value, {"max": rule.max},
                       found["current_rows"], message, evidence)

    return evaluate


def _dataset_check(rule: DriftRule, spec: DriftSpec):
    """Share or number of columns that drifted under any per-column rule of the section."""

    def evaluate(context: Context) -> Outcome:
        drifted, tested = set(), set()
        for other in spec.rules:
            if other.test in DATASET_TESTS:
                continue
            for column in select_columns(other, spec, context):
                tested.add(column)
                if not _column_check(other, spec, column)(context).passed:
                    drifted.add(column)
        if not tested:
            raise CheckError("no per-column drift rule selects a column")
        value = len(drifted) / len(tested) if rule.test == "share_of_drifted_columns" \
            else float(len(drifted))
        passed = value <= rule.max
        return Outcome(passed, value, {"max": rule.max}, len(tested),
                       f"{len(drifted)} of {len(tested)} columns drifted"
                       + (f" ({', '.join(sorted(drifted))})" if drifted else "")
                       + f"; {rule.test.replace('_', ' ')} = {value:.4g} "
                       f"{'<=' if passed else '>'} {rule.max:g}",
                       {"drifted": sorted(drifted), "tested": sorted(tested)})

    return evaluate


def _kinds(test: str) -> str:
    numeric, categorical = test in NUMERIC_TESTS, test in CATEGORICAL_TESTS
    return "numeric and categorical" if numeric and categorical else (
        "numeric" if numeric else "categorical")


def _describe(rule: DriftRule) -> str:
    if rule.test in ("ks", "chi2"):
        min_p = rule.min_p_value if rule.min_p_value is not None else DEFAULT_MIN_P
        effect = rule.min_effect if rule.min_effect is not None else DEFAULT_MIN_EFFECT
        return f"{rule.test}: drift when corrected p < {min_p:g} and effect >= {effect:g}"
    if rule.test in P_VALUE:
        min_p = rule.min_p_value if rule.min_p_value is not None else DEFAULT_MIN_P
        return (f"{rule.test.replace('_', ' ')}: drift when > {rule.max:g} and corrected "
                f"p < {min_p:g}")
    return f"{rule.test.replace('_', ' ')} <= {rule.max:g}"
