"""`mlcheck history`, `check --keep-history`, and `report --compare` saying whether a verdict
changed because of the policy's bound or the value."""

from __future__ import annotations

import copy
import json
import re

from typer.testing import CliRunner

from mlcheck.cli import app
from mlcheck.history import render_history
from mlcheck.report.formats import compare, render_markdown

from .conftest import BINARY_POLICY

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_keep_history_then_history_shows_values_and_the_policy_change(binary_workspace):
    root = binary_workspace.root
    assert run("check", "policy.yaml", "--json", "r.json", "--report", "r.html",
               "--keep-history", "kept").exit_code == 0
    binary_workspace.policy(BINARY_POLICY.replace("{metric: roc_auc, min: 0.7}",
                                                  "{metric: roc_auc, min: 0.99}"))
    assert run("check", "policy.yaml", "--json", "r.json", "--report", "r.html",
               "--keep-history", "kept").exit_code == 1
    kept = sorted((root / "kept").iterdir())
    assert len(kept) == 2 and all(re.fullmatch(r"tiny-\d{8}T\d{6}Z(_2)?\.json", p.name)
                                  for p in kept)  # a second run in the same second: _2
    assert json.loads(kept[-1].read_text()) == json.loads((root / "r.json").read_text())
    result = run("history", *kept, "-o", "history.html")
    assert result.exit_code == 0, result.output
    page = (root / "history.html").read_text()
    assert "<script" not in page and page.count("<svg") >= 1
    assert "Where the policy changed" in page
    assert re.search(r"bounds changed: <code>performance/roc_auc</code> min 0.7000 → "
                     r"min 0.9900", page)
    assert "the policy&#39;s bound changed (min 0.7000 → min 0.9900); the value did not" in page
    assert "1: pass" in page and "2: fail" in page  # the verdict timeline
    # the same records in another order give the same bytes (runs are ordered by time)
    assert run("history", *reversed(kept), "-o", "again.html").exit_code == 0
    assert (root / "again.html").read_text() == page


def _record(name: str, created: str, value: float, bound: float, sha: str) -> dict:
    check = {"id": "performance/roc_auc", "family": "performance", "verdict":
             "pass" if value >= bound else "fail", "value": value, "bounds": {"min": bound},
             "interval": {"low": value - 0.01, "high": value + 0.01, "confidence": 0.95},
             "n": 100, "message": "m"}
    return {"record_version": 1, "kind": "run", "created_at": created,
            "verdict": check["verdict"],
            "policy": {"name": name, "sha256": sha}, "checks": [check]}


def test_history_refuses_records_of_different_policies_unless_grouped(binary_workspace):
    root = binary_workspace.root
    assert run("check", "policy.yaml", "--json", "a.json", "--report", "a.html").exit_code == 0
    binary_workspace.policy(BINARY_POLICY.replace("name: tiny", "name: other"))
    assert run("check", "policy.yaml", "--json", "b.json", "--report", "b.html").exit_code == 0
    result = run("history", "a.json", "b.json", "-o", "h.html")
    assert result.exit_code == 2 and "different policies (other, tiny)" in result.output
    assert not (root / "h.html").exists()
    result = run("history", "a.json", "b.json", "-o", "h.html", "--group-by-policy")
    assert result.exit_code == 0, result.output
    page = (root / "h.html").read_text()
    assert "Policy other: 1 run" in page and "Policy tiny: 1 run" in page


def test_history_escapes_record_text_and_marks_unsealed_runs():
    record = _record("<script>alert(1)</script>", "2026-01-01T00:00:00+00:00", 0.9, 0.8,
                     "0" * 64)
    record["checks"][0]["id"] = "performance/<img src=x onerror=alert(1)>"
    page = render_history([("<b>r.json</b>", record, "unsealed")])
    assert "<script>alert" not in page and "<img" not in page and "<b>r.json" not in page
    assert "(unsealed)" in page


def test_compare_says_whether_the_bound_or_the_value_changed():
    before = _record("p", "2026-01-01T00:00:00+00:00", 0.85, 0.8, "0" * 64)
    stricter = _record("p", "2026-01-02T00:00:00+00:00", 0.85, 0.9, "1" * 64)
    worse = _record("p", "2026-01-02T00:00:00+00:00", 0.75, 0.8, "0" * 64)
    (change,) = compare(stricter, before)["verdict_changes"]
    assert change["cause"] == "bound" and "the value did not" in change["why"]
    assert compare(stricter, before)["policy_changed"]
    (change,) = compare(worse, before)["verdict_changes"]
    assert change["cause"] == "value" and "under the same bound" in change["why"]
    both = copy.deepcopy(worse)
    both["checks"][0]["bounds"] = {"min": 0.9}
    assert compare(both, before)["verdict_changes"][0]["cause"] == "bound and value"
    stricter.update(counts={"fail": 1}, integrity={"digest": None})
    before.update(counts={"pass": 1})
    for record in (stricter, before):
        record["checks"][0].update(blocking=record["verdict"] == "fail", description="",
                                   severity="block")
    markdown = render_markdown(stricter, before, status="unsealed")
    assert ("<code>performance/roc&#95;auc</code>: pass → fail: the policy's bound changed"
            in markdown or "<code>performance/roc_auc</code>: pass → fail: the policy's bound "
            "changed" in markdown)
    assert "the policy changed between the two records" in markdown
