"""What is evaluated: the candidate model, the baseline and the named datasets.

Every artifact is fingerprinted (SHA-256 of its bytes) before it is used, and a pinned
hash is compared before anything is parsed. Pickle-based files are never unpickled unless
the user trusts them explicitly or pinned their hash.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import hashlib
import importlib
import io
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlcheck.errors import InputError, display_path, suggest
from mlcheck.guard import interrupted, model_code
from mlcheck.inputs import (
    DATASET,
    DATASET_ROWS,
    GZIP_FLOOR,
    GZIP_RATIO,
    MODEL,
    RECORD,
    CappedReader,
    read_limited,
    sha256_file,
)
from mlcheck.metrics import BINARY, REGRESSION
from mlcheck.policy import ModelSource, Policy

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Artifact:
    """A file's identity: where it is, its SHA-256 and its size."""

    path: str
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to predict, or a black-box description of prediction columns."""

    role: str  # "candidate" or "baseline"
    source: ModelSource
    estimator: Any | None  # None in black-box mode
    artifact: Artifact | None  # the model file, or a factory's source file
    loaded_with: str  # how it was loaded and why it was trusted, for the record
    inputs: tuple[str, ...] | None = None  # columns passed to it; None: all but the target
    registry: dict[str, Any] | None = None  # a `uri` model: digest, size, MLflow provenance

    def describe(self) -> dict[str, Any]:
        if self.estimator is None:
            kind = {"kind": "columns", "predictions": self.source.predictions,
                    "scores": self.source.scores}
        else:
            kind = {"kind": "estimator", "class": _class_name(self.estimator)}
            if self.source.factory:
                kind["factory"] = self.source.factory
            if self.source.uri:
                kind["uri"] = self.source.uri
        if self.source.threshold is not None:
            kind["threshold"] = self.source.threshold
        kind["loaded_with"] = self.loaded_with
        return {**kind, **(self.artifact.to_dict() if self.artifact else {}),
                **(self.registry or {})}


@dataclass(frozen=True)
class LoadedDataset:
    """A named dataset with its fingerprint: the columns the run reads, and its rows (a
    seeded sample of them when the policy asks for one)."""

    name: str
    frame: pd.DataFrame
    artifact: Artifact
    file_columns: int | None = None  # columns in the file; the frame holds those it needs
    sample: dict[str, int] | None = None  # {rows, of, seed} when the rows are a sample
    digest_method: str | None = None  # how an in-memory DataFrame's sha256 was computed
    spark: Any = None  # a Spark DataFrame (mlcheck/spark.py); `frame` then holds no rows
    rows: int | None = None  # a Spark dataset's row count

    def describe(self) -> dict[str, Any]:
        described = {**self.artifact.to_dict(),
                     "rows": len(self.frame) if self.spark is None else self.rows,
                     "columns": self.file_columns or len(self.frame.columns)}
        if self.sample is not None:
            described["sample"] = self.sample
        if self.digest_method is not None:
            described["digest_method"] = self.digest_method
        return described


@dataclass(frozen=True)
class LoadedProfile:
    """A reference profile written by `mlcheck profile`."""

    artifact: Artifact
    bins: int
    rows: int
    columns: dict[str, dict]

    def describe(self) -> dict[str, Any]:
        return {**self.artifact.to_dict(), "rows": self.rows, "columns": len(self.columns),
                "bins": self.bins}


@dataclass(frozen=True)
class Subject:
    """Everything a run evaluates, loaded and fingerprinted."""

    model: LoadedModel | None
    baseline: LoadedModel | None
    datasets: dict[str, LoadedDataset]
    positive_label: Any = None  # binary tasks: the target value counted as positive
    profile: LoadedProfile | None = None  # a drift reference profile

    def describe(self, policy: Policy) -> dict[str, Any]:
        return {
            "task": policy.model.task if policy.model else None,
            "target": policy.data.target,
            "positive_label": self.positive_label,
            "model": self.model.describe() if self.model else None,
            "baseline": self.baseline.describe() if self.baseline else None,
            "datasets": {name: ds.describe() for name, ds in self.datasets.items()},
            "reference_profile": self.profile.describe() if self.profile else None,
        }


def load_subject(policy: Policy, *, trust_model: bool = False, model: Any = None,
                 baseline: Any = None, datasets: dict[str, Any] | None = None) -> Subject:
    """Load and fingerprint the datasets and models a policy names. Every file is read
    and checked against its pin first; the datasets are parsed after the models are
    loaded, since the columns a model reads decide the columns read from them.

    Objects passed in (a fitted `model` or `baseline`, DataFrames by dataset name) take
    the place of what the policy names, whose files are then not read; each is recorded
    with a content digest (see `in_memory_model`, `in_memory_dataset`)."""
    given = _check_in_memory(policy, model, baseline, datasets or {})
    base = policy.base_dir
    files = {}
    spark_sources = [n for n, s in policy.data.datasets.items()  # tables, and Spark frames
                     if (s.spark and n not in given) or is_spark_frame(given.get(n))]
    if spark_sources:  # before any file is read: a section Spark cannot run stops the run
        from mlcheck.spark import check_supported

        check_supported(policy, [n for n in spark_sources  # a sample comes to the driver
                                 if policy.data.datasets[n].sample is None])
    for name, spec in policy.data.datasets.items():
        if name in given or spec.spark is not None:
            continue
        key = ("data", "datasets", name)
        path = base / spec.path
        if not path.exists():
            raise InputError(f"dataset '{name}': file not found: {display_path(path)}",
                             policy.origin.locate(*key))
        try:  # hashed and parsed from the same bytes
            content = read_limited(path, f"dataset '{name}'", DATASET)
        except InputError as exc:
            raise InputError(exc.message, policy.origin.locate(*key)) from None
        except OSError as exc:
            raise InputError(f"dataset '{name}': cannot read {display_path(path)}: "
                             f"{exc.strerror or exc}", policy.origin.locate(*key)) from None
        artifact = Artifact(display_path(path), hashlib.sha256(content).hexdigest(),
                            len(content))
        _check_pin(artifact, spec.sha256, f"dataset '{name}'", policy.origin.locate(*key, "sha256"))
        files[name] = (path, content, artifact)

    objects, model, baseline = (model, baseline), None, None
    if policy.model is not None:
        model = _with_inputs(
            in_memory_model(objects[0], policy.model, "candidate") if objects[0] is not None
            else _load_model(policy.model, "candidate", base, trust_model, policy, ("model",)),
            policy.model.features)
        if policy.model.baseline is not None:
            baseline = _with_inputs(
                in_memory_model(objects[1], policy.model.baseline, "baseline")
                if objects[1] is not None else
                _load_model(policy.model.baseline, "baseline", base, trust_model, policy,
                            ("model", "baseline")), policy.model.features, own_first=True)
    profile = None
    if policy.drift and policy.drift.reference_profile:
        profile = load_profile(base / policy.drift.reference_profile,
                               policy.origin.locate("drift", "reference_profile"))
    needs = needed_columns(policy, model, baseline)
    datasets = {}
    for name in policy.data.datasets:
        if name in spark_sources:
            from mlcheck.spark import load_dataset

            datasets[name] = load_dataset(policy, name, needs[name], given.get(name))
            continue
        if name in given:
            datasets[name] = in_memory_dataset(policy, name, given[name])
            continue
        path, content, artifact = files.pop(name)  # its bytes go once it is parsed
        datasets[name] = _read_needed(policy, name, path, content, artifact, needs[name])
        del content
    subject = Subject(model, baseline, datasets, profile=profile)
    _check_columns(policy, subject)
    return dataclasses.replace(subject, positive_label=_check_target(policy, subject))


@dataclass
class Needed:
    """The columns a run reads from one dataset: every column, or those in `names` and,
    when the file has them, those in `maybe`."""

    every: bool = False
    names: set[str] = dataclasses.field(default_factory=set)
    maybe: set[str] = dataclasses.field(default_factory=set)

    def add(self, columns: Iterable[str] | None) -> None:
        """Columns the run needs (None: every column)."""
        if columns is None:
            self.every = True
        else:
            self.names.update(columns)

    def select(self, names: list[str]) -> list[str] | None:
        """The file's columns to read, in file order; None for all of them, also when one
        it needs is missing, so that the error lists every column as without projection."""
        if self.every or not self.names or not self.names <= set(names):
            return None
        keep = self.names | self.maybe
        return [n for n in names if n in keep]


PREDICTION = "prediction"  # the column name drift's `prediction: true` uses (checks/drift.py)


def needed_columns(policy: Policy, *models: LoadedModel | None) -> dict[str, Needed]:
    """The columns each dataset is read for: the target, the models' inputs and black-box
    columns, schema columns (every column with `strict`), slice and sensitive columns,
    drift columns (every column for `all`), explained and robustness features. A model
    whose inputs are not known (no `model.features`, no `feature_names_in_`) reads every
    column. A dataset nothing names a column of is read whole."""
    needs = {name: Needed() for name in policy.data.datasets}
    none = Needed()  # a dataset name that is not a dataset (a drift profile's side)

    def need(dataset: str) -> Needed:
        return needs.get(dataset, none)

    target = [policy.data.target] if policy.data.target else []
    model_columns: set[str] | None = set()
    for model in (m for m in models if m is not None):
        source = model.source
        scores = source.scores
        model_columns.update(c for c in (source.predictions, *(
            scores.values() if isinstance(scores, dict) else [scores])) if c)
    for model in (m for m in models if m is not None and m.estimator is not None):
        if not model.inputs:
            model_columns = None  # every column but the target goes to it
            break
        model_columns.update(model.inputs)
    if policy.schema_ is not None:
        for dataset in policy.schema_.datasets or policy.data.datasets:
            need(dataset).add(None if policy.schema_.strict else policy.schema_.columns)
    if policy.performance is not None:
        spec = policy.performance
        need(spec.dataset).add([*target, *(c for rule in spec.rules for c in rule.by)])
        need(spec.dataset).add(model_columns)
    if policy.fairness is not None:
        spec = policy.fairness
        sensitive = [*spec.sensitive, *(s for rule in spec.rules for s in rule.sensitive or ())]
        need(spec.dataset).add([*target, *(c for s in sensitive for c in (
            [s] if isinstance(s, str) else s))])
        need(spec.dataset).add(model_columns)
    if policy.drift is not None:
        spec = policy.drift
        for dataset in (spec.reference, spec.current):
            for rule in spec.rules:
                need(dataset).add(None if rule.columns == "all" else
                                  [*rule.columns, *rule.exclude])
            if spec.target:  # a current batch may have no labels
                need(dataset).maybe.update(target)
            if spec.prediction:  # a data column of that name is an error: read it if there
                need(dataset).add(model_columns)
                need(dataset).maybe.add(PREDICTION)
    for spec in (policy.explainability, policy.robustness):
        if spec is not None:
            need(spec.dataset).add([*target, *(c for rule in spec.rules
                                               for c in rule.features or ())])
            need(spec.dataset).add(model_columns)
    for name, dataset in policy.data.datasets.items():
        if dataset.sample is not None and _strata(policy):
            needs[name].maybe.add(_strata(policy))
    return needs


def _strata(policy: Policy) -> str | None:
    """The column a sample is stratified by: the target of a classification task."""
    model = policy.model
    return policy.data.target if model is not None and model.task != REGRESSION else None


def _read_needed(policy: Policy, name: str, path: Path, content: bytes, artifact: Artifact,
                 needed: Needed) -> LoadedDataset:
    """Parse a dataset's columns the run needs, then keep a sample of its rows when the
    policy asks for one."""
    spec = policy.data.datasets[name]
    file_columns: list[int] = []

    def select(names: list[str]) -> list[str] | None:
        chosen = needed.select(names)
        if chosen is not None:
            file_columns.append(len(names))
        return chosen

    frame = read_dataset(path, spec.format, name=name, content=content, select=select)
    sample = None
    if spec.sample is not None:
        total = len(frame)
        frame = sample_rows(frame, spec.sample.rows, spec.sample.seed, _strata(policy))
        sample = {"rows": len(frame), "of": total, "seed": spec.sample.seed}
    return LoadedDataset(name, frame, artifact, file_columns[0] if file_columns else None,
                         sample)


def sample_rows(frame: pd.DataFrame, rows: int, seed: int, strata: str | None = None
                ) -> pd.DataFrame:
    """`rows` rows drawn without replacement, kept in file order. With a `strata` column
    each of its values keeps its share of the rows (rounded by largest remainder, ties
    drawn at random), so a rare class is not lost to chance."""
    import numpy as np

    if rows >= len(frame):
        return frame
    rng = np.random.default_rng(seed)
    if strata is None or strata not in frame.columns:
        picked = rng.choice(len(frame), size=rows, replace=False)
    else:
        codes = pd.factorize(frame[strata], use_na_sentinel=False)[0]
        counts = np.bincount(codes)
        exact = counts * rows / len(frame)
        quota = np.floor(exact).astype(np.int64)
        by_remainder = np.lexsort((rng.random(len(counts)), quota - exact))
        quota[by_remainder[:rows - int(quota.sum())]] += 1
        members = np.split(np.argsort(codes, kind="stable"), np.cumsum(counts)[:-1])
        picked = np.concatenate([rng.choice(m, size=q, replace=False)
                                 for m, q in zip(members, quota, strict=True)])
    return frame.take(np.sort(picked)).reset_index(drop=True)


def _with_inputs(model: LoadedModel, features: tuple[str, ...] | None, *,
                 own_first: bool = False) -> LoadedModel:
    """The columns a model reads: `model.features` when given (for the baseline, its own
    fitted names first), else the names the model was fitted on (`feature_names_in_`),
    so a column it never saw (a slice or sensitive column) is not passed to it."""
    own = getattr(model.estimator, "feature_names_in_", None)
    own = tuple(str(n) for n in own) if own is not None else None
    inputs = (own or features) if own_first else (features or own)
    return dataclasses.replace(model, inputs=inputs)


def fingerprint(path: Path, *, what: str, where: Any = None) -> Artifact:
    """SHA-256 and size of a regular file, streamed (large files are not read into memory)."""
    if not path.exists():
        raise InputError(f"{what}: file not found: {display_path(path)}", where)
    try:
        sha256, size = sha256_file(path, what)
    except InputError as exc:
        raise InputError(exc.message, where) from None
    return Artifact(display_path(path), sha256, size)


def _check_pin(artifact: Artifact, expected: str | None, what: str, where: Any) -> None:
    if expected and artifact.sha256 != expected.lower():
        raise InputError(
            f"{what}: SHA-256 mismatch for {artifact.path}: the policy pins {expected.lower()}, "
            f"the file has {artifact.sha256}. Nothing was loaded.", where)


def load_profile(path: Path, where: Any = None) -> LoadedProfile:
    """Read and fingerprint a reference profile (JSON written by `mlcheck profile`)."""
    import json

    if not path.exists():
        raise InputError(f"reference profile not found: {display_path(path)}", where)
    try:
        content = read_limited(path, "reference profile", RECORD)
    except InputError as exc:
        raise InputError(exc.message, where) from None
    artifact = Artifact(display_path(path), hashlib.sha256(content).hexdigest(), len(content))
    try:
        data = json.loads(content)
        if data.get("mlcheck_profile") != 1:
            raise ValueError(f"unknown profile version {data.get('mlcheck_profile')!r}")
        return LoadedProfile(artifact, int(data["bins"]), int(data["rows"]), data["columns"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{artifact.path} is not an mlcheck profile: {exc}", where) from None


def read_dataset(path: Path, fmt: str | None = None, *, name: str = "dataset",
                 content: bytes | None = None,
                 select: Callable[[list[str]], list[str] | None] | None = None
                 ) -> pd.DataFrame:
    """Read a CSV (optionally gzip'd) or Parquet file into a DataFrame (from `content`,
    the file's bytes, when given), within the dataset limits of `mlcheck.inputs`: a
    .csv.gz is decompressed while it is parsed and stops at the byte limit, a Parquet
    file's size and rows are checked in its metadata first, and a column named twice is
    refused (pandas would silently rename the copy `income.1`). `select`, given the
    file's column names, returns the ones to read (None: all); the others are never
    decoded."""
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    fmt = fmt or ("csv" if suffix in CSV_SUFFIXES else
                  "parquet" if suffix in PARQUET_SUFFIXES else None)
    if fmt is None:
        raise InputError(
            f"dataset '{name}': cannot tell the format of {display_path(path)}; use .csv, "
            ".csv.gz or .parquet, or set `format: csv|parquet`")
    if content is None:
        content = read_limited(path, f"dataset '{name}'", DATASET)
    what = f"dataset '{name}' ({display_path(path)})"
    max_rows = DATASET_ROWS.value()
    streams: list[CappedReader] = []
    gzipped = suffix.endswith(".gz")
    by_ratio = max(GZIP_FLOOR, GZIP_RATIO.value() * len(content))
    limit = GZIP_RATIO if gzipped and by_ratio < DATASET.value() else DATASET
    cap = by_ratio if limit is GZIP_RATIO else DATASET.value()

    def stream() -> io.BufferedReader:
        """The CSV text as pandas should see it: decompressed, at most the byte limit."""
        raw = gzip.GzipFile(fileobj=io.BytesIO(content)) if gzipped else io.BytesIO(content)
        streams.append(CappedReader(raw, cap))
        return io.BufferedReader(streams[-1])

    try:
        if fmt == "parquet":
            names = _check_parquet(content, what, max_rows)
            columns = select(names) if select and names is not None else None
            import pyarrow

            # Arrow reads the bytes in place (io.BytesIO would be copied into Arrow's
            # memory first), and its allocator gives back the pages it decoded into,
            # which would otherwise stay resident for the run
            frame = pd.read_parquet(pyarrow.BufferReader(content), columns=columns)
            pyarrow.default_memory_pool().release_unused()
        else:
            sep = "\t" if ".tsv" in suffix else ","
            header = pd.read_csv(stream(), sep=sep, header=None, nrows=1, dtype=str)
            names = header.iloc[0].dropna().tolist() if len(header) else []
            _check_unique(names, what)
            columns = select(names) if select else None
            frame = pd.read_csv(stream(), sep=sep, nrows=max_rows + 1, usecols=columns)
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"{what}: ran out of memory while reading it; use a smaller sample "
                         f"or more memory ({DATASET.env} and {DATASET_ROWS.env} set the "
                         "largest dataset mlcheck accepts)") from None
    except Exception as exc:  # pandas and pyarrow raise many types for unreadable files
        if any(s.reached for s in streams):
            raise limit.exceeded(what, f"decompresses to more than {cap:,} bytes") from None
        raise InputError(f"dataset '{name}': cannot read {display_path(path)} as {fmt}: "
                         f"{exc}") from None
    if len(frame) > max_rows:
        raise DATASET_ROWS.exceeded(what, f"has more than {max_rows:,} rows")
    if frame.empty:
        raise InputError(f"dataset '{name}' ({display_path(path)}) has no rows")
    return frame


def _check_unique(names: list[str], what: str) -> None:
    repeated = [n for n, count in collections.Counter(names).items() if count > 1]
    if repeated:
        raise InputError(f"{what}: column '{repeated[0]}' appears {names.count(repeated[0])} "
                         "times in the header; every column needs its own name")


def _check_parquet(content: bytes, what: str, max_rows: int) -> list[str] | None:
    """Check a Parquet file's column names, rows and uncompressed size in its metadata,
    before its data is decoded; return its data columns (not a stored pandas index). An
    unreadable file is left to the reader."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(io.BytesIO(content)).metadata
        schema = meta.schema.to_arrow_schema()
        names = schema.names
        index = (schema.pandas_metadata or {}).get("index_columns", [])
    except Exception:  # not Parquet: pandas says why, in the caller's words
        return None
    _check_unique(names, what)
    if meta.num_rows > max_rows:
        raise DATASET_ROWS.exceeded(what, f"has {meta.num_rows:,} rows")
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if size > DATASET.value():
        raise DATASET.exceeded(what, f"holds {size:,} bytes uncompressed")
    return [n for n in names if n not in index]


def _load_model(source: ModelSource, role: str, base: Path, trust: bool, policy: Policy,
                key: tuple) -> LoadedModel:
    where = policy.origin.locate(*key)
    if source.black_box:
        return LoadedModel(role, source, None, None, "black box: columns of the data")
    if source.factory:
        estimator, artifact = _call_factory(source.factory, base, role, where)
        _check_is_model(estimator, role, source.factory, where)
        return LoadedModel(role, source, estimator, artifact, "factory code (trusted as code)")
    if source.uri:  # MLflow is imported only here, for a policy that names a model by URI
        from mlcheck.registry import load

        return load(source, role, trust, policy, key)
    path = base / source.path
    if not path.exists():
        raise InputError(f"{role} model: file not found: {display_path(path)}",
                         policy.origin.locate(*key, "path"))
    try:  # hashed and loaded from the same bytes: no swap in between
        content = read_limited(path, f"{role} model", MODEL)
    except InputError as exc:
        raise InputError(exc.message, where) from None
    artifact = Artifact(display_path(path), hashlib.sha256(content).hexdigest(), len(content))
    _check_pin(artifact, source.sha256, f"{role} model", policy.origin.locate(*key, "sha256"))
    name = path.name.lower()
    if name.endswith(".skops"):
        estimator, how = _load_skops(content, artifact.path, source, trust, role, where)
    elif name.endswith(PICKLE_SUFFIXES):
        how = ("pinned sha256" if source.sha256 else "policy `trust: true`" if source.trust
               else "--trust-model" if trust else None)
        if how is None:
            raise InputError(
                f"{role} model {artifact.path} is a pickle/joblib file. Unpickling runs "
                "arbitrary code from the file, so mlcheck refuses to load it unless you trust "
                "it: pass --trust-model, set `trust: true`, or pin its `sha256` in the policy. "
                "Safer: save the model with skops (.skops).", where)
        estimator = _unpickle(content, name, artifact.path, role, where)
        how = f"unpickled, trusted by {how}"
    else:
        raise InputError(f"{role} model {artifact.path}: unknown model format; "
                         "use .skops, .pkl/.joblib (trusted) or a `factory`", where)
    _check_is_model(estimator, role, artifact.path, where)
    return LoadedModel(role, source, estimator, artifact, how)


def _check_is_model(estimator: Any, role: str, origin: str, where: Any) -> None:
    if not hasattr(estimator, "predict"):
        raise InputError(f"{role} model from {origin} is not a model: "
                         f"{type(estimator).__name__} has no `predict` method", where)


def _load_skops(content: bytes, shown: str, source: ModelSource, trust: bool, role: str,
                where: Any) -> tuple[Any, str]:
    """Load a skops file, allowing only default-trusted types and those the policy lists."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=content)
    except Exception as exc:
        raise InputError(f"{role} model {shown} is not a valid skops file: {exc}",
                         where) from None
    unreviewed = [t for t in untrusted if t not in source.trusted_types]
    if unreviewed and not (trust or source.trust):
        raise InputError(
            f"{role} model {shown} contains types skops does not trust by default: "
            f"{', '.join(unreviewed)}. Review them and list them under `trusted_types` in "
            "the model section (or pass --trust-model to trust this file whole).", where)
    if not untrusted:
        how = "skops, default trusted types only"
    elif not unreviewed:
        how = f"skops, with reviewed types: {', '.join(untrusted)}"
    else:
        how = (f"skops, file trusted whole by {'--trust-model' if trust else 'policy `trust`'}"
               f" (types beyond the defaults: {', '.join(unreviewed)})")
    try:
        return sio.loads(content, trusted=list(untrusted)), how
    except Exception as exc:
        raise InputError(f"{role} model {shown} could not be loaded: {exc}", where) from None


def _unpickle(content: bytes, name: str, shown: str, role: str, where: Any) -> Any:
    try:
        with model_code():  # only reached with explicit trust or a matching pin
            if name.endswith(".joblib"):
                import joblib

                return joblib.load(io.BytesIO(content))
            import pickle

            return pickle.loads(content)
    except BaseException as exc:  # a trusted pickle may still run sys.exit() as it loads
        if isinstance(exc, KeyboardInterrupt) and interrupted():
            raise
        raise InputError(f"{role} model {shown} could not be unpickled: "
                         f"{type(exc).__name__}: {exc}", where) from None


def _call_factory(spec: str, base: Path, role: str, where: Any) -> tuple[Any, Artifact | None]:
    """Import `package.module:function` (the policy's folder first on the path) and call it.

    The module's source file is fingerprinted, so the record shows which code built the model."""
    module_name, function_name = spec.rsplit(":", 1)
    folder = str(base.resolve())
    sys.path.insert(0, folder)
    try:
        with model_code():
            if module_name.endswith(".py"):
                module = _import_file(base / module_name)
            else:
                module = importlib.import_module(module_name)
        factory = getattr(module, function_name)
    except BaseException as exc:  # the module may fail in any way, sys.exit() included
        if isinstance(exc, KeyboardInterrupt) and interrupted():
            raise
        raise InputError(f"{role} model factory '{spec}' cannot be imported: "
                         f"{type(exc).__name__}: {exc}", where) from None
    finally:
        sys.path.remove(folder)
    source_file = getattr(module, "__file__", None)
    artifact = fingerprint(Path(source_file), what="factory module") if source_file else None
    try:
        with model_code():
            return factory(), artifact
    except BaseException as exc:  # sys.exit() in a factory is not a verdict either
        if isinstance(exc, KeyboardInterrupt) and interrupted():
            raise
        raise InputError(f"{role} model factory '{spec}' raised "
                         f"{type(exc).__name__}: {exc}", where) from None


def _import_file(path: Path) -> Any:
    """Import a Python file as a module (for `factory: path/to/file.py:function`)."""
    import importlib.util

    if not path.is_file():
        raise FileNotFoundError(f"no such file: {display_path(path)}")
    module_spec = importlib.util.spec_from_file_location(f"mlcheck_factory_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _check_columns(policy: Policy, subject: Subject) -> None:
    """Columns the whole run depends on must exist: the target, features, black-box columns."""
    needed: dict[str, list[tuple[str, tuple]]] = {}
    for ds in evaluated_datasets(policy):
        needed[ds] = []
        if policy.data.target:
            needed[ds].append((policy.data.target, ("data", "target")))
        for source, key in (((policy.model, ("model",)),
                             (policy.model and policy.model.baseline, ("model", "baseline")))):
            if source is None:
                continue
            for field in ("predictions", "scores"):
                value = getattr(source, field)
                columns = list(value.values()) if isinstance(value, dict) else [value]
                needed[ds].extend((c, (*key, field)) for c in columns if c)
        for loaded in (subject.model, subject.baseline):
            if loaded is not None and loaded.inputs:
                needed[ds].extend((c, ("model", "features", loaded.role))
                                  for c in loaded.inputs)
    for ds, columns in needed.items():
        frame = subject.datasets[ds].frame
        for column, key in columns:
            if column not in frame.columns:
                message = missing_column_message(column, frame, ds)
                if key[:2] == ("model", "features"):
                    message = (f"the {key[2]} model's input {message}. Its inputs are "
                               "`model.features`, or when that is not set the columns the "
                               "model was fitted on (`feature_names_in_`)")
                raise InputError(message, policy.origin.locate(*key[:2]))


def input_files(policy: Policy) -> list[Path]:
    """Files a run reads (policy and bases, datasets, profile, model files, factory
    modules): never to be overwritten by its outputs."""
    files = [Path(p) for p, _ in policy.origin.sources]
    files += [policy.base_dir / d.path for d in policy.data.datasets.values() if d.path]
    if policy.drift and policy.drift.reference_profile:
        files.append(policy.base_dir / policy.drift.reference_profile)
    for source in (policy.model, policy.model and policy.model.baseline):
        if source is not None and source.path:
            files.append(policy.base_dir / source.path)
        if source is not None and source.factory:  # its module, where it can be found
            module = source.factory.rsplit(":", 1)[0]
            files.append(policy.base_dir / (module if module.endswith(".py") else
                                            module.replace(".", "/") + ".py"))
    return files


def evaluated_datasets(policy: Policy) -> list[str]:
    """Datasets the model is evaluated on (by performance and fairness rules)."""
    sections = (policy.performance, policy.fairness)
    return list(dict.fromkeys(s.dataset for s in sections if s is not None))


def _check_target(policy: Policy, subject: Subject) -> Any:
    """The target must be complete and fit the task; returns the binary positive label."""
    labels = [_check_target_in(policy, subject, ds) for ds in evaluated_datasets(policy)]
    return labels[0] if labels else None


def _check_target_in(policy: Policy, subject: Subject, dataset: str) -> Any:
    target = policy.data.target
    if not (policy.model and target):
        return None
    where = policy.origin.locate("data", "target")
    task = policy.model.task
    loaded = subject.datasets[dataset]
    if loaded.spark is not None:  # counted where the rows are
        from mlcheck.spark import target_summary

        missing, labels, dtype = target_summary(loaded.spark, target)
        numeric = dtype in ("ByteType", "ShortType", "IntegerType", "LongType", "FloatType",
                            "DoubleType", "DecimalType")
    else:
        column = loaded.frame[target]
        missing, labels, dtype = int(column.isna().sum()), column.unique().tolist(), column.dtype
        numeric = pd.api.types.is_numeric_dtype(column) and \
            not pd.api.types.is_bool_dtype(column)
    if missing:
        raise InputError(f"target '{target}' has {missing} missing values in dataset "
                         f"'{dataset}'; drop or fill those rows", where)
    if task == REGRESSION:
        if not numeric:
            raise InputError(f"target '{target}' is {dtype}, not numeric, but the task "
                             "is regression", where)
        return None
    if task != BINARY:
        return None
    if len(labels) > 2:
        raise InputError(f"target '{target}' has {len(labels)} labels in dataset '{dataset}' "
                         f"({_show(labels)}) but the task is binary_classification", where)
    configured = policy.data.positive_label
    if configured is None:
        if set(labels) <= {0, 1}:  # 0/1, 0.0/1.0 or False/True: the label equal to 1
            return next((v for v in labels if v == 1), 1)
        raise InputError(f"target '{target}' has labels {_show(labels)}: set "
                         "`data.positive_label` to the one that counts as positive", where)
    match = [v for v in labels if v == configured or str(v).lower() == str(configured).lower()]
    if not match:
        raise InputError(f"positive_label {configured!r} does not occur in target '{target}' "
                         f"of dataset '{dataset}' (labels: {_show(labels)})",
                         policy.origin.locate("data", "positive_label"))
    return match[0]


def _show(labels: list) -> str:
    return ", ".join(repr(v) for v in sorted(labels, key=str)[:10]) + (
        ", …" if len(labels) > 10 else "")


def missing_column_message(column: str, frame: pd.DataFrame, dataset: str) -> str:
    """`column 'x' not found in dataset 'eval'` with the closest existing names."""
    return (f"column '{column}' not found in dataset '{dataset}'"
            f"{suggest(column, frame.columns)}; it has "
            f"{len(frame.columns)} columns: {', '.join(map(str, frame.columns[:20]))}"
            + (", …" if len(frame.columns) > 20 else ""))


def _class_name(obj: Any) -> str:
    cls = type(obj)
    if cls.__name__ == "Pipeline" and hasattr(obj, "steps"):
        return f"Pipeline({', '.join(type(step).__name__ for _, step in obj.steps)})"
    return f"{cls.__module__}.{cls.__qualname__}"


# ------------------------------------------------------------------ in-memory objects
# `mlcheck.evaluate(policy, model=..., datasets={...})` from a notebook: the objects stand
# in for the files the policy names, and the record keeps a digest of their content.

IN_MEMORY = "<in memory>"  # the `path` recorded for an object passed in
DATAFRAME_DIGEST = ("sha256 over the column names and dtypes (JSON) and "
                    "pandas.util.hash_pandas_object(frame, index=False)")
MODEL_DIGEST = "sha256 of pickle.dumps(model, protocol=5)"


def _check_in_memory(policy: Policy, model: Any, baseline: Any,
                     datasets: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Objects passed in must fit the policy: a dataset name it declares, a model section
    for a model, a baseline section for a baseline."""
    for name, frame in datasets.items():
        if name not in policy.data.datasets:
            raise InputError(f"datasets={{{name!r}: ...}}: the policy declares no dataset "
                             f"'{name}'{suggest(str(name), policy.data.datasets)}; it has "
                             f"{', '.join(policy.data.datasets)}")
        if not isinstance(frame, pd.DataFrame) and not is_spark_frame(frame):
            raise InputError(f"dataset '{name}': pass a pandas DataFrame, not "
                             f"{type(frame).__name__} (or a Spark DataFrame)")
        if policy.data.datasets[name].sha256:
            raise InputError(f"dataset '{name}' is pinned by `sha256` in the policy; a "
                             "DataFrame passed in cannot be checked against a file's pin, "
                             "so pass none for it (or use a policy without the pin)")
    for role, obj, section in (("model", model, policy.model),
                               ("baseline", baseline, policy.model and policy.model.baseline)):
        if obj is None:
            continue
        if section is None:
            where = "`model`" if role == "model" else "`model.baseline`"
            raise InputError(f"{role}= was passed, but the policy has no {where} section "
                             "(it gives the task and the rules the model is judged by)")
        if section.black_box:
            raise InputError(f"{role}= was passed, but the policy's {role} reads prediction "
                             "columns of the data (`predictions`/`scores`); remove them or "
                             f"do not pass {role}=")
        if section.sha256 or section.uri:
            raise InputError(f"{role}= was passed, but the policy pins its {role} "
                             "(`sha256` or `uri`); an object passed in cannot be checked "
                             "against that, so use a policy without it")
        _check_is_model(obj, "candidate" if role == "model" else role,
                        "the object passed in", None)
    return dict(datasets)


def is_spark_frame(obj: Any) -> bool:
    """A PySpark DataFrame (classic or Spark Connect), recognised without importing it."""
    return type(obj).__module__.startswith("pyspark.") and type(obj).__name__ == "DataFrame"


def in_memory_model(estimator: Any, source: ModelSource, role: str) -> LoadedModel:
    """A fitted model passed in, with the SHA-256 of its pickle bytes (no digest, said
    so, when it cannot be pickled)."""
    import pickle

    try:
        content = pickle.dumps(estimator, protocol=5)
    except Exception as exc:  # e.g. a lambda inside a pipeline
        how = f"in-memory object; not picklable ({type(exc).__name__}), so no digest"
        return LoadedModel(role, source, estimator, None, how)
    artifact = Artifact(IN_MEMORY, hashlib.sha256(content).hexdigest(), len(content))
    return LoadedModel(role, source, estimator, artifact,
                       f"in-memory object passed to mlcheck.evaluate; digest: {MODEL_DIGEST}")


def in_memory_dataset(policy: Policy, name: str, frame: pd.DataFrame) -> LoadedDataset:
    """A DataFrame passed in, checked like a file's rows, with a digest of its content."""
    import json

    _check_unique([str(c) for c in frame.columns], f"dataset '{name}'")
    if frame.empty:
        raise InputError(f"dataset '{name}' (the DataFrame passed in) has no rows")
    header = json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode()
    digest = hashlib.sha256(header)
    try:
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    except TypeError as exc:  # e.g. lists in a cell: no content digest, so no run
        raise InputError(f"dataset '{name}': cannot compute a digest of the DataFrame "
                         f"passed in: {exc}") from None
    artifact = Artifact(IN_MEMORY, digest.hexdigest(), int(frame.memory_usage(deep=True).sum()))
    spec, sample = policy.data.datasets[name], None
    if spec.sample is not None:
        total = len(frame)
        frame = sample_rows(frame, spec.sample.rows, spec.sample.seed, _strata(policy))
        sample = {"rows": len(frame), "of": total, "seed": spec.sample.seed}
    return LoadedDataset(name, frame.reset_index(drop=True), artifact, sample=sample,
                         digest_method=DATAFRAME_DIGEST)
