"""Hostile policies and hostile model code: none of them may yield a pass.

Threat model: a policy that silently asks for nothing (an empty or null section, a base
section removed by a child), a bound that compares false with everything (NaN), model
code that exits the interpreter or never returns, and a model whose inputs differ from
the data's columns."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mlcheck.cli import app
from mlcheck.engine import evaluate
from mlcheck.errors import InputError, PolicyError
from mlcheck.policy import load_policy

from .conftest import BINARY_POLICY, binary_frame, fitted_logistic

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


# ------------------------------------------------------------ empty or null sections


PERFORMANCE = "performance:\n  rules:\n    - {metric: roc_auc, min: 0.7}\n"
SCHEMA = "schema:\n  columns:\n    x1: {dtype: float64}\n"


@pytest.mark.parametrize(("section", "other"), [
    ("performance:\n", SCHEMA),  # its rules commented out
    ("performance:\n  # rules:\n  #   - {metric: roc_auc, min: 0.8}\n", SCHEMA),
    ("fairness: ~\n", PERFORMANCE),
    ("drift: {}\n", PERFORMANCE),
    ("performance:\n  rules: []\n", SCHEMA),
    ("schema:\n  columns: {}\n", PERFORMANCE),
])
def test_an_empty_or_null_section_is_a_load_error(binary_workspace, section, other):
    head = BINARY_POLICY[:BINARY_POLICY.index("performance:")]
    path = binary_workspace.policy(head + other + section)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert "policy.yaml:" in message
    assert "empty" in message
    assert section.split(":")[0] in message


def test_a_child_cannot_remove_a_base_section_by_accident(binary_workspace):
    binary_workspace.policy(BINARY_POLICY + "fairness:\n  sensitive: [group]\n  rules:\n"
                            "    - {metric: demographic_parity_difference, max: 0.5}\n",
                            name="base.yaml")
    child = binary_workspace.policy("mlcheck: 1\nname: child\nextends: base.yaml\nfairness: ~\n",
                                    name="child.yaml")
    with pytest.raises(PolicyError) as caught:
        load_policy(child)
    assert "child.yaml:4" in str(caught.value)
    assert "fairness" in str(caught.value) and "base" in str(caught.value)


def test_cli_validate_reports_an_empty_section_with_exit_2(binary_workspace):
    path = binary_workspace.policy(BINARY_POLICY + "drift:\n")
    result = run("validate", path)
    assert result.exit_code == 2
    assert "drift" in result.output and "empty" in result.output


# ---------------------------------------------------------------------- NaN bounds


@pytest.mark.parametrize("rule", [
    "{metric: roc_auc, min: .nan}",
    "{metric: roc_auc, max: .NaN}",
    "{metric: roc_auc, min: 0.5, max_interval_width: .nan}",
    "{metric: accuracy, baseline: {max_drop: .nan}}",
])
def test_nan_is_never_a_bound(binary_workspace, rule):
    path = binary_workspace.policy(BINARY_POLICY.replace("{metric: roc_auc, min: 0.7}", rule))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert "finite" in str(caught.value)
    assert "policy.yaml:" in str(caught.value)


def test_nan_threshold_and_schema_bound_are_load_errors(binary_workspace):
    text = BINARY_POLICY.replace("  features: [x1, x2]\n",
                                 "  features: [x1, x2]\n  threshold: .nan\n")
    with pytest.raises(PolicyError, match="finite"):
        load_policy(binary_workspace.policy(text))
    text = BINARY_POLICY + "schema:\n  columns:\n    x1: {dtype: float64, checks: {ge: .nan}}\n"
    with pytest.raises(PolicyError, match="finite"):
        load_policy(binary_workspace.policy(text))


# ------------------------------------------------------ model code that leaves early


FACTORY_POLICY = """
mlcheck: 1
name: hostile
model:
  factory: make.py:build
  task: binary_classification
data:
  target: y
  datasets:
    eval: eval.csv
performance:
  rules:
    - {metric: roc_auc, min: 0.5}
    - {metric: accuracy, min: 0.5}
"""

MODEL_CODE = """
import sys
import numpy as np
from sklearn.linear_model import LogisticRegression
import pandas as pd

class Leaver:
    classes_ = np.array([0, 1])
    def predict(self, X):
        {action}
    def predict_proba(self, X):
        {action}

def build():
    {build}
    return Leaver()
"""


def hostile_workspace(workspace, action="return None", build="pass", top=""):
    workspace.frame("eval.csv", binary_frame())
    workspace.write("make.py", top + MODEL_CODE.replace("{action}", action)
                    .replace("{build}", build))
    return workspace.policy(FACTORY_POLICY)


@pytest.mark.parametrize("action", [
    "sys.exit(0)",
    "raise SystemExit(0)",
    "raise KeyboardInterrupt",
    "raise GeneratorExit",
    "raise type('Escape', (BaseException,), {})()",
])
def test_model_code_that_exits_is_the_checks_error(workspace, action):
    path = hostile_workspace(workspace, action=action)
    result = run("check", path)
    assert result.exit_code == 1, result.output
    record = json.loads((workspace.root / "reports/hostile.json").read_text())
    assert record["verdict"] == "blocked"
    assert [c["verdict"] for c in record["checks"]] == ["error", "error"]
    assert "model code" in record["checks"][0]["message"]


@pytest.mark.parametrize("where", ["build", "top"])
def test_a_factory_that_exits_is_an_input_error(workspace, where):
    kwargs = {"build": "sys.exit(0)"} if where == "build" else {"top": "import sys\nsys.exit(0)\n"}
    path = hostile_workspace(workspace, **kwargs)
    result = run("check", path)
    assert result.exit_code == 2, result.output
    assert "SystemExit" in result.output and "factory" in result.output
    assert not (workspace.root / "reports").exists()


# -------------------------------------------------------------- model time limit


def test_a_model_over_its_time_limit_is_an_error_with_the_time_taken(workspace):
    path = hostile_workspace(workspace, action="import time; time.sleep(30)")
    path.write_text(path.read_text().replace("  task: binary_classification\n",
                                             "  task: binary_classification\n  timeout: 0.2\n"))
    result = evaluate(path)
    assert [c.verdict for c in result.checks] == ["error", "error"]
    message = result.checks[0].message
    assert "time limit" in message and "0.2" in message


def test_the_cli_time_limit_applies_when_the_policy_sets_none(workspace):
    path = hostile_workspace(workspace, action="import time; time.sleep(30)")
    result = run("check", path, "--model-timeout", "0.2")
    assert result.exit_code == 1, result.output
    assert "time limit" in result.output


# ----------------------------------------------------------- model inputs by default


def test_the_models_own_inputs_are_the_default_features(workspace):
    frame = binary_frame()
    workspace.frame("eval.csv", frame.assign(region=["north"] * len(frame)))
    workspace.skops("model.skops", fitted_logistic(frame))  # fitted on x1, x2 by name
    path = workspace.policy(BINARY_POLICY.replace("  features: [x1, x2]\n", ""))
    result = evaluate(path)
    assert {c.verdict for c in result.checks} == {"pass"}, [c.message for c in result.checks]


def test_a_model_input_missing_from_the_data_is_an_input_error(workspace):
    frame = binary_frame()
    workspace.frame("eval.csv", frame.drop(columns=["x2"]))
    workspace.skops("model.skops", fitted_logistic(frame))
    path = workspace.policy(BINARY_POLICY.replace("  features: [x1, x2]\n", ""))
    with pytest.raises(InputError) as caught:
        evaluate(path)
    assert "x2" in str(caught.value) and "model.features" in str(caught.value)


SLOW_ON_SMALL_BATCHES = """
import time
import numpy as np
from sklearn.linear_model import LogisticRegression

class SlowOnFewRows(LogisticRegression):
    def predict_proba(self, X):
        if len(X) < 50:
            time.sleep(30)
        return super().predict_proba(X)

def build():
    import pandas as pd
    frame = pd.read_csv("eval.csv")
    return SlowOnFewRows().fit(frame[["x1", "x2"]], frame["y"])
"""


@pytest.mark.parametrize("rule", ["{property: perturbation, noise: 0.1, max_flip_rate: 0.5}",
                                  "{property: valid_predictions, inputs: data}"])
def test_the_time_limit_holds_in_property_searches(workspace, rule):
    workspace.frame("eval.csv", binary_frame())
    workspace.write("make.py", SLOW_ON_SMALL_BATCHES)
    path = workspace.policy(FACTORY_POLICY.replace("  task: binary_classification\n",
                                                   "  task: binary_classification\n"
                                                   "  timeout: 0.5\n")
                            + f"robustness:\n  examples: 5\n  rules:\n    - {rule}\n")
    result = evaluate(path)
    check = next(c for c in result.checks if c.family == "robustness")
    assert check.verdict == "error", check.message
    assert "time limit" in check.message


def test_slice_values_in_check_ids_hold_no_control_characters(workspace):
    frame = binary_frame()
    frame["group"] = frame["group"].map({"a": "\x1b[2K\x1b[1APASSED", "b": "b" * 5000})
    workspace.frame("eval.csv", frame)
    workspace.skops("model.skops", fitted_logistic(frame))
    path = workspace.policy(BINARY_POLICY)
    ids = [c.id for c in evaluate(path).checks]
    assert "performance/accuracy[group=\\x1b[2K\\x1b[1APASSED]" in ids
    assert all("\x1b" not in i and len(i) < 200 for i in ids), ids


@pytest.mark.parametrize("action", [
    "import signal, time; signal.signal(signal.SIGALRM, signal.SIG_IGN); time.sleep(20)",
    "import time\n        for _ in range(200):\n            try:\n                time.sleep(0.1)"
    "\n            except BaseException:\n                pass",
])
def test_a_model_that_defeats_the_time_limit_ends_the_run_without_a_verdict(workspace,
                                                                           action):
    import subprocess
    import sys

    path = hostile_workspace(workspace, action=action)
    path.write_text(path.read_text().replace("  task: binary_classification\n",
                                             "  task: binary_classification\n  timeout: 0.3\n"))
    done = subprocess.run([sys.executable, "-m", "mlcheck.cli", "check", str(path)],
                          cwd=workspace.root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "did not stop when asked" in done.stderr
    assert not (workspace.root / "reports" / "hostile.json").exists()



# ------------------------------------------------- messages for null keys and NaN values


def test_a_null_list_says_it_is_empty(binary_workspace):
    path = binary_workspace.policy(BINARY_POLICY[:BINARY_POLICY.index("performance:")]
                                   + "performance:\n  rules: ~\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert "policy.yaml:" in message and "performance.rules" in message
    assert "empty (null)" in message and "at least one entry" in message
    assert "valid tuple" not in message


@pytest.mark.parametrize(("text", "key"), [
    ("schema:\n  columns:\n    group: {dtype: str, checks: {isin: [a, .nan]}}\n",
     "schema.columns.group.checks.isin[1]"),
    ("fairness:\n  sensitive: [group]\n  rules:\n"
     "    - {metric: accuracy, min: 0.5, reference: .nan}\n", "fairness.rules[0].reference"),
    ("fairness:\n  sensitive: [group]\n  rules:\n"
     "    - {metric: accuracy, min: 0.5, reference: -.inf}\n", "fairness.rules[0].reference"),
])
def test_nan_anywhere_says_a_finite_number_is_needed(binary_workspace, text, key):
    path = binary_workspace.policy(BINARY_POLICY + text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert f"{key}: must be a finite number, not " in message
    assert message.split("not ")[-1].split()[0].rstrip(";,") in ("nan", "-inf")
    assert "valid boolean" not in message


def test_an_exit_from_model_code_is_remembered_not_retried_per_check(workspace):
    path = hostile_workspace(workspace, action="open('calls', 'a').write('x'); sys.exit(0)")
    path.write_text(path.read_text() + "    - {metric: average_precision, min: 0.5}\n"
                    "    - {metric: recall, min: 0.5}\n")
    result = evaluate(path)
    assert [c.verdict for c in result.checks] == ["error"] * 4
    # predict_proba once (roc_auc, average_precision), predict once (accuracy, recall)
    assert (workspace.root / "calls").read_text() == "xx"
