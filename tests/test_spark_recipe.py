"""The monitoring recipe of docs/spark.md, as written: a reference profile made with
`mlcheck profile --spark-table`, the drift-only policy on a Spark table run as a daily
job with `--keep-history`, and `mlcheck history` over the kept records."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from mlcheck.cli import app
from tests.conftest import REPO, needs_spark

pytestmark = needs_spark


def run(*args: object):
    """The CLI in this process, so the test session's SparkSession is the active one."""
    return CliRunner().invoke(app, [str(a) for a in args])


def batch(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"amount": rng.lognormal(3 + shift, 0.5, rows),
                         "channel": rng.choice(["web", "app", "store"], rows),
                         "items": rng.integers(1, 9, rows)})


def recipe() -> tuple[str, list[str]]:
    """The recipe's policy and its shell commands, from the docs."""
    text = (REPO / "docs" / "spark.md").read_text()
    section = text[text.index("## A monitoring recipe"):]
    policy = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    commands = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return policy, [line for line in commands.splitlines() if line.startswith("mlcheck ")]


def test_the_monitoring_recipe_runs_as_written(workspace, spark):
    policy, commands = recipe()
    assert commands == ["mlcheck check policies/scoring-drift.yaml --keep-history "
                        "reports/history"]
    # the lake's tables, as global views (`global_temp.<name>` reads like `lake.<name>`)
    spark.createDataFrame(batch(3000, 0)).createOrReplaceGlobalTempView("training_features")
    workspace.write("policies/scoring-drift.yaml",
                    policy.replace("lake.", "global_temp."))
    made = run("profile", "--spark-table", "global_temp.training_features",
               "-o", "policies/reference.json")
    assert made.exit_code == 0, made.output
    codes = []
    for day, shift in enumerate((0.0, 0.0, 0.5)):  # two quiet days, then a shift
        spark.createDataFrame(batch(2000, 10 + day, shift)).createOrReplaceGlobalTempView(
            "scoring_log_today")
        done = run(*commands[0].split()[1:])
        codes.append(done.exit_code)
        assert "Traceback" not in done.output
    assert codes == [0, 0, 1]
    kept = sorted((workspace.root / "reports" / "history").glob("*.json"))
    assert len(kept) == 3
    trend = run("history", *kept, "-o", "trend.html")
    assert trend.exit_code == 0, trend.output
    assert "scoring log drift" in (workspace.root / "trend.html").read_text()
