"""Behavioural properties: hypothesis searches the inputs, and shrinks a failure to a row.

hypothesis drives the search, the shrinking and the seeding. Written here: the strategy of
each column, built from the policy's column specs (pandera's own generator fails on wide
schemas and has no categorical support) or from the values of a real dataset, and the
properties themselves.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from mlcheck.checks import Check, Outcome
from mlcheck.context import Context, label_key
from mlcheck.errors import CheckError, suggest
from mlcheck.guard import time_limit
from mlcheck.metrics import BINARY, MULTICLASS, REGRESSION
from mlcheck.policy import ColumnSpec, Policy, RobustnessRule, RobustnessSpec

DEFAULT_FLIP_RATE = 0.05
PERTURBATION_ROWS = 1000
UNBOUNDED = 1e9  # a numeric column without a bound in the schema is searched within +-1e9
TEXT_SIZE = 20  # longest generated text, when the schema sets no max_length
PROBABILITY_SUM_TOLERANCE = 1e-6
# characters of generated text: ASCII letters, digits, punctuation, space, some non-ASCII
ALPHABET = tuple("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                 " -_.,;:'\"/\\()&%$#@!?+*=<>[]{}|~^`\t\néüßçñ中文ДЖ€—")


class Counterexample(Exception):
    """A failing example: raised inside hypothesis, which shrinks it, caught outside."""

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__(details.get("summary", "counterexample"))
        self.details = details


def compile_checks(policy: Policy, context: Context) -> list[Check]:
    spec = policy.robustness
    if spec is None:
        return []
    checks = []
    for index, rule in enumerate(spec.rules):
        location = policy.origin.locate("robustness", "rules", index)
        severity = rule.severity or spec.severity
        name = rule.id or rule.property
        if rule.property == "monotonic":
            for feature in rule.features:
                checks.append(Check(f"robustness/{name}[{feature}]", "robustness", severity,
                                    _describe(rule, feature), _monotonic(rule, spec, feature),
                                    location))
        elif rule.property == "invariant":
            checks.append(Check(f"robustness/{name}[{'+'.join(rule.features)}]", "robustness",
                                severity, _describe(rule), _invariant(rule, spec), location))
        elif rule.property == "valid_predictions":
            checks.append(Check(f"robustness/{name}[{inputs_of(rule)}]", "robustness",
                                severity, _describe(rule), _valid(rule, spec), location))
        else:
            checks.append(Check(f"robustness/{name}", "robustness", severity,
                                _describe(rule), _perturbation(rule, spec), location))
    return checks


def inputs_of(rule: RobustnessRule) -> str:
    return rule.inputs or ("schema" if rule.property == "valid_predictions" else "data")


def _describe(rule: RobustnessRule, feature: str | None = None) -> str:
    source = "rows generated from the schema" if inputs_of(rule) == "schema" else \
        "real rows changed by hypothesis"
    if rule.property == "valid_predictions":
        return f"valid outputs on {source}"
    if rule.property == "invariant":
        return (f"changing {', '.join(rule.features)} moves the score by at most "
                f"{rule.tolerance or 0:g} ({source})")
    if rule.property == "monotonic":
        return f"score {rule.direction} in {feature}, all else equal ({source})"
    return (f"noise of {rule.noise:g} standard deviations flips at most "
            f"{_flip_rate(rule):.0%} of predicted classes")


def _flip_rate(rule: RobustnessRule) -> float:
    return DEFAULT_FLIP_RATE if rule.max_flip_rate is None else rule.max_flip_rate


# ------------------------------------------------------------------ the model


class Model:
    """The candidate as the properties query it: on any frame of input rows."""

    def __init__(self, context: Context, spec: RobustnessSpec) -> None:
        loaded = context.model("candidate")
        if loaded.estimator is None:
            raise CheckError("properties need the model itself: a black box's score columns "
                             "cannot be queried on new inputs")
        self.estimator = loaded.estimator
        self.task = context.task
        self.timeout = context.model_timeout
        method = "predict" if self.task == REGRESSION else "predict_proba"
        if not hasattr(self.estimator, method):
            raise CheckError(f"candidate model ({type(self.estimator).__name__}) has no "
                             f"`{method}` method")
        self.threshold = loaded.source.threshold if self.task == BINARY else None
        self.template = context.features(spec.dataset)
        self.columns = list(self.template.columns)
        # one array per column: a row is read without building a dict per row up front
        self.arrays = {c: self.template[c].to_numpy() for c in self.columns}
        # real rows are drawn through a seeded shuffle: hypothesis favours small indices,
        # which would otherwise mean the top of the file
        self.order = np.random.default_rng([spec.seed, 6]).permutation(len(self.template))
        self.positive = None
        if self.task == BINARY:
            self.positive = context.positive_index(list(self.estimator.classes_))

    def row(self, index: int) -> dict[str, Any]:
        return {c: values[index] for c, values in self.arrays.items()}

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Rows as the model reads them: the dataset's dtypes where the values fit them
        unchanged (a missing value in an integer or boolean column, a fraction in an
        integer column, a category the data never holds keep a wider dtype, so the
        model sees exactly the value the counterexample shows)."""
        frame = pd.DataFrame(rows, columns=self.columns)
        for column in self.columns:
            frame[column] = _as_dtype(frame[column], self.template[column].dtype)
        return frame

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Positive-class probability (binary), every class's (multiclass), or the
        prediction (regression)."""
        if self.task == REGRESSION:
            with time_limit(self.timeout, "candidate model's predict"):
                return np.asarray(self.estimator.predict(frame), dtype=float)
        with time_limit(self.timeout, "candidate model's predict_proba"):
            proba = np.asarray(self.estimator.predict_proba(frame), dtype=float)
        return proba[:, self.positive] if self.task == BINARY else proba

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted classes; with the policy's `threshold` on the positive-class score,
        as the performance and fairness checks count them."""
        if self.threshold is not None:
            return self.score(frame) >= self.threshold
        with time_limit(self.timeout, "candidate model's predict"):
            return np.asarray(self.estimator.predict(frame))


def _as_dtype(values: pd.Series, dtype: Any) -> pd.Series:
    missing = values.isna()
    if isinstance(dtype, pd.CategoricalDtype):
        extra = [v for v in values[~missing].unique() if v not in set(dtype.categories)]
        return values.astype(pd.CategoricalDtype([*dtype.categories, *extra]))
    if pd.api.types.is_bool_dtype(dtype) and missing.any():
        return values.astype("boolean")
    if pd.api.types.is_integer_dtype(dtype) and not isinstance(dtype, pd.api.extensions.
                                                                ExtensionDtype):
        numbers = pd.to_numeric(values, errors="coerce")
        if missing.any() or not np.all(numbers[~missing] == np.floor(numbers[~missing])):
            return numbers.astype(float)
    try:
        return values.astype(dtype)
    except (TypeError, ValueError, OverflowError):
        return pd.to_numeric(values, errors="coerce") if pd.api.types.is_numeric_dtype(
            dtype) else values


def _model(context: Context, spec: RobustnessSpec) -> Model:
    return context.memo(("robustness-model",), lambda: Model(context, spec))


# ---------------------------------------------------------------- strategies


def column_strategy(name: str, spec: ColumnSpec | None, values: pd.Series | None,
                    missing: bool = True):
    """Values of one column: from its spec in the schema section (dtype, bounds, allowed
    values, nullability) or, without one, from the values a real dataset holds."""
    from hypothesis import strategies as st

    if spec is not None and (spec.dtype is not None or spec.checks.isin is not None):
        strategy = _from_spec(name, spec)
        nullable = spec.nullable
    elif values is not None:
        strategy = _from_values(name, values)
        nullable = bool(values.isna().any())
    else:
        raise CheckError(f"column '{name}' has no dtype or allowed values in the schema "
                         "section to generate values from")
    return st.one_of(st.none(), strategy) if nullable and missing else strategy


def _from_spec(name: str, spec: ColumnSpec):
    from hypothesis import strategies as st

    checks = spec.checks
    if checks.isin is not None:
        strategy = st.sampled_from(sorted(checks.isin, key=str))
    elif spec.dtype in ("int64", "int32", "Int64"):
        low, high = _integer_range(checks, 2**31 - 1 if spec.dtype == "int32" else 2**63 - 1)
        if low > high:
            raise CheckError(f"column '{name}': no integer satisfies its bounds")
        strategy = st.integers(low, high)
    elif spec.dtype in ("float64", "float32"):
        (low, open_low), (high, open_high) = _float_range(checks)
        if spec.dtype == "float32":  # bounds a 32-bit float can hold, inside the range
            low = float(np.nextafter(np.float32(low), np.float32(np.inf))) \
                if float(np.float32(low)) < low else float(np.float32(low))
            high = float(np.nextafter(np.float32(high), np.float32(-np.inf))) \
                if float(np.float32(high)) > high else float(np.float32(high))
        strategy = st.floats(min_value=low, max_value=high, exclude_min=open_low,
                             exclude_max=open_high, allow_nan=False, allow_infinity=False,
                             allow_subnormal=False, width=32 if spec.dtype == "float32" else 64)
    elif spec.dtype in ("bool", "boolean"):
        strategy = st.booleans()
    elif spec.dtype == "datetime64[ns]":
        import datetime as dt

        strategy = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1))
    elif checks.regex is not None:
        strategy = st.from_regex(checks.regex, fullmatch=True)
        if checks.min_length is not None or checks.max_length is not None:
            shortest, longest = checks.min_length or 0, checks.max_length
            strategy = strategy.filter(lambda text: len(text) >= shortest and (
                longest is None or len(text) <= longest))
    else:  # text
        strategy = st.text(st.sampled_from(ALPHABET), min_size=checks.min_length or 0,
                           max_size=checks.max_length if checks.max_length is not None
                           else max(TEXT_SIZE, checks.min_length or 0))
    if checks.notin:
        forbidden = set(checks.notin)
        strategy = strategy.filter(lambda value: value not in forbidden)
    return strategy


def _integer_range(checks: Any, limit: int) -> tuple[int, int]:
    """The integers the bounds allow (the strictest of ge/gt, and of le/lt), within the
    dtype's range, and within +-1e9 on a side the schema leaves open."""
    lows = [math.ceil(checks.ge)] if checks.ge is not None else []
    lows += [math.floor(checks.gt) + 1] if checks.gt is not None else []
    highs = [math.floor(checks.le)] if checks.le is not None else []
    highs += [math.ceil(checks.lt) - 1] if checks.lt is not None else []
    low = max(lows) if lows else -int(UNBOUNDED)
    high = min(highs) if highs else int(UNBOUNDED)
    return max(low, -limit - 1), min(high, limit)


def _float_range(checks: Any) -> tuple[tuple[float, bool], tuple[float, bool]]:
    """((low, exclusive), (high, exclusive)): the strictest bound on each side."""
    low, open_low = -UNBOUNDED, False
    if checks.ge is not None:
        low = float(checks.ge)
    if checks.gt is not None and (checks.ge is None or checks.gt >= checks.ge):
        low, open_low = float(checks.gt), True
    high, open_high = UNBOUNDED, False
    if checks.le is not None:
        high = float(checks.le)
    if checks.lt is not None and (checks.le is None or checks.lt <= checks.le):
        high, open_high = float(checks.lt), True
    return (low, open_low), (high, open_high)


def _from_values(name: str, values: pd.Series):
    from hypothesis import strategies as st

    present = values.dropna()
    if present.empty:
        raise CheckError(f"column '{name}' has no values to generate from")
    if pd.api.types.is_bool_dtype(present):
        return st.booleans()
    if pd.api.types.is_integer_dtype(present):
        return st.integers(int(present.min()), int(present.max()))
    if pd.api.types.is_float_dtype(present):
        return st.floats(float(present.min()), float(present.max()), allow_nan=False)
    common = present.value_counts().index[:1000].tolist()  # the most frequent values
    return st.sampled_from(sorted(common, key=str))


def _strategies(context: Context, spec: RobustnessSpec, inputs: str, columns: list[str]
                ) -> dict[str, Any]:
    schema = context.policy.schema_
    specs = schema.columns if schema is not None else {}
    frame = context.frame(spec.dataset)
    if inputs == "schema":
        unspecified = [c for c in columns if c not in specs]
        if unspecified:
            raise CheckError(f"`inputs: schema` needs every model input in `schema.columns`; "
                             f"missing: {', '.join(unspecified)} (or use `inputs: data`)")
        return {c: column_strategy(c, specs[c], None) for c in columns}
    return {c: column_strategy(c, specs.get(c), frame[c]) for c in columns}


def _row_strategy(context: Context, spec: RobustnessSpec, model: Model, inputs: str,
                  mutate: bool):
    """A whole input row: generated column by column from the schema, or a real row of the
    dataset (with a subset of its columns given new values when `mutate`)."""
    from hypothesis import strategies as st

    if inputs == "schema":
        strategies = _strategies(context, spec, "schema", model.columns)
        return st.fixed_dictionaries(strategies).map(lambda row: (row, "generated from the "
                                                                  "schema"))
    if model.template.empty:
        raise CheckError(f"dataset '{spec.dataset}' has no rows")
    real = st.integers(0, len(model.template) - 1).map(lambda k: int(model.order[k])).map(
        lambda i: (model.row(i), f"row {i} of {spec.dataset}"))
    if not mutate:
        return real
    strategies = _strategies(context, spec, "data", model.columns)

    @st.composite
    def mutated(draw):
        row, source = draw(real)
        changed = draw(st.lists(st.sampled_from(model.columns), unique=True,
                                max_size=len(model.columns)))
        for column in changed:
            row[column] = draw(strategies[column])
        return row, source + (f", changed: {', '.join(changed)}" if changed else "")

    return mutated()


def _search(spec: RobustnessSpec, body: Callable[[Any], None]) -> dict[str, Any] | None:
    """Run a property over `examples` inputs; the shrunk counterexample, or None."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Flaky, HypothesisException

    @seed(spec.seed)
    @settings(settings.get_profile("default"),  # a user's loaded profile must not leak in
              phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
              max_examples=spec.examples, database=None, deadline=None,
              derandomize=False, print_blob=False, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
    @given(st.data())
    def search(data) -> None:
        body(data)

    try:
        with _isolated():
            search()
    except Counterexample as failure:
        return failure.details
    except Flaky:
        raise CheckError("the model gave different outputs for the same input, so no "
                         "counterexample could be confirmed") from None
    except HypothesisException as exc:
        text = str(exc).split(". ")[0]  # its first sentence; the rest is advice on code
        raise CheckError(f"hypothesis could not search the inputs: {text}") from None
    return None


@contextlib.contextmanager
def _isolated() -> Iterator[None]:
    """Make a search depend on the seed alone, and leave nothing behind.

    hypothesis mixes constants it finds in the source of local modules into what it
    generates, so the same seed would search differently under the CLI and under pytest
    (where test modules are loaded): the local constants are set aside for the search.
    Its caches go to a temporary folder instead of `.hypothesis/` in the working
    directory. Single-row model calls run on one thread, where they are fastest. Each is
    restored afterwards, so a user's own hypothesis tests in the same pytest run are not
    affected. (Both hypothesis hooks are internal; without them the search still runs.)"""
    from hypothesis import configuration
    from hypothesis.internal.conjecture import providers
    from threadpoolctl import threadpool_limits

    home = "__hypothesis_home_directory"
    saved_home = getattr(configuration, home, None)
    saved_constants = getattr(providers, "_get_local_constants", None)
    configuration.set_hypothesis_home_dir(_scratch())
    if saved_constants is not None and hasattr(providers, "Constants"):
        empty = providers.Constants()
        providers._get_local_constants = lambda: empty
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        configuration.set_hypothesis_home_dir(saved_home)
        if saved_constants is not None:
            providers._get_local_constants = saved_constants


@functools.cache
def _scratch() -> str:
    """A temporary folder for hypothesis's caches, removed when the process ends."""
    path = tempfile.mkdtemp(prefix="mlcheck-hypothesis-")
    atexit.register(shutil.rmtree, path, True)
    return path


def _show(value: Any) -> Any:
    """A value as JSON and a reader want it (numpy scalars, NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {str(k): _show(v) for k, v in row.items()}


def _distance(before: np.ndarray, after: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(after) - np.asarray(before))))


# ------------------------------------------------------------------ properties


def _valid(rule: RobustnessRule, spec: RobustnessSpec):
    inputs = inputs_of(rule)

    def evaluate(context: Context) -> Outcome:
        model = _model(context, spec)
        rows = _row_strategy(context, spec, model, inputs, mutate=True)
        known = _known_labels(context, model)
        calls = [0]

        def body(data) -> None:
            row, source = data.draw(rows)
            calls[0] += 1
            problem = _invalid_output(model, model.frame([row]), known)
            if problem:
                raise Counterexample({"row": _row(row), "source": source,
                                      "problem": problem, "summary": problem})

        found = _search(spec, body)
        evidence = {"inputs": inputs, "examples": spec.examples, "seed": spec.seed,
                    "model_calls": calls[0], "counterexample": found}
        if found:
            return Outcome(False, None, {}, calls[0],
                           f"{found['problem']} (shrunk counterexample: {found['source']})",
                           evidence)
        return Outcome(True, None, {}, calls[0], f"valid outputs on {spec.examples} "
                       f"examples ({_describe(rule).removeprefix('valid outputs on ')})",
                       evidence)

    return evaluate


def _known_labels(context: Context, model: Model) -> set[str] | None:
    if model.task == REGRESSION:
        return None
    known = set(map(label_key, getattr(model.estimator, "classes_", [])))
    target = context.policy.data.target
    frame = context.frame(context.policy.robustness.dataset)
    if target and target in frame.columns:
        known |= set(map(label_key, frame[target].dropna().unique()))
    return known


def _invalid_output(model: Model, frame: pd.DataFrame, known: set[str] | None) -> str | None:
    """What is wrong with the model's outputs on these rows, or None."""
    estimator = model.estimator
    try:
        with time_limit(model.timeout, "candidate model's predict and predict_proba"):
            predicted = np.asarray(estimator.predict(frame))
            proba = None if model.task == REGRESSION else np.asarray(
                estimator.predict_proba(frame), dtype=float)
    except Exception as exc:
        return f"the model raised {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    if predicted.shape[:1] != (len(frame),):
        return f"predict returned shape {predicted.shape} for {len(frame)} rows"
    if model.task == REGRESSION:
        values = predicted.astype(float)
        if not np.all(np.isfinite(values)):
            return f"the prediction is not finite ({values.tolist()})"
        return None
    unknown = sorted({label_key(v) for v in predicted} - known)
    if unknown:
        return f"predicted label {unknown[0]!r} is not a known label"
    if proba.ndim != 2 or proba.shape[0] != len(frame):
        return f"predict_proba returned shape {proba.shape} for {len(frame)} rows"
    if not np.all(np.isfinite(proba)):
        return f"probabilities are not finite ({proba[0].tolist()})"
    if np.any((proba < 0) | (proba > 1)):
        return f"probabilities outside [0, 1] ({proba[0].tolist()})"
    total = proba.sum(axis=1)
    if np.any(np.abs(total - 1) > PROBABILITY_SUM_TOLERANCE):
        return f"probabilities sum to {float(total[0]):.6g}, not 1"
    return None


def _other_value(strategy, old: Any):
    same = (lambda v: v is None or (isinstance(v, float) and math.isnan(v))) \
        if _missing(old) else (lambda v: not _missing(v) and label_key(v) == label_key(old))
    return strategy.filter(lambda value: not same(value))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        value is pd.NA) or (isinstance(value, np.floating) and np.isnan(value))


def _check_features(model: Model, features: tuple[str, ...]) -> None:
    for feature in features:
        if feature not in model.columns:
            raise CheckError(f"'{feature}' is not an input column of the model"
                             + suggest(feature, model.columns)
                             + f"; inputs: {', '.join(model.columns)}")


def _invariant(rule: RobustnessRule, spec: RobustnessSpec):
    inputs = inputs_of(rule)
    tolerance = rule.tolerance or 0.0

    def evaluate(context: Context) -> Outcome:
        model = _model(context, spec)
        _check_features(model, rule.features)
        rows = _row_strategy(context, spec, model, inputs, mutate=False)
        strategies = _strategies(context, spec, inputs, list(rule.features))
        largest, calls = [0.0], [0]

        def body(data) -> None:
            row, source = data.draw(rows)
            after = dict(row)
            for feature in rule.features:
                after[feature] = data.draw(_other_value(strategies[feature], row[feature]))
            calls[0] += 1
            scores = _query(model, [row, after], source)
            moved = _distance(scores[0], scores[1])
            largest[0] = max(largest[0], moved)
            if moved > tolerance:
                changes = {f: [_show(row[f]), _show(after[f])] for f in rule.features}
                raise Counterexample({
                    "row": _row(row), "source": source, "changed": changes,
                    "scores": [_show_score(scores[0]), _show_score(scores[1])],
                    "change": moved})

        found = _search(spec, body)
        evidence = {"inputs": inputs, "examples": spec.examples, "seed": spec.seed,
                    "tolerance": tolerance, "model_calls": calls[0],
                    "largest_change_seen": largest[0], "counterexample": found}
        if found and "problem" in found:
            return _broken(found, tolerance, calls[0], evidence)
        if found:
            what = "; ".join(f"{f} {a!r} -> {b!r}" for f, (a, b) in found["changed"].items())
            return Outcome(False, found["change"], {"max": tolerance}, calls[0],
                           f"changing {what} moves the score {_score_text(found['scores'])} "
                           f"(by {found['change']:.4g} > {tolerance:g}); shrunk "
                           f"counterexample: {found['source']}", evidence)
        return Outcome(True, largest[0], {"max": tolerance}, calls[0],
                       f"no counterexample in {spec.examples} examples; the largest change "
                       f"seen is {largest[0]:.4g} <= {tolerance:g}", evidence)

    return evaluate


def _query(model: Model, rows: list[dict[str, Any]], source: str) -> np.ndarray:
    """The model's scores on rows; a raise or a non-finite score is itself a
    counterexample (with the row), never an internal error or a silent pass."""
    try:
        scores = model.score(model.frame(rows))
    except Exception as exc:
        problem = f"the model raised {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        raise Counterexample({"row": _row(rows[0]), "source": source, "problem": problem,
                              "summary": problem}) from None
    if not np.all(np.isfinite(scores)):
        problem = "the score is not finite"
        raise Counterexample({"row": _row(rows[0]), "source": source, "problem": problem,
                              "scores": [_show_score(s) for s in scores],
                              "summary": problem})
    return scores


def _broken(found: dict, tolerance: float, calls: int, evidence: dict) -> Outcome:
    """A property failed because the model raised or gave a non-finite score."""
    return Outcome(False, None, {"max": tolerance}, calls,
                   f"{found['problem']} (shrunk counterexample: {found['source']})", evidence)


def _show_score(score: Any) -> Any:
    array = np.asarray(score, dtype=float)
    return float(array) if array.ndim == 0 else array.tolist()


def _score_text(scores: list[Any]) -> str:
    def one(score: Any) -> str:
        return f"{score:.4g}" if isinstance(score, float) else \
            "[" + ", ".join(f"{s:.3g}" for s in score) + "]"

    return f"{one(scores[0])} -> {one(scores[1])}"


def _monotonic(rule: RobustnessRule, spec: RobustnessSpec, feature: str):
    inputs = inputs_of(rule)
    tolerance = rule.tolerance or 0.0
    rising = rule.direction == "increasing"

    def evaluate(context: Context) -> Outcome:
        model = _model(context, spec)
        _check_features(model, (feature,))
        if model.task == MULTICLASS:
            raise CheckError("`monotonic` needs one score per row (binary or regression)")
        schema = context.policy.schema_
        column_spec = schema.columns.get(feature) if schema is not None else None
        values = None if inputs == "schema" else context.frame(spec.dataset)[feature]
        numeric = pd.api.types.is_numeric_dtype(model.template[feature]) and not \
            pd.api.types.is_bool_dtype(model.template[feature])
        if not numeric:
            raise CheckError(f"`monotonic` needs a numeric feature; '{feature}' is "
                             f"{model.template[feature].dtype}")
        if inputs == "schema" and column_spec is None:
            raise CheckError(f"`inputs: schema` needs '{feature}' in `schema.columns`")
        values_of = column_strategy(feature, column_spec, values, missing=False)
        rows = _row_strategy(context, spec, model, inputs, mutate=False)
        worst, calls = [0.0], [0]

        def body(data) -> None:
            from hypothesis import assume

            row, source = data.draw(rows)
            low, high = sorted((data.draw(values_of), data.draw(values_of)))
            assume(low != high)
            calls[0] += 1
            scores = _query(model, [{**row, feature: low}, {**row, feature: high}], source)
            against = (scores[0] - scores[1]) if rising else (scores[1] - scores[0])
            worst[0] = max(worst[0], float(against))
            if against > tolerance:
                raise Counterexample({
                    "row": _row(row), "source": source,
                    "changed": {feature: [_show(low), _show(high)]},
                    "scores": [float(scores[0]), float(scores[1])], "change": float(against)})

        found = _search(spec, body)
        evidence = {"inputs": inputs, "examples": spec.examples, "seed": spec.seed,
                    "tolerance": tolerance, "model_calls": calls[0],
                    "largest_step_against": worst[0], "counterexample": found}
        if found and "problem" in found:
            return _broken(found, tolerance, calls[0], evidence)
        if found:
            low, high = found["changed"][feature]
            return Outcome(False, found["change"], {"max": tolerance}, calls[0],
                           f"raising {feature} from {low!r} to {high!r} moves the score "
                           f"{_score_text(found['scores'])}, against the declared "
                           f"{rule.direction} direction; shrunk counterexample: "
                           f"{found['source']}", evidence)
        return Outcome(True, worst[0], {"max": tolerance}, calls[0],
                       f"no counterexample in {spec.examples} examples; the largest step "
                       f"against the direction seen is {worst[0]:.4g} <= {tolerance:g}",
                       evidence)

    return evaluate


def _perturbation(rule: RobustnessRule, spec: RobustnessSpec):
    """Gaussian noise on the numeric inputs of real rows: how many predicted classes flip.
    A rate over rows, so it is measured directly (seeded numpy), not searched."""
    limit = _flip_rate(rule)

    def evaluate(context: Context) -> Outcome:
        model = _model(context, spec)
        frame = model.template
        if frame.empty:
            raise CheckError(f"dataset '{spec.dataset}' has no rows")
        rng = np.random.default_rng([spec.seed, 4])
        rows = min(rule.rows or PERTURBATION_ROWS, len(frame))
        picked = np.sort(rng.choice(len(frame), rows, replace=False))
        before = frame.iloc[picked].reset_index(drop=True)
        after = before.copy()
        numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
                   and not pd.api.types.is_bool_dtype(frame[c])]
        if rule.features:
            _check_features(model, rule.features)
            wrong = [c for c in rule.features if c not in numeric]
            if wrong:
                raise CheckError(f"`perturbation` adds noise to numeric features; "
                                 f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not")
            numeric = list(rule.features)
        if not numeric:
            raise CheckError("`perturbation` needs numeric input columns to add noise to")
        noise = {}
        for column in numeric:
            spread = float(np.nanstd(frame[column].to_numpy(dtype=float)))
            step = rng.normal(0, rule.noise * spread, rows)
            if pd.api.types.is_integer_dtype(frame[column]):
                step = np.round(step)
            noise[column] = step
            after[column] = (before[column].to_numpy(dtype=float) + step).astype(
                frame[column].dtype) if not before[column].isna().any() else \
                before[column].to_numpy(dtype=float) + step
        try:
            labels_before, labels_after = model.labels(before), model.labels(after)
        except Exception as exc:
            raise CheckError(f"the model raised {type(exc).__name__} on the perturbed rows: "
                             f"{' '.join(str(exc).split())[:300]}") from None
        flipped = np.flatnonzero([label_key(a) != label_key(b)
                                  for a, b in zip(labels_before, labels_after, strict=True)])
        rate = len(flipped) / rows
        evidence = {"rows": rows, "noise": rule.noise, "seed": spec.seed,
                    "columns": numeric, "flipped": len(flipped), "counterexample": None}
        if len(flipped):
            size = np.sum([np.abs(noise[c][flipped]) / max(float(np.nanstd(
                frame[c].to_numpy(dtype=float))), 1e-12) for c in numeric], axis=0)
            i = int(flipped[np.argmin(size)])  # the flip with the least noise
            pair = model.frame([before.iloc[i].to_dict(), after.iloc[i].to_dict()])
            scores = model.score(pair)
            evidence["counterexample"] = {
                "row": _row(before.iloc[i].to_dict()),
                "source": f"row {int(picked[i])} of {spec.dataset}",
                "changed": {c: [_show(before[c].iloc[i]), _show(after[c].iloc[i])]
                            for c in numeric if _show(before[c].iloc[i])
                            != _show(after[c].iloc[i])},
                "labels": [_show(labels_before[i]), _show(labels_after[i])],
                "scores": [_show_score(scores[0]), _show_score(scores[1])]}
        passed = rate <= limit
        return Outcome(passed, rate, {"max": limit}, rows,
                       f"noise flips {len(flipped)} of {rows} predicted classes ({rate:.2%}) "
                       f"{'<=' if passed else '>'} {limit:.2%}", evidence)

    return evaluate
