"""Fairness checks against fairlearn and published figures, on real and synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn import metrics as flm

from mlcheck.engine import evaluate
from mlcheck.errors import PolicyError
from mlcheck.stats import CELLS_METHOD, ROWS_METHOD

from .conftest import EXAMPLES, REPO, binary_frame, eval_policy, fitted_logistic

COMPAS = REPO / "tests" / "data" / "compas.csv.gz"
ADULT_MODEL = EXAMPLES / "adult" / "candidate.skops"
ADULT_EVAL = EXAMPLES / "adult" / "data" / "adult-test.csv.gz"
DISPARITIES = {
    "demographic_parity_difference": flm.demographic_parity_difference,
    "demographic_parity_ratio": flm.demographic_parity_ratio,
    "equalized_odds_difference": flm.equalized_odds_difference,
    "equalized_odds_ratio": flm.equalized_odds_ratio,
}
RATE_DISPARITIES = {
    "equal_opportunity": flm.true_positive_rate,
    "false_positive_rate": flm.false_positive_rate,
    "false_negative_rate": flm.false_negative_rate,
}


def by_id(result):
    return {c.id: c for c in result.checks}


@pytest.fixture(scope="module")
def adult():
    """The bundled candidate's predictions on the Adult test split, computed directly."""
    import skops.io as sio

    frame = pd.read_csv(ADULT_EVAL)
    model = sio.load(ADULT_MODEL, trusted=sio.get_untrusted_types(file=ADULT_MODEL))
    return frame, frame["income"] == ">50K", model.predict(frame.drop(columns=["income"])) \
        == ">50K"


@pytest.fixture(scope="module")
def adult_result(tmp_path_factory):
    rules = [f"    - {{metric: {name}, max: 1}}" for name in DISPARITIES if "difference" in name]
    rules += [f"    - {{metric: {name}, min: 0}}" for name in DISPARITIES if "ratio" in name]
    rules += [f"    - {{metric: {name}_{kind}, {'max: 1' if kind == 'difference' else 'min: 0'}}}"
              for name in RATE_DISPARITIES for kind in ("difference", "ratio")]
    policy = tmp_path_factory.mktemp("adult") / "fairness.yaml"
    policy.write_text(f"""
mlcheck: 1
name: adult-fairness
model:
  path: {ADULT_MODEL}
  task: binary_classification
  trusted_types: [numpy.dtype, sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor]
data: {{target: income, positive_label: ">50K", datasets: {{eval: {ADULT_EVAL}}}}}
statistics: {{resamples: 200}}
fairness:
  sensitive: [sex, race, [sex, race]]
  min_group_size: 5
  rules:
{chr(10).join(rules)}
""")
    return evaluate(policy)


@pytest.mark.parametrize("feature", ["sex", "race", "sex,race"])
@pytest.mark.parametrize("name", sorted(DISPARITIES))
def test_disparities_equal_fairlearn_on_adult(adult, adult_result, name, feature):
    frame, truth, predicted = adult
    sensitive = frame[feature.split(",")]
    expected = DISPARITIES[name](truth, predicted, sensitive_features=sensitive)
    check = by_id(adult_result)[f"fairness/{name}[{feature}]"]
    assert check.value == pytest.approx(expected, abs=1e-12)
    assert check.interval["low"] <= check.interval["high"]


@pytest.mark.parametrize("feature", ["sex", "race", "sex,race"])
@pytest.mark.parametrize("rate", sorted(RATE_DISPARITIES))
def test_rate_gaps_and_ratios_equal_fairlearn_metricframe(adult, adult_result, rate, feature):
    frame, truth, predicted = adult
    metric_frame = flm.MetricFrame(metrics=RATE_DISPARITIES[rate], y_true=truth,
                                   y_pred=predicted, sensitive_features=frame[feature.split(",")])
    checks = by_id(adult_result)
    assert checks[f"fairness/{rate}_difference[{feature}]"].value == pytest.approx(
        metric_frame.difference(), abs=1e-12)
    assert checks[f"fairness/{rate}_ratio[{feature}]"].value == pytest.approx(
        metric_frame.ratio(), abs=1e-12)


def test_intersection_groups_and_evidence_table(adult, adult_result):
    check = by_id(adult_result)["fairness/demographic_parity_ratio[sex,race]"]
    table = {row["group"]: row for row in check.evidence["groups"]}
    assert len(table) == 10 and "Female×Black" in table
    frame, truth, predicted = adult
    rows = (frame["sex"] == "Female") & (frame["race"] == "Black")
    assert table["Female×Black"]["n"] == int(rows.sum())
    assert table["Female×Black"]["selection_rate"] == pytest.approx(predicted[rows].mean())
    assert table["Female×Black"]["true_positive_rate"] == pytest.approx(
        predicted[rows & truth].mean())
    low, high = table["Female×Black"]["selection_rate_interval"]
    assert low <= table["Female×Black"]["selection_rate"] <= high
    assert " vs " in check.evidence["set_by"]


def compas_policy(workspace, rules: str, min_group_size: int = 10) -> str:
    return workspace.policy(f"""
        mlcheck: 1
        name: compas-vendor-audit
        model: {{task: binary_classification, scores: decile_score, threshold: 5}}
        data: {{target: two_year_recid, datasets: {{eval: "{COMPAS}"}}}}
        statistics: {{resamples: 200}}
        fairness:
          sensitive: [race]
          min_group_size: {min_group_size}
          rules:
        {rules}
        """)


def test_vendor_scores_reproduce_propublica_false_positive_rates(workspace):
    """ProPublica's published table (all 7,214 rows): FPR 44.85% African-American,
    23.45% Caucasian; decile >= 5 counts as high risk."""
    path = compas_policy(workspace, "    - {metric: false_positive_rate_difference, max: 0.1}")
    check = evaluate(path).checks[0]
    groups = {row["group"]: row for row in check.evidence["groups"]}
    assert groups["African-American"]["false_positive_rate"] == pytest.approx(0.448468, abs=1e-6)
    assert groups["Caucasian"]["false_positive_rate"] == pytest.approx(0.234543, abs=1e-6)
    assert groups["African-American"]["n"] == 3696
    assert check.verdict == "fail"
    # all six groups (shared/data/compas/GROUNDTRUTH.md): DPD 0.457118, EOD 0.576692
    path = compas_policy(workspace, "    - {metric: demographic_parity_difference, max: 1}\n"
                         "            - {metric: equalized_odds_difference, max: 1}",
                         min_group_size=1)
    checks = by_id(evaluate(path))
    assert checks["fairness/demographic_parity_difference[race]"].value == pytest.approx(
        0.457118, abs=1e-6)
    assert checks["fairness/equalized_odds_difference[race]"].value == pytest.approx(
        0.576692, abs=1e-6)


def test_small_groups_make_a_check_inconclusive(workspace):
    path = compas_policy(workspace, "    - {metric: demographic_parity_ratio, min: 0.1}",
                         min_group_size=50)
    check = evaluate(path).checks[0]
    assert check.verdict == "inconclusive" and check.blocking
    assert "Asian (32), Native American (18)" in check.message
    softened = compas_policy(workspace, "    - {metric: demographic_parity_ratio, min: 0.1, "
                             "inconclusive: warn}", min_group_size=50)
    check = evaluate(softened).checks[0]
    assert check.verdict == "inconclusive" and not check.blocking


def biased_workspace(workspace, bias: float):
    """Two groups with equal base rates; group b's positives are missed `bias` more often."""
    rng = np.random.default_rng(11)
    n = 4000
    group = np.where(rng.random(n) < 0.5, "a", "b")
    truth = rng.random(n) < 0.4
    hit = rng.random(n) < np.where(group == "b", 0.8 - bias, 0.8)
    false_alarm = rng.random(n) < 0.1
    predicted = np.where(truth, hit, false_alarm)
    workspace.frame("eval.csv", pd.DataFrame({"group": group, "y": truth.astype(int),
                                              "decision": predicted.astype(int)}))
    return workspace.policy("""
        mlcheck: 1
        name: injected
        model: {task: binary_classification, predictions: decision}
        data: {target: y, datasets: {eval: eval.csv}}
        fairness:
          sensitive: [group]
          rules:
            - {metric: equal_opportunity_difference, max: 0.1, gate_on: upper_bound}
            - {metric: recall, min: 0.7}
        """)


def test_an_injected_bias_is_caught_and_its_absence_passes(workspace):
    biased = by_id(evaluate(biased_workspace(workspace, bias=0.25)))
    gap = biased["fairness/equal_opportunity_difference[group]"]
    assert gap.verdict == "fail"
    assert gap.value == pytest.approx(0.25, abs=0.04)
    assert gap.evidence["set_by"] == "a vs b"
    assert biased["fairness/recall[group]"].verdict == "fail"
    fair = by_id(evaluate(biased_workspace(workspace, bias=0.0)))
    assert fair["fairness/equal_opportunity_difference[group]"].verdict == "pass"
    assert fair["fairness/recall[group]"].verdict == "pass"


def test_floors_gaps_and_reference_ratios(workspace):
    frame = binary_frame(rows=3000)
    workspace.frame("eval.csv", frame)
    model = fitted_logistic(frame)
    workspace.skops("model.skops", model)
    path = workspace.policy("""
        mlcheck: 1
        name: forms
        model: {path: model.skops, task: binary_classification, features: [x1, x2]}
        data: {target: y, datasets: {eval: eval.csv}}
        fairness:
          sensitive: [group]
          rules:
            - {metric: accuracy, min: 0.5}
            - {metric: roc_auc, max_gap: 0.2}
            - {metric: selection_rate, reference: b, min: 0.8, max: 1.25}
        """)
    checks = by_id(evaluate(path))
    predicted = model.predict(frame[["x1", "x2"]])
    scores = model.predict_proba(frame[["x1", "x2"]])[:, 1]
    from sklearn.metrics import accuracy_score, roc_auc_score

    per_group = {g: frame["group"] == g for g in "ab"}
    accuracy = {g: accuracy_score(frame["y"][r], predicted[r]) for g, r in per_group.items()}
    auc = {g: roc_auc_score(frame["y"][r], scores[r]) for g, r in per_group.items()}
    selection = {g: predicted[r].mean() for g, r in per_group.items()}
    assert checks["fairness/accuracy[group]"].value == pytest.approx(min(accuracy.values()))
    assert checks["fairness/roc_auc[group]"].value == pytest.approx(abs(auc["a"] - auc["b"]))
    assert checks["fairness/selection_rate[group]"].value == pytest.approx(
        selection["a"] / selection["b"])


def test_regression_group_gap_of_mae(workspace):
    rng = np.random.default_rng(5)
    group = np.where(rng.random(1000) < 0.5, "north", "south")
    truth = rng.normal(50, 10, 1000)
    predicted = truth + rng.normal(0, np.where(group == "south", 4.0, 1.0))
    frame = pd.DataFrame({"region": group, "price": truth, "estimate": predicted})
    path = eval_policy(workspace, frame, "task: regression, predictions: estimate", "price",
                       ["{metric: mae, max_gap: 1.0}"], "fairness", "sensitive: [region]")
    check = evaluate(path).checks[0]
    error = np.abs(predicted - truth)
    expected = error[group == "south"].mean() - error[group == "north"].mean()
    assert check.value == pytest.approx(expected)
    assert check.verdict == "fail"


@pytest.mark.parametrize(("rule", "message"), [
    ("{metric: demographic_parity_ratio, max_gap: 0.1}", "is a disparity already"),
    ("{metric: recall, max_gap: 0.1, min: 0.5}", "`max_gap` stands alone"),
    ("{metric: recall}", "a rule needs `min`, `max` or `max_gap`"),
])
def test_fairness_rule_shape_errors(workspace, rule, message):
    path = compas_policy(workspace, f"    - {rule}")
    with pytest.raises(PolicyError, match=message):
        evaluate(path)


def test_rate_disparities_need_a_binary_task(workspace):
    workspace.frame("eval.csv", pd.DataFrame({"g": ["a", "b"], "y": [1.0, 2.0]}))
    path = workspace.policy("""
        mlcheck: 1
        name: r
        model: {task: regression, predictions: y}
        data: {target: y, datasets: {eval: eval.csv}}
        fairness: {sensitive: [g], rules: [{metric: demographic_parity_ratio, min: 0.8}]}
        """)
    with pytest.raises(PolicyError, match="binary_classification only"):
        evaluate(path)


def write_groups(workspace, frame: pd.DataFrame, rules: str, sensitive: str = "[g]") -> str:
    workspace.frame("eval.csv", frame)
    return workspace.policy(f"""
        mlcheck: 1
        name: groups
        model: {{task: binary_classification, predictions: p, scores: s}}
        data: {{target: y, datasets: {{eval: eval.csv}}}}
        statistics: {{resamples: 200}}
        fairness:
          sensitive: {sensitive}
          min_group_size: 1
          rules:
        {rules}
        """.replace("predictions: p, scores: s", "predictions: p"))


def test_two_sensitive_columns_with_the_same_values_get_their_own_numbers(workspace):
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame({"is_female": rng.integers(0, 2, n), "is_minority": rng.integers(0, 2, n),
                          "y": rng.integers(0, 2, n)})
    frame["p"] = ((rng.random(n) < 0.3) | (frame["is_minority"] == 1)).astype(int)
    path = write_groups(workspace, frame, "    - {metric: demographic_parity_difference, max: 1}",
                        sensitive="[is_female, is_minority]")
    checks = by_id(evaluate(path))
    for column in ("is_female", "is_minority"):
        expected = flm.demographic_parity_difference(frame["y"], frame["p"],
                                                     sensitive_features=frame[column])
        assert checks[f"fairness/demographic_parity_difference[{column}]"].value == \
            pytest.approx(expected)


def test_a_group_without_positives_is_never_dropped_silently(workspace):
    frame = pd.DataFrame({"g": ["a"] * 50 + ["b"] * 50 + ["c"] * 50,
                          "y": [1, 0] * 50 + [0] * 50, "p": [1, 0, 0, 1] * 25 + [0] * 50})
    path = write_groups(workspace, frame, "    - {metric: equal_opportunity_difference, max: 0.5}")
    check = evaluate(path).checks[0]
    assert check.verdict == "inconclusive"
    assert "true_positive_rate is undefined for c" in check.message


def test_set_by_names_the_groups_behind_the_value(workspace):
    rng = np.random.default_rng(8)
    n = 3000
    g = rng.choice(["a", "b", "c"], n)
    y = rng.random(n) < 0.5
    p = np.where(y, rng.random(n) < 0.8, rng.random(n) < np.where(g == "c", 0.4, 0.1))
    frame = pd.DataFrame({"g": g, "y": y.astype(int), "p": p.astype(int)})
    path = write_groups(workspace, frame, "    - {metric: equalized_odds_ratio, min: 0.9}\n"
                        "            - {metric: false_positive_rate, min: 0.0, max: 0.3}")
    checks = by_id(evaluate(path))
    ratio = checks["fairness/equalized_odds_ratio[g]"]
    assert ratio.value == pytest.approx(flm.equalized_odds_ratio(y, p, sensitive_features=g))
    assert ratio.evidence["set_by"].startswith("c vs ")  # the FPR pair sets the ratio
    both = checks["fairness/false_positive_rate[g]"]
    assert both.verdict == "fail" and both.evidence["set_by"] == "c"
    assert "highest false_positive_rate" in both.message


def test_single_group_and_zero_reference_are_clear_errors(workspace):
    frame = pd.DataFrame({"g": ["a"] * 40, "h": ["x", "ref"] * 20, "y": [1, 0] * 20,
                          "p": [1, 0] * 20})
    frame.loc[frame["h"] == "ref", "p"] = 0
    path = write_groups(workspace, frame,
                        "    - {metric: selection_rate, reference: ref, min: 0.8}",
                        sensitive="[g, h]")
    checks = by_id(evaluate(path))
    assert "has a single group (a)" in checks["fairness/selection_rate[g]"].message
    assert "reference group ref has selection_rate 0" in checks[
        "fairness/selection_rate[h]"].message
    assert {c.verdict for c in checks.values()} == {"error"}


def test_scores_only_black_box_supports_per_group_score_metrics(workspace):
    frame = binary_frame(rows=1000).assign(s=lambda f: 1 / (1 + np.exp(-f["x1"])))
    path = eval_policy(workspace, frame, "task: binary_classification, scores: s", "y",
                       ["{metric: roc_auc, max_gap: 0.5}"], "fairness", "sensitive: [group]")
    check = evaluate(path).checks[0]
    assert check.verdict == "pass", check.message


def test_interval_options_without_resamples_are_load_errors(workspace):
    path = compas_policy(workspace, "    - {metric: demographic_parity_ratio, min: 0.1, "
                         "gate_on: lower_bound}")
    path.write_text(path.read_text().replace("resamples: 200", "resamples: 0"))
    with pytest.raises(PolicyError, match=r"gates on an interval, but `statistics\.resamples`"):
        evaluate(path)


def test_group_intervals_record_their_method_and_share_the_draws(workspace):
    frame = binary_frame(rows=3000)
    workspace.frame("eval.csv", frame)
    workspace.skops("model.skops", fitted_logistic(frame))
    path = workspace.policy("""
        mlcheck: 1
        name: methods
        model: {path: model.skops, task: binary_classification, features: [x1, x2]}
        data: {target: y, datasets: {eval: eval.csv}}
        statistics: {resamples: 300}
        fairness:
          sensitive: [group]
          rules:
            - {metric: recall, min: 0.5}
            - {metric: true_positive_rate, min: 0.5}
            - {metric: equalized_odds_difference, max: 0.5}
            - {metric: roc_auc, max_gap: 0.2}
        """)
    checks = by_id(evaluate(path))
    recall, tpr = checks["fairness/recall[group]"], checks["fairness/true_positive_rate[group]"]
    assert recall.interval["method"] == CELLS_METHOD
    assert checks["fairness/equalized_odds_difference[group]"].interval["method"] == \
        CELLS_METHOD
    assert checks["fairness/roc_auc[group]"].interval["method"] == ROWS_METHOD
    # recall (a label metric per group) and TPR (a group rate): the same cells, the same draws
    assert recall.value == pytest.approx(tpr.value)
    assert (recall.interval["low"], recall.interval["high"]) == pytest.approx(
        (tpr.interval["low"], tpr.interval["high"]), rel=1e-12)
