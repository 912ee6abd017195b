"""Behavioural properties: each catches a deliberately broken model with a shrunk
counterexample and passes a correct one; the same policy gives the same result every run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlcheck.engine import evaluate
from mlcheck.errors import PolicyError

MODELS = '''
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, LinearRegression


def frame():
    return pd.read_csv("eval.csv")


class Scored:
    """A binary classifier from a score function of the input frame."""

    classes_ = np.array([0, 1])

    def __init__(self, score):
        self.score = score

    def predict_proba(self, X):
        p = np.asarray(self.score(X), dtype=float)
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def sigmoid(z):
    return 1 / (1 + np.exp(-np.clip(z, -500, 500)))


def logistic():  # reads x1 and x2 only
    data = frame()
    model = LogisticRegression().fit(data[["x1", "x2"]], data["y"])
    return Scored(lambda X: model.predict_proba(X[["x1", "x2"]])[:, 1])


def uses_group():
    return Scored(lambda X: sigmoid(X["x1"] + 2.0 * (X["group"] == "a")))


def raises_on_c():
    def score(X):
        if (X["group"] == "c").any():
            raise ValueError("unknown group 'c'")
        return sigmoid(X["x1"])
    return Scored(score)


def nan_for_large():
    return Scored(lambda X: np.where(X["x1"] > 3, np.nan, sigmoid(X["x1"])))


def hump():  # rises then falls in x1
    return Scored(lambda X: sigmoid(-(X["x1"] - 1.0) ** 2))


def knife_edge():  # the class flips at x1 = 0, where many rows sit
    return Scored(lambda X: sigmoid(1000 * X["x1"]))


def far_edge():  # the class flips at x1 = 3, where few rows sit
    return Scored(lambda X: sigmoid(X["x1"] - 3))


class Infinite:
    def predict(self, X):
        return np.where(X["x1"] > 2, np.inf, X["x1"].to_numpy())
'''

SCHEMA = """
schema:
  columns:
    x1: {dtype: float64, checks: {ge: -5, le: 5}}
    x2: {dtype: float64}
    group: {dtype: str, checks: {isin: [a, b, c]}}
    y: {dtype: int64, checks: {isin: [0, 1]}}
"""


def data(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = np.r_[rng.normal(size=rows - 100), rng.normal(scale=0.001, size=100)]
    frame = pd.DataFrame({"x1": x1, "x2": rng.normal(size=rows),
                          "group": rng.choice(["a", "b"], rows)})
    frame["y"] = (frame["x1"] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return frame


def policy(workspace, factory: str, rules: list[str], *, schema: bool = True,
           task: str = "binary_classification", examples: int = 60) -> object:
    workspace.write("models.py", MODELS)
    workspace.frame("eval.csv", data())
    return workspace.policy(
        "mlcheck: 1\nname: properties\n"
        f"model: {{factory: 'models.py:{factory}', task: {task}, "
        "features: [x1, x2, group]}\n"
        "data: {target: y, datasets: {eval: eval.csv}}\n"
        + (SCHEMA if schema else "")
        + f"robustness:\n  examples: {examples}\n  rules:\n"
        + "".join(f"    - {rule}\n" for rule in rules))


def run(path) -> dict:
    return {c.id: c for c in evaluate(path).checks if c.family == "robustness"}


def test_valid_predictions_passes_a_correct_model_on_schema_and_real_rows(workspace):
    checks = run(policy(workspace, "logistic", [
        "{property: valid_predictions}", "{property: valid_predictions, inputs: data}"]))
    for inputs in ("schema", "data"):
        check = checks[f"robustness/valid_predictions[{inputs}]"]
        assert check.verdict == "pass", check.message
        assert check.evidence["counterexample"] is None
        assert check.evidence["model_calls"] >= 60  # the stated budget was spent


def test_valid_predictions_catches_a_raising_model_with_a_shrunk_row(workspace):
    checks = run(policy(workspace, "raises_on_c", ["{property: valid_predictions}"]))
    check = checks["robustness/valid_predictions[schema]"]
    assert check.verdict == "fail"
    example = check.evidence["counterexample"]
    assert example["problem"] == "the model raised ValueError: unknown group 'c'"
    assert example["row"]["group"] == "c"
    assert example["row"]["x1"] == 0 and example["row"]["x2"] == 0  # shrunk to the simplest
    assert "shrunk counterexample: generated from the schema" in check.message


def test_valid_predictions_catches_nan_probabilities_and_infinite_regression(workspace):
    checks = run(policy(workspace, "nan_for_large", ["{property: valid_predictions}"]))
    example = checks["robustness/valid_predictions[schema]"].evidence["counterexample"]
    assert example["problem"].startswith("probabilities are not finite")
    assert 3 < example["row"]["x1"] <= 5
    path = policy(workspace, "Infinite", ["{property: valid_predictions}"], task="regression")
    path.write_text(path.read_text().replace("target: y", "target: x2").replace(
        "features: [x1, x2, group]", "features: [x1, group]"))
    check = run(path)["robustness/valid_predictions[schema]"]
    assert check.verdict == "fail" and "the prediction is not finite" in check.message


def test_invariant_passes_a_model_that_ignores_the_feature_and_catches_one_that_uses_it(
        workspace):
    rule = ["{property: invariant, features: [group]}"]
    assert run(policy(workspace, "logistic", rule))["robustness/invariant[group]"].verdict \
        == "pass"
    check = run(policy(workspace, "uses_group", rule))["robustness/invariant[group]"]
    assert check.verdict == "fail"
    example = check.evidence["counterexample"]
    before, after = example["changed"]["group"]
    assert {before, after} <= {"a", "b", "c"} and before != after
    assert abs(example["scores"][1] - example["scores"][0]) == pytest.approx(check.value)
    assert example["source"].startswith("row ")  # a real row of eval
    assert check.bounds == {"max": 0.0}


def test_monotonic_catches_the_wrong_direction_and_a_hump(workspace):
    checks = run(policy(workspace, "logistic", [
        "{property: monotonic, features: [x1], direction: increasing}",
        "{id: falling, property: monotonic, features: [x1], direction: decreasing}"]))
    assert checks["robustness/monotonic[x1]"].verdict == "pass"
    falling = checks["robustness/falling[x1]"]
    assert falling.verdict == "fail"
    low, high = falling.evidence["counterexample"]["changed"]["x1"]
    assert low < high
    scores = falling.evidence["counterexample"]["scores"]
    assert scores[1] > scores[0]
    hump = run(policy(workspace, "hump", [
        "{property: monotonic, features: [x1], direction: increasing, inputs: schema}"]))
    check = hump["robustness/monotonic[x1]"]
    assert check.verdict == "fail"
    low, high = check.evidence["counterexample"]["changed"]["x1"]
    assert high > 1.0  # past the top of the hump, where the score falls


def test_perturbation_counts_flipped_classes(workspace):
    rule = ["{property: perturbation, noise: 0.05, max_flip_rate: 0.1, rows: 400}"]
    far = run(policy(workspace, "far_edge", rule))["robustness/perturbation"]
    knife = run(policy(workspace, "knife_edge", rule))["robustness/perturbation"]
    assert far.verdict == "pass" and far.value < 0.01
    assert knife.verdict == "fail" and knife.value > 0.1  # the 100 rows near x1 = 0 flip
    example = knife.evidence["counterexample"]
    assert example["labels"][0] != example["labels"][1]
    assert list(example["changed"]) == ["x1", "x2"]
    assert knife.evidence["columns"] == ["x1", "x2"] and knife.n == 400


def test_the_same_policy_gives_the_same_results_on_every_run(workspace):
    path = policy(workspace, "hump", [
        "{property: monotonic, features: [x1], direction: increasing}",
        "{property: invariant, features: [group], tolerance: 0.01}",
        "{property: valid_predictions}",
        "{property: perturbation, noise: 0.5}"])
    first = [json.dumps(c.to_dict()["evidence"], sort_keys=True) for c in run(path).values()]
    second = [json.dumps(c.to_dict()["evidence"], sort_keys=True) for c in run(path).values()]
    assert first == second
    assert not (workspace.root / ".hypothesis").exists()  # nothing left in the working dir


def test_a_wide_schema_with_text_columns_generates_rows(workspace):
    """25 columns, 5 of them categorical: rows are built from the column specs."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({f"n{i}": rng.normal(size=200) for i in range(20)})
    for i in range(5):
        frame[f"c{i}"] = rng.choice(["low", "mid", "high"], 200)
    frame["y"] = (frame["n0"] > 0).astype(int)
    workspace.frame("eval.csv", frame)
    workspace.write("models.py", MODELS + '''

def wide():
    return Scored(lambda X: sigmoid(X["n0"] + (X["c0"] == "high")))
''')
    columns = "".join(f"    n{i}: {{dtype: float64, nullable: true}}\n" for i in range(20))
    columns += "".join(f"    c{i}: {{dtype: str, checks: {{isin: [low, mid, high]}}}}\n"
                       for i in range(5))
    path = workspace.policy(
        "mlcheck: 1\nname: wide\n"
        "model: {factory: 'models.py:wide', task: binary_classification}\n"
        "data: {target: y, datasets: {eval: eval.csv}}\n"
        f"schema:\n  columns:\n{columns}    y: {{dtype: int64}}\n"
        "robustness:\n  examples: 100\n  rules:\n    - {property: valid_predictions}\n")
    check = run(path)["robustness/valid_predictions[schema]"]
    assert check.verdict == "fail"  # a missing n0 gives a NaN score: found, and shrunk
    example = check.evidence["counterexample"]
    assert example["row"]["n0"] is None
    assert example["problem"].startswith("probabilities are not finite")


def test_properties_that_cannot_be_evaluated_are_errors_that_say_why(workspace):
    checks = run(policy(workspace, "logistic", [
        "{property: invariant, features: [grup]}",
        "{property: monotonic, features: [group], direction: increasing}",
        "{property: perturbation, noise: 0.1, features: [group]}"]))
    assert "'grup' is not an input column of the model (did you mean 'group'?)" in \
        checks["robustness/invariant[grup]"].message
    assert "`monotonic` needs a numeric feature; 'group' is" in \
        checks["robustness/monotonic[group]"].message
    assert "adds noise to numeric features; group is not" in \
        checks["robustness/perturbation"].message
    assert {c.verdict for c in checks.values()} == {"error"}
    # black box: no model to query
    frame = data()
    frame["vendor"] = 0.5
    workspace.frame("eval.csv", frame)
    path = workspace.policy("""
        mlcheck: 1
        name: vendor
        model: {scores: vendor, task: binary_classification}
        data: {target: y, datasets: {eval: eval.csv}}
        robustness:
          rules: [{property: invariant, features: [group]}]
        """)
    check = run(path)["robustness/invariant[group]"]
    assert check.verdict == "error"
    assert "properties need the model itself" in check.message
    # a schema that does not cover the model's inputs
    path = policy(workspace, "logistic", ["{property: valid_predictions}"])
    path.write_text(path.read_text().replace("    x2: {dtype: float64}\n", ""))
    check = run(path)["robustness/valid_predictions[schema]"]
    assert "needs every model input in `schema.columns`; missing: x2" in check.message


@pytest.mark.parametrize(("rule", "message"), [
    ("{property: monotonic, features: [x1]}", "`monotonic` needs `direction`"),
    ("{property: perturbation, noise: 0.1, rows: 0}", "greater than or equal to 1"),
    ("{property: invariant, features: [x1], noise: 0.1}", "`invariant` does not use `noise`"),
    ("{property: valid_predictions, features: [x1]}", "does not use `features`"),
    ("{property: perturbation, noise: 0.1, max_flip_rate: 2}", "less than or equal to 1"),
    ("{property: invarient, features: [x1]}", "did you mean 'invariant'"),
])
def test_policy_errors_name_the_rule(workspace, rule, message):
    with pytest.raises(PolicyError, match=r"robustness\.rules") as caught:
        evaluate(policy(workspace, "logistic", [rule]))
    assert message in str(caught.value)


def test_schema_inputs_need_a_schema_section(workspace):
    with pytest.raises(PolicyError, match="`inputs: schema` generates rows from the `schema` "
                                          "section, and the policy has none"):
        evaluate(policy(workspace, "logistic", ["{property: valid_predictions}"],
                        schema=False))


def test_review_findings_on_properties(workspace):
    extra = MODELS + '''

def nan_for_b():
    return Scored(lambda X: np.where(X["group"] == "b", np.nan, sigmoid(X["x1"])))


def thresholded():  # a knife edge at x1 = 0 for a 0.5 cut; never reaches 0.8
    return Scored(lambda X: 0.25 + 0.5 * sigmoid(1000 * X["x1"]))
'''
    path = policy(workspace, "raises_on_c", [
        "{property: invariant, features: [group]}",
        "{property: monotonic, features: [x1], direction: increasing}"])
    workspace.write("models.py", extra)
    checks = run(path)
    invariant = checks["robustness/invariant[group]"]
    assert invariant.verdict == "fail"  # not an internal error: a counterexample
    assert invariant.message.startswith("the model raised ValueError: unknown group 'c'")
    assert invariant.evidence["counterexample"]["row"]["group"] in ("a", "b")
    path.write_text(path.read_text().replace("raises_on_c", "nan_for_b"))
    checks = run(path)
    assert checks["robustness/invariant[group]"].message.startswith(
        "the score is not finite")  # NaN is a change, not "0 <= tolerance"
    assert checks["robustness/monotonic[x1]"].verdict == "fail"
    # perturbation counts classes as the policy does: with its threshold (0.8: every
    # row is negative, nothing flips), not with predict's 0.5 (the rows near x1 = 0 flip)
    path.write_text(path.read_text().replace("nan_for_b", "thresholded").replace(
        "    - {property: invariant, features: [group]}\n", "").replace(
        "{property: monotonic, features: [x1], direction: increasing}",
        "{property: perturbation, noise: 0.05, max_flip_rate: 0.02}"))
    assert run(path)["robustness/perturbation"].verdict == "fail"  # predict's 0.5 cut
    path.write_text(path.read_text().replace("task: binary_classification,",
                                             "task: binary_classification, threshold: 0.8,"))
    check = run(path)["robustness/perturbation"]
    assert check.verdict == "pass" and check.value == 0, check.message


def test_generated_values_respect_every_bound_and_the_model_sees_them_unchanged():
    from hypothesis import given, settings

    from mlcheck.checks.robustness import column_strategy
    from mlcheck.policy import ColumnSpec

    cases = [
        ({"dtype": "int64", "checks": {"ge": 0, "gt": 5}}, lambda v: v > 5),
        ({"dtype": "int64", "checks": {"gt": 17.5, "le": 20}}, lambda v: 18 <= v <= 20),
        ({"dtype": "int64", "checks": {"le": 1e20}}, lambda v: v <= 2**63 - 1),
        ({"dtype": "float32", "checks": {"ge": 0.1, "lt": 0.3}}, lambda v: 0.1 <= v < 0.3),
        ({"dtype": "float64", "checks": {"ge": 1, "gt": 2}}, lambda v: v > 2),
        ({"dtype": "str", "checks": {"regex": "[a-z]+", "max_length": 3}},
         lambda v: 1 <= len(v) <= 3),
    ]
    def checker(strategy, holds, spec):
        @settings(max_examples=150, database=None, deadline=None)
        @given(strategy)
        def check(value):
            assert holds(value), (spec, value)

        return check

    for spec, holds in cases:
        checker(column_strategy("c", ColumnSpec(**spec), None), holds, spec)()


def test_categories_and_missing_booleans_reach_the_model_as_generated(workspace):
    from mlcheck.checks.robustness import _as_dtype

    categories = pd.CategoricalDtype(["a", "b"])
    widened = _as_dtype(pd.Series(["a", "c"]), categories)
    assert widened.tolist() == ["a", "c"]  # 'c' is allowed by the schema: not NaN
    flags = _as_dtype(pd.Series([True, None]), np.dtype(bool))
    assert flags.isna().tolist() == [False, True]  # missing, not False
    fractions = _as_dtype(pd.Series([1.5, 2.0]), np.dtype("int64"))
    assert fractions.tolist() == [1.5, 2.0]  # not truncated to 1


def test_a_users_hypothesis_profile_does_not_change_the_search(workspace):
    from hypothesis import Phase, settings

    path = policy(workspace, "raises_on_c", ["{property: valid_predictions}"])
    expected = run(path)["robustness/valid_predictions[schema]"].evidence
    settings.register_profile("user-explicit-only", phases=[Phase.explicit],
                              max_examples=2)
    previous = settings.get_profile("default")
    settings.load_profile("user-explicit-only")
    try:
        again = run(path)["robustness/valid_predictions[schema]"].evidence
    finally:
        settings.register_profile("mlcheck-test-restore", previous)
        settings.load_profile("mlcheck-test-restore")
    assert again == expected
