"""End to end on real data: mlcheck reproduces published and reference numbers.

Both use data shipped in the repository: the Adult files in examples/adult, and the
COMPAS extract in tests/data (see tests/data/README.md).
"""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlcheck.engine import evaluate

from .conftest import EXAMPLES, REPO

COMPAS = REPO / "tests" / "data" / "compas.csv.gz"
NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]


def test_adult_reference_logistic_regression_accuracy(workspace):
    """shared/data/adult/README.md: 0.847610 test accuracy, unknowns removed (±0.002)."""
    train = pd.read_csv(EXAMPLES / "adult/data/adult-train.csv.gz").dropna()
    test = pd.read_csv(EXAMPLES / "adult/data/adult-test.csv.gz").dropna()
    assert (len(train), len(test)) == (30162, 15060)  # published counts without unknowns
    categorical = [c for c in train.columns if c not in [*NUMERIC, "income"]]
    model = Pipeline([
        ("prepare", ColumnTransformer([("num", StandardScaler(), NUMERIC),
                                       ("cat", OneHotEncoder(handle_unknown="ignore"),
                                        categorical)])),
        ("model", LogisticRegression(max_iter=5000)),
    ]).fit(train.drop(columns=["income"]), train["income"])
    workspace.skops("reference.skops", model)
    workspace.frame("test.csv", test)
    path = workspace.policy("""
        mlcheck: 1
        name: adult-reference
        model: {path: reference.skops, task: binary_classification}
        data: {target: income, positive_label: ">50K", datasets: {eval: test.csv}}
        performance:
          rules: [{metric: accuracy, min: 0.845, max: 0.85}]
        """)
    check = evaluate(path).checks[0]
    assert check.value == pytest.approx(0.847610, abs=0.002)
    assert check.verdict == "pass"


def test_compas_vendor_scores_reproduce_propublica_black_box(workspace):
    """Black-box audit of COMPAS deciles (high risk = decile >= 5), all 7,214 rows:
    ProPublica's published FNR 27.99% (African-American) and 47.72% (Caucasian)."""
    path = workspace.policy(f"""
        mlcheck: 1
        name: compas-vendor-audit
        model: {{task: binary_classification, scores: decile_score, threshold: 5}}
        data: {{target: two_year_recid, datasets: {{eval: "{COMPAS}"}}}}
        performance:
          rules:
            - {{metric: recall, min: 0.6, by: [race]}}
            - {{metric: accuracy, min: 0.6, by: [race]}}
        """)
    result = evaluate(path)
    checks = {c.id: c for c in result.checks}
    aa, white = "performance/recall[race=African-American]", "performance/recall[race=Caucasian]"
    assert 1 - checks[aa].value == pytest.approx(0.279853, abs=1e-6)
    assert 1 - checks[white].value == pytest.approx(0.477226, abs=1e-6)
    assert checks[aa].n == 3696 and checks[white].n == 2454
    assert checks["performance/accuracy[race=African-American]"].value == pytest.approx(
        0.638258, abs=1e-6)
    assert checks[white].verdict == "fail"  # the vendor's score misses half of them
    assert result.subject["model"]["kind"] == "columns"
