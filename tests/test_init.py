"""`mlcheck init`: a starting policy that validates, passes on the data it was made from,
says where each number came from, and never overwrites anything."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from mlcheck.cli import app
from mlcheck.engine import evaluate
from mlcheck.policy import load_policy

from .conftest import (
    EXAMPLES,
    binary_frame,
    fitted_logistic,
    fitted_regression,
    multiclass_frame,
    regression_frame,
)

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def rule_lines(text: str) -> list[str]:
    """Lines of the policy that carry a number or a rule: each must say where it came from."""
    return [line for line in text.splitlines()
            if line.lstrip().startswith("- {") or re.match(r'\s+"[^"]+": \{', line)]


def assert_explained(text: str) -> None:
    for line in rule_lines(text):
        assert "   # " in line, f"no comment on: {line}"


def test_init_on_the_bundled_example_validates_and_passes(workspace):
    data = EXAMPLES / "adult" / "data"
    result = invoke("init", data / "adult-test.csv.gz", "--target", "income",
                    "--model", EXAMPLES / "adult" / "candidate.skops",
                    "--reference", data / "adult-train.csv.gz", "--sensitive", "sex",
                    "--trust-model", "-o", "policies/adult.yaml")
    assert result.exit_code == 0, result.output
    text = (workspace.root / "policies" / "adult.yaml").read_text()
    assert (workspace.root / "policies" / "adult.profile.json").is_file()
    policy = load_policy(workspace.root / "policies" / "adult.yaml")
    assert policy.data.positive_label == ">50K"
    assert list(policy.fairness.sensitive) == ["sex"]  # only what was asked for …
    suggested = next(line for line in text.splitlines()
                     if line.startswith("# columns whose names suggest a protected"))
    assert suggested.endswith("not added: age, marital_status, race, native_country "
                              "(pass --sensitive to add them)")  # … the rest suggested
    assert {r.metric for r in policy.performance.rules} >= {"roc_auc", "accuracy"}
    assert [r.property for r in policy.robustness.rules] == ["valid_predictions"]
    assert policy.explainability.rules[0].test == "max_attribution_share"
    assert policy.drift.reference_profile == "adult.profile.json"
    assert list(policy.schema_.columns["sex"].checks.isin) == ["Female", "Male"]
    assert_explained(text)
    run = evaluate(policy)
    assert not run.blocked, [(c.id, c.message) for c in run.checks if c.blocking]
    families = {c.family for c in run.checks}
    assert families == {"schema", "performance", "fairness", "drift", "explainability",
                        "robustness"}


def test_init_regression_passes_and_explains_its_floors(workspace):
    frame = regression_frame()
    workspace.frame("eval.csv", frame)
    workspace.frame("train.csv", regression_frame(seed=1))
    workspace.skops("model.skops", fitted_regression(frame))
    result = invoke("init", "eval.csv", "--target", "price", "--model", "model.skops",
                    "--reference", "train.csv", "-o", "policy.yaml")
    assert result.exit_code == 0, result.output
    text = (workspace.root / "policy.yaml").read_text()
    policy = load_policy(workspace.root / "policy.yaml")
    assert policy.model.task == "regression"
    mae = next(r for r in policy.performance.rules if r.metric == "mae")
    line = next(x for x in text.splitlines() if "metric: mae" in x)
    assert "over its upper bound" in line and "measured" in line
    assert mae.max > 0
    assert_explained(text)
    assert not evaluate(policy).blocked


def test_init_multiclass_with_a_sensitive_column_passes(workspace):
    frame = multiclass_frame()
    frame["group"] = np.where(np.arange(len(frame)) % 3 == 0, "a", "b")
    workspace.frame("eval.csv", frame)
    model = LogisticRegression().fit(frame[["x1", "x2"]], frame["label"])
    workspace.skops("model.skops", model)
    result = invoke("init", "eval.csv", "--target", "label", "--model", "model.skops",
                    "--sensitive", "group", "-o", "policy.yaml")
    assert result.exit_code == 0, result.output
    text = (workspace.root / "policy.yaml").read_text()
    policy = load_policy(workspace.root / "policy.yaml")
    assert policy.model.task == "multiclass_classification"
    assert list(policy.schema_.columns["label"].checks.isin) == ["high", "low", "mid"]
    assert policy.fairness.rules[0].max_gap is not None
    assert "no --reference given" in text and policy.drift is None
    assert_explained(text)
    run = evaluate(policy)
    assert not run.blocked, [(c.id, c.message) for c in run.checks if c.blocking]


def test_init_writes_exact_numbers_that_yaml_reads_back(workspace):
    frame = pd.DataFrame({"tiny": [1e-7, 2e-7, 3e-7] * 20, "y": [0, 1, 1] * 20})
    workspace.frame("eval.csv", frame)
    assert invoke("init", "eval.csv", "--target", "y", "-o", "p.yaml").exit_code == 0
    loaded = yaml.safe_load((workspace.root / "p.yaml").read_text())
    checks = loaded["schema"]["columns"]["tiny"]["checks"]
    assert checks == {"ge": 1e-7, "le": 3e-7}
    assert not evaluate(workspace.root / "p.yaml").blocked


def test_init_never_overwrites_a_policy(binary_workspace):
    before = (binary_workspace.root / "policy.yaml").read_text()
    result = invoke("init", "eval.csv", "--target", "y", "-o", "policy.yaml")
    assert result.exit_code == 2
    assert "policy.yaml already exists" in result.output
    assert (binary_workspace.root / "policy.yaml").read_text() == before


def test_init_errors_name_the_problem_and_write_nothing(workspace):
    frame = binary_frame()
    workspace.frame("eval.csv", frame)
    workspace.pickle("model.pkl", fitted_logistic(frame))
    result = invoke("init", "eval.csv", "--target", "label", "-o", "p.yaml")
    assert result.exit_code == 2 and "'label' is not a column" in result.output
    result = invoke("init", "eval.csv", "--target", "y", "--sensitive", "gender",
                    "-o", "p.yaml")
    assert result.exit_code == 2 and "'gender' is not a column" in result.output
    result = invoke("init", "eval.csv", "--target", "y", "--model", "model.pkl",
                    "-o", "new/folder/p.yaml")
    assert result.exit_code == 2 and "--trust-model" in result.output
    assert sorted(p.name for p in workspace.root.iterdir()) == ["eval.csv", "model.pkl"]


def test_init_with_a_trusted_pickle_pins_its_hash(workspace):
    frame = binary_frame()
    workspace.frame("eval.csv", frame)
    workspace.pickle("model.pkl", fitted_logistic(frame))
    result = invoke("init", "eval.csv", "--target", "y", "--model", "model.pkl",
                    "--sensitive", "group", "--trust-model", "-o", "p.yaml")
    assert result.exit_code == 0, result.output
    policy = load_policy(workspace.root / "p.yaml")
    assert policy.model.sha256 and policy.data.positive_label is None
    assert not evaluate(policy).blocked


def test_init_binary_labels_other_than_0_and_1_keep_their_type(workspace):
    frame = binary_frame()
    frame["y"] = frame["y"] + 1  # labels 1 and 2
    workspace.frame("eval.csv", frame)
    workspace.skops("model.skops", LogisticRegression().fit(frame[["x1", "x2"]], frame["y"]))
    result = invoke("init", "eval.csv", "--target", "y", "--model", "model.skops",
                    "-o", "p.yaml")
    assert result.exit_code == 0, result.output
    policy = load_policy(workspace.root / "p.yaml")
    assert policy.data.positive_label in (1, 2) and policy.model.task == \
        "binary_classification"
    assert not evaluate(policy).blocked
