"""Explainability: SHAP attributions per input column, and the rules read from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlcheck.engine import Evaluation, evaluate
from mlcheck.errors import PolicyError

shap = pytest.importorskip("shap")

PIPELINE_INPUTS = ["income", "debt", "region", "sex", "noise"]
PLAIN_INPUTS = ["income", "debt", "male", "noise"]


def credit_frame(rows: int = 1200, seed: int = 0, sex_effect: float = 0.0) -> pd.DataFrame:
    """Default risk falls with income, rises with debt and in the south; `sex_effect`
    makes a model trained on it rely on sex (text in `sex`, 0/1 in `male`)."""
    rng = np.random.default_rng(seed)
    income, debt = rng.normal(50, 15, rows), rng.normal(20, 8, rows)
    region = rng.choice(["north", "south", "east"], rows)
    sex = rng.choice(["F", "M"], rows)
    logit = -0.08 * (income - 50) + 0.15 * (debt - 20) + 0.8 * (region == "south") \
        + sex_effect * (sex == "M")
    default = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"income": income, "debt": debt, "region": region, "sex": sex,
                         "male": (sex == "M").astype(int), "noise": rng.normal(size=rows),
                         "default": default})


def encoder(scale: bool) -> ColumnTransformer:
    numeric = StandardScaler() if scale else "passthrough"
    return ColumnTransformer([("text", OneHotEncoder(), ["region", "sex"]),
                              ("numbers", numeric, ["income", "debt", "noise"])])


FAMILIES = {  # name: (model, inputs, explainer auto picks)
    "boosting pipeline": (lambda: Pipeline([("prepare", encoder(False)), (
        "model", HistGradientBoostingClassifier(max_iter=40, random_state=0))]),
        PIPELINE_INPUTS, "tree"),
    "logistic pipeline": (lambda: Pipeline([("prepare", encoder(True)),
                                            ("model", LogisticRegression())]),
                          PIPELINE_INPUTS, "linear"),
    "forest": (lambda: RandomForestClassifier(40, max_depth=6, random_state=0),
               PLAIN_INPUTS, "tree"),
    "logistic": (lambda: LogisticRegression(max_iter=1000), PLAIN_INPUTS, "linear"),
    "naive Bayes pipeline": (lambda: Pipeline([("prepare", encoder(True)),
                                               ("model", GaussianNB())]),
                             PIPELINE_INPUTS, "permutation"),
}


def write_case(workspace, family: str, sex_effect: float, rules: list[str],
               settings: str = "rows: 200") -> object:
    make, inputs, _ = FAMILIES[family]
    frame = credit_frame(sex_effect=sex_effect)
    model = make().fit(frame[inputs], frame["default"])
    workspace.pickle("model.pkl", model)
    workspace.frame("eval.csv", credit_frame(rows=600, seed=1, sex_effect=sex_effect))
    return workspace.policy(
        "mlcheck: 1\nname: explain\n"
        f"model: {{path: model.pkl, task: binary_classification, trust: true, "
        f"features: [{', '.join(inputs)}]}}\n"
        "data: {target: default, datasets: {eval: eval.csv}}\n"
        "statistics: {resamples: 200}\n"
        f"explainability:\n  {settings}\n  rules:\n"
        + "".join(f"    - {rule}\n" for rule in rules))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_rule_on_tree_linear_pipeline_and_agnostic_models(workspace, family):
    _, inputs, explainer = FAMILIES[family]
    protected = "sex" if "sex" in inputs else "male"
    rules = [f"{{test: not_in_top, k: 2, features: [{protected}]}}",
             "{test: required_in_top, k: 3, features: [income, debt]}",
             "{test: max_attribution_share, max: 0.9}",
             "{id: cap, test: max_attribution_share, max: 0.2}",
             "{test: direction, features: [income], direction: decreasing}",
             "{id: wrong_way, test: direction, features: [debt], direction: decreasing}",
             "{test: stability, min: 0.5, against: halves}"]
    settings = "rows: 40" if explainer == "permutation" else "rows: 200"
    verdicts = {}
    for sex_effect in (0.0, 4.0):
        path = write_case(workspace, family, sex_effect, rules, settings)
        result = evaluate(path)
        verdicts[sex_effect] = {c.id: c.verdict for c in result.checks}
        about = result.checks[0].evidence["explainer"]
        assert about["explainer"] == explainer
        assert about["additivity_max_error"] < 1e-6
        assert {row["feature"] for row in result.checks[0].evidence["importance"]} \
            == set(inputs)
    fair, reliant = verdicts[0.0], verdicts[4.0]
    assert fair[f"explainability/not_in_top[{protected}]"] == "pass"
    assert reliant[f"explainability/not_in_top[{protected}]"] == "fail"  # the reliance
    for verdict in (fair, reliant):
        assert verdict["explainability/required_in_top[income]"] == "pass"
        assert verdict["explainability/max_attribution_share"] == "pass"
        assert verdict["explainability/cap"] == "fail"
        assert verdict["explainability/direction[income]"] == "pass"
        assert verdict["explainability/wrong_way[debt]"] == "fail"
        assert verdict["explainability/stability[halves]"] == "pass"


def test_one_hot_attributions_sum_back_to_their_column(workspace):
    """For a linear model, the attribution of `region` (three one-hot columns) differs
    between two rows by exactly the change of the model's log-odds when only the region
    changes: the encoded attributions were summed back to the right column."""
    from mlcheck.checks.explainability import attributions

    path = write_case(workspace, "logistic pipeline", 0.0, [
        "{test: max_attribution_share, max: 1}"])
    evaluation = Evaluation(path, trust_model=True)
    found = attributions(evaluation.context, "candidate")
    model = evaluation.subject.model.estimator
    rows = found.rows.reset_index(drop=True)
    j = found.columns.index("region")
    first, other = 0, int(np.flatnonzero(rows["region"] != rows["region"][0])[0])
    moved = rows.iloc[[first]].copy()
    moved["region"] = rows["region"][other]
    change = model.decision_function(moved)[0] - model.decision_function(rows.iloc[[first]])[0]
    assert found.signed[other, j, 0] - found.signed[first, j, 0] == pytest.approx(
        change, abs=1e-9)
    assert found.about["encoded_columns"] == 8 and found.about["unattributed_share"] == 0
    # every input's share: the sum over input columns keeps SHAP's additivity
    total = found.signed.sum(axis=1)[:, 0]
    assert np.allclose(total - total.mean(), model.decision_function(found.rows)
                       - model.decision_function(found.rows).mean())


def test_shap_runs_once_per_model_and_run(workspace, monkeypatch):
    from sklearn.ensemble import HistGradientBoostingClassifier as Boosting

    calls = []
    real = shap.TreeExplainer

    def counting(*args, **kwargs):
        calls.append(type(args[0]).__name__)
        return real(*args, **kwargs)

    monkeypatch.setattr(shap, "TreeExplainer", counting)
    frame = credit_frame()
    workspace.pickle("base.pkl", Boosting(max_iter=20).fit(frame[PLAIN_INPUTS],
                                                            frame["default"]))
    path = write_case(workspace, "forest", 0.0, [
        "{test: not_in_top, k: 1, features: [male, noise]}",
        "{test: max_attribution_share, max: 0.9}",
        "{test: direction, features: [income], direction: decreasing}",
        "{test: stability, min: 0.0}", "{test: stability, min: 0.0, against: halves}"])
    text = path.read_text().replace("trust: true,", "trust: true, baseline: {path: base.pkl, "
                                    "trust: true},")
    path.write_text(text)
    result = evaluate(path)
    assert {c.verdict for c in result.checks} == {"pass"}, [c.message for c in result.checks]
    assert sorted(calls) == ["HistGradientBoostingClassifier", "RandomForestClassifier"]


def test_results_are_identical_on_every_run(workspace):
    path = write_case(workspace, "naive Bayes pipeline", 4.0, [
        "{test: max_attribution_share, max: 0.9}"], "rows: 30")
    first, second = evaluate(path).checks[0], evaluate(path).checks[0]
    assert first.evidence["importance"] == second.evidence["importance"]
    assert first.interval == second.interval and first.value == second.value
    about = first.evidence["explainer"]
    assert about["rows"] == 30 and about["evaluations_per_row"] == 60  # 10 x (5 inputs + 1)
    assert about["model_rows_scored"] == 30 * 60 * 100


def test_named_explainer_that_does_not_fit_is_an_error_and_auto_falls_back(workspace):
    path = write_case(workspace, "naive Bayes pipeline", 0.0, [
        "{test: max_attribution_share, max: 0.9}"], "explainer: tree")
    check = evaluate(path).checks[0]
    assert check.verdict == "error"
    assert "`explainer: tree` cannot explain the candidate: GaussianNB is not a tree model" \
        in check.message


def test_black_box_scores_cannot_be_explained(workspace):
    frame = credit_frame(rows=300)
    frame["vendor"] = np.clip(0.5 - 0.01 * (frame["income"] - 50), 0, 1)
    workspace.frame("eval.csv", frame)
    path = workspace.policy("""
        mlcheck: 1
        name: vendor
        model: {scores: vendor, task: binary_classification}
        data: {target: default, datasets: {eval: eval.csv}}
        explainability:
          rules: [{test: max_attribution_share, max: 0.5}]
        """)
    check = evaluate(path).checks[0]
    assert check.verdict == "error"
    assert "explanations are unavailable: the candidate is a black box" in check.message


def test_unknown_feature_and_non_numeric_direction_are_errors(workspace):
    path = write_case(workspace, "boosting pipeline", 0.0, [
        "{test: not_in_top, k: 2, features: [sexx]}",
        "{test: direction, features: [region], direction: increasing}"])
    checks = {c.id: c for c in evaluate(path).checks}
    assert "'sexx' is not an input column of the model (did you mean 'sex'?)" in \
        checks["explainability/not_in_top[sexx]"].message
    assert "`direction` needs a numeric feature; 'region' is" in \
        checks["explainability/direction[region]"].message


@pytest.mark.parametrize(("rule", "message"), [
    ("{test: not_in_top, features: [sex]}", "`not_in_top` needs `k`"),
    ("{test: max_attribution_share, max: 0.5, k: 3}", "`max_attribution_share` does not use `k`"),
    ("{test: direction, features: [x], direction: up}",
     "'up' is not allowed; allowed: increasing, decreasing"),
    ("{test: stability, min: 0.5}", "`stability` against the baseline needs `model.baseline`"),
    ("{test: stabilty, min: 0.5}", "did you mean 'stability'"),
])
def test_policy_errors_name_the_rule(workspace, rule, message):
    path = write_case(workspace, "logistic", 0.0, [rule])
    with pytest.raises(PolicyError, match=r"explainability\.rules") as caught:
        Evaluation(path, trust_model=True)
    assert message in str(caught.value)
    assert "at least 1 item" not in str(caught.value)  # only the rule's own problem


def test_regression_and_multiclass_models(workspace):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500),
                          "c": rng.normal(size=500)})
    frame["price"] = 3 * frame["a"] - frame["b"] + rng.normal(scale=0.1, size=500)
    frame["kind"] = np.select([frame["a"] > 0.5, frame["b"] > 0], ["x", "y"], "z")
    workspace.frame("eval.csv", frame)
    workspace.pickle("reg.pkl", LinearRegression().fit(frame[["a", "b", "c"]], frame["price"]))
    workspace.pickle("multi.pkl", RandomForestClassifier(30, random_state=0).fit(
        frame[["a", "b", "c"]], frame["kind"]))
    for model, task, target in (("reg.pkl", "regression", "price"),
                                ("multi.pkl", "multiclass_classification", "kind")):
        path = workspace.policy(f"""
            mlcheck: 1
            name: other-tasks
            model: {{path: {model}, task: {task}, trust: true, features: [a, b, c]}}
            data: {{target: {target}, datasets: {{eval: eval.csv}}}}
            explainability:
              rules:
                - {{test: required_in_top, k: 2, features: [a, b]}}
                - {{test: not_in_top, k: 2, features: [c]}}
            """)
        result = evaluate(path)
        assert [c.verdict for c in result.checks] == ["pass"] * 3, result.checks
    text = path.read_text() + "    - {test: direction, features: [a], direction: increasing}\n"
    path.write_text(text)
    with pytest.raises(PolicyError, match="`direction` needs one score per row"):
        evaluate(path)


def explain_only(workspace, frame: pd.DataFrame, model, rules: list[str], target: str,
                 task: str = "binary_classification", settings: str = "rows: 200",
                 features: str = "") -> dict:
    workspace.frame("eval.csv", frame)
    workspace.pickle("model.pkl", model)
    path = workspace.policy(
        "mlcheck: 1\nname: explain\n"
        f"model: {{path: model.pkl, task: {task}, trust: true{features}}}\n"
        f"data: {{target: {target}, datasets: {{eval: eval.csv}}}}\n"
        "statistics: {resamples: 100}\n"
        f"explainability:\n  {settings}\n  rules:\n"
        + "".join(f"    - {rule}\n" for rule in rules))
    return {c.id: c for c in evaluate(path).checks}


def test_columns_are_matched_by_name_and_unused_ones_are_not_explained(workspace):
    frame = credit_frame()
    model = RandomForestClassifier(30, max_depth=5, random_state=0).fit(
        frame[["income", "debt", "noise"]], frame["default"])
    shuffled = frame[["noise", "debt", "income", "default"]].assign(customer_id=range(1200))
    checks = explain_only(workspace, shuffled, model, [
        "{test: not_in_top, k: 1, features: [noise]}"], "default")
    check = checks["explainability/not_in_top[noise]"]
    assert check.verdict == "pass", check.message
    assert [row["feature"] for row in check.evidence["importance"]][2] == "noise"
    assert {row["feature"] for row in check.evidence["importance"]} == {
        "income", "debt", "noise"}  # customer_id is no input of the model


def test_a_feature_without_attribution_is_never_in_the_top_k(workspace):
    from sklearn.tree import DecisionTreeClassifier

    frame = credit_frame()
    stump = DecisionTreeClassifier(max_depth=1).fit(frame[["income", "debt", "noise"]],
                                                    frame["debt"] > 20)
    frame["flag"] = frame["debt"] > 20
    checks = explain_only(workspace, frame, stump, [
        "{test: not_in_top, k: 2, features: [income, noise]}",
        "{test: required_in_top, k: 2, features: [noise]}"], "flag",
        features=", features: [income, debt, noise]")
    assert checks["explainability/not_in_top[income]"].verdict == "pass"
    assert checks["explainability/not_in_top[noise]"].verdict == "pass"
    assert checks["explainability/required_in_top[noise]"].verdict == "fail"
    assert "ranks 2 of 3" in checks["explainability/not_in_top[income]"].message  # tied


def test_rows_sorted_by_a_category_still_trace_every_encoded_column(workspace):
    frame = credit_frame(rows=12000).sort_values("region", kind="stable")
    model = FAMILIES["logistic pipeline"][0]().fit(frame[PIPELINE_INPUTS], frame["default"])
    checks = explain_only(workspace, frame, model, [
        "{test: max_attribution_share, max: 1}"], "default",
        features=f", features: [{', '.join(PIPELINE_INPUTS)}]")
    about = checks["explainability/max_attribution_share"].evidence["explainer"]
    assert about["explainer"] == "linear" and about["unattributed_share"] == 0


def test_auto_falls_back_when_the_exact_explainer_cannot_be_trusted(workspace):
    """Mixed preprocessing (PCA), a model shap reads wrongly (categorical splits on codes)
    and a link function shap ignores (Poisson) go to the permutation explainer, and the
    message says so."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import PoissonRegressor

    frame = credit_frame(rows=600)
    numeric = ["income", "debt", "noise"]
    mixed = Pipeline([("scale", StandardScaler()), ("pca", PCA(3)),
                      ("model", LogisticRegression())]).fit(frame[numeric], frame["default"])
    frame["region_code"] = frame["region"].map({"north": 0, "south": 1, "east": 2})
    coded = ["income", "debt", "region_code"]
    categorical = HistGradientBoostingClassifier(
        max_iter=30, categorical_features=[2], random_state=0).fit(
        frame[coded].to_numpy(), frame["default"])
    frame["count"] = np.random.default_rng(0).poisson(np.exp(frame["debt"] / 20))
    poisson = PoissonRegressor().fit(frame[numeric], frame["count"])
    cases = [(mixed, "default", "binary_classification", numeric, "mixes input columns"),
             (categorical, "default", "binary_classification", coded, "do not add up"),
             (poisson, "count", "regression", numeric, "do not add up")]
    for model, target, task, inputs, reason in cases:
        checks = explain_only(workspace, frame, model, [
            "{test: max_attribution_share, max: 1}"], target, task=task,
            settings="rows: 40", features=f", features: [{', '.join(inputs)}]")
        check = checks["explainability/max_attribution_share"]
        assert check.verdict == "pass", check.message
        assert check.evidence["explainer"]["explainer"] == "permutation"
        assert reason in check.message and "fell back to permutation" in check.message


def test_too_few_rows_or_too_large_k_cannot_give_a_verdict(workspace):
    frame = credit_frame(rows=20)
    model = LogisticRegression().fit(frame[["income", "debt"]], frame["default"])
    checks = explain_only(workspace, frame, model, [
        "{test: max_attribution_share, max: 0.9}",
        "{test: not_in_top, k: 2, features: [income]}"], "default",
        features=", features: [income, debt]")
    assert checks["explainability/max_attribution_share"].verdict == "inconclusive"
    assert "only 20 rows explained, fewer than 30" in \
        checks["explainability/max_attribution_share"].message
    assert "k = 2, but the model has 2 inputs" in \
        checks["explainability/not_in_top[income]"].message
