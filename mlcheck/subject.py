"""What is evaluated: the candidate model, the baseline and the named datasets.

Every artifact is fingerprinted (SHA-256 of its bytes) before it is used, and a pinned
hash is compared before anything is parsed. Pickle-based files are never unpickled unless
the user trusts them explicitly or pinned their hash.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlcheck.errors import InputError, display_path, suggest
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
    artifact: Artifact | None

    def describe(self) -> dict[str, Any]:
        if self.estimator is None:
            kind = {"kind": "columns", "predictions": self.source.predictions,
                    "scores": self.source.scores}
        else:
            kind = {"kind": "estimator", "class": _class_name(self.estimator)}
            if self.source.factory:
                kind["factory"] = self.source.factory
        if self.source.threshold is not None:
            kind["threshold"] = self.source.threshold
        return {**kind, **(self.artifact.to_dict() if self.artifact else {})}


@dataclass(frozen=True)
class LoadedDataset:
    """A named dataset with its fingerprint."""

    name: str
    frame: pd.DataFrame
    artifact: Artifact

    def describe(self) -> dict[str, Any]:
        return {**self.artifact.to_dict(), "rows": len(self.frame),
                "columns": len(self.frame.columns)}


@dataclass(frozen=True)
class Subject:
    """Everything a run evaluates, loaded and fingerprinted."""

    model: LoadedModel | None
    baseline: LoadedModel | None
    datasets: dict[str, LoadedDataset]

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model.describe() if self.model else None,
            "baseline": self.baseline.describe() if self.baseline else None,
            "datasets": {name: ds.describe() for name, ds in self.datasets.items()},
        }


def load_subject(policy: Policy, *, trust_model: bool = False) -> Subject:
    """Load and fingerprint the datasets and models a policy names."""
    base = policy.base_dir
    datasets = {}
    for name, spec in policy.data.datasets.items():
        key = ("data", "datasets", name)
        path = base / spec.path
        artifact = fingerprint(path, what=f"dataset '{name}'", where=policy.origin.locate(*key))
        _check_pin(artifact, spec.sha256, f"dataset '{name}'", policy.origin.locate(*key, "sha256"))
        frame = read_dataset(path, spec.format, name=name)
        datasets[name] = LoadedDataset(name, frame, artifact)

    model = baseline = None
    if policy.model is not None:
        model = _load_model(policy.model, "candidate", base, trust_model, policy, ("model",))
        if policy.model.baseline is not None:
            baseline = _load_model(policy.model.baseline, "baseline", base, trust_model,
                                   policy, ("model", "baseline"))
    subject = Subject(model, baseline, datasets)
    _check_columns(policy, subject)
    return subject


def fingerprint(path: Path, *, what: str, where: Any = None) -> Artifact:
    """SHA-256 and size of a file, streamed (large files are not read into memory)."""
    if not path.is_file():
        raise InputError(f"{what}: file not found: {display_path(path)}", where)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return Artifact(display_path(path), digest.hexdigest(), path.stat().st_size)


def _check_pin(artifact: Artifact, expected: str | None, what: str, where: Any) -> None:
    if expected and artifact.sha256 != expected.lower():
        raise InputError(
            f"{what}: SHA-256 mismatch for {artifact.path}: the policy pins {expected.lower()}, "
            f"the file has {artifact.sha256}. Nothing was loaded.", where)


def read_dataset(path: Path, fmt: str | None = None, *, name: str = "dataset") -> pd.DataFrame:
    """Read a CSV (optionally gzip'd) or Parquet file into a DataFrame."""
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    fmt = fmt or ("csv" if suffix in CSV_SUFFIXES else
                  "parquet" if suffix in PARQUET_SUFFIXES else None)
    if fmt is None:
        raise InputError(
            f"dataset '{name}': cannot tell the format of {display_path(path)}; use .csv, "
            ".csv.gz or .parquet, or set `format: csv|parquet`")
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if ".tsv" in suffix else ",")
    except Exception as exc:  # pandas and pyarrow raise many types for unreadable files
        raise InputError(f"dataset '{name}': cannot read {display_path(path)} as {fmt}: "
                         f"{exc}") from None
    if frame.empty:
        raise InputError(f"dataset '{name}' ({display_path(path)}) has no rows")
    return frame


def _load_model(source: ModelSource, role: str, base: Path, trust: bool, policy: Policy,
                key: tuple) -> LoadedModel:
    where = policy.origin.locate(*key)
    if source.black_box:
        return LoadedModel(role, source, None, None)
    if source.factory:
        estimator = _call_factory(source.factory, base, role)
        _check_is_model(estimator, role, source.factory, where)
        return LoadedModel(role, source, estimator, None)
    path = base / source.path
    artifact = fingerprint(path, what=f"{role} model", where=policy.origin.locate(*key, "path"))
    _check_pin(artifact, source.sha256, f"{role} model", policy.origin.locate(*key, "sha256"))
    name = path.name.lower()
    if name.endswith(".skops"):
        estimator = _load_skops(path, source.trusted_types, trusted_file=source.trust or trust,
                                role=role)
    elif name.endswith(PICKLE_SUFFIXES):
        if not (trust or source.trust or source.sha256):
            raise InputError(
                f"{role} model {artifact.path} is a pickle/joblib file. Unpickling runs "
                "arbitrary code from the file, so mlcheck refuses to load it unless you trust "
                "it: pass --trust-model, set `trust: true`, or pin its `sha256` in the policy. "
                "Safer: save the model with skops (.skops).", where)
        estimator = _unpickle(path, role)
    else:
        raise InputError(f"{role} model {artifact.path}: unknown model format; "
                         "use .skops, .pkl/.joblib (trusted) or a `factory`", where)
    _check_is_model(estimator, role, artifact.path, where)
    return LoadedModel(role, source, estimator, artifact)


def _check_is_model(estimator: Any, role: str, origin: str, where: Any) -> None:
    if not hasattr(estimator, "predict"):
        raise InputError(f"{role} model from {origin} is not a model: "
                         f"{type(estimator).__name__} has no `predict` method", where)


def _load_skops(path: Path, trusted_types: tuple[str, ...], *, trusted_file: bool,
                role: str) -> Any:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise InputError(f"{role} model {display_path(path)} is not a valid skops file: "
                         f"{exc}") from None
    unreviewed = [t for t in untrusted if t not in trusted_types]
    if unreviewed and not trusted_file:
        raise InputError(
            f"{role} model {display_path(path)} contains types skops does not trust by "
            f"default: {', '.join(unreviewed)}. Review them and list them under "
            "`trusted_types` in the model section (or pass --trust-model to trust this file "
            "whole).")
    try:
        return sio.load(path, trusted=list(untrusted))
    except Exception as exc:
        raise InputError(f"{role} model {display_path(path)} could not be loaded: {exc}") from None


def _unpickle(path: Path, role: str) -> Any:
    try:
        if path.name.lower().endswith(".joblib"):
            import joblib

            return joblib.load(path)
        import pickle

        with path.open("rb") as handle:
            return pickle.load(handle)
    except Exception as exc:
        raise InputError(f"{role} model {display_path(path)} could not be unpickled: "
                         f"{type(exc).__name__}: {exc}") from None


def _call_factory(spec: str, base: Path, role: str) -> Any:
    """Import `package.module:function` (the policy's folder first on the path) and call it."""
    module_name, function_name = spec.split(":")
    sys.path.insert(0, str(base.resolve()))
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, function_name)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"{role} model factory '{spec}' cannot be imported: {exc}") from None
    finally:
        sys.path.remove(str(base.resolve()))
    try:
        return factory()
    except Exception as exc:
        raise InputError(f"{role} model factory '{spec}' raised "
                         f"{type(exc).__name__}: {exc}") from None


def _check_columns(policy: Policy, subject: Subject) -> None:
    """Columns the whole run depends on must exist: the target, features, black-box columns."""
    needed: dict[str, list[tuple[str, tuple]]] = {}
    if policy.performance:
        ds = policy.performance.dataset
        needed[ds] = []
        if policy.data.target:
            needed[ds].append((policy.data.target, ("data", "target")))
        for role, source, key in ((("candidate", policy.model, ("model",)),
                                   ("baseline", policy.model and policy.model.baseline,
                                    ("model", "baseline")))):
            if source is None:
                continue
            for field in ("predictions", "scores"):
                value = getattr(source, field)
                columns = list(value.values()) if isinstance(value, dict) else [value]
                needed[ds].extend((c, (*key, field)) for c in columns if c)
            if role == "candidate" and policy.model.features:
                needed[ds].extend((c, ("model", "features")) for c in policy.model.features)
    for ds, columns in needed.items():
        frame = subject.datasets[ds].frame
        for column, key in columns:
            if column not in frame.columns:
                raise InputError(missing_column_message(column, frame, ds),
                                 policy.origin.locate(*key))


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
