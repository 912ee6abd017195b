"""Loading models and datasets safely, with fingerprints and clear refusals."""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from mlcheck.errors import InputError
from mlcheck.policy import load_policy
from mlcheck.subject import load_subject

from .conftest import BINARY_POLICY, EXAMPLE_POLICY, binary_frame, fitted_logistic


class TouchOnUnpickle:
    """Unpickling this creates a marker file: proof that a file was (or was not) unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def pickle_policy(workspace, extra: str = "") -> Path:
    return workspace.policy(BINARY_POLICY.replace("path: model.skops",
                                                  f"path: model.pkl{extra}"))


def test_example_subject_is_fingerprinted():
    policy = load_policy(EXAMPLE_POLICY)
    subject = load_subject(policy)
    described = subject.describe(policy)
    candidate = EXAMPLE_POLICY.parent / "../examples/adult/candidate.skops"
    assert described["model"]["sha256"] == hashlib.sha256(candidate.read_bytes()).hexdigest()
    assert described["model"]["class"].startswith("Pipeline(")
    assert described["datasets"]["eval"]["rows"] == 16281
    assert described["datasets"]["reference"]["rows"] == 32561
    assert described["datasets"]["eval"]["columns"] == 15
    assert described["baseline"]["bytes"] > 0
    assert described["positive_label"] == ">50K"
    assert described["model"]["loaded_with"] == (
        "skops, with reviewed types: numpy.dtype, "
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor")


def test_skops_types_outside_the_defaults_are_refused_until_reviewed(workspace):
    frame = binary_frame()
    workspace.frame("eval.csv", frame)
    model = make_pipeline(SimpleImputer(), LogisticRegression())  # stores a numpy.dtype
    model.fit(frame[["x1", "x2"]], frame["y"])
    workspace.skops("model.skops", model)
    policy_path = workspace.policy(BINARY_POLICY)
    with pytest.raises(InputError, match=r"numpy\.dtype.*trusted_types"):
        load_subject(load_policy(policy_path))
    assert load_subject(load_policy(policy_path), trust_model=True).model.estimator is not None
    workspace.policy(BINARY_POLICY.replace("features: [x1, x2]",
                                           "features: [x1, x2]\n  trusted_types: [numpy.dtype]"))
    assert load_subject(load_policy(policy_path)).model.estimator is not None


def test_pickle_is_refused_without_trust_and_never_unpickled(workspace):
    frame = binary_frame()
    workspace.frame("eval.csv", frame)
    marker = workspace.root / "unpickled"
    workspace.pickle("model.pkl", TouchOnUnpickle(marker))
    with pytest.raises(InputError) as info:
        load_subject(load_policy(pickle_policy(workspace)))
    assert "refuses to load it unless you trust it" in str(info.value)
    assert "--trust-model" in str(info.value)
    assert not marker.exists()


def test_pickle_loads_with_trust_flag_key_or_pinned_hash(workspace):
    frame = binary_frame()
    workspace.frame("eval.csv", frame)
    path = workspace.pickle("model.pkl", fitted_logistic(frame))
    flagged = load_subject(load_policy(pickle_policy(workspace)), trust_model=True).model
    assert flagged.loaded_with == "unpickled, trusted by --trust-model"
    keyed = load_subject(load_policy(pickle_policy(workspace, "\n  trust: true"))).model
    assert keyed.loaded_with == "unpickled, trusted by policy `trust: true`"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    pinned = load_subject(load_policy(pickle_policy(workspace, f"\n  sha256: {digest}"))).model
    assert pinned.loaded_with == "unpickled, trusted by pinned sha256"
    assert hasattr(pinned.estimator, "predict_proba")


def test_hash_mismatch_fails_before_anything_is_loaded(workspace):
    frame = binary_frame()
    workspace.frame("eval.csv", frame)
    marker = workspace.root / "unpickled"
    workspace.pickle("model.pkl", TouchOnUnpickle(marker))
    policy = load_policy(pickle_policy(workspace, "\n  sha256: " + "f" * 64))
    with pytest.raises(InputError, match="SHA-256 mismatch") as info:
        load_subject(policy, trust_model=True)
    assert "Nothing was loaded" in str(info.value)
    assert "policy.yaml:5" in str(info.value)
    assert not marker.exists()


def test_dataset_hash_pin(binary_workspace):
    text = BINARY_POLICY.replace("eval: eval.csv", "eval: {path: eval.csv, sha256: " + "a" * 64
                                 + "}")
    with pytest.raises(InputError, match="dataset 'eval': SHA-256 mismatch"):
        load_subject(load_policy(binary_workspace.policy(text)))


def test_model_factory_is_imported_from_the_policy_folder(workspace):
    frame = binary_frame()
    workspace.frame("eval.csv", frame)
    workspace.write("my_models.py", """
        import pandas as pd
        from sklearn.linear_model import LogisticRegression

        def build():
            frame = pd.read_csv("eval.csv")
            return LogisticRegression().fit(frame[["x1", "x2"]], frame["y"])
        """)
    policy = load_policy(workspace.policy(BINARY_POLICY.replace("path: model.skops",
                                                                "factory: my_models:build")))
    subject = load_subject(policy)
    described = subject.model.describe()
    assert described["factory"] == "my_models:build"
    assert described["path"].endswith("my_models.py")  # the code that built the model
    assert described["sha256"] == hashlib.sha256(
        (workspace.root / "my_models.py").read_bytes()).hexdigest()
    assert hasattr(subject.model.estimator, "predict_proba")


def test_factory_that_cannot_be_imported(workspace):
    workspace.frame("eval.csv", binary_frame())
    policy = load_policy(workspace.policy(BINARY_POLICY.replace("path: model.skops",
                                                                "factory: nowhere:build")))
    with pytest.raises(InputError, match="factory 'nowhere:build' cannot be imported"):
        load_subject(policy)


@pytest.mark.parametrize("name", ["eval.csv", "eval.csv.gz", "eval.parquet"])
def test_csv_gzip_and_parquet_datasets(binary_workspace, name):
    frame = binary_frame()
    if name.endswith(".gz"):
        path = binary_workspace.root / name
        with gzip.open(path, "wt") as out:
            frame.to_csv(out, index=False)
    else:
        path = binary_workspace.frame(name, frame)
    policy = load_policy(binary_workspace.policy(BINARY_POLICY.replace("eval.csv", name)))
    dataset = load_subject(policy).datasets["eval"]
    assert dataset.describe() == {"path": name, "sha256": hashlib.sha256(
        path.read_bytes()).hexdigest(), "bytes": path.stat().st_size, "rows": 600, "columns": 4}
    pd.testing.assert_frame_equal(dataset.frame, frame, check_dtype=False)


def test_missing_dataset_file_is_named(binary_workspace):
    (binary_workspace.root / "eval.csv").unlink()
    with pytest.raises(InputError) as info:
        load_subject(load_policy("policy.yaml"))
    assert "dataset 'eval': file not found: eval.csv" in str(info.value)
    assert "policy.yaml:10" in str(info.value)


def test_missing_model_file_is_named(binary_workspace):
    (binary_workspace.root / "model.skops").unlink()
    with pytest.raises(InputError, match=r"candidate model: file not found: model\.skops"):
        load_subject(load_policy("policy.yaml"))


def test_empty_dataset_is_an_error(binary_workspace):
    binary_workspace.frame("eval.csv", binary_frame().iloc[:0])
    with pytest.raises(InputError, match=r"dataset 'eval' \(eval.csv\) has no rows"):
        load_subject(load_policy("policy.yaml"))


def test_missing_target_column_is_named_with_suggestion(binary_workspace):
    binary_workspace.frame("eval.csv", binary_frame().rename(columns={"y": "Y"}))
    with pytest.raises(InputError) as info:
        load_subject(load_policy("policy.yaml"))
    assert "column 'y' not found in dataset 'eval' (did you mean 'Y'?)" in str(info.value)
    assert "policy.yaml:8:3: data.target" in str(info.value)


def test_unreadable_dataset(binary_workspace):
    (binary_workspace.root / "eval.parquet").write_bytes(b"not parquet")
    policy = load_policy(binary_workspace.policy(BINARY_POLICY.replace("eval.csv",
                                                                       "eval.parquet")))
    with pytest.raises(InputError, match=r"cannot read eval\.parquet as parquet"):
        load_subject(policy)


def test_unknown_model_format(binary_workspace):
    (binary_workspace.root / "model.onnx").write_bytes(pickle.dumps(1))
    policy = load_policy(binary_workspace.policy(BINARY_POLICY.replace("model.skops",
                                                                       "model.onnx")))
    with pytest.raises(InputError, match="unknown model format"):
        load_subject(policy)
