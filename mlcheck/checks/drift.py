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
reaches a usual bound, so there the bound decides, as before. The two shares are judged the
same way: `unseen_categories` by an exact test of the current rows in categories the
reference lacks (`unseen_test`), `missing_share` by the chi-square test of the missing and
present counts.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import bdtrc, chdtrc, gammaln, kolmogorov, ndtr, rel_entr, xlog1py, xlogy

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
KS_LIMIT = 10_000  # KS p-values from this effective size on: the limiting distribution
MERGED = ("ks", "wasserstein")  # the tests that read the merge of the two sorted samples
# the p-value each test is judged by (the others: the test that their value is not noise);
# missing_share's is computed from the row counts (`missing_test`)
P_VALUE = {"ks": "ks_p", "chi2": "chi2_p", "psi": "binned_p", "jensen_shannon": "binned_p",
           "total_variation": "binned_p", "wasserstein": "ks_p",
           "unseen_categories": "unseen_p"}
NOISE_TEST = {"wasserstein": "two-sample KS test",
              "unseen_categories": "exact test of the rows in unseen categories, each "
              "category's rows split at random between the two sides",
              "missing_share": "chi-square test of the missing and present counts "
              "(two-proportion test)"}
UNSEEN_EXACT_WORK = 2 * 10**7  # beyond (sizes x unseen rows), a normal approximation
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


def tested_columns(spec: DriftSpec, context: Context) -> set[str]:
    """Every column some per-column rule of the section tests (a rule whose columns cannot
    be selected is left out: its own check reports why)."""
    columns: set[str] = set()
    for rule in spec.rules:
        if rule.test not in DATASET_TESTS:
            with contextlib.suppress(CheckError):
                columns.update(select_columns(rule, spec, context))
    return columns


def select_columns(rule: DriftRule, spec: DriftSpec, context: Context) -> list[str]:
    """Columns a rule applies to: named, or all of the reference's (the target only with
    `target: true` and when the current data has it, the model's scores with
    `prediction: true`), minus exclusions. With `all`, only columns of the kind the test
    applies to; a named column of the wrong kind, or an unknown exclusion, is an error."""
    target = context.policy.data.target
    profile = context.subject.profile
    available = list(profile.columns) if profile is not None else _columns(
        context, spec.reference)
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
        if spec.target and target and target in _columns(context, spec.current):
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
    dataset = spec.reference if profile is None else spec.current
    if context.spark_frame(dataset) is not None:
        from mlcheck.spark import is_numeric_column

        return is_numeric_column(context.spark_frame(dataset), column)
    return is_numeric(context.frame(dataset)[column])


def _columns(context: Context, dataset: str) -> list[str]:
    """A dataset's column names, whether its rows are in pandas or in Spark."""
    spark = context.spark_frame(dataset)
    return list(spark.columns) if spark is not None else list(context.frame(dataset).columns)


def on_spark(context: Context, spec: DriftSpec) -> bool:
    """Whether a side of the section is a Spark dataset: then mlcheck/spark.py computes
    every statistic where the rows are, and the driver reads counts and sketches."""
    sides = [spec.current] + ([spec.reference] if context.subject.profile is None else [])
    return any(context.spark_frame(side) is not None for side in sides)


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
    if pd.api.types.is_bool_dtype(values) or (  # booleans with nulls read as objects
            values.dtype == object and pd.api.types.infer_dtype(values) == "boolean"):
        return values.astype(bool).astype(int).astype(str)
    if pd.api.types.is_float_dtype(values):
        whole = np.isfinite(values) & (values == np.floor(values))
        return values.astype(object).where(~whole, values[whole].astype("int64")).astype(str)
    return values.astype(str)


def _prefetch(context: Context, spec: DriftSpec) -> None:
    """Compute the statistics of every data column the section tests, on all cores at
    once (numpy's sorts release the GIL), before the first check reads one."""
    key = ("drift-prefetch", spec.reference, spec.current)
    done = context.__dict__.setdefault("_drift_prefetched", set())
    if key in done or on_spark(context, spec):
        return
    done.add(key)
    columns = tested_columns(spec, context)
    ready = sorted(c for c in columns if not (c == PREDICTION and spec.prediction))
    merge = _merges(spec)

    def measure(column: str) -> dict | None:
        """One column: both sides prepared, their statistics kept, the sorted values not
        (memory: a column per core, not every column)."""
        try:
            return statistics(_sample(context, spec, "reference", column),
                              _sample(context, spec, "current", column), spec.bins, column,
                              merge)
        except CheckError:  # raised again by the column's own checks
            return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        computed = list(pool.map(measure, ready))
    for column, found in zip(ready, computed, strict=True):
        if found is not None:
            context.memo(("drift", spec.reference, spec.current, column, spec.bins),
                         lambda f=found: f)


def _merges(spec: DriftSpec) -> bool:
    """Whether a rule of the section reads the merged samples (KS, Wasserstein)."""
    return any(rule.test in MERGED for rule in spec.rules)


def _sample(context: Context, spec: DriftSpec, side: str, column: str) -> Sample:
    """A column on one side, prepared (sorted, or counted); not kept: the statistics are."""
    profile = context.subject.profile if side == "reference" else None
    if profile is not None:
        if column not in profile.columns:
            raise CheckError(f"column '{column}' is not in the reference profile "
                             f"{profile.artifact.path}")
        return Sample.from_profile(profile.columns[column])
    return _prepare(_column_values(context, spec, getattr(spec, side), column),
                    _is_numeric(context, spec, column))


# --------------------------------------------------------------------- statistics


def ks_and_wasserstein(ref: np.ndarray, cur: np.ndarray, ref_size: int | None = None
                       ) -> tuple[float, float, float]:
    """KS statistic, its asymptotic two-sided p-value (as scipy's ks_2samp with
    method='asymp') and the first Wasserstein distance, from one merge of the two sorted
    samples: both read the gap between the two distribution functions. `ref_size`: the
    number of values behind `ref` when it is a quantile sketch."""
    n, m = len(ref), len(cur)
    both = np.concatenate([ref, cur])
    order = np.argsort(both, kind="stable")  # merges the two sorted runs
    step = np.diff(both[order])  # 0 inside a block of ties: read the gap after its last
    del both
    # n*m times the gap between the two distribution functions after each merged value,
    # in integers: (ref values so far) * m - (cur values so far) * n
    gap = np.cumsum(order < n, dtype=np.int64) * (n + m)
    del order
    gap -= np.arange(1, n + m + 1, dtype=np.int64) * n
    np.abs(gap, out=gap)
    d = float(np.max(gap[:-1], where=step != 0, initial=0)) / (n * m)
    w = float(np.dot(gap[:-1], step)) / (n * m)
    n_ref = ref_size or n
    return d, ks_p_value(d, n_ref * len(cur) / (n_ref + len(cur))), w


def ks_p_value(d: float, en: float) -> float:
    """Asymptotic two-sided KS p-value at effective size `en`: scipy's (`kstwo` at the
    rounded size, as `ks_2samp(method='asymp')`) below KS_LIMIT; from there its limit,
    Kolmogorov's distribution, which agrees with it to under 1% and takes microseconds
    where `kstwo` can take a second (at hundreds of thousands of rows)."""
    if en < KS_LIMIT:
        from scipy import stats as sps  # about a second to import: only when needed

        return float(np.clip(sps.kstwo.sf(d, np.round(en)), 0, 1))
    return float(np.clip(kolmogorov(np.sqrt(en) * d), 0, 1))


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
    if on_spark(context, spec):  # all of the section's columns at once, in a few passes
        from mlcheck.spark import drift_statistics

        found = context.memo(("spark-drift", spec.reference, spec.current, spec.bins),
                             lambda: drift_statistics(context, spec))[column]
        if isinstance(found, CheckError):
            raise found
        return found
    _prefetch(context, spec)  # every column at once, on all cores
    return context.memo(("drift", spec.reference, spec.current, column, spec.bins),
                        lambda: statistics(_sample(context, spec, "reference", column),
                                           _sample(context, spec, "current", column),
                                           spec.bins, column, _merges(spec)))


def statistics(ref: Sample, cur: Sample, bins: int, column: str, merge: bool = True
               ) -> dict[str, Any]:
    """Every drift statistic of one column from its two prepared samples; KS and
    Wasserstein (one merge of the sorted samples) only with `merge`."""
    out: dict[str, Any] = {
        "missing_share": abs(cur.missing / max(cur.rows, 1) - ref.missing / max(ref.rows, 1)),
        "reference_rows": ref.rows, "current_rows": cur.rows,
        "reference_values": ref.rows - ref.missing, "current_values": cur.rows - cur.missing,
    }
    if ref.numeric:
        r, c = ref.values, cur.values
        if len(r) == 0 or len(c) == 0:
            return {**out, "empty": f"column '{column}' has no values on one side"}
        if merge:
            out["ks"], out["ks_p"], distance = ks_and_wasserstein(r, c, ref.size)
            spread = ref.spread if ref.spread is not None else float(np.std(r))
            out["wasserstein"] = distance / (spread if spread > 0 else 1.0)
        if ref.bins is not None:  # a profile: its exact reference-quantile bins
            edges, r_share = ref.bins
            c_share = np.diff(np.r_[0, np.searchsorted(c, edges, "right"), len(c)]) / len(c)
        else:
            edges, r_share, c_share = quantile_bins(r, c, bins)
        n_ref = ref.size or len(r)  # a profile's shares are of its `values` values
        return {**out, **binned_statistics(edges, r_share, c_share, n_ref, len(c))}
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
        out["unseen_rows"] = int(c_counts[r_counts == 0].sum())
        out["unseen_categories"] = out["unseen_rows"] / float(c_counts.sum())
        out["unseen"] = unseen[:20]
        out["unseen_p"] = unseen_test(r_counts, c_counts)
        # Good-Turing: the share of new rows expected in categories the reference lacks
        out["good_turing_rate"] = float((r_counts == 1).sum() / r_counts.sum())
        out["psi"] = psi(r_share, c_share)
        out["jensen_shannon"] = jensen_shannon(r_share, c_share)
        out["bins"] = {"categories": categories[:50], "reference": r_share[:50].tolist(),
                       "current": c_share[:50].tolist()}  # the evidence shows the first 50
        return out


def binned_statistics(edges: np.ndarray, ref_share: Any, cur_share: Any, ref_values: int,
                      cur_values: int) -> dict[str, Any]:
    """A numeric column's statistics from its reference-quantile bins (edges, and each
    side's share of values per bin), however the shares were counted (here, on Spark, or
    in a profile): the bins' evidence, the chi-square test of their counts, PSI and
    Jensen-Shannon."""
    ref_share = np.asarray(ref_share, dtype=float)
    cur_share = np.asarray(cur_share, dtype=float)
    chi2, p, df = homogeneity(np.round(ref_share * ref_values), np.round(cur_share * cur_values))
    return {"bins": {"edges": np.asarray(edges).tolist(), "reference": ref_share.tolist(),
                     "current": cur_share.tolist()},
            "binned_chi2": chi2, "binned_p": p, "binned_df": df,
            "psi": psi(ref_share, cur_share), "jensen_shannon": jensen_shannon(ref_share,
                                                                                cur_share)}


def homogeneity(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float, int]:
    """Chi-square test that two samples' counts over the same bins (or categories) come
    from one distribution: statistic, p-value, degrees of freedom (bins used - 1). Bins
    empty on both sides carry no information and are left out; fewer than two: no test.
    Under no drift, PSI * n*m/(n+m) approximately follows the same chi-square law."""
    table = np.stack([ref_counts, cur_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    # scipy.stats.chi2_contingency(table, correction=False), with scipy.special alone
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    chi2 = float(np.sum((table - expected) ** 2 / expected))
    df = table.shape[1] - 1
    return chi2, float(chdtrc(df, chi2)), df


def jensen_shannon(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (scipy.spatial.distance.jensenshannon's)."""
    p, q = ref_share / np.sum(ref_share), cur_share / np.sum(cur_share)
    m = (p + q) / 2
    return float(np.sqrt((np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))) / np.log(2) / 2))


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control's)."""
    count = len(p_values)
    order = np.argsort(p_values)
    adjusted = np.empty(count)
    scaled = p_values[order] * count / np.arange(1, count + 1)
    adjusted[order] = np.minimum.accumulate(scaled[::-1])[::-1]
    return np.minimum(adjusted, 1.0)


def unseen_test(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """p-value of the current rows in categories the reference lacks. With no drift, the
    rows of each category (pooled over both sides) fall on either side at random, in
    proportion to the two sizes n and m, so a category's c rows are all current, and
    unseen by the reference, with chance (m / (n + m)) ** c, independently of the other
    categories (the Poisson view of the split). The p-value is the chance that such
    categories hold at least the unseen rows observed: exact, by convolving the number of
    wholly-current categories of each size, up to UNSEEN_EXACT_WORK; beyond, a normal
    approximation with the same mean and variance. Rare categories are what the reference
    misses by chance, and many of them are what makes 100 rows miss a tenth of the next
    100; a category as large as the count observed reaches it alone."""
    ref_counts, cur_counts = np.asarray(ref_counts, float), np.asarray(cur_counts, float)
    unseen = int(cur_counts[ref_counts == 0].sum())
    if unseen == 0:
        return 1.0
    pooled = (ref_counts + cur_counts)[ref_counts + cur_counts > 0].astype(np.int64)
    sizes, groups = np.unique(pooled, return_counts=True)
    whole = np.exp(sizes * np.log(cur_counts.sum() / pooled.sum()))  # all c rows current
    keep = groups * whole > 1e-15  # sizes that can matter (the rest: under 1e-15 each)
    sizes, groups, whole = sizes[keep], groups[keep], whole[keep]
    small = sizes < unseen
    if small.sum() * unseen > UNSEEN_EXACT_WORK:
        mean = float(np.sum(groups * sizes * whole))
        spread = float(np.sqrt(np.sum(groups * sizes**2 * whole * (1 - whole))))
        return float(ndtr((mean - unseen + 0.5) / spread))
    below = np.zeros(unseen + 1)  # chances of 0 .. unseen - 1 such rows, and of unseen or more
    below[0] = 1.0
    for size, count, chance in zip(sizes[small], groups[small], whole[small], strict=True):
        wholly = np.arange(min(count, (unseen - 1) // size) + 1)  # of this size, all current
        kernel = np.zeros(unseen + 1)
        kernel[size * wholly] = np.exp(gammaln(count + 1) - gammaln(wholly + 1)
                                       - gammaln(count - wholly + 1) + xlogy(wholly, chance)
                                       + xlog1py(count - wholly, -chance))  # binomial
        kernel[unseen] = bdtrc(wholly[-1], count, chance)  # more than wholly[-1] of them
        summed = _convolve(below, kernel)
        below = np.clip(summed[:unseen + 1], 0, None)
        below[unseen] += max(float(summed[unseen + 1:].sum()), 0.0)
    reached = min(float(below[unseen]), 1.0)
    none_large = float(np.sum(groups[~small] * np.log1p(-whole[~small])))
    return min(1.0, reached + (1 - reached) * -float(np.expm1(none_large)))


def _convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.convolve, through the FFT for long arrays (the same numbers, to rounding)."""
    if min(len(a), len(b)) < 256:
        return np.convolve(a, b)
    size = len(a) + len(b) - 1
    fast = 1 << (size - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(a, fast) * np.fft.rfft(b, fast), fast)[:size]


def missing_test(found: dict) -> float | None:
    """p-value that both sides miss the same share of values: the chi-square test of the
    missing and present counts (the two-proportion z-test), from the row and value counts
    every engine reports. Measured with no change at 1 to 50% missing and 100 to 30,000
    rows a side: p < 0.01 in at most 1.8% of samples. None when nothing is missing (or
    nothing present) on either side: no test, and no column to count in the correction."""
    missing = [found[f"{side}_rows"] - found[f"{side}_values"]
               for side in ("reference", "current")]
    present = [found["reference_values"], found["current_values"]]
    if min(sum(missing), sum(present)) == 0:
        return None
    return homogeneity(np.array([missing[0], present[0]]),
                       np.array([missing[1], present[1]]))[1]


def _raw_p(found: dict, test: str) -> float | None:
    return missing_test(found) if test == "missing_share" else found.get(P_VALUE[test])


def corrected_p_values(rule: DriftRule, spec: DriftSpec, context: Context) -> dict[str, float]:
    """p-values of a rule's columns, corrected across them (BH by default)."""

    def build() -> dict[str, float]:
        # only columns measured with enough data (missing_share: any): one broken column
        # spoils no other's p
        columns, raw = [], []
        for column in select_columns(rule, spec, context):
            try:
                found = _distributions(context, spec, column)
            except CheckError:
                continue
            p = _raw_p(found, rule.test)
            if p is not None and np.isfinite(p) and (
                    rule.test == "missing_share" or _enough(found, spec)):
                columns.append(column)
                raw.append(p)
        raw = np.array(raw)
        if spec.correction == "bonferroni":
            adjusted = np.minimum(raw * len(raw), 1.0)
        elif spec.correction == "benjamini_hochberg" and len(raw):
            adjusted = benjamini_hochberg(raw)
        else:
            adjusted = raw
        return dict(zip(columns, adjusted.tolist(), strict=True))

    return context.memo(("drift-p", id(rule)), build)


def _finite(found: dict, test: str, column: str) -> None:
    """A statistic or p-value that is NaN (infinite values in the column, say) compares
    false with every bound: it is the column's error, never a pass."""
    bad = [name for name in (test, P_VALUE.get(test)) if name and name in found
           and found[name] is not None and not np.isfinite(found[name])]
    if bad:
        raise CheckError(f"{test} cannot be computed for column '{column}' ({', '.join(bad)} "
                         "is not a finite number): infinite values in the column?")


def _enough(found: dict, spec: DriftSpec) -> bool:
    return min(found["current_values"], found["reference_values"]) >= spec.min_rows


def _column_check(rule: DriftRule, spec: DriftSpec, column: str):
    def evaluate(context: Context) -> Outcome:
        found = _distributions(context, spec, column)
        if rule.test == "missing_share":  # reads the row counts alone: any size, any values
            evidence = {k: found[k] for k in ("reference_rows", "current_rows")}
            evidence.update(reference_missing=found["reference_rows"] - found[
                "reference_values"], current_missing=found["current_rows"] - found[
                "current_values"])
            return _judged(rule, spec, context, column, found, evidence)
        if "empty" in found:
            raise CheckError(found["empty"])
        profile = context.subject.profile
        if profile is not None and profile.bins != spec.bins and "edges" in found["bins"] \
                and rule.test in ("psi", "jensen_shannon"):
            raise CheckError(f"the reference profile was made with {profile.bins} bins; the "
                             f"policy asks for {spec.bins}: make the profile with "
                             f"`--bins {spec.bins}` or set `bins: {profile.bins}`")
        evidence = {key: found[key] for key in ("reference_rows", "current_rows", "bins")}
        if "sketch" in found:  # computed on Spark: KS and Wasserstein bounds (docs/spark.md)
            evidence["sketch"] = found["sketch"]
        if not _enough(found, spec):
            return Outcome(False, None, {}, found["current_values"], "too few values",
                           evidence, inconclusive=f"{found['current_values']} current and "
                           f"{found['reference_values']} reference values, fewer than "
                           f"min_rows {spec.min_rows}")
        _finite(found, rule.test, column)
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
        if rule.test == "unseen_categories":
            evidence.update({k: found[k] for k in ("unseen", "unseen_rows",
                                                   "good_turing_rate")})
        return _judged(rule, spec, context, column, found, evidence)

    return evaluate


def _judged(rule: DriftRule, spec: DriftSpec, context: Context, column: str, found: dict,
            evidence: dict) -> Outcome:
    """A statistic with a `max`: drift only when it exceeds the bound *and* its test says
    the value is not sampling noise (corrected p below the rule's minimum)."""
    value = found[rule.test]
    name = f"{rule.test.replace('_', ' ')} = {value:.4g}"
    raw_p = _raw_p(found, rule.test)
    raw_p = 1.0 if raw_p is None else raw_p  # nothing to test: the value is 0
    p = corrected_p_values(rule, spec, context).get(column, raw_p)
    min_p = rule.min_p_value if rule.min_p_value is not None else DEFAULT_MIN_P
    over, significant = value > rule.max, p < min_p
    test = NOISE_TEST.get(rule.test) or (
        f"chi-square test of the binned counts, {found['binned_df']} degrees of freedom")
    evidence.update(p_value=raw_p, p_value_corrected=p, correction=spec.correction,
                    min_p_value=min_p, p_value_test=test)
    noise = f"p = {raw_p:.3g} (corrected {p:.3g})"
    if not over:
        message = f"{name} <= {rule.max:g} ({noise}): no drift"
    elif significant:
        message = f"{name} > {rule.max:g} and {noise} < {min_p:g}: drift"
    else:
        size = "rows" if rule.test == "missing_share" else "values"
        message = (f"{name} > {rule.max:g} but {noise} >= {min_p:g}: within sampling "
                   f"noise of {found[f'reference_{size}']} reference and "
                   f"{found[f'current_{size}']} current {size}")
        if rule.test == "unseen_categories":
            message += (f" (Good-Turing: {found['good_turing_rate']:.3g} of new rows fall in "
                        "categories such a reference has not seen)")
        message += ", no drift"
    return Outcome(not (over and significant), value, {"max": rule.max},
                   found["current_rows"], message, evidence)


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
    min_p = rule.min_p_value if rule.min_p_value is not None else DEFAULT_MIN_P
    return (f"{rule.test.replace('_', ' ')}: drift when > {rule.max:g} and corrected "
            f"p < {min_p:g}")
