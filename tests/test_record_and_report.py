"""The JSON record (versioned, plain JSON) and the HTML report rendered from it alone."""

from __future__ import annotations

import json
import re

import pytest

from mlcheck.outputs import write_atomic
from mlcheck.report import render_html
from mlcheck.result import CheckResult, RunResult

from .conftest import REPO


@pytest.fixture
def record(example_evaluation) -> dict:
    return example_evaluation.record().to_dict()


def test_record_holds_what_an_auditor_needs(record):
    assert record["record_version"] == 1
    assert record["mlcheck_version"]
    assert record["verdict"] == "blocked"
    policy = record["policy"]
    assert policy["name"] == "adult-income"
    assert len(policy["sha256"]) == 64
    assert policy["sources"][0]["path"].endswith("adult-income.yaml")
    assert policy["resolved"]["performance"]["rules"][0]["metric"] == "roc_auc"
    assert set(record["subject"]["datasets"]) == {"eval", "reference"}
    assert record["subject"]["model"]["sha256"]
    env = record["environment"]
    assert env["python"] and env["packages"]["scikit-learn"] and env["platform"]
    assert set(record["timings"]) == {"load_s", "checks_s", "total_s"}
    for check in record["checks"]:
        assert {"id", "family", "verdict", "value", "bounds", "n", "message",
                "evidence"} <= set(check)


def test_record_is_plain_json_and_round_trips(record):
    text = json.dumps(record, allow_nan=False)
    again = RunResult.from_dict(json.loads(text)).to_dict()
    assert again == record


def test_nan_and_numpy_values_become_plain_json():
    import numpy as np

    check = CheckResult(id="x", family="performance", severity="block", verdict="error",
                        value=float("nan"), evidence={"a": np.float64(1.5), "b": np.int64(2),
                                                      "c": (1, 2)})
    assert check.to_dict()["value"] is None
    assert check.to_dict()["evidence"] == {"a": 1.5, "b": 2, "c": [1, 2]}


def test_unknown_record_version_is_refused(record):
    with pytest.raises(ValueError, match="unsupported record_version"):
        RunResult.from_dict({**record, "record_version": 99})


def test_every_record_key_is_documented(record):
    doc = (REPO / "docs" / "record.md").read_text()
    keys = set(record) | {f"checks[].{k}" for k in record["checks"][0]} | {
        f"policy.{k}" for k in record["policy"]} | {f"subject.{k}" for k in record["subject"]}
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, f"docs/record.md does not describe: {missing}"


def test_report_escapes_everything_from_the_record(record):
    hostile = json.loads(json.dumps(record))
    hostile["policy"]["name"] = "<script>alert('name')</script>"
    hostile["checks"][0]["message"] = "<img src=x onerror=alert(1)>"
    hostile["checks"][0]["evidence"] = {"note": "</pre><script>alert(2)</script>"}
    html = render_html(hostile)
    assert "<script>" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in html


def test_report_is_self_contained_with_an_anchor_per_check(record):
    html = render_html(record)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    scripts = re.findall(r"<script[^>]*>", html)  # no code: only the embedded record
    assert scripts == ['<script type="application/gzip+base64" id="mlcheck-record">']
    for check in record["checks"]:
        assert f'id="{check["id"]}"' in html
    assert "BLOCKED" in html
    assert record["subject"]["model"]["sha256"] in html
    assert len(html.encode()) < 300_000


def test_report_puts_failures_first(record):
    html = render_html(record)
    first_fail = html.index('id="performance/recall[sex=Female]"')
    first_pass = html.index('id="performance/roc_auc"')
    assert first_fail < first_pass


def test_write_atomic_replaces_whole_files(tmp_path):
    target = write_atomic(tmp_path / "sub" / "out.txt", "new")
    assert target.read_text() == "new"
    write_atomic(target, "newer")
    assert target.read_text() == "newer"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_report_shows_intervals_and_per_group_tables(record):
    html = render_html(record)
    assert "95% interval [" in html
    fairness = html[html.index('id="fairness/demographic_parity_ratio[sex]"'):]
    assert "<caption" in fairness and "set by Male vs Female" in fairness
    assert ">Female</td>" in fairness
    assert "(not blocking)" in html
