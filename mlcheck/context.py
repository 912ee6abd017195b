"""The evaluation context: everything checks share, computed once per run and cached.

Checks ask the context for labels, predictions and scores; they never call a model
themselves. Failures (a model that raises, NaN scores) are cached too, so every check
that depends on them reports the same error without retrying the model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlcheck.errors import CheckError
from mlcheck.guard import ModelTimeout, escaped_model_code, time_limit
from mlcheck.metrics import BINARY, MULTICLASS, REGRESSION
from mlcheck.policy import Policy
from mlcheck.stats import CellBootstrap, RowBootstrap
from mlcheck.subject import LoadedModel, Subject

# A model is called on at most this many rows at a time: what a pipeline builds on its way
# (encoded copies of the input, text as Python objects) then takes memory of one batch,
# not of the whole dataset. Rows are predicted independently, as scikit-learn does.
PREDICT_ROWS = 100_000


def label_key(value: Any) -> str:
    """A label as comparable text: True, 1 and 1.0 are one label; "yes" is itself."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def natural_sort(values: list) -> list:
    """Sort labels as scikit-learn does (1, 2, 10), falling back to text for mixed types."""
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


@dataclass(frozen=True)
class Truth:
    """True labels of a dataset, normalised for the task (binary: True = positive)."""

    values: np.ndarray
    classes: tuple | None  # binary: (False, True); multiclass: the label set; regression: None
    positive_label: Any = None


def sorted_codes(values: Any) -> tuple[np.ndarray, list]:
    """Codes of values in their sorted order, missing values (None, NaN, NA, NaT) last as
    one value; in order of appearance when the values cannot be sorted (mixed types).
    The same values give the same codes whatever the order of the rows and the column's
    dtype (a nullable boolean column in pandas, the same column as objects from Spark)."""
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:
        codes, uniques = pd.factorize(values)
    uniques = list(uniques)
    if (codes < 0).any():
        codes = np.where(codes < 0, len(uniques), codes)
        uniques.append(None)
    return codes, uniques


def joint_codes(parts: list[Any]) -> tuple[np.ndarray, list[tuple[np.ndarray, list]]]:
    """Codes of rows by several columns jointly, numbered in the sorted order of their
    value tuples (each column's missing values last), with each column's own codes and
    values. Renumbered after each column, so the codes stay below the row count."""
    columns = [sorted_codes(part) for part in parts]
    joint = np.zeros(len(columns[0][0]), dtype=np.int64)
    for codes, uniques in columns:
        joint = pd.factorize(joint * len(uniques) + codes, sort=True)[0]
    return joint, columns


class _WrongRows(Exception):
    """A model returned a number of rows other than it was given."""


class Context:
    """Lazy cache of a run's shared work: predictions, scores, truth, validation results."""

    def __init__(self, policy: Policy, subject: Subject, *,
                 model_timeout: float | None = None) -> None:
        self.policy = policy
        self.subject = subject
        self.model_timeout = model_timeout or (policy.model.timeout if policy.model else None)
        self.task = policy.model.task if policy.model else None
        self.model_calls: Counter[tuple[str, str, str]] = Counter()
        self._memo: dict[Hashable, tuple[bool, Any]] = {}
        self._cell_needs: dict[str, set[tuple[str, str]]] = {}

    def adopt(self, other: Context, keep: Callable[[Hashable], bool]) -> None:
        """Take over another context's cached work for the keys `keep` accepts (a mutant
        of the subject shares what its change cannot affect; `mlcheck mutate`)."""
        self._memo.update({k: v for k, v in other._memo.items() if keep(k)})

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """Compute once per key; a failure is remembered and raised again."""
        if key not in self._memo:
            try:
                self._memo[key] = (True, compute())
            except CheckError as exc:
                self._memo[key] = (False, exc)
        ok, value = self._memo[key]
        if not ok:
            raise value
        return value

    # ------------------------------------------------------------- resamples

    def need_cells(self, dataset: str, roles: tuple[str, ...] = (),
                   columns: tuple[str, ...] = ()) -> None:
        """Declare, when checks are compiled, what count-based checks of a dataset split
        its rows by (models' predicted labels, grouping columns), so that one draw of
        the finest cells serves them all."""
        if ("cells", dataset) in self._memo:
            raise RuntimeError(f"cells of dataset '{dataset}' declared after they were drawn")
        needs = self._cell_needs.setdefault(dataset, set())
        needs.update(("role", role) for role in roles)
        needs.update(("column", column) for column in columns)

    def cell_bootstrap(self, dataset: str) -> CellBootstrap | None:
        """Resampled totals of the finest cells of a dataset (truth x each declared model's
        predicted label x each declared column), drawn once and shared by every
        count-based check, so their intervals are paired (None: intervals off)."""
        stats = self.policy.statistics
        if stats.resamples == 0:
            return None
        return self.memo(("cells", dataset), lambda: CellBootstrap(
            self._finest_cells(dataset), stats.resamples, self._seed(dataset),
            self.weights(dataset)))

    def row_bootstrap(self, dataset: str) -> RowBootstrap | None:
        """Per-row resample counts of a dataset, drawn block by block from the dataset's
        seed, for the metrics that read every row (None: intervals off)."""
        stats = self.policy.statistics
        if stats.resamples == 0:
            return None
        return self.memo(("rows", dataset), lambda: RowBootstrap(
            len(self.frame(dataset)), stats.resamples, self._seed(dataset),
            self.weights(dataset)))

    def _seed(self, dataset: str) -> np.random.SeedSequence:
        """Each dataset gets its own seed derived from the policy's, so adding a dataset
        does not change the resamples of another."""
        return np.random.SeedSequence([self.policy.statistics.seed, *dataset.encode()])

    def _finest_cells(self, dataset: str) -> np.ndarray:
        """Each row's cell in the finest partition the declared needs ask for, numbered in
        the sorted order of the cells' values, so that the same data gives the same cells
        (and the same draws) whatever the order of its rows: on pandas or, aggregated, on
        Spark. A part that cannot be computed (a model that raises, a missing column) is
        left out: the checks that need it report that error themselves."""
        parts: list[Any] = [self.truth(dataset).values]
        for kind, name in sorted(self._cell_needs.get(dataset, ())):
            try:
                parts.append(self.labels(name, dataset) if kind == "role"
                             else self.frame(dataset)[name])
            except (CheckError, KeyError):
                continue
        return joint_codes(parts)[0]

    def frame(self, dataset: str) -> pd.DataFrame:
        """A dataset's rows; for a Spark dataset, its distinct scored combinations (the
        columns checks group by, truth, predictions), each standing for `weights` rows."""
        loaded = self.subject.datasets[dataset]
        if loaded.spark is not None:
            return self.scored(dataset).frame
        return loaded.frame

    def weights(self, dataset: str) -> np.ndarray | None:
        """How many rows each row of `frame` stands for: None for a dataset held in pandas
        (one each), the counts of the aggregated rows for a Spark dataset."""
        if self.subject.datasets[dataset].spark is None:
            return None
        return self.scored(dataset).counts

    def size(self, dataset: str, rows: np.ndarray | None = None) -> int:
        """The number of rows of a dataset (or of the rows `rows` of its frame)."""
        weights = self.weights(dataset)
        if weights is None:
            return len(self.frame(dataset)) if rows is None else len(rows)
        return int(weights.sum() if rows is None else weights[rows].sum())

    def scored(self, dataset: str) -> Any:
        """A Spark dataset scored on the executors and aggregated (mlcheck/spark.py), once
        per run; a failure (a model that raises there) is every check's error."""
        from mlcheck.spark import score_aggregate

        return self.memo(("scored", dataset), lambda: score_aggregate(self, dataset))

    def spark_frame(self, dataset: str) -> Any:
        """A Spark dataset's DataFrame, or None for a dataset held in pandas."""
        return self.subject.datasets[dataset].spark

    def model(self, role: str) -> LoadedModel:
        model = self.subject.model if role == "candidate" else self.subject.baseline
        if model is None:
            raise CheckError(f"no {role} model is configured")
        return model

    # ---------------------------------------------------------------- truth

    def truth(self, dataset: str) -> Truth:
        return self.memo(("truth", dataset), lambda: self._truth(dataset))

    def _truth(self, dataset: str) -> Truth:
        # the target was checked when the subject was loaded (complete, fits the task)
        target = self.policy.data.target
        if target is None:
            raise CheckError("`data.target` is not set")
        column = self.frame(dataset)[target]
        if self.task == REGRESSION:
            return Truth(column.to_numpy(dtype=float), None)
        if self.task == MULTICLASS:
            return Truth(column.to_numpy(), tuple(natural_sort(column.unique().tolist())))
        positive = self.subject.positive_label
        return Truth((column == positive).to_numpy(), (False, True), positive)

    # ---------------------------------------------------------- model outputs

    def labels(self, role: str, dataset: str) -> np.ndarray:
        """Predicted labels (binary: True = positive), computed once per model and dataset."""
        return self.memo(("labels", role, dataset), lambda: self._labels(role, dataset))

    def scores(self, role: str, dataset: str) -> np.ndarray:
        """Scores (binary: positive-class probability; multiclass: one column per class;
        regression: the prediction), computed once per model and dataset."""
        return self.memo(("scores", role, dataset), lambda: self._scores(role, dataset))

    def classes(self, dataset: str) -> tuple | None:
        """Class order of labels and score columns for the task."""
        truth = self.truth(dataset)
        if self.task != MULTICLASS:
            return truth.classes
        model = self.subject.model
        if model is not None and model.estimator is not None:
            return tuple(model.estimator.classes_)
        return truth.classes

    def features(self, dataset: str, model: LoadedModel | None = None) -> pd.DataFrame:
        """A model's input (the candidate's by default): the columns it was loaded with
        (`model.features`, else the model's own `feature_names_in_`), else every column
        but the target and the columns black-box sources read (a vendor's score must
        never leak into a model)."""
        frame = self.frame(dataset)
        return frame[self.feature_columns(list(frame.columns), model)]

    def feature_columns(self, columns: list[str], model: LoadedModel | None = None
                        ) -> list[str]:
        """The columns `features` gives a model, out of a dataset's `columns`."""
        model = model or self.subject.model
        if model is not None and model.inputs:
            return list(model.inputs)
        spec = self.policy.model
        excluded = {self.policy.data.target}
        for source in (spec, spec and spec.baseline):
            if source is not None:
                scores = source.scores
                excluded.update(scores.values() if isinstance(scores, dict) else [scores])
                excluded.add(source.predictions)
        return [c for c in columns if c not in excluded]

    def _call(self, model: LoadedModel, method: str, dataset: str) -> np.ndarray:
        """Call the model on the whole dataset (in batches of PREDICT_ROWS rows; the time
        limit covers them all), and check that what it returns has the right shape."""
        estimator = model.estimator
        if not hasattr(estimator, method):
            raise CheckError(f"{model.role} model ({type(estimator).__name__}) has no "
                             f"`{method}` method")
        self.model_calls[(model.role, dataset, method)] += 1
        features = self.features(dataset, model)
        rows = len(features)
        parts = []
        try:
            with time_limit(self.model_timeout, f"{model.role} model's {method} on dataset "
                                                f"'{dataset}'"):
                for start in range(0, max(rows, 1), PREDICT_ROWS):
                    batch = features.iloc[start:start + PREDICT_ROWS]
                    part = np.asarray(getattr(estimator, method)(batch))
                    if part.ndim == 0 or part.shape[0] != len(batch):
                        where = f"the {rows} rows" if len(batch) == rows else \
                            f"rows {start}-{start + len(batch) - 1} of the {rows} rows"
                        raise _WrongRows(f"{model.role} model's {method} returned "
                                         f"{part.shape[:1] or 0} rows for {where} of "
                                         f"dataset '{dataset}'")
                    parts.append(part)
        except (ModelTimeout, _WrongRows) as exc:  # remembered: every check needing it says so
            raise CheckError(str(exc)) from None
        except Exception as exc:
            raise CheckError(f"{model.role} model raised {type(exc).__name__} in {method} on "
                             f"dataset '{dataset}': {exc}") from None
        except BaseException as exc:  # sys.exit() and the like: remembered too, not retried
            reason = escaped_model_code(exc)
            if reason is None:
                raise  # a real Ctrl-C
            raise CheckError(reason) from None
        output = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if method == "predict_proba":
            classes = len(getattr(estimator, "classes_", []))
            if output.ndim != 2 or output.shape[1] != classes:
                raise CheckError(f"{model.role} model's predict_proba returned shape "
                                 f"{output.shape}; expected ({rows}, {classes}), one column "
                                 "per entry of `classes_`")
            output = output.astype(float)
            outside = int(np.count_nonzero((output < 0) | (output > 1)))
            if outside:
                raise CheckError(f"{model.role} model's predict_proba returned {outside} "
                                 "values outside [0, 1]")
        return output

    def _labels(self, role: str, dataset: str) -> np.ndarray:
        model = self.model(role)
        source = model.source
        if self.task == REGRESSION:
            raise CheckError("regression has no predicted labels")
        spark = self.spark_frame(dataset) is not None
        if self.task == BINARY and source.threshold is not None:
            if spark:  # thresholded on the executors, before scores were put on a grid
                return self.scored(dataset).output(role, "labels")
            return self.scores(role, dataset) >= source.threshold
        if spark and model.estimator is not None:
            raw = pd.Series(self.scored(dataset).output(role, "labels"))
        elif model.estimator is None:
            if not source.predictions:
                raise CheckError(f"{role}: black-box mode needs `predictions` or a "
                                 "`threshold` on `scores` for label metrics")
            raw = self.frame(dataset)[source.predictions]
            if raw.isna().any():
                raise CheckError(f"{role}: predictions column '{source.predictions}' has "
                                 f"{self._count(dataset, raw.isna().to_numpy())} missing "
                                 "values")
        else:
            raw = pd.Series(self._call(model, "predict", dataset))
        known = set(map(label_key, self.frame(dataset)[self.policy.data.target].unique()))
        if model.estimator is not None and self.task == MULTICLASS:
            known |= set(map(label_key, model.estimator.classes_))
        codes, distinct = pd.factorize(raw, use_na_sentinel=False)  # each label once
        keys = [label_key(value) for value in distinct]
        unknown = sorted(set(keys) - known)
        if unknown:
            raise CheckError(f"{role} predicts labels that are not labels of target "
                             f"'{self.policy.data.target}': {', '.join(unknown[:10])} "
                             f"(target labels: {', '.join(sorted(known)[:10])})")
        if self.task == BINARY:
            positive = label_key(self.truth(dataset).positive_label)
            return np.array([key == positive for key in keys], dtype=bool)[codes]
        return raw.to_numpy()

    def _scores(self, role: str, dataset: str) -> np.ndarray:
        model = self.model(role)
        source = model.source
        if model.estimator is None:
            scores = self._column_scores(source, dataset)
        elif self.spark_frame(dataset) is not None:
            scores = self.scored(dataset).output(role, "scores")
        elif self.task == REGRESSION:
            scores = self._call(model, "predict", dataset).astype(float)
        else:
            proba = self._call(model, "predict_proba", dataset)
            classes = list(model.estimator.classes_)
            scores = proba[:, self.positive_index(classes, role)] if self.task == BINARY \
                else proba
        bad = ~np.isfinite(scores)
        if bad.any():
            rows = bad if bad.ndim == 1 else bad.any(axis=1)
            raise CheckError(f"{role} model produced {self._count(dataset, rows)} NaN or "
                             f"infinite scores on dataset '{dataset}' "
                             f"({self.size(dataset)} rows)")
        return scores

    def _count(self, dataset: str, mask: np.ndarray) -> int:
        """How many rows of a dataset `mask` selects (weighted on Spark)."""
        weights = self.weights(dataset)
        return int(mask.sum() if weights is None else weights[mask].sum())

    def positive_index(self, classes: list, role: str = "candidate") -> int:
        """Where the positive label is in a binary model's `classes_`."""
        positive = self._positive(classes)
        matches = [i for i, c in enumerate(classes) if label_key(c) == label_key(positive)]
        if not matches:
            raise CheckError(f"{role} model's classes {classes} do not include the "
                             f"positive label {positive!r}")
        return matches[0]

    def _positive(self, classes: list) -> Any:
        """The positive label: resolved from the target when it was checked, else the
        policy's, else the model's last class (scikit-learn's convention). Scoring a batch
        without labels (drift) needs no target."""
        if self.subject.positive_label is not None:
            return self.subject.positive_label
        if self.policy.data.positive_label is not None:
            return self.policy.data.positive_label
        return classes[-1]

    def _column_scores(self, source: Any, dataset: str) -> np.ndarray:
        frame = self.frame(dataset)
        if self.task == REGRESSION and not source.scores:
            source = source.model_copy(update={"scores": source.predictions})
        if not source.scores:
            raise CheckError("black-box mode without a `scores` column: this metric needs "
                             "scores")
        if isinstance(source.scores, dict):
            if self.task != MULTICLASS:
                raise CheckError("a mapping of score columns is for multiclass tasks")
            by_name = {str(k): v for k, v in source.scores.items()}
            classes = self.classes(dataset)
            missing = [c for c in classes if str(c) not in by_name]
            if missing:
                raise CheckError(f"`scores` has no column for classes {missing}")
            columns = [by_name[str(c)] for c in classes]
        else:
            if self.task == MULTICLASS:
                raise CheckError("multiclass black-box scores need a mapping class -> column")
            columns = [source.scores]
        values = frame[columns]
        non_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(values[c])]
        if non_numeric:
            raise CheckError(f"score columns {non_numeric} are not numeric")
        array = values.to_numpy(dtype=float)
        return array[:, 0] if array.shape[1] == 1 and self.task != MULTICLASS else array
