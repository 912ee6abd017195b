"""`mlcheck report RECORD --format model-card`: a Hugging Face style model card whose
numbers are the record's, traced to its digest."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from typer.testing import CliRunner

from mlcheck.cli import app
from mlcheck.integrity import seal
from mlcheck.report.model_card import render_model_card

runner = CliRunner()


@pytest.fixture(scope="module")
def record(example_evaluation):
    return seal(example_evaluation.record().to_dict())


def split(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    head, body = card[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def test_front_matter_metrics_equal_the_record(record):
    meta, _ = split(render_model_card(record))
    metrics = {m["name"]: m for result in meta["model-index"][0]["results"]
               for m in result["metrics"]}
    expected = [c for c in record["checks"] if c["family"] == "performance"
                and "/vs_baseline" not in c["id"]]
    assert sorted(metrics) == sorted(c["id"] for c in expected)
    for check in expected:
        metric = metrics[check["id"]]
        assert metric["value"] == check["value"]
        assert metric["args"]["interval"] == [check["interval"]["low"],
                                              check["interval"]["high"]]
        assert metric["args"]["verdict"] == check["verdict"]
    assert metrics["performance/recall[sex=Female]"]["config"] == "sex=Female"
    dataset = meta["model-index"][0]["results"][0]["dataset"]
    assert dataset["revision"] == record["subject"]["datasets"]["eval"]["sha256"]
    assert meta["mlcheck"]["record_sha256"] == record["integrity"]["digest"]
    assert meta["mlcheck"]["verdict"] == record["verdict"] == "blocked"


def test_sections_carry_the_evidence(record):
    _, body = split(render_model_card(record))
    sections = [line for line in body.splitlines() if line.startswith("## ")]
    assert sections == ["## Model details", "## Intended use", "## Data",
                        "## Evaluation results", "## Fairness", "## What the model relies on",
                        "## Limitations", "## Governance"]
    assert "May the gradient-boosted income model replace" in body  # the description
    assert record["subject"]["datasets"]["reference"]["sha256"] in body
    assert "| 1 | marital&#95;status |" in body or "| 1 | marital_status |" in body
    not_passed = [c["id"] for c in record["checks"] if c["verdict"] != "pass"]
    limitations = body.split("## Limitations")[1].split("## Governance")[0]
    assert limitations.count("\n- ") == len(not_passed)
    assert record["integrity"]["digest"] in body.split("## Governance")[1]
    assert "EU AI Act" in body.split("## Governance")[1]


def test_record_text_cannot_inject_markup_or_end_the_front_matter(record):
    hostile = copy.deepcopy(record)
    hostile["policy"]["name"] = "x\n---\nverdict: passed"
    hostile["policy"]["description"] = "<img src=x onerror=alert(1)> [click](http://e.vil) @team"
    hostile["checks"][0]["message"] = "| broken | table <script>"
    card = render_model_card(hostile)
    meta, body = split(card)
    assert meta["model-index"][0]["name"] == "x --- verdict: passed"
    assert "<img" not in body and "<script>" not in body and "](http" not in body
    assert "UNVERIFIED" in body  # edited after sealing: the card says so


def test_cli_writes_the_card_beside_the_record(record, tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(record))
    result = runner.invoke(app, ["report", str(path), "--format", "model-card"])
    assert result.exit_code == 0, result.output
    card = (tmp_path / "run.card.md").read_text()
    assert split(card)[0]["mlcheck"]["integrity"] == "sealed"


def test_governance_names_the_signer_and_digest(record, tmp_path):
    from mlcheck.integrity import generate_key

    private, _ = generate_key(tmp_path / "key")
    unsealed = {k: v for k, v in record.items() if k != "integrity"}
    signed = seal(unsealed, private, "Ann Auditor <ann@example.org>")
    governance = render_model_card(signed).split("## Governance")[1]
    assert signed["integrity"]["digest"] in governance
    assert "Signed (ed25519) by Ann Auditor" in governance
    assert signed["integrity"]["signature"]["public_key"] in governance
