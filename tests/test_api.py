"""The Python API from a notebook: in-memory models and DataFrames, an inline summary, and
records written from Python that `mlcheck verify` accepts."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest
from typer.testing import CliRunner

import mlcheck
from mlcheck.cli import app
from mlcheck.errors import InputError, MlcheckError
from mlcheck.integrity import generate_key, verify
from mlcheck.result import CheckResult, RunResult

from .conftest import BINARY_POLICY, binary_frame, fitted_logistic

runner = CliRunner()


@pytest.fixture
def notebook(workspace):
    """A policy whose model and dataset files do not exist: a notebook passes objects."""
    workspace.policy(BINARY_POLICY)
    frame = binary_frame()
    return workspace, frame, fitted_logistic(frame)


def test_in_memory_objects_replace_the_policys_files(notebook):
    workspace, frame, model = notebook
    result = mlcheck.evaluate("policy.yaml", model=model, datasets={"eval": frame})
    subject = result.to_dict()["subject"]
    assert subject["model"]["path"] == "<in memory>"
    assert subject["model"]["sha256"] == hashlib.sha256(
        pickle.dumps(model, protocol=5)).hexdigest()
    assert "pickle" in subject["model"]["loaded_with"]
    dataset = subject["datasets"]["eval"]
    assert dataset["path"] == "<in memory>" and dataset["rows"] == len(frame)
    assert "hash_pandas_object" in dataset["digest_method"]
    assert result.verdict == "passed", [c.message for c in result.checks]

    # the same objects as files give the same values
    workspace.frame("eval.csv", frame)
    workspace.skops("model.skops", model)
    from_files = mlcheck.evaluate("policy.yaml")
    assert [(c.id, c.value, c.verdict) for c in from_files.checks] == [
        (c.id, c.value, c.verdict) for c in result.checks]


def test_a_dataframe_digest_follows_its_content(notebook):
    _, frame, model = notebook
    first = mlcheck.evaluate("policy.yaml", model=model, datasets={"eval": frame})
    again = mlcheck.evaluate("policy.yaml", model=model, datasets={"eval": frame.copy()})
    changed = frame.copy()
    changed.loc[0, "x1"] += 1.0
    other = mlcheck.evaluate("policy.yaml", model=model, datasets={"eval": changed})

    def digest(result: RunResult) -> str:
        return result.subject["datasets"]["eval"]["sha256"]

    assert digest(first) == digest(again) != digest(other)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"datasets": {"evl": None}}, "no dataset 'evl'"),
    ({"datasets": {"eval": [1, 2]}}, "pass a pandas DataFrame, not list"),
    ({"baseline": "model"}, "no `model.baseline` section"),
    ({"model": object()}, "has no `predict` method"),
])
def test_objects_that_do_not_fit_the_policy_are_refused(notebook, kwargs, message):
    with pytest.raises(InputError, match=message):
        mlcheck.evaluate("policy.yaml", **kwargs)


def test_a_pinned_file_is_not_replaced_by_an_object(notebook):
    workspace, frame, model = notebook
    workspace.policy(BINARY_POLICY.replace("    eval: eval.csv", "    eval: {path: eval.csv, "
                                           f"sha256: '{'0' * 64}'}}"))
    with pytest.raises(InputError, match="dataset 'eval' is pinned"):
        mlcheck.evaluate("policy.yaml", model=model, datasets={"eval": frame})


def test_a_record_saved_from_python_passes_verify(notebook):
    workspace, frame, model = notebook
    result = mlcheck.evaluate("policy.yaml", model=model, datasets={"eval": frame})
    record = result.save("out/r.json", "out/r.html")
    assert json.loads((workspace.root / "out/r.json").read_text()) == record
    for name in ("r.json", "r.html"):
        assert verify(workspace.root / "out" / name).status == "INTACT"
        assert runner.invoke(app, ["verify", f"out/{name}"]).exit_code == 0
    assert "PASSED: may be promoted" in (workspace.root / "out/r.html").read_text()


def test_a_signed_record_from_python(notebook):
    workspace, frame, model = notebook
    private, public = generate_key(workspace.root / "key")
    result = mlcheck.evaluate("policy.yaml", model=model, datasets={"eval": frame})
    with pytest.raises(MlcheckError, match="signer"):
        result.save("r.json", sign=private)
    assert not (workspace.root / "r.json").exists()
    record = result.save("r.json", "r.html", sign=private, signer="Ada <ada@example.org>")
    assert record["integrity"]["signature"]["signer"] == "Ada <ada@example.org>"
    assert verify(workspace.root / "r.html", public_key=public).status == "INTACT"


def test_save_never_overwrites_what_the_run_read(binary_workspace):
    result = mlcheck.evaluate("policy.yaml")
    before = (binary_workspace.root / "eval.csv").read_bytes()
    with pytest.raises(MlcheckError, match="is an input of this run"):
        result.save("r.json", "eval.csv")
    assert (binary_workspace.root / "eval.csv").read_bytes() == before
    assert not (binary_workspace.root / "r.json").exists()


def test_the_inline_summary_names_the_verdict_what_blocked_and_each_family(notebook):
    _, frame, model = notebook
    policy = BINARY_POLICY.replace("min: 0.7}", "min: 0.99}")
    (notebook[0].root / "policy.yaml").write_text(policy)
    result = mlcheck.evaluate("policy.yaml", model=model, datasets={"eval": frame})
    html = result._repr_html_()
    assert "BLOCKED" in html and "performance/roc_auc" in html
    assert "<th>performance</th>" in html and "<th>fail</th>" in html
    assert "<script" not in html and len(html) < 5_000


def test_the_inline_summary_escapes_text():
    hostile = "<script>alert(1)</script>"
    check = CheckResult(id=f"schema/{hostile}", family="schema", severity="error",
                        verdict="fail", message=hostile)
    result = RunResult(policy={"name": hostile}, subject={}, checks=[check], environment={},
                       timings={}, created_at="2026-01-01T00:00:00+00:00",
                       mlcheck_version="0")
    html = result._repr_html_()
    assert "<script" not in html and "&lt;script&gt;" in html


def test_a_dataframe_without_a_digest_is_refused(notebook):
    _, frame, model = notebook
    frame = frame.assign(x1=[[v] for v in frame["x1"]])  # lists in cells cannot be hashed
    with pytest.raises(InputError, match="dataset 'eval': cannot compute a digest"):
        mlcheck.evaluate("policy.yaml", model=model, datasets={"eval": frame})


def test_a_pinned_model_is_not_replaced_by_an_object(notebook):
    workspace, frame, model = notebook
    workspace.policy(BINARY_POLICY.replace("  path: model.skops",
                                           f"  path: model.skops\n  sha256: '{'0' * 64}'"))
    with pytest.raises(InputError, match="pins its model"):
        mlcheck.evaluate("policy.yaml", model=model, datasets={"eval": frame})
