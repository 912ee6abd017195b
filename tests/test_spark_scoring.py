"""Performance and fairness on Spark: the model scores the rows on the executors, the
driver counts; the verdicts, confusion-based values and their intervals are the local
engine's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlcheck.engine import evaluate
from mlcheck.errors import InputError
from tests.conftest import REPO, needs_spark

pytestmark = needs_spark
ADULT = REPO / "examples" / "adult"
SCORE_METRICS = ("roc_auc", "brier_score")


def adult_policy(dataset: str, extra: str = "") -> str:
    """The bundled example's performance and fairness sections, on one dataset."""
    text = (REPO / "policies" / "adult-income.yaml").read_text()
    sections = text[text.index("statistics:"):text.index("drift:")]
    return f"""
mlcheck: 1
name: adult on spark
model:
  path: {ADULT / "candidate.skops"}
  task: binary_classification
  trusted_types: [numpy.dtype, sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor]
  baseline:
    path: {ADULT / "champion.skops"}
    trusted_types: [numpy.dtype]
data:
  target: income
  positive_label: ">50K"
  datasets:
    eval: {dataset}
{extra}
""" + sections


SPARK_EVAL = "{spark: {path: eval.parquet, format: parquet}}"


@pytest.fixture(scope="module")
def adult_eval(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adult")
    pd.read_csv(ADULT / "data" / "adult-test.csv.gz").to_parquet(folder / "eval.parquet",
                                                                   index=False)
    return folder


def test_parity_performance_and_fairness_on_adult(adult_eval, spark):
    """The bundled example through pandas and through Spark: the same verdicts; the same
    values and intervals for every count-based check (the cells are drawn with the same
    seed); ROC AUC and Brier within the bounds the score grid reports."""
    (adult_eval / "local.yaml").write_text(adult_policy("eval.parquet"))
    (adult_eval / "spark.yaml").write_text(adult_policy(SPARK_EVAL))
    local = evaluate(adult_eval / "local.yaml")
    distributed = evaluate(adult_eval / "spark.yaml")
    assert [c.id for c in local.checks] == [c.id for c in distributed.checks]
    assert len(local.checks) == 17 and local.verdict == distributed.verdict == "blocked"
    for mine, theirs in zip(local.checks, distributed.checks, strict=True):
        assert mine.verdict == theirs.verdict, (mine.id, theirs.message)
        spark_evidence = theirs.evidence["spark"]
        assert spark_evidence["rows"] == 16281
        if any(f"/{m}" in mine.id for m in SCORE_METRICS):
            grid = spark_evidence["candidate_score_grid"]
            limit = grid["roc_auc_error_bound"] * 2 if "roc_auc" in mine.id \
                else grid["max_probability_shift"] * 2
            if "vs_baseline" in mine.id:
                limit += spark_evidence["baseline_score_grid"]["roc_auc_error_bound"] * 2
            assert abs(mine.value - theirs.value) <= limit, mine.id
            assert theirs.interval["method"] == mine.interval["method"]
        else:
            assert (mine.id, mine.value) == (theirs.id, theirs.value)
            assert mine.interval == theirs.interval, mine.id
            assert mine.evidence.get("groups") == theirs.evidence.get("groups")
    record = distributed.to_dict()
    assert record["subject"]["datasets"]["eval"]["rows"] == 16281
    assert distributed.checks[0].evidence["spark"]["candidate_score_grid"][
        "roc_auc_error_bound"] < 1e-4


def small_binary(rows: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, LogisticRegression]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=rows), "z": rng.normal(size=rows),
                          "group": rng.choice(["a", "b", "c"], rows)})
    frame["y"] = (frame["x"] + rng.normal(size=rows) > 0).astype(int)
    model = LogisticRegression().fit(frame[["x", "z"]], frame["y"])
    return frame, model


def binary_policy(dataset: str, model_extra: str = "", rules: str = "") -> str:
    return f"""
mlcheck: 1
name: binary
model: {{path: model.skops, task: binary_classification, features: [x, z]{model_extra}}}
data:
  target: y
  datasets: {{eval: {dataset}}}
statistics: {{resamples: 200, seed: 3}}
performance:
  rules:
    - {{metric: accuracy, min: 0.6}}
    - {{metric: recall, min: 0.6, by: [group]}}
    {rules}
fairness:
  sensitive: [group]
  rules:
    - {{metric: demographic_parity_difference, max: 0.2}}
"""


def test_a_threshold_labels_rows_exactly_before_scores_go_on_the_grid(workspace, spark):
    """Scores within the grid's step of the threshold keep the label the exact score
    gives: accuracy on Spark is the local accuracy, digit for digit."""
    frame, model = small_binary()
    threshold = float(np.median(model.predict_proba(frame[["x", "z"]])[:, 1]))
    workspace.frame("eval.parquet", frame)
    extra = f", threshold: {threshold!r}"
    local = evaluate(workspace.policy(binary_policy("eval.parquet", extra), "l.yaml"),
                     model=model)
    distributed = evaluate(workspace.policy(binary_policy(SPARK_EVAL, extra), "s.yaml"),
                           model=model)
    for mine, theirs in zip(local.checks, distributed.checks, strict=True):
        assert (mine.id, mine.verdict, mine.value, mine.interval) == \
            (theirs.id, theirs.verdict, theirs.value, theirs.interval)


def test_black_box_predictions_in_a_spark_table(workspace, spark):
    frame, model = small_binary(seed=1)
    frame["pred"] = model.predict(frame[["x", "z"]])
    workspace.frame("eval.parquet", frame.drop(columns=["x", "z"]))
    policy = binary_policy(SPARK_EVAL).replace(
        "{path: model.skops, task: binary_classification, features: [x, z]}",
        "{task: binary_classification, predictions: pred}")
    local = evaluate(workspace.policy(policy.replace(SPARK_EVAL, "eval.parquet"), "l.yaml"))
    distributed = evaluate(workspace.policy(policy, "s.yaml"))
    assert [(c.id, c.verdict, c.value, c.interval) for c in local.checks] == \
        [(c.id, c.verdict, c.value, c.interval) for c in distributed.checks]


def test_a_model_that_raises_on_the_executors_is_every_checks_error(workspace, spark):
    """A model that cannot score the rows where they are never passes: each check says
    what it raised, on which dataset."""
    frame, model = small_binary()
    frame["x"] = "not a number"
    workspace.frame("eval.parquet", frame)
    result = evaluate(workspace.policy(binary_policy(SPARK_EVAL)), model=model)
    assert result.verdict == "blocked"
    assert {c.verdict for c in result.checks} == {"error"}
    message = result.checks[0].message
    assert "candidate model raised ValueError in predict on dataset 'eval' (on Spark)" in message


def test_missing_target_values_on_spark_stop_the_run(workspace, spark):
    frame, model = small_binary()
    frame["y"] = frame["y"].astype(float)
    frame.loc[:4, "y"] = np.nan
    workspace.frame("eval.parquet", frame)
    with pytest.raises(InputError, match="target 'y' has 5 missing values in dataset 'eval'"):
        evaluate(workspace.policy(binary_policy(SPARK_EVAL)), model=model)


def test_regression_on_spark_is_an_error_not_a_pass(workspace, spark):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300)})
    frame["y"] = 2 * frame["x"] + rng.normal(size=300)
    workspace.frame("eval.parquet", frame)
    policy = workspace.policy(f"""
        mlcheck: 1
        name: regression
        model: {{path: model.skops, task: regression, features: [x]}}
        data: {{target: y, datasets: {{eval: {SPARK_EVAL}}}}}
        performance: {{rules: [{{metric: mae, max: 5}}]}}
        """)
    result = evaluate(policy, model=LinearRegression().fit(frame[["x"]], frame["y"]))
    check = result.checks[0]
    assert (result.verdict, check.verdict) == ("blocked", "error")
    assert "regression metrics do not run on Spark yet" in check.message


def test_multiclass_labels_on_spark_match_and_scores_say_not_yet(workspace, spark):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(size=900), "z": rng.normal(size=900),
                          "group": rng.choice(["a", "b"], 900)})
    frame["y"] = np.digitize(frame["x"] + rng.normal(scale=0.5, size=900), [-0.5, 0.5])
    model = LogisticRegression().fit(frame[["x", "z"]], frame["y"])
    workspace.frame("eval.parquet", frame)
    policy = """
        mlcheck: 1
        name: multiclass
        model: {path: model.skops, task: multiclass_classification, features: [x, z]}
        data: {target: y, datasets: {eval: DATASET}}
        statistics: {resamples: 200, seed: 1}
        performance:
          rules:
            - {metric: balanced_accuracy, min: 0.5, by: [group]}
            - {metric: f1_macro, min: 0.5}
            - {metric: roc_auc_ovr, min: 0.5}
        """
    local = evaluate(workspace.policy(policy.replace("DATASET", "eval.parquet"), "l.yaml"),
                     model=model)
    distributed = evaluate(workspace.policy(policy.replace("DATASET", SPARK_EVAL), "s.yaml"),
                           model=model)
    label_checks = [c for c in local.checks if "roc_auc" not in c.id]
    assert [(c.id, c.verdict, c.value, c.interval) for c in label_checks] == \
        [(c.id, c.verdict, c.value, c.interval) for c in distributed.checks
         if "roc_auc" not in c.id]
    scores = distributed.checks[-1]
    assert scores.verdict == "error" and "multiclass score metrics" in scores.message


def test_a_sampled_spark_dataset_comes_to_the_driver_for_row_by_row_sections(workspace,
                                                                           spark):
    """Explanations and property searches read rows: on a Spark source they run on the
    declared, seeded sample, which the record states; the same seed draws the same rows,
    and each class keeps its share."""
    frame, model = small_binary(rows=3000)
    workspace.frame("eval.parquet", frame)
    policy = workspace.policy(f"""
        mlcheck: 1
        name: sampled
        model: {{path: model.skops, task: binary_classification, features: [x, z]}}
        data:
          target: y
          datasets:
            eval: {SPARK_EVAL}
            rows: {{spark: {{path: eval.parquet, format: parquet}}, sample: {{rows: 300, seed: 4}}}}
        performance: {{rules: [{{metric: accuracy, min: 0.6}}]}}
        robustness:
          dataset: rows
          examples: 20
          rules: [{{property: valid_predictions, inputs: data}}]
        """)
    first = evaluate(policy, model=model)
    assert first.verdict == "passed", [c.message for c in first.checks]
    described = first.to_dict()["subject"]["datasets"]
    assert described["rows"]["rows"] == 300
    assert described["rows"]["sample"]["of"] == 3000
    assert described["rows"]["sample"]["seed"] == 4
    assert "xxhash64" in described["rows"]["sample"]["method"]
    assert described["eval"]["rows"] == 3000 and "sample" not in described["eval"]

    from mlcheck.spark import draw_sample

    source = spark.read.parquet(str(workspace.root / "eval.parquet"))
    again = draw_sample(source.repartition(3), 300, 4, "y")
    once = draw_sample(source, 300, 4, "y")
    pd.testing.assert_frame_equal(once, again)
    share = frame["y"].mean() * 300
    assert abs(once["y"].sum() - share) < 1


def test_row_by_row_sections_on_an_unsampled_spark_source_say_to_declare_a_sample(
        workspace, spark):
    frame, model = small_binary()
    workspace.frame("eval.parquet", frame)
    policy = workspace.policy(f"""
        mlcheck: 1
        name: unsampled
        model: {{path: model.skops, task: binary_classification, features: [x, z]}}
        data: {{target: y, datasets: {{eval: {SPARK_EVAL}}}}}
        robustness: {{rules: [{{property: valid_predictions, inputs: data}}]}}
        """)
    with pytest.raises(InputError) as caught:
        evaluate(policy, model=model)
    message = str(caught.value)
    assert "robustness reads it row by row" in message and "sample: {rows: N" in message
    assert "policy.yaml:" in message


def test_a_dataframe_with_non_nullable_columns_still_reports_the_models_error(workspace,
                                                                             spark):
    """Columns Spark knows cannot be null (from `spark.range`) still carry the error row
    the executor sends when the model raises."""
    from pyspark.sql import functions as F

    _, model = small_binary()
    source = spark.range(500).select(
        F.lit("g").alias("group"),
        F.lit("text").alias("x"), F.lit(1.0).alias("z"), (F.col("id") % 2).alias("y"))
    assert not source.schema["group"].nullable
    result = evaluate(workspace.policy(binary_policy("eval.parquet")), model=model,
                      datasets={"eval": source})
    assert {c.verdict for c in result.checks} == {"error"}
    assert "candidate model raised ValueError" in result.checks[0].message


def test_mutation_testing_a_spark_source_says_to_sample_it(workspace, spark):
    from mlcheck.errors import MlcheckError
    from mlcheck.mutate import mutate

    frame, model = small_binary()
    workspace.frame("eval.parquet", frame)
    workspace.skops("model.skops", model)
    with pytest.raises(MlcheckError) as caught:
        mutate(workspace.policy(binary_policy(SPARK_EVAL)))
    assert "dataset 'eval' is a Spark source: give it a `sample: {rows, seed}`" in \
        str(caught.value)


def on_grid(p: np.ndarray, step: float) -> np.ndarray:
    """The score grid as docs/spark.md defines it: nearest point, uniform in logit."""
    with np.errstate(divide="ignore"):
        z = np.round(np.log(p / (1 - p)) / step) * step
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("step", [1e-3, 0.3])
@pytest.mark.parametrize("seed", range(4))
def test_the_grid_error_bounds_hold(step, seed):
    """ROC AUC and average precision on grid scores stay within the bound computed from
    the grid counts, also on a grid coarse enough to tie most rows (no Spark needed)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from mlcheck.spark import ap_tie_bound, auc_tie_bound

    rng = np.random.default_rng(seed)
    truth = rng.random(3000) < 0.3
    exact = 1 / (1 + np.exp(-(truth * 1.2 + rng.normal(size=3000))))
    grid = on_grid(exact, step)
    ones = np.ones(3000, dtype=np.int64)
    auc_gap = abs(roc_auc_score(truth, exact) - roc_auc_score(truth, grid))
    ap_gap = abs(average_precision_score(truth, exact) - average_precision_score(truth, grid))
    assert auc_gap <= auc_tie_bound(truth, grid, ones, exact, exact) + 1e-12
    assert ap_gap <= ap_tie_bound(truth, grid, ones, exact, exact) + 1e-12
    if step > 0.1:  # a coarse grid really moves them, and the bounds say so
        assert auc_tie_bound(truth, grid, ones, exact, exact) > 1e-3
        assert ap_tie_bound(truth, grid, ones, exact, exact) > 1e-3
    tied = np.round(exact, 1)  # scores tied before the grid: the grid changes nothing
    tied_grid = on_grid(tied, step)
    if step < 0.01:
        assert auc_tie_bound(truth, tied_grid, ones, tied, tied) == 0
        assert ap_tie_bound(truth, tied_grid, ones, tied, tied) == 0


def test_a_value_within_the_grid_bound_of_a_limit_is_inconclusive(workspace, spark):
    """Where rounding the scores could decide the verdict, the check says so and blocks:
    the grid never passes a model by accident."""
    frame, model = small_binary(rows=3000)
    workspace.frame("eval.parquet", frame)
    rules = "- {metric: roc_auc, min: MIN}\n    - {metric: average_precision, min: 0.1}"
    first = evaluate(workspace.policy(binary_policy(SPARK_EVAL, rules=rules.replace(
        "MIN", "0.5")), "a.yaml"), model=model)
    auc = next(c for c in first.checks if c.id == "performance/roc_auc")
    assert auc.verdict == "pass" and auc.evidence["grid_error_bound"] > 0
    precision = next(c for c in first.checks if c.id == "performance/average_precision")
    assert precision.evidence["grid_error_bound"] > 0
    at_limit = evaluate(workspace.policy(binary_policy(SPARK_EVAL, rules=rules.replace(
        "MIN", repr(auc.value))), "b.yaml"), model=model)
    check = next(c for c in at_limit.checks if c.id == "performance/roc_auc")
    assert check.verdict == "inconclusive" and check.blocking
    assert "the most the Spark score grid can move this metric" in check.message


# ------------------------------------------------------------------ review findings


class NaNModel:
    """Probabilities that are NaN where x < -1.5 (shipped to the executors by value)."""

    classes_ = np.array([0, 1])

    def predict_proba(self, frame):
        p = 1 / (1 + np.exp(-frame["x"].to_numpy(dtype=float)))
        p[frame["x"].to_numpy() < -1.5] = np.nan
        return np.stack([1 - p, p], axis=1)

    def predict(self, frame):
        return (self.predict_proba(frame)[:, 1] >= 0.5).astype(int)


@pytest.fixture
def by_value():
    """Ship classes defined here to Spark's Python workers by value, as a notebook does."""
    import sys

    from pyspark import cloudpickle

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


def test_nan_probabilities_under_a_threshold_are_an_error_not_a_negative(workspace, spark,
                                                                        by_value):
    frame, _ = small_binary(rows=600)
    workspace.frame("eval.parquet", frame)
    expected = int((frame["x"] < -1.5).sum())
    extra = ", threshold: 0.5"
    for dataset in ("eval.parquet", SPARK_EVAL):
        result = evaluate(workspace.policy(binary_policy(dataset, extra)), model=NaNModel())
        assert {c.verdict for c in result.checks} == {"error"}, dataset
        assert f"produced {expected} NaN or infinite scores on dataset 'eval' (600 rows)" \
            in result.checks[0].message


def test_a_black_box_score_column_is_thresholded_before_the_grid(workspace, spark):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"group": rng.choice(["a", "b"], 400), "y": rng.integers(0, 2, 400)})
    frame["s"] = 0.5 + np.where(frame["y"] == 1, 1, -1) * rng.uniform(1e-6, 5e-5, 400)
    frame["t"] = frame["s"].astype(str)  # a text score column is not a score
    workspace.frame("eval.parquet", frame)
    policy = binary_policy(SPARK_EVAL).replace(
        "{path: model.skops, task: binary_classification, features: [x, z]}",
        "{task: binary_classification, scores: s, threshold: 0.5}")
    result = evaluate(workspace.policy(policy))
    accuracy = next(c for c in result.checks if c.id == "performance/accuracy")
    assert accuracy.value == 1.0
    text = evaluate(workspace.policy(policy.replace("scores: s", "scores: t"), "t.yaml"))
    assert {c.verdict for c in text.checks} == {"error"}
    assert "score columns ['t'] are not numeric" in text.checks[0].message


def test_a_model_that_cannot_score_errors_only_its_own_checks(workspace, spark):
    """A baseline without predict_proba errors the checks that compare scores with it;
    the candidate's checks and slices are measured as on pandas."""
    from sklearn.svm import LinearSVC

    frame, model = small_binary()
    workspace.frame("eval.parquet", frame)
    baseline = LinearSVC().fit(frame[["x", "z"]], frame["y"])
    rules = ("- {metric: roc_auc, baseline: {max_drop: 0.1}}\n"
             "    - {metric: accuracy, baseline: {max_drop: 0.1}}")
    policy = binary_policy(SPARK_EVAL, ", baseline: {path: b.skops}", rules)
    distributed = evaluate(workspace.policy(policy, "s.yaml"), model=model, baseline=baseline)
    local = evaluate(workspace.policy(policy.replace(SPARK_EVAL, "eval.parquet"), "l.yaml"),
                     model=model, baseline=baseline)
    assert [(c.id, c.verdict, c.value) for c in local.checks] == \
        [(c.id, c.verdict, c.value) for c in distributed.checks]
    errors = [c.id for c in distributed.checks if c.verdict == "error"]
    assert errors == ["performance/roc_auc/vs_baseline"]


def test_fairness_of_scores_alone_and_object_classes_on_spark(workspace, spark):
    """A fairness section with only a score metric still gets its group table; a model
    whose classes_ hold Python booleans predicts labels of a 0/1 target."""
    frame, model = small_binary()
    model.classes_ = np.array([False, True], dtype=object)
    workspace.frame("eval.parquet", frame)
    policy = binary_policy(SPARK_EVAL).replace(
        "{metric: demographic_parity_difference, max: 0.2}", "{metric: roc_auc, min: 0.5}")
    local = evaluate(workspace.policy(policy.replace(SPARK_EVAL, "eval.parquet"), "l.yaml"),
                     model=model)
    distributed = evaluate(workspace.policy(policy, "s.yaml"), model=model)
    assert local.verdict == distributed.verdict == "passed", \
        [c.message for c in distributed.checks]
    assert [c.id for c in local.checks] == [c.id for c in distributed.checks]


def test_columns_named_with_dots_and_backticks(workspace, spark):
    frame, model = small_binary()
    frame = frame.rename(columns={"group": "geo.region`s", "x": "x.1"})
    model = LogisticRegression().fit(frame[["x.1", "z"]], frame["y"])
    workspace.frame("eval.parquet", frame)
    policy = binary_policy(SPARK_EVAL).replace("features: [x, z]", "features: ['x.1', z]")
    policy = policy.replace("by: [group]", "by: ['geo.region`s']").replace(
        "sensitive: [group]", "sensitive: ['geo.region`s']")
    local = evaluate(workspace.policy(policy.replace(SPARK_EVAL, "eval.parquet"), "l.yaml"),
                     model=model)
    distributed = evaluate(workspace.policy(policy, "s.yaml"), model=model)
    assert [(c.id, c.verdict, c.value, c.interval) for c in local.checks] == \
        [(c.id, c.verdict, c.value, c.interval) for c in distributed.checks]


def test_the_sample_does_not_depend_on_the_columns_a_policy_reads(spark, tmp_path):
    from mlcheck.spark import draw_sample

    frame, _ = small_binary(rows=1000)
    frame.to_parquet(tmp_path / "eval.parquet", index=False)
    source = spark.read.parquet(str(tmp_path / "eval.parquet"))
    narrow = draw_sample(source, 50, 3, "y", keep=["x", "y"])
    wide = draw_sample(source, 50, 3, "y", keep=["x", "y", "group"])
    pd.testing.assert_frame_equal(narrow, wide[["x", "y"]])


def test_a_fairness_score_metric_at_its_limit_is_inconclusive_on_spark(workspace, spark):
    frame, model = small_binary(rows=3000)
    workspace.frame("eval.parquet", frame)
    policy = binary_policy(SPARK_EVAL).replace(
        "{metric: demographic_parity_difference, max: 0.2}", "{metric: roc_auc, min: MIN}")
    first = evaluate(workspace.policy(policy.replace("MIN", "0.5"), "a.yaml"), model=model)
    lowest = first.checks[-1]
    assert lowest.id == "fairness/roc_auc[group]" and lowest.verdict == "pass"
    assert lowest.evidence["grid_error_bound"] > 0
    at_limit = evaluate(workspace.policy(policy.replace("MIN", repr(lowest.value)), "b.yaml"),
                        model=model)
    assert at_limit.checks[-1].verdict == "inconclusive"
    assert "the Spark score grid" in at_limit.checks[-1].message


# ------------------------------------------------------------------ second review


def test_scores_tied_before_the_grid_get_no_error_bound(workspace, spark):
    """A tree has few distinct scores: the grid merges none of them, so Spark's values
    are the local ones and no check is left undecided."""
    from sklearn.tree import DecisionTreeClassifier

    frame, _ = small_binary(rows=3000)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(frame[["x", "z"]],
                                                                    frame["y"])
    workspace.frame("eval.parquet", frame)
    rules = "- {metric: roc_auc, min: 0.6}\n    - {metric: average_precision, min: 0.5}"
    policy = binary_policy(SPARK_EVAL, rules=rules).replace(
        "{metric: demographic_parity_difference, max: 0.2}", "{metric: roc_auc, min: 0.6}")
    local = evaluate(workspace.policy(policy.replace(SPARK_EVAL, "eval.parquet"), "l.yaml"),
                     model=model)
    distributed = evaluate(workspace.policy(policy, "s.yaml"), model=model)
    assert [(c.id, c.verdict, c.value) for c in local.checks] == \
        [(c.id, c.verdict, c.value) for c in distributed.checks]
    assert not any("grid_error_bound" in c.evidence for c in distributed.checks)


def test_cells_and_groups_do_not_depend_on_row_order_or_dtype(workspace, spark):
    """A nullable boolean column is `boolean` in pandas and objects from Spark; shuffled
    or not, either way, the same data draws the same cells."""
    frame, model = small_binary(rows=1500)
    frame["group"] = pd.array(np.where(frame["x"] > 0.5, None, frame["z"] > 0),
                              dtype="boolean")
    workspace.frame("eval.parquet", frame)
    workspace.frame("shuffled.parquet", frame.sample(frac=1, random_state=1))
    runs = [evaluate(workspace.policy(binary_policy(source), f"{i}.yaml"), model=model)
            for i, source in enumerate(("eval.parquet", "shuffled.parquet", SPARK_EVAL))]
    first = [(c.id, c.verdict, c.value, c.interval) for c in runs[0].checks]
    assert runs[0].checks[-2].id == "performance/recall[group=<missing>]"
    for other in runs[1:]:
        assert [(c.id, c.verdict, c.value, c.interval) for c in other.checks] == first


def test_spark_intervals_do_not_depend_on_partitioning(workspace, spark):
    frame, model = small_binary(rows=2000)
    workspace.frame("eval.parquet", frame)
    source = spark.read.parquet(str(workspace.root / "eval.parquet"))
    policy = workspace.policy(binary_policy("eval.parquet", rules="- {metric: roc_auc, min: 0.5}"))
    one, five = (evaluate(policy, model=model, datasets={"eval": source.repartition(n)})
                 for n in (1, 5))
    assert [(c.id, c.value, c.interval) for c in one.checks] == \
        [(c.id, c.value, c.interval) for c in five.checks]


def test_data_columns_named_like_the_aggregates_own(workspace, spark):
    frame, model = small_binary()
    frame = frame.rename(columns={"group": "__label_candidate"})
    frame["__n"], frame["__error"], frame["__sample_key"] = 1, "x", 2
    workspace.frame("eval.parquet", frame)
    policy = binary_policy(SPARK_EVAL).replace("[group]", "[__label_candidate]")
    local = evaluate(workspace.policy(policy.replace(SPARK_EVAL, "eval.parquet"), "l.yaml"),
                     model=model)
    distributed = evaluate(workspace.policy(policy, "s.yaml"), model=model)
    assert [(c.id, c.verdict, c.value, c.interval) for c in local.checks] == \
        [(c.id, c.verdict, c.value, c.interval) for c in distributed.checks]
    from mlcheck.spark import draw_sample

    sample = draw_sample(spark.read.parquet(str(workspace.root / "eval.parquet")), 20, 1, "y")
    assert list(sample.columns) == list(frame.columns) and (sample["__sample_key"] == 2).all()


class ProbaFails:
    """A baseline whose predict works and predict_proba raises."""

    classes_ = np.array([0, 1])

    def predict(self, frame):
        return (frame["x"].to_numpy() > 0).astype(int)

    def predict_proba(self, frame):
        raise RuntimeError("no probabilities here")


def test_a_failing_predict_proba_leaves_the_label_checks_measured(workspace, spark,
                                                                 by_value):
    frame, model = small_binary()
    workspace.frame("eval.parquet", frame)
    rules = ("- {metric: roc_auc, baseline: {max_drop: 0.5}}\n"
             "    - {metric: accuracy, baseline: {max_drop: 0.5}}")
    policy = binary_policy(SPARK_EVAL, ", baseline: {path: b.skops}", rules)
    result = evaluate(workspace.policy(policy), model=model, baseline=ProbaFails())
    verdicts = {c.id: c for c in result.checks}
    assert verdicts["performance/accuracy/vs_baseline"].verdict == "pass"
    failed = verdicts["performance/roc_auc/vs_baseline"]
    assert failed.verdict == "error"
    assert "baseline model raised RuntimeError in predict_proba on dataset 'eval'" \
        in failed.message


@pytest.mark.parametrize(("value", "low", "high", "doubt"), [
    (0.80, 0.79, 0.81, False),  # clear of both bounds by more than the slack
    (0.80, 0.799, None, True),  # near the floor
    (0.80, 0.7995, 0.8005, True),  # a window narrower than the grid's reach: undecided
    (0.70, 0.80, None, False),  # clearly below
])
def test_grid_doubt_never_lets_rounding_decide(value, low, high, doubt):
    from mlcheck.checks.performance import grid_doubt

    assert (grid_doubt(value, None, low, high, "value", 0.002) is not None) == doubt


def test_a_per_row_slice_column_is_refused_not_collected(workspace, spark, monkeypatch):
    """Slicing by a column with one value per row would send the driver rows, not
    counts: past MLCHECK_MAX_SPARK_CELLS combinations the checks say so, having
    received at most that many."""
    frame, model = small_binary(rows=500)
    frame["id"] = np.arange(500)
    workspace.frame("eval.parquet", frame)
    monkeypatch.setenv("MLCHECK_MAX_SPARK_CELLS", "100")
    policy = binary_policy(SPARK_EVAL).replace("by: [group]", "by: [id]")
    result = evaluate(workspace.policy(policy), model=model)
    assert {c.verdict for c in result.checks} == {"error"}
    message = result.checks[0].message
    assert "scoring dataset 'eval' (on Spark) gives more than 100 distinct" in message
    assert "MLCHECK_MAX_SPARK_CELLS" in message


def test_a_sample_larger_than_the_row_limit_is_refused(workspace, spark, monkeypatch):
    frame, model = small_binary(rows=500)
    workspace.frame("eval.parquet", frame)
    monkeypatch.setenv("MLCHECK_MAX_DATASET_ROWS", "100")
    policy = binary_policy(
        "{spark: {path: eval.parquet, format: parquet}, sample: {rows: 300, seed: 1}}")
    with pytest.raises(InputError) as caught:
        evaluate(workspace.policy(policy), model=model)
    assert "dataset 'eval': its sample has 300 rows" in str(caught.value)
    assert "MLCHECK_MAX_DATASET_ROWS" in str(caught.value)
    assert "policy.yaml:" in str(caught.value)
