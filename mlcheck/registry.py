"""MLflow: registry models in, verdicts and promotions out.

Imported only when a policy names a model `uri` or `mlcheck check --promote` is used, so
a plain file policy never imports MLflow (an optional extra: mlcheck-gate[mlflow]).

Loading: the URI is resolved once (an alias to the version it names now), that version's
artifact files are downloaded and fingerprinted together (one digest over the sorted
files), a pinned digest is compared, and only then is anything parsed. The native flavor
is loaded where there is one mlcheck can use, since explainability and properties need the
estimator itself: sklearn; xgboost and lightgbm (when installed) for their scikit-learn API
classes. A model saved with skops is loaded by mlcheck's own skops loader (the policy's
`trusted_types`, never the list the model's MLmodel file carries); an XGBoost model is
XGBoost's own json/ubj file, no pickle; a pickle or cloudpickle one, or any model MLflow
would load through its python_function flavor, needs the same explicit trust as a pickle
file. A raw Booster (xgboost.train, lightgbm.train) predicts scores and has no classes, so
it is refused for a classification task and loaded as a pyfunc for regression.

Promotion writes in an order that keeps the registry truthful when any write fails:
evidence first (a run holding the record, report and SARIF), then the verdict tags on the
candidate version (`mlcheck.promotion` = `pending: @ALIAS` on a pass), then, on a pass
only, the alias, and last the tag saying it moved. So an alias moved by mlcheck always
names a version tagged `mlcheck.verdict=passed`, and a version tagged `promoted` is one
the alias was moved to.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import yaml

from mlcheck.errors import InputError, MlcheckError
from mlcheck.guard import interrupted, model_code
from mlcheck.inputs import MODEL, POLICY, read_limited, sha256_file
from mlcheck.policy import MODEL_URI_FORMS, ModelSource, Policy
from mlcheck.subject import LoadedModel, _check_is_model, _load_skops, _unpickle

INSTALL = 'pip install "mlcheck-gate[mlflow]"'
META_FILE = "registered_model_meta"  # MLflow's client writes it into each download
ARTIFACTS = "mlcheck"  # the folder of the evidence run holding record, report and SARIF
EXPERIMENT = "mlcheck"  # default experiment of evidence runs (MLFLOW_EXPERIMENT_NAME/_ID)
TAG = "mlcheck."
# The scikit-learn API classes loaded natively from each flavor's `model_class`, which is
# only compared with this list: MLflow itself would import whatever the MLmodel names.
SKLEARN_API = {
    "xgboost": ("xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor",
                "xgboost.sklearn.XGBRFClassifier", "xgboost.sklearn.XGBRFRegressor"),
    "lightgbm": ("lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor"),
}
BOOSTERS = {"xgboost": ("xgboost.core.Booster", "XGBoost", "XGBClassifier"),
            "lightgbm": ("lightgbm.basic.Booster", "LightGBM", "LGBMClassifier")}


def import_mlflow(what: str, where: Any = None) -> Any:
    """MLflow, or an error saying which extra installs it."""
    try:
        import mlflow
    except ImportError:
        raise InputError(f"{what} needs MLflow, which is not installed: {INSTALL}",
                         where) from None
    return mlflow


@dataclass(frozen=True)
class Reference:
    """What a model URI names: a registered version (by alias or number), a logged model
    (by id) or a run's artifact."""

    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    model_id: str | None = None
    run_id: str | None = None


def parse(uri: str) -> Reference:
    """Split a URI the policy accepted (see policy._model_uri) into its parts."""
    if uri.startswith("runs:/"):
        return Reference(uri, run_id=uri[len("runs:/"):].split("/", 1)[0])
    body = uri[len("models:/"):]
    if "/" in body:
        name, version = body.split("/", 1)
        return Reference(uri, name=name, version=version)
    if "@" in body:
        name, alias = body.rsplit("@", 1)
        return Reference(uri, name=name, alias=alias)
    return Reference(uri, model_id=body)


def _uris(policy: Policy) -> tuple[str | None, str | None]:
    """Tracking and registry URIs: the policy's keys, else MLflow's environment variables;
    the registry is the tracking server unless told otherwise (said explicitly, since
    MLflow would otherwise fall back to a local store for some calls)."""
    spec = policy.model
    tracking = (spec and spec.tracking_uri) or os.environ.get("MLFLOW_TRACKING_URI") or None
    registry = (spec and spec.registry_uri) or os.environ.get("MLFLOW_REGISTRY_URI") or None
    return tracking, registry or tracking


def client_for(policy: Policy, where: Any = None) -> Any:
    """An MlflowClient for the policy's server. Without a tracking URI MLflow would fall
    back to a local store in the working folder, and report every model as missing."""
    import_mlflow("a model `uri`", where)
    from mlflow import MlflowClient

    tracking, registry = _uris(policy)
    if not tracking:
        raise InputError("models given by `uri` need an MLflow tracking server: set "
                         "MLFLOW_TRACKING_URI or `model.tracking_uri`", where)
    return MlflowClient(tracking_uri=tracking, registry_uri=registry)


def redact(uri: str | None) -> str | None:
    """A URI fit for a record: no user, password, query or fragment (the environment's
    tracking URI may carry credentials)."""
    if not uri:
        return uri
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=host, query="", fragment="").geturl()


def _message(exc: BaseException) -> str:
    """MLflow's own words, first line, bounded (its HTTP errors run to many lines)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 500 else text[:500] + "…"


def _not_found(exc: BaseException) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def _ask(what: str, call: Callable[[], Any], where: Any = None) -> Any:
    """One registry call; any failure (unreachable, refused, not found) is exit 2 with
    what was being done. MLflow and its HTTP stack raise many types, hence the breadth."""
    try:
        return call()
    except Exception as exc:
        raise InputError(f"{what}: {_message(exc)}", where) from None


# ------------------------------------------------------------------------------ loading


def load(source: ModelSource, role: str, trust: bool, policy: Policy, key: tuple
         ) -> LoadedModel:
    """Resolve, download, fingerprint, check the pin, then load a model named by `uri`."""
    where = policy.origin.locate(*key, "uri")
    what = f"{role} model {source.uri}"
    mlflow = import_mlflow(f"{role} model `uri`", where)
    client = client_for(policy, where)
    tracking, registry = _uris(policy)
    what_at = f"{what} (MLflow at {redact(tracking)})"
    found, pinned, location = _resolve(client, parse(source.uri), what_at, where)
    folder = _download(mlflow, location, tracking, registry, what_at, where)
    sha256, size, files = digest(folder, what)
    _check_pin_digest(sha256, source, what, policy, key)
    mlmodel = _mlmodel(folder, what, where)
    flavors = mlmodel.get("flavors") or {}
    flavor = _native_flavor(flavors, policy.model.task, what, where)
    conf = flavors.get(flavor) or {}
    fmt = conf.get("serialization_format")
    if flavor == "xgboost":
        estimator, how = _load_xgboost(folder, conf, what, where)
        fmt = conf.get("model_format") or Path(str(conf.get("data"))).suffix.lstrip(".")
    elif flavor in ("sklearn", "lightgbm"):
        estimator, how = _load_sklearn(folder, conf, source, trust, role, what, sha256, where,
                                       flavor)
        fmt = fmt or ("pickle" if flavor == "sklearn" else "cloudpickle")
    elif "python_function" in flavors:
        flavor, fmt = "python_function", None
        estimator, how = _load_pyfunc(mlflow, folder, flavors[flavor], source,
                                      trust, role, what, sha256, where)
    else:
        raise InputError(f"{what} has the flavors {', '.join(map(str, flavors)) or 'none'}; "
                         "mlcheck loads MLflow models with a sklearn, xgboost, lightgbm or "
                         "python_function flavor", where)
    _check_is_model(estimator, role, source.uri, where)
    provenance = {
        "registered_model": found.get("name"), "version": found.get("version"),
        "alias": found.get("alias"),
        "run_id": found.get("run_id") or mlmodel.get("run_id"),
        "model_id": found.get("model_id") or mlmodel.get("model_id"),
        "source": found.get("source"), "resolved_uri": pinned, "flavor": flavor,
        "serialization_format": fmt,
        "logged_with_mlflow": mlmodel.get("mlflow_version"),
        "mlflow_version": mlflow.__version__,
        "tracking_uri": redact(tracking), "registry_uri": redact(registry),
    }
    return LoadedModel(role, source, estimator, None, how,
                       registry={"sha256": sha256, "bytes": size, "files": files,
                                 "mlflow": provenance})


def _resolve(client: Any, ref: Reference, what: str, where: Any) -> tuple[dict, str, str]:
    """What the URI names now, a URI pinned to exactly that, and where its artifacts are
    (an alias may move while they download: they are fetched from the version's own
    location; MLflow's models:/ downloads would also ignore the client's registry URI)."""
    if ref.name is not None:
        if ref.alias is not None:
            version = _ask(f"{what}: cannot resolve alias @{ref.alias}", lambda: (
                client.get_model_version_by_alias(ref.name, ref.alias)), where)
        else:
            version = _ask(f"{what}: cannot read version {ref.version}", lambda: (
                client.get_model_version(ref.name, ref.version)), where)
        found = {"name": version.name, "version": str(version.version), "alias": ref.alias,
                 "run_id": version.run_id or None,
                 "model_id": getattr(version, "model_id", None), "source": version.source}
        location = _ask(f"{what}: cannot locate the artifacts of version {version.version}",
                        lambda: client.get_model_version_download_uri(version.name,
                                                                      version.version), where)
        return found, f"models:/{version.name}/{version.version}", location
    if ref.model_id is not None:
        logged = _ask(f"{what}: no logged model with this id (for a registered model, "
                      f"write {MODEL_URI_FORMS})",
                      lambda: client.get_logged_model(ref.model_id), where)
        return ({"run_id": logged.source_run_id, "model_id": logged.model_id,
                 "source": logged.artifact_location}, ref.uri, logged.artifact_location)
    run = _ask(f"{what}: cannot read run {ref.run_id}", lambda: client.get_run(ref.run_id),
               where)
    path = ref.uri.split("/", 2)[2]
    logged = _ask(f"{what}: cannot list the models of run {ref.run_id}", lambda: (
        client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                    filter_string=f"source_run_id = '{ref.run_id}'")), where)
    model = next((m for m in logged if m.name == path), None)
    if model is not None:  # MLflow 3: the run's model is a logged model of that name
        return ({"run_id": ref.run_id, "model_id": model.model_id,
                 "source": model.artifact_location}, ref.uri, model.artifact_location)
    return ({"run_id": ref.run_id, "source": ref.uri}, ref.uri,
            f"{run.info.artifact_uri.rstrip('/')}/{path}")


_DOWNLOADS: list[Path] = []


@atexit.register
def _remove_downloads() -> None:
    for folder in _DOWNLOADS:
        shutil.rmtree(folder, ignore_errors=True)


def _download(mlflow: Any, uri: str, tracking: str | None, registry: str | None, what: str,
              where: Any) -> Path:
    """The model's artifact files in a fresh temporary folder (kept until exit: a pyfunc
    model may read its files after loading)."""
    folder = Path(tempfile.mkdtemp(prefix="mlcheck-mlflow-"))
    _DOWNLOADS.append(folder)
    with _environment(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
        local = _ask(f"{what}: cannot download its artifacts", lambda: (
            mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder),
                                                tracking_uri=tracking,
                                                registry_uri=registry)), where)
    return Path(local)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def digest(folder: Path, what: str = "model") -> tuple[str, int, int]:
    """SHA-256 over a model's artifact files, the same for every download of the same
    model: the lines `<sha256 of the file>  <path>` (as `sha256sum` prints them), sorted
    by path, hashed. MLflow's `registered_model_meta` is left out (the client writes it,
    and it differs between URIs naming the same files). Returns (digest, bytes, files)."""
    import hashlib

    files = sorted((p for p in folder.rglob("*") if not p.is_dir()),
                   key=lambda p: p.relative_to(folder).as_posix().encode())
    files = [p for p in files if p.relative_to(folder).as_posix() != META_FILE]
    size = sum(p.stat().st_size for p in files)
    if size > MODEL.value():
        raise MODEL.exceeded(what, f"has {size:,} bytes of artifact files")
    lines = []
    for path in files:
        sha256, _ = sha256_file(path, what)
        lines.append(f"{sha256}  {path.relative_to(folder).as_posix()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest(), size, len(files)


def _check_pin_digest(sha256: str, source: ModelSource, what: str, policy: Policy,
                      key: tuple) -> None:
    if source.sha256 and sha256 != source.sha256.lower():
        raise InputError(f"{what}: SHA-256 mismatch: the policy pins {source.sha256.lower()}, "
                         f"its artifact files have {sha256}. Nothing was loaded.",
                         policy.origin.locate(*key, "sha256"))


def _mlmodel(folder: Path, what: str, where: Any) -> dict:
    path = folder / "MLmodel"
    if not path.is_file():
        raise InputError(f"{what} is not an MLflow model: it has no MLmodel file", where)
    try:
        loaded = yaml.safe_load(read_limited(path, f"{what} MLmodel file", POLICY))
    except yaml.YAMLError as exc:
        raise InputError(f"{what}: its MLmodel file is not valid YAML: {exc}", where) from None
    if not isinstance(loaded, dict):
        raise InputError(f"{what}: its MLmodel file is not a mapping", where)
    return loaded


def _trusted_by(source: ModelSource, trust: bool) -> str | None:
    """Why a pickle-based model may be loaded, or None."""
    return ("pinned sha256" if source.sha256 else "policy `trust: true`" if source.trust
            else "--trust-model" if trust else None)


def _inside(folder: Path, name: Any, what: str, where: Any) -> Path:
    """A file the MLmodel names, which must lie inside the downloaded folder."""
    path = (folder / str(name or "")).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise InputError(f"{what}: its MLmodel names the model file {name!r}, which is not "
                         "a file of the model", where)
    return path


def _native_flavor(flavors: dict, task: str, what: str, where: Any) -> str | None:
    """The flavor that gives the estimator itself, or None (then python_function)."""
    if "sklearn" in flavors:
        return "sklearn"
    for name, (booster, library, classifier) in BOOSTERS.items():
        model_class = (flavors.get(name) or {}).get("model_class")
        if model_class in SKLEARN_API[name]:
            if importlib.util.find_spec(name) is None:
                raise InputError(f"{what} is a {library} {model_class.rsplit('.', 1)[1]}; "
                                 f"loading it needs {name} installed (pip install {name})",
                                 where)
            return name
        if model_class == booster and task != "regression":
            raise InputError(
                f"{what} is a raw {library} Booster: its predict returns scores, not class "
                "labels, and it has no predict_proba or classes_, so it cannot be gated as "
                f"a classifier. Log the scikit-learn API model instead ({classifier}, e.g. "
                f"mlflow.{name}.log_model({classifier}(...).fit(X, y), ...)).", where)
    return None


def _load_xgboost(folder: Path, conf: dict, what: str, where: Any) -> tuple[Any, str]:
    """An XGBoost scikit-learn API model from XGBoost's own json/ubj file: no pickle, so
    no trust needed (the class is one of SKLEARN_API, never imported by name)."""
    import xgboost.sklearn

    name = str(conf["model_class"]).rsplit(".", 1)[1]
    path = _inside(folder, conf.get("data"), what, where)
    model = getattr(xgboost.sklearn, name)()
    try:
        model.load_model(str(path))
    except Exception as exc:  # XGBoost raises its own and builtin types for bad files
        raise InputError(f"{what}: XGBoost could not load {path.name}: {_message(exc)}",
                         where) from None
    fmt = conf.get("model_format") or path.suffix.lstrip(".")
    return model, (f"MLflow xgboost flavor, {name} from its {fmt} file (XGBoost's own "
                   "format, not pickle)")


def _load_sklearn(folder: Path, conf: dict, source: ModelSource, trust: bool, role: str,
                  what: str, sha256: str, where: Any, flavor: str = "sklearn"
                  ) -> tuple[Any, str]:
    """The scikit-learn estimator itself (explainability and properties need it); MLflow's
    lightgbm flavor saves LGBMClassifier/LGBMRegressor the same way (skops or pickle)."""
    sklearn = flavor == "sklearn"
    fmt = conf.get("serialization_format") or ("pickle" if sklearn else "cloudpickle")
    library = "scikit-learn" if sklearn else "LightGBM"  # MLflow's defaults just above
    path = _inside(folder, conf.get("pickled_model" if sklearn else "data"), what, where)
    try:
        content = read_limited(path, what, MODEL)
    except InputError as exc:
        raise InputError(exc.message, where) from None
    if fmt == "skops":
        estimator, how = _load_skops(content, str(source.uri), source, trust, role, where)
        return estimator, f"MLflow {flavor} flavor, {how}"
    if fmt not in ("pickle", "cloudpickle"):
        raise InputError(f"{what}: unknown {library} serialization format {fmt!r}", where)
    trusted = _trusted_by(source, trust)
    if trusted is None:
        raise InputError(
            f"{what} is a {library} model MLflow saved with {fmt}. Unpickling runs "
            "arbitrary code from it, so mlcheck refuses to load it unless you trust it: pass "
            "--trust-model, set `trust: true`, or pin the digest of its artifact files "
            f"(`sha256: {sha256}`) after reviewing them. Safer: log it with "
            "serialization_format=\"skops\" (MLflow's default outside Databricks).", where)
    with _code_on_path(folder, conf):
        estimator = _unpickle(content, "model.pkl", str(source.uri), role, where)
    return estimator, f"MLflow {flavor} flavor ({fmt}), unpickled, trusted by {trusted}"


@contextmanager
def _code_on_path(folder: Path, conf: dict) -> Iterator[None]:
    """The model's `code_paths` importable while a trusted model is unpickled."""
    code = folder / str(conf["code"]) if conf.get("code") else None
    if code is None or not code.is_dir():
        yield
        return
    sys.path.insert(0, str(code))
    try:
        yield
    finally:
        sys.path.remove(str(code))


class PyfuncModel:
    """A model MLflow loads only as a pyfunc: `predict` is all it offers, so checks that
    need scores (`predict_proba`) or the estimator's structure are errors that say so."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, frame: Any) -> np.ndarray:
        output = self.model.predict(frame)
        if hasattr(output, "columns") and len(output.columns) == 1:
            output = output.iloc[:, 0]
        return np.asarray(output)


def _load_pyfunc(mlflow: Any, folder: Path, conf: dict, source: ModelSource, trust: bool,
                 role: str, what: str, sha256: str, where: Any) -> tuple[Any, str]:
    loader = conf.get("loader_module") or "a python model"
    trusted = _trusted_by(source, trust)
    if trusted is None:
        raise InputError(
            f"{what} has no flavor mlcheck loads natively (sklearn; xgboost, lightgbm "
            "for their scikit-learn API classes, when installed); MLflow would load it "
            "through its "
            f"python_function flavor ({loader}), which unpickles or imports code shipped "
            "with the model, so mlcheck refuses to load it unless you trust it: pass "
            "--trust-model, set `trust: true`, or pin the digest of its artifact files "
            f"(`sha256: {sha256}`) after reviewing them.", where)
    try:
        with model_code():
            model = mlflow.pyfunc.load_model(str(folder))
    except BaseException as exc:  # a trusted model may still exit or raise as it loads
        if isinstance(exc, KeyboardInterrupt) and interrupted():
            raise
        raise InputError(f"{what} could not be loaded by MLflow: {type(exc).__name__}: "
                         f"{_message(exc)}", where) from None
    return PyfuncModel(model), (f"MLflow python_function flavor ({loader}), trusted by "
                                f"{trusted}; predict only")


# ---------------------------------------------------------------------------- promotion


ALIAS = re.compile(r"^[\w-]{1,255}$")


def check_promotable(policy: Policy, alias: str) -> None:
    """Before the run: `--promote ALIAS` needs a candidate that is a registered version
    (models:/NAME@ALIAS or models:/NAME/VERSION) and an alias MLflow accepts."""
    if not ALIAS.match(alias) or alias.lower() == "latest" or re.match(r"^[vV]\d+$", alias):
        raise MlcheckError(f"--promote {alias!r}: not an alias MLflow accepts (letters, "
                           "digits, _ and -; not 'latest', not v<number>)")
    uri = policy.model.uri if policy.model is not None else None
    ref = parse(uri) if uri else None
    if ref is None or ref.name is None:
        raise MlcheckError(
            "--promote moves a registry alias to the candidate's version, so the candidate "
            "must be a registered model version: `model.uri: models:/NAME@ALIAS` or "
            f"`models:/NAME/VERSION` (the policy gives {uri or 'no uri'})")
    if ref.alias == alias:
        raise MlcheckError(f"--promote {alias}: the candidate is already named by "
                           f"@{alias}; promote to another alias (e.g. champion)")
    import_mlflow("--promote")


@dataclass(frozen=True)
class Promotion:
    """What --promote did: whether the alias moved, whether it was refused (exit 1)."""

    moved: bool
    refused: bool
    message: str


def promote(policy: Policy, record: dict, alias: str) -> Promotion:
    """Log the evidence, tag the gated version, and on a pass move `alias` to it. Registry
    failures raise MlcheckError (exit 2); the order of writes is the module's docstring."""
    client = client_for(policy)
    found = record["subject"]["model"]["mlflow"]
    name, version = found["registered_model"], found["version"]
    verdict = record["verdict"]
    passed = verdict == "passed"
    model = f"{name} version {version}"
    tags = {
        f"{TAG}policy": record["policy"]["name"],
        f"{TAG}policy_sha256": record["policy"]["sha256"],
        f"{TAG}record_sha256": record["integrity"]["digest"],
        f"{TAG}model_sha256": record["subject"]["model"]["sha256"],
        f"{TAG}version": record["mlcheck_version"] or "unknown",
        f"{TAG}counts": ", ".join(f"{n} {v}" for v, n in record["counts"].items() if n),
        f"{TAG}checked_at": record["created_at"],
    }
    run_id = _log_evidence(client, record, model, {**tags, f"{TAG}verdict": verdict,
                                                   f"{TAG}registered_model": name,
                                                   f"{TAG}model_version": version})
    tags = {f"{TAG}promotion": f"pending: @{alias}" if passed else f"none: the gate {verdict}",
            **tags, f"{TAG}run_id": run_id,
            f"{TAG}report": f"runs:/{run_id}/{ARTIFACTS}/report.html",
            f"{TAG}verdict": verdict}
    for key, value in tags.items():  # the verdict goes last
        _write(f"cannot tag {model}", lambda k=key, v=value: (
            client.set_model_version_tag(name, version, k, v)))
    evidence = f"record and report in run {run_id}"
    if not passed:
        return Promotion(False, False, f"not promoted: the gate {verdict}; tagged {model} "
                                       f"({evidence})")
    gated_alias = found.get("alias")
    if gated_alias:
        now = _alias_version(client, name, gated_alias)
        if now != version:
            _write(f"cannot tag {model}", lambda: client.set_model_version_tag(
                name, version, f"{TAG}promotion",
                f"refused: @{gated_alias} names version {now}, not this one"))
            return Promotion(False, True, (
                f"not promoted: models:/{name}@{gated_alias} now names "
                f"{f'version {now}' if now else 'no version'}, not the gated version "
                f"{version} (a new model landed during the run); @{alias} was not moved. "
                f"Gate the new version. ({evidence})"))
    previous = _alias_version(client, name, alias)
    try:
        client.set_registered_model_alias(name, alias, version)
    except Exception as exc:
        with suppress(Exception):  # best effort: the registry may be what failed
            client.set_model_version_tag(name, version, f"{TAG}promotion",
                                         f"failed: @{alias} could not be moved")
        raise MlcheckError(
            f"registry error while moving @{alias} to {model}: {_message(exc)}. The gate "
            f"passed and {model} is tagged {TAG}verdict=passed, so @{alias} names either "
            "the old version or this vetted one; run again to finish the promotion") from None
    was = ("already this version" if previous == version else
           f"version {previous}" if previous else "not set")
    _write(f"@{alias} now names {model}, but its {TAG}promotion tag still says pending",
           lambda: client.set_model_version_tag(name, version, f"{TAG}promotion",
                                                f"promoted: @{alias} (was {was})"))
    return Promotion(True, False, f"promoted: @{alias} now names {model} (was {was}); "
                                  f"{evidence}")


def _write(what: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:
        raise MlcheckError(f"registry error: {what}: {_message(exc)}") from None


def _alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version an alias names now, None when it names none."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except Exception as exc:
        if _not_found(exc):
            return None
        raise MlcheckError(f"registry error: cannot read @{alias} of {name}: "
                           f"{_message(exc)}") from None


def _log_evidence(client: Any, record: dict, model: str, tags: dict[str, str]) -> str:
    """A run holding the record, the HTML report and SARIF, tagged with the verdict."""
    from mlcheck.report import render_html
    from mlcheck.report.formats import render_sarif

    experiment = _experiment(client)
    run = _write("cannot start the evidence run", lambda: client.create_run(
        experiment, run_name=f"mlcheck {record['policy']['name']}: {model}", tags=tags))
    run_id = run.info.run_id
    try:
        with tempfile.TemporaryDirectory(prefix="mlcheck-evidence-") as tmp:
            folder = Path(tmp)
            (folder / "record.json").write_text(
                json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")
            (folder / "report.html").write_text(render_html(record), encoding="utf-8")
            (folder / "report.sarif").write_text(render_sarif(record), encoding="utf-8")
            _write("cannot log the record and report",
                   lambda: client.log_artifacts(run_id, str(folder), ARTIFACTS))
        _write("cannot finish the evidence run",
               lambda: client.set_terminated(run_id, "FINISHED"))
    except BaseException:
        with suppress(Exception):
            client.set_terminated(run_id, "FAILED")
        raise
    return run_id


def _experiment(client: Any) -> str:
    """MLFLOW_EXPERIMENT_ID, else the experiment named MLFLOW_EXPERIMENT_NAME or `mlcheck`
    (created when missing)."""
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
    found = _write(f"cannot read experiment {name!r}",
                   lambda: client.get_experiment_by_name(name))
    if found is not None:
        return found.experiment_id
    return _write(f"cannot create experiment {name!r}", lambda: client.create_experiment(name))
