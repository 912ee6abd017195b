"""Reading less: only the columns a policy and its models use, and a sample of the rows
when (and only when) a policy asks for one. Neither may change a verdict silently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from mlcheck.engine import evaluate
from mlcheck.errors import PolicyError
from mlcheck.policy import load_policy
from mlcheck.report import render_html
from mlcheck.report.formats import render_markdown
from mlcheck.subject import Needed, load_subject, sample_rows

from .conftest import binary_frame, fitted_logistic

WIDE_POLICY = """
mlcheck: 1
name: wide
model:
  path: model.skops
  task: binary_classification
data:
  target: y
  datasets:
    eval: eval.{suffix}
    reference: reference.{suffix}
statistics: {{resamples: 200}}
performance:
  rules:
    - {{metric: roc_auc, min: 0.7}}
    - {{metric: accuracy, min: 0.6, by: [group]}}
fairness:
  sensitive: region
  rules:
    - {{metric: demographic_parity_ratio, min: 0.5}}
drift:
  reference: reference
  current: eval
  rules:
    - {{test: psi, columns: [x1, x2], max: 0.2}}
"""


def wide(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """The binary frame with a second group column and 30 columns no rule reads."""
    frame = binary_frame(rows, seed)
    rng = np.random.default_rng(seed + 1)
    frame.insert(2, "region", rng.choice(["north", "south"], rows))
    for i in range(30):
        frame[f"unused_{i}"] = rng.normal(size=rows) if i % 2 else rng.choice(["p", "q"], rows)
    return frame


@pytest.fixture
def wide_workspace(workspace):
    frame = wide()
    workspace.frame("eval.parquet", frame)
    workspace.frame("reference.parquet", wide(400, 7))
    workspace.skops("model.skops", fitted_logistic(frame))  # fitted on a frame: x1, x2
    workspace.policy(WIDE_POLICY.format(suffix="parquet"))
    return workspace


def spy_parquet(monkeypatch) -> list:
    """The `columns` argument of every pandas.read_parquet call."""
    asked, read = [], pd.read_parquet

    def spy(source, *args, columns=None, **kwargs):
        asked.append(columns)
        return read(source, *args, columns=columns, **kwargs)

    monkeypatch.setattr(pd, "read_parquet", spy)
    return asked


def outcomes(result) -> list:
    return [(c.id, c.verdict, c.value, c.interval, c.message) for c in result.checks]


def without_projection(monkeypatch, policy: str = "policy.yaml"):
    with monkeypatch.context() as patched:
        patched.setattr(Needed, "select", lambda self, names: None)
        return evaluate(policy)


def test_a_wide_parquet_file_is_read_for_the_columns_the_policy_uses(wide_workspace,
                                                                     monkeypatch):
    asked = spy_parquet(monkeypatch)
    result = evaluate("policy.yaml")
    # target, model inputs, slice and sensitive columns, drift columns; in file order
    assert asked == [["x1", "x2", "region", "group", "y"], ["x1", "x2"]]
    assert result.subject["datasets"]["eval"]["columns"] == 35  # the file's, as before
    unprojected = without_projection(monkeypatch)
    assert asked[2:] == [None, None]
    assert outcomes(result) == outcomes(unprojected)
    assert [c.verdict for c in result.checks].count("pass") > 3


def test_a_csv_file_is_parsed_for_the_columns_the_policy_uses(workspace, monkeypatch):
    frame = wide()
    workspace.frame("eval.csv", frame)
    workspace.frame("reference.csv", wide(400, 7))
    workspace.skops("model.skops", fitted_logistic(frame))
    workspace.policy(WIDE_POLICY.format(suffix="csv"))
    asked, read = [], pd.read_csv

    def spy(source, *args, **kwargs):
        if kwargs.get("header", "infer") is not None:  # not the header check
            asked.append(kwargs.get("usecols"))
        return read(source, *args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", spy)
    result = evaluate("policy.yaml")
    assert asked == [["x1", "x2", "region", "group", "y"], ["x1", "x2"]]
    assert outcomes(result) == outcomes(without_projection(monkeypatch))


@pytest.mark.parametrize("change", [
    ("  rules:\n    - {test: psi, columns: [x1, x2], max: 0.2}",
     "  rules:\n    - {test: psi, max: 0.2}"),  # drift on all columns
    ("statistics:", "schema:\n  strict: true\n  columns:\n    x1: {dtype: float64}\n"
                    "statistics:"),  # strict: every column matters
    ("  path: model.skops", "  path: plain.skops"),  # inputs unknown: all but the target
])
def test_every_column_is_read_when_the_policy_or_model_may_read_any(wide_workspace,
                                                                    monkeypatch, change):
    policy = wide_workspace.root / "policy.yaml"
    policy.write_text(policy.read_text().replace(*change))
    plain = LogisticRegression().fit(wide()[["x1", "x2"]].to_numpy(), wide()["y"])
    sio.dump(plain, wide_workspace.root / "plain.skops")  # no feature_names_in_
    asked = spy_parquet(monkeypatch)
    load_subject(load_policy(policy))
    assert None in asked


def test_a_missing_column_is_reported_as_without_projection(wide_workspace, monkeypatch):
    policy = wide_workspace.root / "policy.yaml"
    policy.write_text(policy.read_text().replace("by: [group]", "by: [grup]"))
    asked = spy_parquet(monkeypatch)
    result = evaluate("policy.yaml")
    assert asked[0] is None  # the message lists every column of the file
    check = next(c for c in result.checks if c.id.startswith("performance/accuracy"))
    assert check.verdict == "error"
    assert "did you mean 'group'?" in check.message and "35 columns" in check.message
    assert outcomes(result) == outcomes(without_projection(monkeypatch))


def test_a_current_batch_without_labels_is_still_projected(wide_workspace, monkeypatch):
    wide_workspace.frame("batch.parquet", wide(400, 3).drop(columns=["y"]))
    policy = wide_workspace.root / "policy.yaml"
    text = policy.read_text().replace("    reference: reference.parquet",
                                      "    reference: reference.parquet\n"
                                      "    batch: batch.parquet")
    policy.write_text(text.replace("  current: eval", "  current: batch\n  target: true"))
    asked = spy_parquet(monkeypatch)
    subject = load_subject(load_policy(policy))
    assert asked[2] == ["x1", "x2"]  # the target is read where the file has it
    assert list(subject.datasets["reference"].frame.columns) == ["x1", "x2", "y"]


# ------------------------------------------------------------------------ sampling


def labelled(rows: int, positives: int) -> pd.DataFrame:
    y = np.zeros(rows, dtype=int)
    y[np.linspace(0, rows - 1, positives).astype(int)] = 1
    return pd.DataFrame({"x": np.arange(rows), "y": y})


def test_a_sample_keeps_each_class_share_in_file_order():
    frame = labelled(1_000, 37)
    sample = sample_rows(frame, 100, seed=3, strata="y")
    assert len(sample) == 100
    assert int(sample["y"].sum()) == 4  # 3.7 rounded by largest remainder
    assert sample["x"].is_monotonic_increasing and sample.index.equals(pd.RangeIndex(100))
    assert sample.equals(sample_rows(frame, 100, seed=3, strata="y"))  # seeded
    assert not sample.equals(sample_rows(frame, 100, seed=4, strata="y"))
    assert set(sample["x"]) <= set(frame["x"])


def test_a_sample_of_many_classes_adds_up_and_never_overdraws_a_class():
    frame = pd.DataFrame({"y": np.repeat(list("abcdefg"), [1, 2, 3, 50, 400, 44, 500])})
    for rows in (5, 7, 99, 1_000):
        sample = sample_rows(frame, rows, seed=0, strata="y")
        assert len(sample) == rows
        counts = sample["y"].value_counts()
        assert all(counts[k] <= (frame["y"] == k).sum() for k in counts.index)


def test_a_sample_without_strata_or_larger_than_the_data():
    frame = labelled(500, 50)
    assert len(sample_rows(frame, 20, seed=0)) == 20
    assert sample_rows(frame, 500, seed=0) is frame
    assert sample_rows(frame, 10_000, seed=0) is frame


SAMPLED = """
mlcheck: 1
name: tiny
model:
  path: model.skops
  task: binary_classification
  features: [x1, x2]
data:
  target: y
  datasets:
    eval: {path: eval.csv, sample: {rows: 300, seed: 5}}
performance:
  rules:
    - {metric: accuracy, min: 0.6}
"""


def test_the_record_and_reports_say_the_gate_ran_on_a_sample(binary_workspace):
    binary_workspace.policy(SAMPLED)
    record = evaluate("policy.yaml").to_dict()
    eval_ = record["subject"]["datasets"]["eval"]
    assert eval_["rows"] == 300
    assert eval_["sample"] == {"rows": 300, "of": 600, "seed": 5}
    note = "ran on a sample of 300 of 600 rows of dataset"
    assert note in render_markdown(record)
    page = render_html(record)
    assert note in page and "(seed 5)" in page


def test_the_terminal_summary_says_the_gate_ran_on_a_sample(binary_workspace):
    from typer.testing import CliRunner

    from mlcheck.cli import app

    binary_workspace.policy(SAMPLED)
    done = CliRunner().invoke(app, ["check", "policy.yaml"])
    assert done.exit_code == 0, done.output
    assert "SAMPLE  ran on a sample of 300 of 600 rows of dataset 'eval' (seed 5)" in done.stdout


def test_a_sample_is_stratified_by_the_target(binary_workspace):
    binary_workspace.policy(SAMPLED)
    frame = load_subject(load_policy("policy.yaml")).datasets["eval"].frame
    full = binary_frame()
    assert abs(frame["y"].mean() - full["y"].mean()) <= 1 / 300


def test_sampling_is_never_the_default(binary_workspace):
    record = evaluate("policy.yaml").to_dict()
    assert "sample" not in record["subject"]["datasets"]["eval"]
    assert record["subject"]["datasets"]["eval"]["rows"] == 600
    assert "sample" not in render_markdown(record).lower()


@pytest.mark.parametrize(("sample", "message"), [
    ("{rows: 0}", "greater than or equal to 1"),
    ("{seed: 1}", "rows"),
    ("{rows: 10, sed: 1}", "sed"),
])
def test_a_bad_sample_is_a_policy_error(binary_workspace, sample, message):
    binary_workspace.policy(SAMPLED.replace("{rows: 300, seed: 5}", sample))
    with pytest.raises(PolicyError) as raised:
        load_policy("policy.yaml")
    assert "data.datasets.eval.sample" in str(raised.value) and message in str(raised.value)


def test_a_sampled_dataset_is_pinned_and_fingerprinted_whole(binary_workspace):
    """The pin is the whole file's: a sample never changes what is fingerprinted."""
    import hashlib

    digest = hashlib.sha256((binary_workspace.root / "eval.csv").read_bytes()).hexdigest()
    binary_workspace.policy(SAMPLED.replace(
        "{path: eval.csv,", f"{{path: eval.csv, sha256: {digest},"))
    described = load_subject(load_policy("policy.yaml")).describe(load_policy("policy.yaml"))
    assert described["datasets"]["eval"]["sha256"] == digest
    assert described["datasets"]["eval"]["sample"]["of"] == 600
