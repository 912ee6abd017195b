"""Performance checks on real models: values match scikit-learn, slices, baseline, tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlcheck import stats
from mlcheck.checks import groups
from mlcheck.checks.performance import resampled_confusion
from mlcheck.engine import Evaluation, evaluate
from mlcheck.errors import InputError, PolicyError
from mlcheck.stats import CELLS_METHOD, ROWS_METHOD

from .conftest import (
    BINARY_POLICY,
    EXAMPLE_POLICY,
    binary_frame,
    eval_policy,
    fitted_logistic,
    fitted_regression,
    multiclass_frame,
    regression_frame,
)


def by_id(result):
    return {c.id: c for c in result.checks}


@pytest.fixture
def example_result(example_evaluation):
    return example_evaluation.record()


def test_example_values_match_scikit_learn(example_result):
    import skops.io as sio

    eval_frame = pd.read_csv(EXAMPLE_POLICY.parent / "../examples/adult/data/adult-test.csv.gz")
    path = EXAMPLE_POLICY.parent / "../examples/adult/candidate.skops"
    model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    features = eval_frame.drop(columns=["income"])
    truth = eval_frame["income"] == ">50K"
    predicted = model.predict(features) == ">50K"
    scores = model.predict_proba(features)[:, 1]
    checks = by_id(example_result)
    assert checks["performance/roc_auc"].value == pytest.approx(skm.roc_auc_score(truth, scores))
    assert checks["performance/accuracy"].value == pytest.approx(
        skm.accuracy_score(truth, predicted))
    women = (eval_frame["sex"] == "Female").to_numpy()
    assert checks["performance/recall[sex=Female]"].value == pytest.approx(
        skm.recall_score(truth[women], predicted[women]))
    assert checks["performance/recall[sex=Female]"].n == int(women.sum())
    assert checks["performance/recall[sex=Female]"].evidence["positives"] == int(
        truth[women].sum())


def test_example_blocks_on_the_intended_rules_only(example_result):
    blocking = [c.id for c in example_result.checks if c.blocking]
    assert blocking == ["performance/recall[sex=Female]",
                        "explainability/not_in_top[marital_status]"]
    checks = by_id(example_result)
    assert checks["performance/recall[sex=Female]"].bounds == {"min": 0.62}
    assert checks["performance/recall[sex=Male]"].verdict == "pass"
    assert checks["performance/accuracy/vs_baseline"].verdict == "pass"
    assert checks["performance/roc_auc/vs_baseline"].evidence["baseline"] == pytest.approx(
        0.9055, abs=0.002)
    # sliced rule: one check per value, ids carry the slice
    assert {i for i in checks if i.startswith("performance/precision[")} == {
        f"performance/precision[race={r}]" for r in
        ("Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other", "White")}
    assert example_result.verdict == "blocked"


def test_predictions_are_computed_once_per_model_and_dataset(example_evaluation):
    assert example_evaluation.context.model_calls == {
        ("candidate", "eval", "predict"): 1, ("candidate", "eval", "predict_proba"): 1,
        ("baseline", "eval", "predict"): 1, ("baseline", "eval", "predict_proba"): 1,
        ("candidate", "reference", "predict_proba"): 1,  # prediction drift
    }


def write_binary(workspace, rules: str, model=True, extra_model: str = "", frame=None):
    frame = binary_frame() if frame is None else frame
    workspace.frame("eval.csv", frame)
    if model:
        workspace.skops("model.skops", fitted_logistic(frame))
    head = BINARY_POLICY.split("performance:")[0].replace("features: [x1, x2]",
                                                          "features: [x1, x2]" + extra_model)
    return workspace.policy(head + "performance:\n  rules:\n" + rules)


def test_baseline_max_drop_and_min_gain(workspace):
    frame = binary_frame()
    workspace.skops("weak.skops", fitted_logistic(frame.assign(x1=0.0, x2=frame["x2"])))
    path = write_binary(workspace, """
    - {metric: roc_auc, baseline: {max_drop: 0.0}}
    - {id: auc_gain, metric: roc_auc, baseline: {min_gain: 0.5}}
    - {metric: accuracy, baseline: {max_drop: 0.5}, by: [group]}
""", extra_model="\n  baseline: weak.skops")
    checks = by_id(evaluate(path))
    assert "performance/accuracy/vs_baseline[group=a]" in checks  # slice last, as in pytest
    first, second = checks["performance/roc_auc/vs_baseline"], checks[
        "performance/auc_gain/vs_baseline"]
    assert first.verdict == "pass"
    assert first.value == pytest.approx(first.evidence["candidate"] - first.evidence["baseline"])
    assert first.bounds == {"min": -0.0}
    assert second.verdict == "fail"  # better, but not by 0.5
    assert second.bounds == {"min": 0.5}


def test_lower_is_better_metrics_compare_the_right_way(workspace):
    frame = binary_frame()
    workspace.skops("weak.skops", fitted_logistic(frame.assign(x1=0.0)))
    path = write_binary(workspace, "    - {metric: log_loss, baseline: {min_gain: 0.01}}\n",
                        extra_model="\n  baseline: weak.skops")
    check = by_id(evaluate(path))["performance/log_loss/vs_baseline"]
    assert check.evidence["candidate"] < check.evidence["baseline"]
    assert check.value > 0.01 and check.verdict == "pass"


def test_black_box_scores_with_threshold(workspace):
    frame = binary_frame()
    frame["vendor_score"] = 1 / (1 + np.exp(-(frame["x1"] + 0.5 * frame["x2"])))
    path = eval_policy(workspace, frame, "task: binary_classification, scores: vendor_score, "
                       "threshold: 0.6", "y", ["{metric: roc_auc, min: 0.8}",
                                               "{metric: recall, min: 0.0}"])
    checks = by_id(evaluate(path))
    assert checks["performance/roc_auc"].value == pytest.approx(
        skm.roc_auc_score(frame["y"], frame["vendor_score"]))
    assert checks["performance/recall"].value == pytest.approx(
        skm.recall_score(frame["y"], frame["vendor_score"] >= 0.6))


def test_black_box_predictions_without_scores(workspace):
    frame = binary_frame().assign(decision=lambda f: (f["x1"] > 0).astype(int))
    workspace.frame("eval.csv", frame)
    path = workspace.policy("""
        mlcheck: 1
        name: vendor
        model: {task: binary_classification, predictions: decision}
        data: {target: y, datasets: {eval: eval.csv}}
        performance:
          rules:
            - {metric: accuracy, min: 0.5}
        """)
    checks = by_id(evaluate(path))
    assert checks["performance/accuracy"].value == pytest.approx(
        skm.accuracy_score(frame["y"], frame["decision"]))
    scored = workspace.policy(path.read_text() + "    - {metric: roc_auc, min: 0.5}\n")
    with pytest.raises(PolicyError, match=r"policy.yaml:8:8: performance.rules\[1\].metric: "
                       r"metric 'roc_auc' needs scores, but the candidate black box"):
        evaluate(scored)
    unthresholded = workspace.policy(path.read_text().replace("predictions: decision",
                                                              "scores: x1"))
    with pytest.raises(PolicyError, match="add a `predictions` column or a `threshold`"):
        evaluate(unthresholded)


def test_nan_scores_are_an_error_not_a_pass(workspace):
    frame = binary_frame()
    frame["vendor_score"] = frame["x1"]
    frame.loc[[3, 7], "vendor_score"] = np.nan
    path = eval_policy(workspace, frame, "task: binary_classification, scores: vendor_score",
                       "y", ["{metric: roc_auc, min: 0.0}"])
    result = evaluate(path)
    check = result.checks[0]
    assert check.verdict == "error"
    assert "2 NaN or infinite scores" in check.message
    assert result.verdict == "blocked"


def test_a_model_that_raises_is_an_error_for_each_check_and_called_once(workspace):
    frame = binary_frame()
    workspace.frame("eval.csv", frame)
    workspace.write("broken.py", """
        class Broken:
            classes_ = [0, 1]
            calls = 0
            def predict(self, X):
                Broken.calls += 1
                raise RuntimeError("feature store unavailable")
            predict_proba = predict

        def build():
            return Broken()
        """)
    path = workspace.policy(BINARY_POLICY.replace("path: model.skops", "factory: broken:build")
                            .replace("severity", "severity"))
    result = evaluate(path)
    assert {c.verdict for c in result.checks} == {"error"}
    assert all("raised RuntimeError" in c.message and "feature store unavailable" in c.message
               for c in result.checks)
    import broken

    assert broken.Broken.calls == 2  # predict_proba once, predict once, whatever the rule count


def test_error_blocks_even_when_severity_is_warn(workspace):
    path = write_binary(workspace, "    - {metric: accuracy, min: 0.5, by: [nope], "
                        "severity: warn}\n")
    result = evaluate(path)
    check = result.checks[0]
    assert check.id == "performance/accuracy[nope]"
    assert check.verdict == "error"
    assert "column 'nope' not found in dataset 'eval'" in check.message
    assert result.verdict == "blocked"


def test_failing_warn_rule_does_not_block(workspace):
    path = write_binary(workspace, "    - {metric: accuracy, min: 0.99, severity: warn}\n")
    result = evaluate(path)
    assert result.checks[0].verdict == "warn"
    assert result.verdict == "passed"


def test_slice_where_metric_is_undefined_is_an_error(workspace):
    frame = binary_frame()
    frame.loc[frame["group"] == "a", "y"] = 1  # group a has positives only
    path = write_binary(workspace, "    - {metric: roc_auc, min: 0.5, by: [group]}\n",
                        frame=frame)
    checks = by_id(evaluate(path))
    assert checks["performance/roc_auc[group=a]"].verdict == "error"
    assert "undefined on these 188 rows (188 actual positives, 0 negatives)" in checks[
        "performance/roc_auc[group=a]"].message
    assert checks["performance/roc_auc[group=b]"].verdict == "pass"


def test_multiple_slice_columns(workspace):
    frame = binary_frame().assign(region=lambda f: np.where(f["x2"] > 0, "north", "south"))
    path = write_binary(workspace, "    - {metric: accuracy, min: 0.0, by: [group, region]}\n",
                        frame=frame)
    ids = set(by_id(evaluate(path)))
    assert ids == {f"performance/accuracy[group={g},region={r}]"
                   for g in "ab" for r in ("north", "south")}


def test_positive_label_must_occur_in_the_target(workspace):
    path = write_binary(workspace, "    - {metric: accuracy, min: 0.5}\n")
    text = path.read_text().replace("target: y", "target: y\n  positive_label: maybe")
    with pytest.raises(InputError, match=r"policy.yaml:9:3: data.positive_label: "
                       r"positive_label 'maybe' does not occur in target 'y'"):
        evaluate(workspace.policy(text))


def test_target_problems_stop_the_run(workspace):
    frame = binary_frame().astype({"y": str}).replace({"y": {"0": "no", "1": "yes"}})
    path = write_binary(workspace, "    - {metric: accuracy, min: 0.5}\n", frame=frame,
                        model=False)
    workspace.skops("model.skops", fitted_logistic(frame))
    with pytest.raises(InputError, match=r"labels 'no', 'yes': set `data.positive_label`"):
        evaluate(path)
    frame.loc[5, "y"] = None
    workspace.frame("eval.csv", frame)
    with pytest.raises(InputError, match="target 'y' has 1 missing values"):
        evaluate(path)


def test_multiclass_policy(workspace):
    from sklearn.linear_model import LogisticRegression

    frame = multiclass_frame()
    model = LogisticRegression().fit(frame[["x1", "x2"]], frame["label"])
    workspace.skops("model.skops", model)
    path = eval_policy(workspace, frame, "path: model.skops, task: multiclass_classification",
                       "label", ["{metric: accuracy, min: 0.5}", "{metric: f1_macro, min: 0.5}",
                                 "{metric: roc_auc_ovr, min: 0.7}",
                                 "{metric: log_loss, max: 1.5}"])
    checks = by_id(evaluate(path))
    features = frame[["x1", "x2"]]
    assert checks["performance/f1_macro"].value == pytest.approx(
        skm.f1_score(frame["label"], model.predict(features), average="macro"))
    assert checks["performance/roc_auc_ovr"].value == pytest.approx(
        skm.roc_auc_score(frame["label"], model.predict_proba(features), multi_class="ovr"))
    assert {c.verdict for c in checks.values()} == {"pass"}


def test_regression_policy(workspace):
    frame = regression_frame()
    model = fitted_regression(frame)
    workspace.skops("model.skops", model)
    path = eval_policy(workspace, frame, "path: model.skops, task: regression", "price",
                       ["{metric: mae, max: 0.5}", "{metric: rmse, max: 0.1}",
                        "{metric: r2, min: 0.9}", "{metric: mape, max: 0.2}"])
    checks = by_id(evaluate(path))
    predicted = model.predict(frame[["x1", "x2"]])
    assert checks["performance/mae"].value == pytest.approx(
        skm.mean_absolute_error(frame["price"], predicted))
    assert checks["performance/rmse"].verdict == "fail"  # noise has sd 0.5
    assert checks["performance/r2"].verdict == "pass"


def test_threshold_on_a_model_replaces_its_predict(workspace):
    frame = binary_frame()
    path = write_binary(workspace, "    - {metric: recall, min: 0.0}\n",
                        extra_model="\n  threshold: 0.9", frame=frame)
    model = fitted_logistic(frame)
    expected = skm.recall_score(frame["y"], model.predict_proba(frame[["x1", "x2"]])[:, 1] >= 0.9)
    assert evaluate(path).checks[0].value == pytest.approx(expected)


def test_multiclass_black_box_with_a_score_column_per_class(workspace):
    frame = multiclass_frame()
    rng = np.random.default_rng(1)
    raw = rng.random((len(frame), 3)) + pd.get_dummies(frame["label"]).to_numpy() * 2
    proba = raw / raw.sum(axis=1, keepdims=True)  # columns: high, low, mid (sorted labels)
    frame = frame.assign(p_high=proba[:, 0], p_low=proba[:, 1], p_mid=proba[:, 2],
                         vendor=np.array(["high", "low", "mid"])[proba.argmax(axis=1)])
    path = eval_policy(workspace, frame, "task: multiclass_classification, predictions: vendor, "
                       "scores: {mid: p_mid, high: p_high, low: p_low}", "label",
                       ["{metric: accuracy, min: 0.5}", "{metric: roc_auc_ovr, min: 0.5}"])
    checks = by_id(evaluate(path))
    assert checks["performance/accuracy"].value == pytest.approx(
        skm.accuracy_score(frame["label"], frame["vendor"]))
    assert checks["performance/roc_auc_ovr"].value == pytest.approx(
        skm.roc_auc_score(frame["label"], proba, multi_class="ovr"))


def test_integer_classes_are_ordered_as_scikit_learn_orders_them(workspace):
    frame = multiclass_frame().replace({"label": {"low": 1, "mid": 2, "high": 10}})
    frame["label"] = frame["label"].astype(int)
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(frame[["x1", "x2"]], frame["label"])
    proba = model.predict_proba(frame[["x1", "x2"]])  # columns 1, 2, 10
    frame = frame.assign(p1=proba[:, 0], p2=proba[:, 1], p10=proba[:, 2])
    path = eval_policy(workspace, frame, "task: multiclass_classification, "
                       "scores: {1: p1, 2: p2, 10: p10}", "label",
                       ["{metric: log_loss, max: 5}", "{metric: roc_auc_ovr, min: 0.5}"])
    checks = by_id(evaluate(path))
    assert checks["performance/log_loss"].value == pytest.approx(
        skm.log_loss(frame["label"], proba))
    assert checks["performance/roc_auc_ovr"].value == pytest.approx(
        skm.roc_auc_score(frame["label"], proba, multi_class="ovr"))


def test_predicted_labels_must_be_labels_of_the_target(workspace):
    frame = binary_frame().assign(decision=lambda f: np.where(f["x1"] > 0, "yes", "no"))
    path = eval_policy(workspace, frame, "task: binary_classification, predictions: decision",
                       "y", ["{metric: accuracy, min: 0.0}"])
    check = evaluate(path).checks[0]
    assert check.verdict == "error"
    assert "predicts labels that are not labels of target 'y': no, yes" in check.message


BAD_MODELS = """
import numpy as np

class Model:
    classes_ = np.array([0, 1])
    def __init__(self, proba):
        self.proba = proba
    def predict(self, X):
        return (self.proba(X)[:, -1] > 0.5).astype(int)
    def predict_proba(self, X):
        return self.proba(X)

def short():
    return Model(lambda X: np.full((len(X) - 5, 2), 0.5))
def three_columns():
    return Model(lambda X: np.full((len(X), 3), 1 / 3))
def out_of_range():
    return Model(lambda X: np.tile([2.0, -1.0], (len(X), 1)))
def one_dimensional():
    return Model(lambda X: np.full(len(X), 0.5))
"""


@pytest.mark.parametrize(("factory", "message"), [
    ("short", "returned (595,) rows for the 600 rows"),
    ("three_columns", "returned shape (600, 3); expected (600, 2)"),
    ("out_of_range", "returned 1200 values outside [0, 1]"),
    ("one_dimensional", "returned shape (600,); expected (600, 2)"),
])
def test_model_outputs_of_the_wrong_shape_are_errors(workspace, factory, message):
    workspace.frame("eval.csv", binary_frame())
    workspace.write("bad_models.py", BAD_MODELS)
    path = workspace.policy(BINARY_POLICY.replace("path: model.skops",
                                                  f"factory: bad_models:{factory}"))
    result = evaluate(path)
    roc = by_id(result)["performance/roc_auc"]
    assert roc.verdict == "error"
    assert message in roc.message
    assert result.verdict == "blocked"


def test_models_are_called_in_batches_of_bounded_rows(workspace, monkeypatch):
    from mlcheck import context as context_module

    monkeypatch.setattr(context_module, "PREDICT_ROWS", 250)  # 600 rows: 250, 250, 100
    frame = binary_frame()
    workspace.frame("eval.csv", frame)
    workspace.write("recording.py", """
        from sklearn.linear_model import LogisticRegression

        class Recording(LogisticRegression):
            seen = []
            def predict(self, X):
                self.seen.append(len(X))
                return super().predict(X)
            def predict_proba(self, X):
                self.seen.append(len(X))
                return super().predict_proba(X)

        def build():
            from pathlib import Path

            import pandas as pd
            frame = pd.read_csv(Path(__file__).parent / "eval.csv")
            return Recording().fit(frame[["x1", "x2"]], frame["y"])
        """)
    path = workspace.policy(BINARY_POLICY.replace("path: model.skops",
                                                  "factory: recording:build"))
    evaluation = Evaluation(path)
    checks = {c.id: evaluation.run(c) for c in evaluation.checks}
    model = evaluation.subject.model.estimator
    assert model.seen == [250, 250, 100] * 2  # predict_proba, then predict
    features = frame[["x1", "x2"]]
    assert checks["performance/roc_auc"].value == pytest.approx(
        skm.roc_auc_score(frame["y"], fitted_logistic(frame).predict_proba(features)[:, 1]))
    assert evaluation.context.model_calls[("candidate", "eval", "predict")] == 1
    monkeypatch.setattr(context_module, "PREDICT_ROWS", 300)
    workspace.write("bad_models.py", BAD_MODELS)
    short = workspace.policy(BINARY_POLICY.replace("path: model.skops",
                                                   "factory: bad_models:short"))
    roc = by_id(evaluate(short))["performance/roc_auc"]
    assert roc.verdict == "error" and "returned (295,) rows for rows 0-299 of the 600" \
        in roc.message


def test_black_box_columns_are_not_fed_to_a_model(workspace):
    frame = binary_frame().drop(columns=["group"]).assign(old_score=lambda f: f["x1"])
    workspace.skops("model.skops", fitted_logistic(frame))  # trained on x1, x2 only
    path = eval_policy(workspace, frame, "path: model.skops, task: binary_classification, "
                       "baseline: {scores: old_score}", "y",
                       ["{metric: roc_auc, baseline: {max_drop: 0.5}}"])
    # scikit-learn would raise on the unseen column `old_score` if it were passed
    check = evaluate(path).checks[0]
    assert check.verdict == "pass", check.message
    assert check.evidence["baseline"] == pytest.approx(skm.roc_auc_score(frame["y"], frame["x1"]))


def test_probability_metrics_refuse_scores_outside_0_1(workspace):
    frame = binary_frame().assign(decile=lambda f: np.clip((f["x1"] * 2 + 5).round(), 1, 10))
    path = eval_policy(workspace, frame, "task: binary_classification, scores: decile", "y",
                       ["{metric: roc_auc, min: 0.5}", "{metric: brier_score, max: 0.3}"])
    checks = by_id(evaluate(path))
    assert checks["performance/roc_auc"].verdict == "pass"  # ranks need no probabilities
    assert checks["performance/brier_score"].verdict == "error"
    assert "reads probabilities, but the candidate scores range from 1 to 10" in checks[
        "performance/brier_score"].message


def test_factory_from_a_base_policy_is_found_beside_the_base(workspace):
    frame = binary_frame()
    workspace.frame("team/eval.csv", frame)
    workspace.write("org/org_models.py", """
        import pandas as pd
        from sklearn.linear_model import LogisticRegression

        def build():
            frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": 0.0, "y": [0, 0, 1, 1]})
            return LogisticRegression().fit(frame[["x1", "x2"]], frame["y"])
        """)
    workspace.policy("""
        model: {factory: org_models:build, task: binary_classification, features: [x1, x2]}
        """, "org/base.yaml")
    path = workspace.policy("""
        mlcheck: 1
        name: team
        extends: ../org/base.yaml
        data: {target: y, datasets: {eval: eval.csv}}
        performance: {rules: [{metric: accuracy, min: 0.5}]}
        """, "team/policy.yaml")
    result = evaluate(path)
    assert result.subject["model"]["factory"] == "../org/org_models.py:build"
    assert result.checks[0].verdict == "pass"


def test_boolean_target_with_a_0_1_model(workspace):
    frame = binary_frame()
    workspace.skops("model.skops", fitted_logistic(frame))  # classes 0, 1
    frame["y"] = frame["y"].astype(bool)
    path = write_binary(workspace, "    - {metric: accuracy, min: 0.5}\n"
                        "    - {metric: roc_auc, min: 0.5}\n", frame=frame, model=False)
    checks = evaluate(path).checks
    assert [c.verdict for c in checks] == ["pass", "pass"], [c.message for c in checks]


def test_multi_line_library_errors_become_one_line(workspace):
    workspace.frame("eval.csv", binary_frame())
    workspace.write("noisy.py", """
        class Noisy:
            classes_ = [0, 1]
            def predict(self, X):
                raise ValueError("first line\\n  second line\\n")
            predict_proba = predict

        def build():
            return Noisy()
        """)
    path = workspace.policy(BINARY_POLICY.replace("path: model.skops", "factory: noisy:build"))
    message = evaluate(path).checks[0].message
    assert "\n" not in message
    assert message.endswith("first line second line")


def test_intervals_gate_on_and_inconclusive(workspace):
    path = write_binary(workspace, """
    - {id: on_value, metric: accuracy, min: 0.5}
    - {id: on_lower, metric: accuracy, min: 0.82, gate_on: lower_bound}
    - {id: on_upper, metric: accuracy, max: 0.84, gate_on: upper_bound}
    - {id: on_interval, metric: accuracy, min: 0.5, max: 0.99, gate_on: interval}
    - {id: too_wide, metric: accuracy, min: 0.5, max_interval_width: 0.01}
    - {id: clearly_bad, metric: accuracy, min: 0.95, max_interval_width: 0.01}
    - {id: soft, metric: accuracy, min: 0.5, max_interval_width: 0.01, inconclusive: warn}
    - {id: few_rows, metric: accuracy, min: 0.5, by: [group], min_rows: 300}
""")
    result = evaluate(path)
    checks = by_id(result)
    value = checks["performance/on_value"]
    low, high = value.interval["low"], value.interval["high"]
    assert low < value.value < high and value.interval["confidence"] == 0.95
    assert value.interval["resamples"] == 1000 and value.interval["seed"] == 0
    assert checks["performance/on_lower"].verdict == ("pass" if low >= 0.82 else "fail")
    assert checks["performance/on_upper"].verdict == ("pass" if high <= 0.84 else "fail")
    assert checks["performance/on_interval"].verdict == "pass"
    assert "upper bound" in checks["performance/on_upper"].message
    too_wide = checks["performance/too_wide"]
    assert too_wide.verdict == "inconclusive" and too_wide.blocking
    assert "more than the allowed 0.01" in too_wide.message
    assert checks["performance/clearly_bad"].verdict == "fail"  # wide, but wholly below 0.95
    assert checks["performance/soft"].verdict == "inconclusive"
    assert not checks["performance/soft"].blocking
    small = checks["performance/few_rows[group=a]"]
    assert small.verdict == "inconclusive" and "fewer than min_rows 300" in small.message
    assert checks["performance/few_rows[group=b]"].verdict == "pass"
    again = by_id(evaluate(path))  # seeded: the same intervals on every run
    assert again["performance/on_value"].interval == value.interval


def test_baseline_gates_on_the_paired_interval_of_the_improvement(workspace):
    frame = binary_frame(rows=400)
    workspace.skops("close.skops", fitted_logistic(frame.assign(x2=frame["x2"] * 0.9)))
    path = write_binary(workspace, "    - {metric: roc_auc, baseline: {max_drop: 0.0}}\n"
                        "    - {id: point, metric: roc_auc, baseline: {max_drop: 0.0, "
                        "gate_on: value}}\n", extra_model="\n  baseline: close.skops",
                        frame=frame)
    checks = by_id(evaluate(path))
    paired = checks["performance/roc_auc/vs_baseline"]
    assert paired.interval["low"] <= paired.value <= paired.interval["high"]
    assert "lower bound" in paired.message
    # two nearly identical models: the point estimate may favour the candidate, but the
    # lower bound of the paired interval is below 0, so non-inferiority at 0 is not shown
    assert paired.interval["low"] < 0 and paired.verdict == "fail"
    assert checks["performance/point/vs_baseline"].verdict == (
        "pass" if paired.value >= 0 else "fail")


def test_delong_intervals_in_a_policy(workspace):
    frame = binary_frame(rows=800)
    workspace.skops("weak.skops", fitted_logistic(frame.assign(x2=0.0)))
    path = write_binary(workspace, "    - {metric: roc_auc, min: 0.7, interval: delong, "
                        "gate_on: lower_bound}\n"
                        "    - {id: vs, metric: roc_auc, baseline: {min_gain: 0.0}, "
                        "interval: delong}\n", extra_model="\n  baseline: weak.skops",
                        frame=frame)
    checks = by_id(evaluate(path))
    auc = checks["performance/roc_auc"]
    assert auc.interval["method"] == "DeLong" and auc.interval["low"] < auc.value
    vs = checks["performance/vs/vs_baseline"]
    assert vs.interval["method"] == "DeLong"
    assert vs.interval["low"] <= vs.value <= vs.interval["high"]
    bad = write_binary(workspace, "    - {metric: accuracy, min: 0.5, interval: delong}\n",
                       frame=frame)
    with pytest.raises(PolicyError, match="`interval: delong` is for roc_auc"):
        evaluate(bad)


def test_roc_auc_interval_switches_to_delong_above_the_row_threshold(workspace, monkeypatch):
    from mlcheck.checks import performance

    monkeypatch.setattr(performance, "DELONG_ROWS", 300)  # 600 rows; group a ~180, b ~420
    frame = binary_frame(rows=600)
    workspace.skops("weak.skops", fitted_logistic(frame.assign(x2=0.0)))
    path = write_binary(workspace, "    - {metric: roc_auc, min: 0.5, by: [group]}\n"
                        "    - {id: whole, metric: roc_auc, min: 0.5}\n"
                        "    - {id: vs, metric: roc_auc, baseline: {max_drop: 0.1}}\n"
                        "    - {id: forced, metric: roc_auc, min: 0.5, interval: bootstrap}\n"
                        "    - {id: small, metric: roc_auc, min: 0.5, interval: delong, "
                        "by: [group]}\n"
                        "    - {metric: accuracy, min: 0.5}\n",
                        extra_model="\n  baseline: weak.skops", frame=frame)
    checks = by_id(evaluate(path))
    method = {i: c.interval["method"] for i, c in checks.items()}
    assert method["performance/whole"] == method["performance/roc_auc[group=b]"] == "DeLong"
    assert method["performance/vs/vs_baseline"] == "DeLong"  # paired DeLong of the difference
    assert method["performance/roc_auc[group=a]"] == ROWS_METHOD  # below the threshold
    assert method["performance/forced"] == ROWS_METHOD
    assert method["performance/small[group=a]"] == "DeLong"
    assert method["performance/accuracy"] == CELLS_METHOD
    vs = checks["performance/vs/vs_baseline"]
    assert vs.interval["low"] <= vs.value <= vs.interval["high"]
    monkeypatch.setattr(performance, "DELONG_ROWS", 601)  # one row short: the bootstrap
    assert by_id(evaluate(path))["performance/whole"].interval["method"] == ROWS_METHOD


def test_interval_methods_are_recorded(workspace):
    path = write_binary(workspace, "    - {metric: accuracy, min: 0.5, by: [group]}\n"
                        "    - {metric: roc_auc, min: 0.5}\n    - {metric: log_loss, max: 1}\n")
    checks = by_id(evaluate(path))
    assert checks["performance/accuracy[group=a]"].interval["method"] == CELLS_METHOD
    assert checks["performance/roc_auc"].interval["method"] == ROWS_METHOD
    assert checks["performance/log_loss"].interval["method"] == ROWS_METHOD


def test_count_based_intervals_of_checks_and_models_come_from_one_draw(workspace):
    frame = binary_frame(rows=500)
    workspace.skops("weak.skops", fitted_logistic(frame.assign(x1=0.0)))
    path = write_binary(workspace, "    - {metric: accuracy, min: 0.5, by: [group]}\n"
                        "    - {metric: recall, baseline: {max_drop: 0.1}}\n",
                        extra_model="\n  baseline: weak.skops", frame=frame)
    evaluation = Evaluation(path)
    context = evaluation.context
    whole = resampled_confusion(context, "candidate", "eval")[:, 0]
    by_group = resampled_confusion(context, "candidate", "eval",
                                   groups(context, "eval", ("group",)).codes, 2)
    baseline = resampled_confusion(context, "baseline", "eval")[:, 0]
    assert whole.shape == (1000, 2, 2)
    assert np.array_equal(by_group.sum(axis=1), whole)  # slices add up, resample by resample
    # the same resampled rows for both models: the same actual positives and negatives
    assert np.array_equal(baseline.sum(axis=2), whole.sum(axis=2))
    assert not np.array_equal(baseline, whole)
    checks = [evaluation.run(check) for check in evaluation.checks]
    assert all(c.verdict != "error" and c.interval["method"] == CELLS_METHOD for c in checks)


def test_intervals_are_the_same_whether_draws_are_kept_or_drawn_again(workspace, monkeypatch):
    frame = binary_frame(rows=400)
    workspace.skops("weak.skops", fitted_logistic(frame.assign(x1=0.0)))
    path = write_binary(workspace, "    - {metric: accuracy, min: 0.5, by: [group]}\n"
                        "    - {metric: roc_auc, baseline: {max_drop: 0.5}, by: [group]}\n",
                        extra_model="\n  baseline: weak.skops", frame=frame)
    kept = {c.id: c.interval for c in evaluate(path).checks}
    monkeypatch.setattr(stats, "KEEP", 0)
    monkeypatch.setattr(stats, "ROW_BLOCK", 400 * 1000)  # the same blocks, none kept
    assert {c.id: c.interval for c in evaluate(path).checks} == kept


def test_a_baseline_that_raises_leaves_the_candidate_intervals_alone(workspace):
    frame = binary_frame()
    workspace.write("broken_baseline.py", """
        class Broken:
            classes_ = [0, 1]
            def predict(self, X):
                raise RuntimeError("baseline store unavailable")
            predict_proba = predict

        def build():
            return Broken()
        """)
    rules = "    - {metric: accuracy, min: 0.5, baseline: {max_drop: 0.1}}\n"
    path = write_binary(workspace, rules, frame=frame,
                        extra_model="\n  baseline: {factory: broken_baseline:build}")
    checks = by_id(evaluate(path))
    assert checks["performance/accuracy"].verdict == "pass"
    assert checks["performance/accuracy"].interval["method"] == CELLS_METHOD
    vs = checks["performance/accuracy/vs_baseline"]
    assert vs.verdict == "error" and "baseline store unavailable" in vs.message


def test_every_kind_of_missing_value_labels_a_slice_the_same_way():
    """A nullable integer column's <NA> and a timestamp's NaT name the same slice as a
    float's NaN, on pandas and on Spark (whose rows arrive with None)."""
    from mlcheck.checks import label

    assert {label(v) for v in (None, float("nan"), np.nan, pd.NA, pd.NaT)} == {"<missing>"}


def test_groups_of_many_high_cardinality_columns_stay_distinct():
    """Four columns of 60,000 values each have more combinations than an int64 holds;
    each row's group is still its own, numbered in the sorted order of the tuples."""
    from mlcheck.checks import groups

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{i}": rng.permutation(60_000) for i in range(4)})

    class Rows:  # what groups() reads of a run's context
        def frame(self, dataset):
            return frame

        def spark_frame(self, dataset):
            return None

        def weights(self, dataset):
            return None

        def memo(self, key, compute):
            return compute()

    found = groups(Rows(), "eval", ("c0", "c1", "c2", "c3"))
    order = np.lexsort([frame[c] for c in ("c3", "c2", "c1", "c0")])
    assert np.array_equal(found.codes[order], np.arange(60_000))
    assert found.keys[0] == tuple(str(v) for v in frame.iloc[order[0]])
