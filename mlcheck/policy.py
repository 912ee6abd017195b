"""The policy language: typed, immutable models, and YAML loading that remembers positions.

A policy is validated by pydantic (types, unknown keys, bounds), then cross-checked
(references between sections). Every problem is reported with the file, line and column
it was written at, and a suggestion where a near-miss is likely a typo.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from mlcheck.errors import Location, PolicyError, display_path, suggest
from mlcheck.inputs import POLICY, not_regular, read_limited
from mlcheck.metrics import (
    BINARY,
    DISPARITIES,
    METRIC_NAMES,
    METRICS,
    MULTICLASS,
    RATES,
    REGRESSION,
    TASKS,
    metrics_for,
)

POLICY_VERSION = 1
Severity = Literal["block", "warn"]
Task = Literal[TASKS]  # type: ignore[valid-type]
MetricName = Literal[METRIC_NAMES]  # type: ignore[valid-type]
DType = Literal[
    "int64", "int32", "Int64", "float64", "float32", "str", "string", "bool",
    "boolean", "category", "datetime64[ns]", "object",
]
Scalar = bool | int | float | str
Number = int | float  # ints stay ints, so messages read `ge 18`, not `ge 18.0`
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]


class Spec(BaseModel):
    """Base of every policy section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _path_shorthand(value: Any) -> Any:
    """Allow `key: some/path` where `key: {path: some/path}` is meant (`{uri: ...}` for an
    MLflow model URI)."""
    if isinstance(value, str):
        return {"uri" if value.startswith(MODEL_URI_SCHEMES) else "path": value}
    return value


MODEL_URI_SCHEMES = ("models:/", "runs:/")
MODEL_URI_FORMS = ("models:/NAME@ALIAS, models:/NAME/VERSION, models:/MODEL_ID or "
                   "runs:/RUN_ID/PATH")
_MODEL_URI = re.compile(r"^models:/[^/@]+(@[\w-]+|/\d+)?$|^runs:/[0-9A-Za-z]+/\S+$")


def _model_uri(value: str | None) -> str | None:
    """An MLflow model URI that names one model: a stage or `latest` is not pinned."""
    if value is None or _MODEL_URI.match(value):
        return value
    if re.match(r"^models:/[^/@]+/[^/]+$", value):
        raise ValueError(f"{value!r} names a stage or 'latest', which moves without notice; "
                         "name an alias (models:/NAME@ALIAS) or a version (models:/NAME/3)")
    raise ValueError(f"{value!r} is not an MLflow model URI; use {MODEL_URI_FORMS}")


def _no_secret(value: str | None) -> str | None:
    """A tracking or registry URI in a policy (which is committed and recorded) must hold
    no credentials: those belong in the environment, where MLflow reads them."""
    if value is None:
        return value
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(value)
    secret = [k for k, _ in parse_qsl(parts.query)
              if re.search(r"pass|token|secret|key", k, re.I)]
    if parts.password or secret:
        raise ValueError("holds a credential; a policy is committed and recorded, so set "
                         "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or "
                         "MLFLOW_TRACKING_TOKEN in the environment instead")
    return value


class ModelSource(Spec):
    """Where predictions come from: a model file, a factory, or columns of the data."""

    path: str | None = Field(None, description="Model file (.skops; .pkl/.joblib need trust).")
    uri: str | None = Field(
        None, description="MLflow model: models:/NAME@ALIAS, models:/NAME/VERSION, "
        "models:/MODEL_ID or runs:/RUN_ID/PATH (needs the `mlflow` extra).")
    factory: str | None = Field(
        None,
        pattern=r"^([A-Za-z_][\w.]*|[^:]+\.py):[A-Za-z_]\w*$",
        description="`package.module:function` or `path/to/file.py:function` returning a "
        "fitted model.",
    )
    sha256: Sha256 | None = Field(None, description="Expected SHA-256 of the model file "
                                  "(for a `uri`: the digest of its artifact files).")
    trust: bool = Field(False, description="Allow pickle/joblib files to be unpickled.")
    trusted_types: tuple[str, ...] = Field(
        (), description="Types a .skops file may contain beyond skops' defaults."
    )

    _uri = field_validator("uri")(lambda cls, v: _model_uri(v))
    predictions: str | None = Field(None, description="Black box: column of predicted labels.")
    scores: str | dict[str, str] | None = Field(
        None,
        description="Black box: column of scores (binary: positive-class probability; "
        "regression: the prediction), or for multiclass a mapping class -> column.",
    )
    threshold: float | None = Field(
        None, description="Binary: predict the positive label when score >= threshold."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        sources = [
            name for name, given in (
                ("path", self.path), ("uri", self.uri), ("factory", self.factory),
                ("predictions/scores", self.predictions or self.scores),
            ) if given
        ]
        if len(sources) != 1:
            raise ValueError(
                "give exactly one of `path`, `factory`, `uri`, or black-box "
                "`predictions`/`scores`" + (f" (found {', '.join(sources)})" if sources else "")
            )
        if (self.path or "").startswith(MODEL_URI_SCHEMES):
            raise ValueError(f"`path` names a file; write the MLflow model URI {self.path!r} "
                             "under `uri`")
        if self.predictions and self.threshold is not None:
            raise ValueError("give `predictions` or a `threshold` on `scores`, not both: "
                             "they are two answers to which label was predicted")
        if self.sha256 and not (self.path or self.uri):
            raise ValueError("`sha256` pins a model file or an MLflow model; it needs `path` "
                             "or `uri`")
        if self.trusted_types and not ((self.path or "").endswith(".skops") or self.uri):
            raise ValueError("`trusted_types` applies to .skops files (and MLflow models "
                             "saved with skops) only")
        return self

    @property
    def black_box(self) -> bool:
        return bool(self.predictions or self.scores)


class ModelSpec(ModelSource):
    """The candidate model, its task, and an optional baseline (champion) to compare with."""

    task: Task = Field(
        description="binary_classification, multiclass_classification or regression.")
    features: tuple[str, ...] | None = Field(
        None, description="Columns passed to the model; default: the columns the model was "
        "fitted on (`feature_names_in_`), else every column but the target."
    )
    timeout: float | None = Field(
        None, gt=0, description="Longest time one call of the model (or the baseline) may "
        "take, in seconds; a call that takes longer is the error of the checks that need it.")
    baseline: ModelSource | None = Field(None, description="The champion model, same keys.")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking server for `uri` models and --promote (default: "
        "MLFLOW_TRACKING_URI). No credentials: MLflow reads those from the environment.")
    registry_uri: str | None = Field(
        None, description="MLflow model registry, when it is not the tracking server "
        "(default: MLFLOW_REGISTRY_URI, else the tracking URI).")

    _shorthand = field_validator("baseline", mode="before")(lambda cls, v: _path_shorthand(v))
    _secrets = field_validator("tracking_uri", "registry_uri")(lambda cls, v: _no_secret(v))


class SampleSpec(Spec):
    """An exploratory run on a seeded sample of a dataset's rows; never the default."""

    rows: int = Field(ge=1, description="Rows kept (all of them when the file has fewer); "
                      "stratified by the target in classification tasks.")
    seed: int = Field(0, ge=0, description="Seed of the sample.")


class SparkSource(Spec):
    """A dataset read through a SparkSession (docs/spark.md): a table, or a path and format."""

    table: str | None = Field(None, description="A table name, e.g. `lake.events`.")
    path: str | None = Field(None, description="A path or URI Spark reads (relative paths: "
                             "to the policy file).")
    format: str | None = Field(None, description="With `path`: parquet, csv, json, orc, delta…")
    options: dict[str, str] = Field(default_factory=dict, description="Reader options, e.g. "
                                    "{header: 'true'} for CSV.")

    @model_validator(mode="after")
    def _one_source(self) -> SparkSource:
        if (self.table is None) == (self.path is None):
            raise ValueError("give exactly one of `table` or `path`")
        if self.path is not None and not self.format:
            raise ValueError("`path` needs a `format` (parquet, csv, json, orc, delta…)")
        if self.table is not None and (self.format or self.options):
            raise ValueError("`format` and `options` go with `path`, not `table`")
        return self


class DatasetSpec(Spec):
    """A dataset file (CSV, gzip'd CSV or Parquet), or a Spark source (`spark`)."""

    path: str | None = Field(None, description="File path, relative to the policy file.")
    spark: SparkSource | None = Field(None, description="Read through Spark instead of from "
                                      "a file (docs/spark.md); needs the `spark` extra.")
    sha256: Sha256 | None = Field(None, description="Expected SHA-256 of the file.")
    format: Literal["csv", "parquet"] | None = Field(None, description="Default: from suffix.")
    sample: SampleSpec | None = Field(None, description="Evaluate a seeded sample of the rows "
                                      "(exploratory runs; on a Spark source, the rows brought "
                                      "to the driver); the record and report say so.")

    @model_validator(mode="after")
    def _file_or_spark(self) -> DatasetSpec:
        if (self.path is None) == (self.spark is None):
            raise ValueError("give exactly one of `path` (a file) or `spark` (a Spark source)")
        if self.spark is not None and self.format:
            raise ValueError("`format` is for files; a Spark source sets its format under "
                             "`spark`")
        return self


class DataSpec(Spec):
    """The label and the named datasets the checks read."""

    target: str | None = Field(None, description="Column holding the true label / value.")
    positive_label: Scalar | None = Field(
        None, description="Binary: the label counted as positive (default 1 or True)."
    )
    datasets: dict[Name, DatasetSpec] = Field(
        min_length=1, description="Named datasets, e.g. eval, reference, current."
    )

    _shorthand = field_validator("datasets", mode="before")(
        lambda cls, v: {k: _path_shorthand(x) for k, x in v.items()} if isinstance(v, dict) else v
    )


class ColumnChecks(Spec):
    """Value checks on one column (pandera built-in checks)."""

    ge: Number | None = Field(None, description="Every value >= this.")
    gt: Number | None = Field(None, description="Every value > this.")
    le: Number | None = Field(None, description="Every value <= this.")
    lt: Number | None = Field(None, description="Every value < this.")
    isin: tuple[Scalar, ...] | None = Field(None, description="Allowed values.")
    notin: tuple[Scalar, ...] | None = Field(None, description="Forbidden values.")
    regex: str | None = Field(None, description="Strings must match this regular expression.")
    min_length: int | None = Field(None, ge=0, description="Minimum string length.")
    max_length: int | None = Field(None, ge=0, description="Maximum string length.")

    @model_validator(mode="after")
    def _possible(self) -> ColumnChecks:
        lower = [b for b in (self.ge, self.gt) if b is not None]
        upper = [b for b in (self.le, self.lt) if b is not None]
        if lower and upper and max(lower) > min(upper):
            raise ValueError(f"impossible range: lower bound {max(lower)} > upper {min(upper)}")
        if None not in (self.min_length, self.max_length) and self.min_length > self.max_length:
            raise ValueError("impossible: `min_length` > `max_length`")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return self


class ColumnSpec(Spec):
    """What one column must look like."""

    dtype: DType | None = Field(None, description="Expected dtype; not coerced.")
    nullable: bool = Field(False, description="Whether missing values are allowed.")
    unique: bool = Field(False, description="Whether values must be unique.")
    required: bool = Field(True, description="Whether the column must be present.")
    checks: ColumnChecks = Field(default_factory=ColumnChecks, description="Value checks.")
    severity: Severity | None = Field(None, description="Overrides the section's severity.")


class SchemaSpec(Spec):
    """Data schema, validated with pandera on the named datasets."""

    datasets: tuple[str, ...] | None = Field(None, description="Default: every dataset.")
    strict: bool = Field(False, description="Columns not listed are a failure.")
    severity: Severity = Field("block", description="Default severity of schema checks.")
    columns: dict[str, ColumnSpec] = Field(min_length=1, description="Column name -> spec.")


GateOn = Literal["value", "lower_bound", "upper_bound", "interval"]
Inconclusive = Literal["block", "warn"]


class Evidence(Spec):
    """How sure a measurement must be: shared by the rules of a section, each may override."""

    max_interval_width: float | None = Field(
        None, gt=0, description="Wider confidence interval: the check is inconclusive.")
    inconclusive: Inconclusive | None = Field(
        None, description="Whether an inconclusive check blocks (default) or warns.")


class BaselineRule(Spec):
    """Comparison with the baseline model on the same data."""

    max_drop: float | None = Field(
        None, ge=0, description="Non-inferiority: the candidate may be worse by at most this."
    )
    min_gain: float | None = Field(
        None, ge=0, description="Superiority: the candidate must be better by at least this."
    )
    gate_on: GateOn = Field(
        "lower_bound", description="What is compared with the margin: by default the lower "
        "bound of the paired-bootstrap interval of the improvement.")

    @model_validator(mode="after")
    def _exactly_one(self) -> BaselineRule:
        if (self.max_drop is None) == (self.min_gain is None):
            raise ValueError("give exactly one of `max_drop` or `min_gain`")
        return self


class PerformanceRule(Evidence):
    """One metric with bounds, optionally per slice and/or against the baseline."""

    metric: MetricName = Field(description="Metric name, see the table of metrics.")
    min: float | None = Field(None, description="Lowest acceptable value.")
    max: float | None = Field(None, description="Highest acceptable value.")
    gate_on: GateOn = Field("value", description="What is compared with min/max: the value, "
                            "a bound of its interval, or the whole interval.")
    interval: Literal["auto", "bootstrap", "delong"] = Field(
        "auto", description="How the interval is computed: `auto` (DeLong's for roc_auc on "
        "100,000 rows or more, else the shared bootstrap), `bootstrap`, or `delong` (DeLong's "
        "analytic interval; roc_auc, binary only).")
    min_rows: int | None = Field(None, ge=1, description="Overrides the section's min_rows.")
    by: tuple[str, ...] = Field((), description="Columns to slice by: one check per slice.")
    baseline: BaselineRule | None = Field(None, description="Compare with the baseline model.")
    severity: Severity | None = Field(None, description="Overrides the section's severity.")
    id: Name | None = Field(None, description="Check id to use instead of the metric name.")

    _by = field_validator("by", mode="before")(
        lambda cls, v: [str(v)] if isinstance(v, (str, int, float)) else v)

    @model_validator(mode="after")
    def _bounded(self) -> PerformanceRule:
        if self.min is None and self.max is None and self.baseline is None:
            raise ValueError("a rule needs `min`, `max` or `baseline`")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"impossible bounds: min {self.min} > max {self.max}")
        return self


class PerformanceSpec(Evidence):
    """Performance thresholds, computed with scikit-learn metrics."""

    dataset: str = Field("eval", description="Dataset the metrics are computed on.")
    min_rows: int = Field(30, ge=1, description="Fewer rows (in the dataset or a slice): "
                          "the check is inconclusive.")
    severity: Severity = Field("block", description="Default severity of performance checks.")
    rules: tuple[PerformanceRule, ...] = Field(min_length=1, description="The rules.")


FairnessMetricName = Literal[tuple(DISPARITIES) + tuple(RATES) + METRIC_NAMES]  # type: ignore
Sensitive = str | tuple[str, ...]


class FairnessRule(Evidence):
    """A disparity between groups, or a metric that every group must satisfy."""

    metric: FairnessMetricName = Field(
        description="A disparity metric, or a per-group rate or performance metric.")
    min: float | None = Field(None, description="Lowest acceptable value (disparity, every "
                              "group's value, or every group's ratio to `reference`).")
    max: float | None = Field(None, description="Highest acceptable value (likewise).")
    max_gap: float | None = Field(None, ge=0, description="Per-group metric: largest allowed "
                                  "difference between the best and the worst group.")
    reference: Scalar | None = Field(None, description="Per-group metric: compare each "
                                     "group's value as a ratio to this group's value.")
    sensitive: tuple[Sensitive, ...] | None = Field(
        None, description="Overrides the section's sensitive features for this rule.")
    gate_on: GateOn = Field("value", description="As for performance rules.")
    min_group_size: int | None = Field(None, ge=1, description="Overrides the section's.")
    severity: Severity | None = Field(None, description="Overrides the section's severity.")
    id: Name | None = Field(None, description="Check id to use instead of the metric name.")

    _sensitive = field_validator("sensitive", mode="before")(lambda cls, v: _features(v))

    @model_validator(mode="after")
    def _bounded(self) -> FairnessRule:
        disparity = self.metric in DISPARITIES
        if disparity and (self.max_gap is not None or self.reference is not None):
            raise ValueError(f"`{self.metric}` is a disparity already; `max_gap` and "
                             "`reference` are for per-group metrics")
        if self.max_gap is not None and (self.min is not None or self.max is not None
                                         or self.reference is not None):
            raise ValueError("`max_gap` stands alone: give it without min/max/reference")
        if self.min is None and self.max is None and self.max_gap is None:
            raise ValueError("a rule needs `min`, `max` or `max_gap`")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"impossible bounds: min {self.min} > max {self.max}")
        return self


def _features(value: Any) -> Any:
    """`sex` or `[sex, race]` or `[sex, [sex, race]]`: each item one feature or a list
    of features whose combinations form the groups."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [tuple(v) if isinstance(v, list) else v for v in value]
    return value


class FairnessSpec(Evidence):
    """Group fairness: disparities and per-group floors across sensitive features."""

    sensitive: tuple[Sensitive, ...] = Field(
        min_length=1, description="Sensitive features: a column, or a list of columns whose "
        "combinations are the groups (an intersection).")
    dataset: str = Field("eval", description="Dataset the groups are compared on.")
    min_group_size: int = Field(30, ge=1, description="A smaller group makes the check "
                                "inconclusive.")
    severity: Severity = Field("block", description="Default severity of fairness checks.")
    rules: tuple[FairnessRule, ...] = Field(min_length=1, description="The rules.")

    _sensitive = field_validator("sensitive", mode="before")(lambda cls, v: _features(v))


DriftTest = Literal["ks", "psi", "wasserstein", "jensen_shannon", "chi2", "total_variation",
                    "unseen_categories", "missing_share", "share_of_drifted_columns",
                    "number_of_drifted_columns"]
Correction = Literal["benjamini_hochberg", "bonferroni", "none"]


class DriftRule(Spec):
    """A drift statistic per column (or a count of drifted columns) against a limit."""

    test: DriftTest = Field(description="The statistic; see the table of drift tests.")
    columns: Literal["all"] | tuple[str, ...] = Field(
        "all", description="`all` or a list of columns; a test applies to the columns of "
        "its kind (numeric or categorical).")
    exclude: tuple[str, ...] = Field((), description="Columns left out.")
    max: float | None = Field(None, description="Highest acceptable statistic.")
    min_p_value: float | None = Field(None, gt=0, lt=1, description="p-value tests (ks, chi2): "
                                      "drift when the corrected p-value is below this ...")
    min_effect: float | None = Field(None, ge=0, description="... and the effect size (KS "
                                     "statistic, Cramér's V) is at least this.")
    severity: Severity | None = Field(None, description="Overrides the section's severity.")
    id: Name | None = Field(None, description="Check id to use instead of the test name.")

    _columns = field_validator("columns", mode="before")(
        lambda cls, v: [v] if isinstance(v, str) and v != "all" else v)

    @model_validator(mode="after")
    def _limits(self) -> DriftRule:
        p_test = self.test in ("ks", "chi2")
        if p_test and self.max is not None:
            raise ValueError(f"`{self.test}` is judged by `min_p_value` (and `min_effect`), "
                             "not `max`")
        if not p_test and (self.min_p_value is not None or self.min_effect is not None):
            raise ValueError(f"`min_p_value` and `min_effect` are for ks and chi2, not "
                             f"{self.test}")
        if not p_test and self.max is None:
            raise ValueError(f"`{self.test}` needs `max`")
        return self


class DriftSpec(Spec):
    """Distribution shift between a reference dataset and a current one."""

    reference: str = Field("reference", description="Dataset the current data is compared with.")
    reference_profile: str | None = Field(
        None, description="A profile made by `mlcheck profile`, used instead of the "
        "reference dataset (path relative to the policy file).")
    current: str = Field("current", description="Dataset checked for drift.")
    correction: Correction = Field("benjamini_hochberg", description="Multiple-testing "
                                   "correction of p-values across the columns of a rule.")
    bins: int = Field(10, ge=2, le=100, description="Reference-quantile bins for PSI and "
                      "Jensen-Shannon on numeric columns.")
    min_rows: int = Field(100, ge=1, description="Fewer non-missing values on either side: "
                          "the column's checks are inconclusive.")
    prediction: bool = Field(False, description="Also test the candidate's scores (column "
                             "`prediction`).")
    target: bool = Field(False, description="Also test the target column (label drift).")
    severity: Severity = Field("block", description="Default severity of drift checks.")
    rules: tuple[DriftRule, ...] = Field(min_length=1, description="The rules.")


ExplainTest = Literal["not_in_top", "required_in_top", "max_attribution_share", "direction",
                     "stability"]
EXPLAIN_NEEDS = {  # the keys each explainability test needs ...
    "not_in_top": {"features", "k"}, "required_in_top": {"features", "k"},
    "max_attribution_share": {"max"}, "direction": {"features", "direction"},
    "stability": {"min"},
}
EXPLAIN_OPTIONAL = {"stability": {"against", "k"}}  # ... and may take; any other is an error


def _rule_keys(name: str, given: set[str], needs: set[str], optional: set[str]) -> None:
    """A rule's keys against what its test reads: a key it does not read is an error (it
    would be silently ignored), and so is a missing one."""
    extra = sorted(given - needs - optional)
    if extra:
        raise ValueError(f"`{name}` does not use {', '.join(f'`{k}`' for k in extra)}")
    needed = sorted(needs - given)
    if needed:
        raise ValueError(f"`{name}` needs {', '.join(f'`{k}`' for k in needed)}")


class ExplainabilityRule(Spec):
    """A constraint on what the model relies on, read from its SHAP attributions."""

    test: ExplainTest = Field(description="The constraint; see the table of explainability "
                              "tests.")
    features: tuple[str, ...] | None = Field(None, min_length=1, description="Input columns "
                                             "the test is about (one check each).")
    k: int | None = Field(None, ge=1, description="Top-k by mean |SHAP|: not_in_top, "
                          "required_in_top; stability compares the union of both top-k.")
    max: float | None = Field(None, gt=0, le=1, description="max_attribution_share: highest "
                              "share of the total mean |SHAP| one feature may hold.")
    min: float | None = Field(None, ge=-1, le=1, description="stability: lowest rank "
                              "correlation (Spearman) of the two importance rankings.")
    direction: Literal["increasing", "decreasing"] | None = Field(
        None, description="direction: the declared sign of the feature's effect.")
    against: Literal["baseline", "halves"] = Field(
        "baseline", description="stability: compare with the baseline model, or the two "
        "halves of the explained rows.")
    severity: Severity | None = Field(None, description="Overrides the section's severity.")
    id: Name | None = Field(None, description="Check id to use instead of the test name.")

    _features = field_validator("features", mode="before")(
        lambda cls, v: [v] if isinstance(v, str) else v)

    @model_validator(mode="after")
    def _keys(self) -> ExplainabilityRule:
        given = {key for key in ("features", "k", "max", "min", "direction")
                 if getattr(self, key) is not None} | (self.model_fields_set & {"against"})
        _rule_keys(self.test, given, EXPLAIN_NEEDS[self.test],
                   EXPLAIN_OPTIONAL.get(self.test, set()))
        return self


class ExplainabilitySpec(Spec):
    """SHAP attributions of the candidate (and baseline) on a sample of a dataset."""

    dataset: str = Field("eval", description="Dataset whose rows are explained.")
    explainer: Literal["auto", "tree", "linear", "permutation"] = Field(
        "auto", description="`tree` (exact, tree ensembles), `linear` (exact, linear models), "
        "`permutation` (model-agnostic, under a budget) or `auto`.")
    rows: int | None = Field(None, ge=10, description="Rows explained, a seeded sample: "
                             "default 1,000, or 200 for the permutation explainer.")
    background: int = Field(100, ge=1, description="Background rows for the linear and "
                            "permutation explainers.")
    evaluations: int | None = Field(None, ge=1, description="Permutation explainer: model "
                                    "evaluations per explained row; default 10 x (features "
                                    "+ 1).")
    seed: int = Field(0, ge=0, description="Seed of the sample, background and permutations.")
    severity: Severity = Field("block", description="Default severity of explainability "
                               "checks.")
    rules: tuple[ExplainabilityRule, ...] = Field(min_length=1, description="The rules.")


PropertyName = Literal["valid_predictions", "invariant", "monotonic", "perturbation"]
PROPERTY_NEEDS = {"valid_predictions": set(), "invariant": {"features"},
                  "monotonic": {"features", "direction"}, "perturbation": {"noise"}}
PROPERTY_OPTIONAL = {"valid_predictions": {"inputs"}, "invariant": {"inputs", "tolerance"},
                     "monotonic": {"inputs", "tolerance"},
                     "perturbation": {"max_flip_rate", "rows", "features"}}


class RobustnessRule(Spec):
    """A behavioural property the model must have on inputs hypothesis searches."""

    property: PropertyName = Field(description="The property; see the table of properties.")
    inputs: Literal["schema", "data"] | None = Field(
        None, description="`schema`: rows generated from the schema section; `data`: real "
        "rows of the dataset, changed by hypothesis. Default: schema for valid_predictions, "
        "data otherwise.")
    features: tuple[str, ...] | None = Field(None, min_length=1, description="invariant: "
                                             "the features changed together; monotonic: one "
                                             "check per feature; perturbation: the numeric "
                                             "features noised (default: all).")
    direction: Literal["increasing", "decreasing"] | None = Field(
        None, description="monotonic: the score never decreases (increasing) or never "
        "increases (decreasing) as the feature grows.")
    tolerance: float | None = Field(None, ge=0, description="invariant: largest allowed "
                                    "change of the score (default 0); monotonic: allowed "
                                    "step against the direction (default 0).")
    noise: float | None = Field(None, gt=0, description="perturbation: standard deviation "
                                "of the Gaussian noise, as a fraction of each numeric "
                                "column's standard deviation.")
    max_flip_rate: float | None = Field(None, ge=0, le=1, description="perturbation: "
                                        "highest share of rows whose predicted class may "
                                        "flip (default 0.05).")
    rows: int | None = Field(None, ge=1, description="perturbation: real rows perturbed "
                             "(default 1,000).")
    severity: Severity | None = Field(None, description="Overrides the section's severity.")
    id: Name | None = Field(None, description="Check id to use instead of the property.")

    _features = field_validator("features", mode="before")(
        lambda cls, v: [v] if isinstance(v, str) else v)

    @model_validator(mode="after")
    def _keys(self) -> RobustnessRule:
        given = {key for key in ("inputs", "features", "direction", "tolerance", "noise",
                                 "max_flip_rate", "rows") if getattr(self, key) is not None}
        _rule_keys(self.property, given, PROPERTY_NEEDS[self.property],
                   PROPERTY_OPTIONAL[self.property])
        return self


class RobustnessSpec(Spec):
    """Behavioural properties, searched with hypothesis: deterministic for a seed."""

    dataset: str = Field("eval", description="Dataset of the real rows (`inputs: data`, "
                         "perturbation).")
    examples: int = Field(100, ge=1, le=100_000, description="Examples hypothesis tries per "
                          "property (before shrinking a failure).")
    seed: int = Field(0, ge=0, description="Seed of the search and of the noise.")
    severity: Severity = Field("block", description="Default severity of robustness checks.")
    rules: tuple[RobustnessRule, ...] = Field(min_length=1, description="The rules.")


class Waiver(Spec):
    """An approved, dated exception: a failing check that does not block until it expires."""

    check: str = Field(min_length=1, description="A check id, or a pattern where `*` "
                       "matches any text (`fairness/*`).")
    reason: str = Field(min_length=1, description="Why the failure is accepted (a ticket).")
    approved_by: str = Field(min_length=1, description="Who approved it.")
    expires: dt.date = Field(description="Last day the waiver applies (YYYY-MM-DD).")

    @field_validator("check", "reason", "approved_by")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class StatisticsSpec(Spec):
    """How intervals are computed, for every check that reports one."""

    confidence: float = Field(0.95, gt=0, lt=1, description="Confidence of the intervals.")
    resamples: int = Field(1000, ge=0, le=100_000, description="Bootstrap resamples; 0 "
                           "turns intervals off.")
    seed: int = Field(0, ge=0, description="Seed of the resamples, recorded with each interval.")


class Policy(Spec):
    """A whole policy file (after `extends` is resolved)."""

    mlcheck: Literal[1] = Field(description="Version of the policy language.")
    name: str = Field(min_length=1, description="Name of the policy, shown in reports.")
    owner: str | None = Field(None, description="Who answers for this policy.")
    version: str | None = Field(None, description="The policy's own version.")
    description: str | None = Field(None, description="What the policy is for.")
    extends: tuple[str, ...] = Field((), description="Base policies, merged in order.")
    model: ModelSpec | None = Field(None, description="The candidate model.")
    data: DataSpec = Field(description="Target and datasets.")
    schema_: SchemaSpec | None = Field(None, alias="schema", description="Data schema.")
    performance: PerformanceSpec | None = Field(None, description="Performance rules.")
    fairness: FairnessSpec | None = Field(None, description="Group fairness rules.")
    drift: DriftSpec | None = Field(None, description="Drift rules.")
    explainability: ExplainabilitySpec | None = Field(None, description="Explainability "
                                                      "rules (SHAP).")
    robustness: RobustnessSpec | None = Field(None, description="Behavioural properties "
                                              "(hypothesis).")
    statistics: StatisticsSpec = Field(default_factory=StatisticsSpec,
                                       description="Confidence intervals.")
    waivers: tuple[Waiver, ...] = Field((), description="Approved, dated exceptions.")
    controls: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Check id pattern -> control references it "
        "gives evidence for (EU AI Act, NIST AI RMF, SR 11-7, a company's own).")

    _controls = field_validator("controls", mode="before")(
        lambda cls, v: {k: [x] if isinstance(x, str) else x for k, x in v.items()}
        if isinstance(v, dict) else v)

    _extends = field_validator("extends", mode="before")(
        lambda cls, v: [v] if isinstance(v, str) else v
    )
    _origin: PolicyOrigin | None = PrivateAttr(None)

    @property
    def origin(self) -> PolicyOrigin:
        """The files the policy came from, their hashes and where each key was written."""
        if self._origin is None:
            raise AttributeError("this policy was not loaded from a file")
        return self._origin

    @property
    def base_dir(self) -> Path:
        return self.origin.path.parent


class PolicyOrigin(BaseModel):
    """Provenance of a loaded policy: files (with SHA-256), resolved content, positions."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    path: Path
    sources: tuple[tuple[str, str], ...]  # (path, sha256), the policy file first
    resolved: dict[str, Any]
    sha256: str  # of the canonical JSON of the resolved content
    positions: dict[tuple, Location]

    def locate(self, *path: str | int) -> Location:
        """Location of a key path, falling back to its nearest written ancestor."""
        key = tuple(path)
        while key and key not in self.positions:
            key = key[:-1]
        base = self.positions.get(key, Location(display_path(self.path)))
        return Location(base.file, base.line, base.column, _dotted(path) or None)


# ---------------------------------------------------------------------------- loading


def matches(pattern: str, check_id: str) -> bool:
    """Whether a waiver's or control's pattern names a check: `*` matches any text, and
    everything else literally (ids hold brackets, which are not character classes here)."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), check_id) is not None


def load_policy(path: str | Path) -> Policy:
    """Load, merge (`extends`), validate and cross-check a policy file."""
    path = Path(path)
    raw, positions, sources = _load_tree(path, chain=(), root=path.parent.resolve())
    raw.pop("extends", None)  # resolved: the files it names are recorded in `sources`
    try:
        policy = Policy.model_validate(
            {**raw, "extends": [display_path(p) for p, _ in sources[1:]]})
    except ValidationError as exc:
        raise PolicyError(_explain(exc, raw, positions, path)) from None
    # the hash covers what is enforced, so it does not depend on file names or cwd
    canonical = json.dumps(raw, sort_keys=True, default=str, separators=(",", ":"))
    policy._origin = PolicyOrigin(
        path=path,
        sources=tuple((display_path(p), digest) for p, digest in sources),
        resolved=raw,
        sha256=hashlib.sha256(canonical.encode()).hexdigest(),
        positions=positions,
    )
    problems = _cross_check(policy)
    if problems:
        raise PolicyError(problems)
    return policy


def _load_tree(path: Path, chain: tuple[Path, ...], root: Path) -> tuple[dict, dict, list]:
    """Read one file and its bases; return merged data, positions and (file, sha256) list.

    File paths a base names are rewritten relative to the root policy's folder, so each
    path keeps meaning what it meant in the file that wrote it."""
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(display_path(p) for p in (*chain, resolved))
        raise PolicyError([(f"`extends` forms a cycle: {cycle}", Location(display_path(path)))])
    try:
        content = read_limited(path, "policy file", POLICY)  # regular files, 1 MiB at most
    except FileNotFoundError:
        raise PolicyError([("policy file not found", Location(display_path(path)))]) from None
    except OSError as exc:
        raise PolicyError([(f"cannot read policy: {exc.strerror}", Location(str(path)))]) from None
    data, positions = _parse_yaml(content, display_path(path))
    _check_version(data, positions, path)
    if resolved.parent != root:
        _rebase_paths(data, resolved.parent, root)
    sources = [(path, hashlib.sha256(content).hexdigest())]

    bases = data.get("extends", [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise PolicyError([("`extends` must be a path or a list of paths",
                            positions.get(("extends",)))])
    merged: dict = {}
    merged_positions: dict = {}
    for index, base in enumerate(bases):
        base_path = path.parent / base
        if not base_path.is_file():  # a stat, never an open: a FIFO cannot block here
            where = positions.get(("extends", index)) or positions.get(("extends",))
            kind = not_regular(base_path.stat().st_mode) if base_path.exists() else None
            raise PolicyError([(f"base policy not found: {display_path(base_path)}"
                                + (f" (it is {kind}, not a regular file)" if kind else ""),
                                where)])
        base_data, base_positions, base_sources = _load_tree(base_path, (*chain, resolved), root)
        base_data.pop("extends", None)
        merged = _merge(merged, base_data)
        merged_positions.update(base_positions)
        sources.extend(base_sources)
    empty = _empty_sections(data, merged, positions, display_path(path))
    if empty:
        raise PolicyError(empty)
    merged = _merge(merged, data)
    for key in list(merged_positions):
        if key and key[0] in data and _owned_by_child(key, data):
            del merged_positions[key]
    merged_positions.update(positions)
    return merged, merged_positions, sources


def _empty_sections(data: dict, bases: dict, positions: dict, shown: str
                    ) -> list[tuple[str, Location]]:
    """A key written with nothing under it (`performance:` with its rules commented out,
    `fairness: ~`) would silently check nothing, or silently drop a base's section."""
    problems = []
    for key, value in data.items():
        if value is None or (isinstance(value, (dict, list)) and not value):
            where = positions.get((key,)) or Location(shown)
            message = f"`{key}` is empty"
            if key in bases:
                message += (": it would remove the base policy's `{key}` section; a child "
                            "policy cannot drop a base's rules (remove them from the base, or "
                            "do not extend it)").replace("{key}", key)
            else:
                message += ": add its rules or remove the key (an empty section checks nothing)"
            problems.append((message, Location(where.file, where.line, where.column, key)))
    return problems


def _check_version(data: dict, positions: dict, path: Path) -> None:
    """A file written for another version of the policy language stops the load with one
    line, before its keys are read by rules they were not written for."""
    version = data.get("mlcheck", 1)
    if type(version) is int and version == 1:
        return
    where = positions.get(("mlcheck",)) or Location(display_path(path), 1, 1)
    if isinstance(version, str) and version.strip() == "1":
        message = f"`mlcheck: {version!r}` is text: write `mlcheck: 1` (a number)"
    else:
        shown = version if isinstance(version, (int, float)) else repr(version)
        message = (f"unsupported policy language version {shown}: this mlcheck reads "
                   "`mlcheck: 1` (a newer mlcheck may read this policy)")
    raise PolicyError([(message, Location(where.file, where.line, where.column, "mlcheck"))])


def _rebase_paths(data: dict, from_dir: Path, to_dir: Path) -> None:
    """Make the model and dataset paths of a base policy relative to `to_dir`."""

    def move(value: Any) -> Any:
        if not isinstance(value, str) or Path(value).is_absolute():
            return value
        return os.path.relpath(from_dir / value, to_dir)

    def move_source(holder: dict, key: str) -> None:
        value = holder.get(key)
        if isinstance(value, str):
            holder[key] = move(value)
        elif isinstance(value, dict) and "path" in value:
            value["path"] = move(value["path"])

    def move_factory(holder: Any) -> None:
        """`module:function` found beside the base becomes `path/module.py:function`."""
        spec = holder.get("factory") if isinstance(holder, dict) else None
        if not isinstance(spec, str) or ":" not in spec:
            return
        module, function = spec.rsplit(":", 1)
        if not module.endswith(".py"):
            local = from_dir / (module.replace(".", "/") + ".py")
            if not local.is_file():
                return  # an installed package: found the same way from any folder
            module = os.path.relpath(local, from_dir)
        holder["factory"] = f"{move(module)}:{function}"

    model = data.get("model")
    if isinstance(model, dict):
        if "path" in model:
            model["path"] = move(model["path"])
        move_source(model, "baseline")
        move_factory(model)
        move_factory(model.get("baseline"))
    datasets = data.get("data", {}).get("datasets") if isinstance(data.get("data"), dict) else None
    if isinstance(datasets, dict):
        for name in datasets:
            move_source(datasets, name)


def _owned_by_child(key: tuple, data: dict) -> bool:
    """True when the child file replaced the value at (a prefix of) this key path."""
    node: Any = data
    for part in key:
        if isinstance(node, dict) and part in node:
            node = node[part]
            if not isinstance(node, dict):
                return True
        else:
            return False
    return True


def _merge(base: dict, child: dict) -> dict:
    """Deep-merge mappings; the child wins, lists and scalars are replaced whole."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


MAX_YAML_NODES = 50_000  # real policies have hundreds; more means an alias bomb
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """Safe YAML, with mapping keys taken as written: `on:` is the column "on", not True."""

    def construct_mapping(self, node, deep=False):
        self.flatten_mapping(node)
        mapping = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be plain text", key_node.start_mark)
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)
# YAML 1.2 booleans: only true/false. yes/no/on/off stay text (`notin: [no]` means "no").
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def _parse_yaml(content: bytes, filename: str) -> tuple[dict, dict]:
    """Parse YAML, keeping the position of every key; reject duplicate keys and alias bombs."""
    try:
        loader = _Loader(content)
        try:
            node = loader.get_single_node()
            if not isinstance(node, yaml.MappingNode):
                raise PolicyError([("a policy must be a YAML mapping (key: value lines)",
                                    Location(filename, 1, 1))])
            positions: dict[tuple, Location] = {}
            walker = _PositionWalker(filename, positions)
            walker.walk(node, ())  # before construction, which rewrites merge keys (<<)
            if walker.problems:
                raise PolicyError(walker.problems)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or str(exc)
        location = Location(filename, mark.line + 1, mark.column + 1) if mark else None
        raise PolicyError([(f"invalid YAML: {problem}", location or Location(filename))]) from None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise PolicyError([(f"invalid YAML: {exc}", Location(filename))]) from None
    return data, positions


class _PositionWalker:
    """Records where each key path was written; finds duplicates, cycles and bombs."""

    def __init__(self, filename: str, positions: dict) -> None:
        self.filename, self.positions = filename, positions
        self.problems: list[tuple[str, Location]] = []
        self.visited = 0
        self.open: set[int] = set()

    def where(self, node: yaml.Node, path: tuple) -> Location:
        return Location(self.filename, node.start_mark.line + 1, node.start_mark.column + 1,
                        _dotted(path) or None)

    def walk(self, node: yaml.Node, path: tuple) -> None:
        self.visited += 1
        if self.visited > MAX_YAML_NODES:
            raise PolicyError([(f"the policy expands to more than {MAX_YAML_NODES:,} values "
                                "(nested aliases?)", self.where(node, path))])
        if id(node) in self.open:
            raise PolicyError([("an alias refers to itself", self.where(node, path))])
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                self._mapping(node, path)
            elif isinstance(node, yaml.SequenceNode):
                for index, item in enumerate(node.value):
                    self.positions[(*path, index)] = self.where(item, (*path, index))
                    self.walk(item, (*path, index))
        finally:
            self.open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: tuple) -> None:
        merged = [v for k, v in node.value if k.tag == _MERGE_TAG]
        for value in merged:  # `<<: *defaults`: the merged keys, overridden by explicit ones
            for source in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                self.walk(source, path)
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(("a key must be plain text", self.where(key_node, path)))
                continue
            key = key_node.value
            where = self.where(key_node, (*path, key))
            if key in seen:
                self.problems.append(
                    (f"duplicate key '{key}' (first written on line {seen[key]})", where))
            seen[key] = where.line
            self.positions[(*path, key)] = where
            self.walk(value_node, (*path, key))


def _dotted(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ------------------------------------------------------------------- explaining errors


def _explain(exc: ValidationError, raw: dict, positions: dict, path: Path) -> list:
    """Turn pydantic's errors into messages with positions and suggestions."""
    problems = []
    errors = exc.errors()
    typos = set()  # (parent path, key the user probably meant)
    for error in errors:
        if error["type"] == "extra_forbidden":
            loc = _data_path(raw, error["loc"])
            close = difflib.get_close_matches(str(loc[-1]), _valid_keys(loc[:-1]), n=1)
            typos.update((loc[:-1], c) for c in close)
    for error in errors:
        loc = _data_path(raw, error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            key = loc[-1]
            valid = _valid_keys(loc[:-1])
            message = f"unknown key '{key}'" + suggest(str(key), valid)
            if valid:
                message += f"; valid keys here: {', '.join(valid)}"
        elif kind == "too_short" and any(
                other["loc"][:len(error["loc"])] == error["loc"] and other is not error
                for other in errors):
            continue  # pydantic counts only valid items: the bad item below is the problem
        elif kind == "too_short" and not error["input"]:
            message = "is empty: give at least one entry (an empty list checks nothing)"
        elif kind == "missing":
            missing = error["loc"][-1]
            if (loc[:-1], missing) in typos:
                continue  # reported as the typo that caused it
            message = f"missing required key '{missing}'"
        elif kind == "literal_error":
            text = error["ctx"]["expected"]  # "'a', 'b' or 'c'"; numbers are not quoted
            expected = (re.findall(r"'([^']*)'", text)
                        or [e for e in re.split(r", | or ", text) if e])
            message = f"'{error['input']}' is not allowed" + suggest(str(error["input"]), expected)
            if 0 < len(expected) <= 30:
                message += f"; allowed: {', '.join(expected)}"
        elif error["input"] is None and kind in ("tuple_type", "list_type", "dict_type"):
            message = "is empty (null): give at least one entry"
        elif (isinstance(error["input"], float) and not math.isfinite(error["input"])
              and kind != "string_type"):  # every member of a union says so: one message
            message = f"must be a finite number, not {error['input']}"
        else:
            message = error["msg"].removeprefix("Value error, ")
            if kind == "string_type" and isinstance(error["input"], (bool, int, float)):
                message += (f"; YAML read {error['input']!r} as a "
                            f"{type(error['input']).__name__}: quote it to mean text")
        where = positions.get(loc) or _nearest(positions, loc, path)
        problems.append((message, Location(where.file, where.line, where.column,
                                           _dotted(loc) or None)))
    unique = {}  # a union type reports one error per member; keep the first per key
    for message, location in problems:
        unique.setdefault((location.file, location.line, location.column, location.key),
                          (message, location))
    return sorted(unique.values(), key=lambda p: (p[1].file, p[1].line or 0))


def _nearest(positions: dict, loc: tuple, path: Path) -> Location:
    key = tuple(loc)
    while key and key not in positions:
        key = key[:-1]
    return positions.get(key, Location(display_path(path), 1, 1))


def _data_path(raw: Any, loc: tuple) -> tuple:
    """Keep the parts of pydantic's error location that address the YAML data."""
    out: list = []
    node = raw
    for index, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            node = node[part]
            out.append(part)
        elif index == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str):
            out.append(part)  # a key that is not there (unknown, or missing)
    return tuple(out)


def _valid_keys(loc: tuple) -> list[str]:
    """Field names (aliases) of the policy section at a data path."""
    annotation: Any = Policy
    for part in loc:
        item = _container_item(annotation)
        if item is not None:
            annotation = item  # `part` is a list index or a mapping key
            continue
        model = _model_in(annotation)
        fields = model.model_fields.items() if model else ()
        field = next((f for n, f in fields if (f.alias or n) == part), None)
        if field is None:
            return []
        annotation = field.annotation
    model = _model_in(annotation)
    return [f.alias or n for n, f in model.model_fields.items()] if model else []


def _model_in(annotation: Any) -> Any:
    """The pydantic model of an annotation such as `Spec` or `Spec | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    models = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if models else None


def _container_item(annotation: Any) -> Any:
    """Item type of a list/tuple/dict annotation (also inside `| None`), else None."""
    for candidate in (annotation, *get_args(annotation)):
        origin = get_origin(candidate)
        if origin in (list, tuple):
            return get_args(candidate)[0]
        if origin is dict:
            return get_args(candidate)[1]
    return None


# --------------------------------------------------------------------- cross-checks


def _cross_check(policy: Policy) -> list[tuple[str, Location]]:
    """References between sections, checked once the sections are valid on their own."""
    problems = []
    where = policy.origin.locate
    datasets = list(policy.data.datasets)
    model = policy.model

    if policy.schema_ and policy.schema_.datasets:
        for index, name in enumerate(policy.schema_.datasets):
            if name not in datasets:
                problems.append((f"unknown dataset '{name}'" + suggest(name, datasets)
                                 + f"; datasets: {', '.join(datasets)}",
                                 where("schema", "datasets", index)))

    if not any((policy.schema_, policy.performance, policy.fairness, policy.drift,
                policy.explainability, policy.robustness)):
        problems.append(("the policy defines no checks: add a `schema`, `performance`, "
                         "`fairness`, `drift`, `explainability` or `robustness` section (a "
                         "gate with nothing to check would always pass)", where("mlcheck")))
    robust = policy.robustness
    if robust:
        if robust.dataset not in datasets:
            problems.append((f"unknown dataset '{robust.dataset}'"
                             + suggest(robust.dataset, datasets)
                             + f"; datasets: {', '.join(datasets)}",
                             where("robustness", "dataset")))
        if model is None:
            problems.append(("robustness needs a `model` to query", where("robustness")))
        for index, rule in enumerate(robust.rules):
            inputs = rule.inputs or ("schema" if rule.property == "valid_predictions"
                                     else "data")
            if inputs == "schema" and policy.schema_ is None:
                problems.append(("`inputs: schema` generates rows from the `schema` section, "
                                 "and the policy has none: add one or use `inputs: data`",
                                 where("robustness", "rules", index)))
            if rule.property == "monotonic" and model and model.task == MULTICLASS:
                problems.append(("`monotonic` needs one score per row (binary or "
                                 "regression)", where("robustness", "rules", index)))
            if rule.property == "perturbation" and model and model.task == REGRESSION:
                problems.append(("`perturbation` counts flipped classes: it is for "
                                 "classifiers", where("robustness", "rules", index)))
    explain = policy.explainability
    if explain:
        if explain.dataset not in datasets:
            problems.append((f"unknown dataset '{explain.dataset}'"
                             + suggest(explain.dataset, datasets)
                             + f"; datasets: {', '.join(datasets)}",
                             where("explainability", "dataset")))
        if model is None:
            problems.append(("explainability needs a `model` to explain",
                             where("explainability")))
        for index, rule in enumerate(explain.rules):
            if rule.test == "stability" and rule.against == "baseline" and model \
                    and model.baseline is None:
                problems.append(("`stability` against the baseline needs `model.baseline` "
                                 "(or `against: halves`)",
                                 where("explainability", "rules", index, "against")))
            if rule.test == "direction" and model and model.task == MULTICLASS:
                problems.append(("`direction` needs one score per row (binary or "
                                 "regression)", where("explainability", "rules", index)))
    if policy.drift:
        for key in ("current",) if policy.drift.reference_profile else ("reference", "current"):
            name = getattr(policy.drift, key)
            if name not in datasets:
                problems.append((f"unknown dataset '{name}'" + suggest(name, datasets)
                                 + f"; datasets: {', '.join(datasets)}", where("drift", key)))
        if policy.drift.prediction and (model is None or (model.black_box
                                                           and not model.scores)):
            problems.append(("`prediction: true` needs a model or black-box `scores`",
                             where("drift", "prediction")))
        if policy.drift.prediction and policy.drift.reference_profile:
            problems.append(("`prediction: true` compares the model's scores on the reference "
                             "data, which a reference profile does not hold: name a "
                             "`reference` dataset instead", where("drift", "prediction")))
    if policy.fairness:
        problems.extend(_fairness_fit(policy, datasets))
    if policy.statistics.resamples == 0:
        problems.extend(_needs_intervals(policy))
    if model:
        problems.extend(_task_fit(policy))
        problems.extend(_leaking_features(policy))
    perf = policy.performance
    if perf:
        if perf.dataset not in datasets:
            problems.append((f"unknown dataset '{perf.dataset}'" + suggest(perf.dataset, datasets)
                             + f"; datasets: {', '.join(datasets)}",
                             where("performance", "dataset")))
        if model is None:
            problems.append(("performance rules need a `model` section", where("performance")))
        if policy.data.target is None:
            problems.append(("performance rules need `data.target`", where("data")))
        seen: dict[tuple, int] = {}
        for index, rule in enumerate(perf.rules):
            metric = METRICS[rule.metric]
            if model and model.task not in metric.tasks:
                valid = metrics_for(model.task)
                problems.append((
                    f"metric '{rule.metric}' does not apply to {model.task}"
                    + suggest(rule.metric, valid) + f"; use one of: {', '.join(valid)}",
                    where("performance", "rules", index, "metric")))
            if rule.interval == "delong" and (rule.metric != "roc_auc" or (
                    model and model.task != BINARY)):
                problems.append(("`interval: delong` is for roc_auc on binary tasks",
                                 where("performance", "rules", index, "interval")))
            if rule.baseline and model and model.baseline is None:
                problems.append(("a `baseline` rule needs `model.baseline`",
                                 where("performance", "rules", index, "baseline")))
            for role, source in (("candidate", model), ("baseline", rule.baseline and model
                                                         and model.baseline)):
                missing = source and _black_box_lacks(source, role, metric.needs, model.task)
                if missing:
                    problems.append((f"metric '{rule.metric}' needs {missing}",
                                     where("performance", "rules", index, "metric")))
            name = rule.id or rule.metric
            kinds = (["bounds"] if rule.min is not None or rule.max is not None else []) + (
                ["baseline"] if rule.baseline else [])
            for kind in kinds:
                key = (name, rule.by, kind)
                if key in seen:
                    problems.append((
                        f"rule repeats check id '{name}' of rule {seen[key]}; "
                        "give one of them an `id`",
                        where("performance", "rules", index)))
                seen[key] = index
    return problems


def _needs_intervals(policy: Policy) -> list[tuple[str, Location]]:
    """With `resamples: 0` there are no intervals: asking to gate on one is a mistake."""
    problems = []
    for name in ("performance", "fairness"):
        section = getattr(policy, name)
        if section is None:
            continue
        if section.max_interval_width is not None:
            problems.append(("`max_interval_width` needs intervals, but "
                             "`statistics.resamples` is 0", policy.origin.locate(
                                 name, "max_interval_width")))
        for index, rule in enumerate(section.rules):
            if ("gate_on" in rule.model_fields_set and rule.gate_on != "value") or \
                    rule.max_interval_width is not None:
                problems.append(("this rule gates on an interval, but `statistics.resamples`"
                                 " is 0", policy.origin.locate(name, "rules", index)))
    return problems


def _fairness_fit(policy: Policy, datasets: list[str]) -> list[tuple[str, Location]]:
    """Fairness rules need a model (or black box), a target, and metrics that fit the task."""
    spec, where, model = policy.fairness, policy.origin.locate, policy.model
    problems = []
    if spec.dataset not in datasets:
        problems.append((f"unknown dataset '{spec.dataset}'" + suggest(spec.dataset, datasets)
                         + f"; datasets: {', '.join(datasets)}", where("fairness", "dataset")))
    if model is None or policy.data.target is None:
        problems.append(("fairness rules need a `model` section and `data.target`",
                         where("fairness")))
        return problems
    for index, rule in enumerate(spec.rules):
        at = where("fairness", "rules", index, "metric")
        if rule.metric in DISPARITIES or rule.metric in RATES:
            if model.task != BINARY:
                problems.append((f"'{rule.metric}' compares rates of predicted positives: "
                                 "binary_classification only; for other tasks use a "
                                 "per-group metric with `min`, `max` or `max_gap`", at))
            needs = "labels"
        else:
            metric = METRICS[rule.metric]
            needs = metric.needs
            if model.task not in metric.tasks:
                valid = metrics_for(model.task)
                problems.append((f"metric '{rule.metric}' does not apply to {model.task}"
                                 + suggest(rule.metric, valid), at))
        missing = _black_box_lacks(model, "candidate", needs, model.task)
        if missing:
            problems.append((f"metric '{rule.metric}' needs {missing}", at))
    return problems


def _task_fit(policy: Policy) -> list[tuple[str, Location]]:
    """Keys that only make sense for some tasks must not be silently ignored."""
    problems = []
    model, where = policy.model, policy.origin.locate
    for key, source in ((("model",), model), (("model", "baseline"), model.baseline)):
        if source is None:
            continue
        if source.threshold is not None and model.task != BINARY:
            problems.append(("`threshold` applies to binary_classification only",
                             where(*key, "threshold")))
        if isinstance(source.scores, dict) and model.task != MULTICLASS:
            problems.append(("a mapping of score columns is for multiclass_classification; "
                             "give one column", where(*key, "scores")))
        if isinstance(source.scores, str) and model.task == MULTICLASS:
            problems.append(("multiclass scores need one column per class: "
                             "`scores: {class: column, …}`", where(*key, "scores")))
    if policy.data.positive_label is not None and model.task != BINARY:
        problems.append(("`positive_label` applies to binary_classification only",
                         where("data", "positive_label")))
    return problems


def _leaking_features(policy: Policy) -> list[tuple[str, Location]]:
    """`model.features` must not hand the model its answer: the target or a black box's."""
    model = policy.model
    answers = {policy.data.target: "the target"}
    for source in (model, model.baseline):
        if source is not None and source.black_box:
            scores = source.scores
            for column in (scores.values() if isinstance(scores, dict) else [scores]):
                answers[column] = "a black-box score column"
            answers[source.predictions] = "a black-box predictions column"
    return [(f"feature '{column}' is {answers[column]}: the model would see the answer",
             policy.origin.locate("model", "features", index))
            for index, column in enumerate(model.features or ()) if answers.get(column)]


def _black_box_lacks(source: ModelSource, role: str, needs: str, task: str) -> str | None:
    """What a black-box source lacks for a metric reading `needs`, or None."""
    if not source.black_box or task == REGRESSION:  # regression reads either column
        return None
    if needs == "scores" and not source.scores:
        return f"scores, but the {role} black box has only `predictions`: add a `scores` column"
    if needs == "labels" and not (source.predictions or source.threshold is not None):
        return (f"predicted labels, but the {role} black box has only `scores`: add a "
                "`predictions` column or a `threshold`")
    return None


def policy_json_schema() -> dict[str, Any]:
    """JSON Schema of the policy language, for editors and other tools."""
    schema = Policy.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mlcheck policy"
    return schema
