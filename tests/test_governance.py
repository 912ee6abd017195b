"""Governance in the policy: waivers (dated, approved, never hidden) and controls."""

from __future__ import annotations

import json

import pytest

from mlcheck.engine import evaluate
from mlcheck.errors import PolicyError
from mlcheck.policy import matches

from .conftest import BINARY_POLICY

GOVERNED = BINARY_POLICY + """
    - {metric: accuracy, min: 0.99}
    - {metric: recall, min: 0.99, severity: warn}
waivers:
  - check: performance/accuracy
    reason: "Known gap, retraining in RISK-142 <script>alert(1)</script>"
    approved_by: jane.doe@example.org
    expires: 2999-01-31
  - check: "performance/recall"
    reason: Old exception
    approved_by: john@example.org
    expires: 2020-01-01
  - check: "fairness/*"
    reason: Nothing to waive any more
    approved_by: jane.doe@example.org
    expires: 2999-01-31
controls:
  "performance/*": ["EU AI Act Annex IV 2(g)", "NIST AI RMF MEASURE 2.5"]
  "performance/accuracy[group=*]": SR 11-7 outcomes analysis
"""


def test_patterns_match_ids_with_brackets_literally():
    assert matches("performance/recall[sex=Female]", "performance/recall[sex=Female]")
    assert not matches("performance/recall[sex=Female]", "performance/recall[sex=F]")
    assert matches("fairness/*", "fairness/equalized_odds_difference[sex]")
    assert matches("*[sex=*]", "performance/recall[sex=Male]")
    assert not matches("performance/roc_auc", "performance/roc_auc/vs_baseline")


def test_waivers_and_controls(binary_workspace):
    binary_workspace.policy(GOVERNED)
    result = evaluate(binary_workspace.root / "policy.yaml")
    checks = {c.id: c for c in result.checks}
    waived = checks["performance/accuracy"]
    assert waived.verdict == "waived" and not waived.blocking
    assert waived.waiver["was"] == "fail" and waived.waiver["expires"] == "2999-01-31"
    assert waived.message.startswith("waived until 2999-01-31 by jane.doe@example.org: "
                                     "Known gap")
    expired = checks["performance/recall"]
    assert expired.verdict == "warn" and "(waiver by john@example.org expired 2020-01-01)" \
        in expired.message
    assert result.verdict == "passed"  # the waived failure no longer blocks
    assert [w["status"] for w in result.waivers] == ["active", "expired", "stale"]
    assert result.waivers[0]["checks"] == ["performance/accuracy"]
    assert checks["performance/roc_auc"].controls == ["EU AI Act Annex IV 2(g)",
                                                      "NIST AI RMF MEASURE 2.5"]
    assert checks["performance/accuracy[group=a]"].controls[-1] == \
        "SR 11-7 outcomes analysis"
    record = result.to_dict()
    assert record["counts"]["waived"] == 1 and len(record["waivers"]) == 3


def test_stale_and_expired_waivers_are_shown_by_the_cli(binary_workspace):
    from typer.testing import CliRunner

    from mlcheck.cli import app

    binary_workspace.policy(GOVERNED)
    done = CliRunner().invoke(app, ["check", "policy.yaml", "--json", "r.json"])
    assert done.exit_code == 0, done.output
    assert "STALE WAIVER  fairness/* names no check of this policy" in done.output
    assert "EXPIRED WAIVER  performance/recall expired 2020-01-01" in done.output
    assert "WAIVED" in done.output
    record = json.loads((binary_workspace.root / "r.json").read_text())
    waived = next(c for c in record["checks"] if c["id"] == "performance/accuracy")
    assert waived["waiver"]["approved_by"] == "jane.doe@example.org"


@pytest.mark.parametrize(("waiver", "message"), [
    ("{check: a, reason: r, approved_by: x}", "missing required key 'expires'"),
    ("{check: a, reason: r, approved_by: x, expires: tomorrow}", "waivers[0].expires"),
    ("{check: a, reason: '', approved_by: x, expires: 2030-01-01}", "at least 1 character"),
    ("{check: a, approver: x, reason: r, expires: 2030-01-01}", "unknown key 'approver'"),
])
def test_a_waiver_needs_every_field(binary_workspace, waiver, message):
    binary_workspace.policy(BINARY_POLICY + f"waivers:\n  - {waiver}\n")
    with pytest.raises(PolicyError) as caught:
        evaluate(binary_workspace.root / "policy.yaml")
    assert message in str(caught.value)
