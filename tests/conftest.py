"""Shared fixtures: the bundled example, and small real models and datasets built per test."""

from __future__ import annotations

import importlib.util
import os
import pickle
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LinearRegression, LogisticRegression

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_POLICY = REPO / "policies" / "adult-income.yaml"
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def example_evaluation():
    """The bundled example, every check run once for the whole session (it is the
    slowest thing the suite does; tests that only read its results share it)."""
    from mlcheck.engine import Evaluation

    evaluation = Evaluation(EXAMPLE_POLICY)
    for check in evaluation.checks:
        evaluation.run(check)
    return evaluation


class Workspace:
    """A temporary folder to write policies, datasets and models into."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def policy(self, text: str, name: str = "policy.yaml") -> Path:
        return self.write(name, text)

    def frame(self, name: str, frame: pd.DataFrame) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        return path

    def skops(self, name: str, model: object) -> Path:
        path = self.root / name
        sio.dump(model, path)
        return path

    def pickle(self, name: str, model: object) -> Path:
        path = self.root / name
        path.write_bytes(pickle.dumps(model))
        return path


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.chdir(tmp_path)
    return Workspace(tmp_path)


def binary_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Two informative features, a group column, and a 0/1 label."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    group = np.where(rng.random(rows) < 0.3, "a", "b")
    y = (x1 + 0.5 * x2 + rng.normal(scale=0.7, size=rows) > 0).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "group": group, "y": y})


def fitted_logistic(frame: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(frame[["x1", "x2"]], frame["y"])


def multiclass_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    label = np.select([x1 + rng.normal(scale=0.5, size=rows) > 0.5,
                       x2 + rng.normal(scale=0.5, size=rows) > 0], ["high", "mid"], "low")
    return pd.DataFrame({"x1": x1, "x2": x2, "label": label})


def regression_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    return pd.DataFrame({"x1": x1, "x2": x2,
                         "price": 10 + 3 * x1 - 2 * x2 + rng.normal(scale=0.5, size=rows)})


def fitted_regression(frame: pd.DataFrame) -> LinearRegression:
    return LinearRegression().fit(frame[["x1", "x2"]], frame["price"])


def eval_policy(workspace: Workspace, frame: pd.DataFrame, model: str, target: str,
                rules: list[str], section: str = "performance", setting: str = "") -> Path:
    """Write `frame` as eval.csv and a one-dataset policy over it: the model, the target
    and the rules are what tests vary; `setting` is one more line of the section."""
    workspace.frame("eval.csv", frame)
    return workspace.write("policy.yaml", (
        "mlcheck: 1\nname: test\n"
        f"model: {{{model}}}\n"
        f"data: {{target: {target}, datasets: {{eval: eval.csv}}}}\n"
        f"{section}:\n" + (f"  {setting}\n" if setting else "") + "  rules:\n"
        + "".join(f"    - {rule}\n" for rule in rules)))


BINARY_POLICY = """
mlcheck: 1
name: tiny
model:
  path: model.skops
  task: binary_classification
  features: [x1, x2]
data:
  target: y
  datasets:
    eval: eval.csv
performance:
  rules:
    - {metric: roc_auc, min: 0.7}
    - {metric: accuracy, min: 0.6, by: [group]}
"""


@pytest.fixture
def binary_workspace(workspace: Workspace) -> Workspace:
    """A valid binary policy with a logistic model saved as skops, and its eval data."""
    frame = binary_frame()
    workspace.frame("eval.csv", frame)
    workspace.skops("model.skops", fitted_logistic(frame))
    workspace.policy(BINARY_POLICY)
    return workspace


# ------------------------------------------------------------------ Spark (tests/test_spark*.py)

HAVE_SPARK = importlib.util.find_spec("pyspark") is not None and shutil.which("java")
needs_spark = pytest.mark.skipif(
    not HAVE_SPARK and not os.environ.get("MLCHECK_REQUIRE_SPARK"),
    reason='PySpark or Java is missing (pip install "mlcheck-gate[spark]"; .ci/run installs '
           "both)")
INSTALL = 'pip install "mlcheck-gate[spark]"'


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole test session: two cores, few shuffle
    partitions, no UI."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need pandas and numpy
    session = (SparkSession.builder.master("local[2]").appName("mlcheck-tests")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.driver.memory", "1g").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
