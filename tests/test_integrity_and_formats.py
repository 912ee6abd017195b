"""The governance report's integrity (digest, signature, verify) and its other formats
(Markdown, SARIF, JUnit) and comparison with a previous record."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from mlcheck.cli import app
from mlcheck.integrity import digest, seal

from .conftest import BINARY_POLICY

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def signed(binary_workspace):
    """A checked tiny policy with a failing rule, signed with a fresh key."""
    binary_workspace.policy(BINARY_POLICY + "    - {metric: accuracy, min: 0.99}\n")
    assert run("keygen", "-o", "keys/alice").exit_code == 0
    done = run("check", "policy.yaml", "--json", "r.json", "--report", "r.html",
               "--sign", "keys/alice", "--signer", "Alice <alice@example.org>")
    assert done.exit_code == 1, done.output
    return binary_workspace


def test_a_signed_record_and_its_report_verify(signed):
    record = json.loads((signed.root / "r.json").read_text())
    assert record["integrity"]["digest"] == digest(record)
    assert record["integrity"]["signature"]["signer"] == "Alice <alice@example.org>"
    for name in ("r.json", "r.html"):
        done = run("verify", name, "--public-key", "keys/alice.pub")
        assert done.exit_code == 0, done.output
        assert "INTACT" in done.output and "signature by Alice" in done.output
    html = (signed.root / "r.html").read_text()
    assert "Signed (ed25519) by <strong>Alice &lt;alice@example.org&gt;</strong>" in html
    assert record["integrity"]["digest"] in html
    artifacts = run("verify", "r.json", "--artifacts", ".")
    assert artifacts.exit_code == 0 and "model.skops: SHA-256 matches" in artifacts.output


def test_verify_catches_an_edited_value_an_edited_page_and_another_key(signed):
    root = signed.root
    record = json.loads((root / "r.json").read_text())
    failing = next(c for c in record["checks"] if c["verdict"] == "fail")
    failing["verdict"], failing["blocking"] = "pass", False
    (root / "edited.json").write_text(json.dumps(record))
    done = run("verify", "edited.json")
    assert done.exit_code == 1
    assert "digest mismatch" in done.output and "ALTERED" in done.output
    page = (root / "r.html").read_text().replace("BLOCKED", "PASSED", 1)
    (root / "edited.html").write_text(page)
    done = run("verify", "edited.html")
    assert done.exit_code == 1 and "the visible report was edited" in done.output
    # re-signed by someone else: intact on its own, but not by the expected key
    assert run("keygen", "-o", "keys/mallory").exit_code == 0
    resealed = seal({k: v for k, v in json.loads((root / "r.json").read_text()).items()
                     if k != "integrity"}, root / "keys/mallory", "Mallory <m@example.org>")
    (root / "resigned.json").write_text(json.dumps(resealed))
    assert run("verify", "resigned.json").exit_code == 0
    done = run("verify", "resigned.json", "--public-key", "keys/alice.pub")
    assert done.exit_code == 1 and "signed with another key" in done.output
    # a tampered signature value
    resealed["integrity"]["signature"]["signer"] = "Alice <alice@example.org>"
    (root / "forged.json").write_text(json.dumps(resealed))
    done = run("verify", "forged.json")
    assert done.exit_code == 1 and "signature does not match" in done.output
    # a changed model file
    (root / "model.skops").write_bytes(b"not the model")
    done = run("verify", "r.json", "--artifacts", ".")
    assert done.exit_code == 1 and "model model.skops: SHA-256" in done.output


def test_signing_needs_a_signer_and_a_real_key(binary_workspace):
    done = run("check", "policy.yaml", "--sign", "nokey")
    assert done.exit_code == 2 and "--sign needs --signer" in done.stderr
    done = run("check", "policy.yaml", "--sign", "nokey", "--signer", "A <a@b>")
    assert done.exit_code == 2 and "signing key not found: nokey" in done.stderr
    assert not (binary_workspace.root / "reports").exists()  # failed before the run
    assert run("keygen", "-o", "k").exit_code == 0
    again = run("keygen", "-o", "k")
    assert again.exit_code == 2 and "refusing to overwrite a key" in again.stderr
    assert oct((binary_workspace.root / "k").stat().st_mode)[-3:] == "600"


def test_markdown_sarif_and_junit(signed):
    root = signed.root
    assert run("report", "r.json", "--format", "markdown").exit_code == 0
    markdown = (root / "r.md").read_text()
    assert markdown.startswith("### mlcheck: tiny: **BLOCKED**")
    assert "| <code>performance/accuracy</code> | fail |" in markdown
    assert "record sha256" in markdown
    assert run("report", "r.json", "-f", "sarif", "-o", "r.sarif").exit_code == 0
    sarif = json.loads((root / "r.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    result = sarif["runs"][0]["results"][0]
    assert result["ruleId"] == "performance/accuracy" and result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    line = (root / "policy.yaml").read_text().splitlines().index(
        "    - {metric: accuracy, min: 0.99}") + 1
    assert location == {"artifactLocation": {"uri": "policy.yaml", "uriBaseId": "%SRCROOT%"},
                        "region": {"startLine": line}}
    assert run("report", "r.json", "-f", "junit").exit_code == 0
    suite = ET.parse(root / "r.xml").getroot().find("testsuite")
    assert suite.get("failures") == "1" and suite.get("tests") == "4"
    unknown = run("report", "r.json", "-f", "pdf")
    assert unknown.exit_code == 2 and "unknown --format 'pdf'" in unknown.stderr


def test_compare_with_a_previous_record(signed):
    root = signed.root
    (root / "previous.json").write_text((root / "r.json").read_text())
    signed.policy(BINARY_POLICY.replace("{metric: roc_auc, min: 0.7}",
                                        "{metric: roc_auc, min: 0.99}")
                  + "    - {metric: precision, min: 0.5}\n")
    assert run("check", "policy.yaml", "--json", "r.json", "--report", "r.html").exit_code == 1
    assert run("report", "r.json", "-f", "markdown", "--compare", "previous.json"
               ).exit_code == 0
    markdown = (root / "r.md").read_text()
    assert "**Since the previous record**" in markdown
    assert "- <code>performance/roc_auc</code>: pass → fail" in markdown
    assert "- added: <code>performance/precision</code>" in markdown
    assert "- removed: <code>performance/accuracy</code>" in markdown
    assert run("report", "r.json", "-o", "c.html", "--compare", "previous.json").exit_code == 0
    html = (root / "c.html").read_text()
    assert "Changes since the previous record" in html and "removed check" in html


def test_everything_in_the_report_is_escaped(binary_workspace):
    """A column named like markup and a waiver reason with HTML appear as text."""
    import pandas as pd

    frame = pd.read_csv(binary_workspace.root / "eval.csv").rename(
        columns={"group": "<script>alert(1)</script>"})
    binary_workspace.frame("eval.csv", frame)
    binary_workspace.policy(BINARY_POLICY.replace("by: [group]",
                                                  "by: ['<script>alert(1)</script>']")
                            + "    - {metric: accuracy, min: 0.99}\n" + """waivers:
  - check: performance/accuracy
    reason: "<b onmouseover=alert(2)>ticket</b>"
    approved_by: "<i>x</i>"
    expires: 2999-01-01
""")
    done = run("check", "policy.yaml", "--report", "r.html", "--json", "r.json")
    assert done.exit_code == 0, done.output
    html = (binary_workspace.root / "r.html").read_text()
    assert "<script>alert(1)" not in html and "<b onmouseover" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b onmouseover=alert(2)&gt;ticket&lt;/b&gt;" in html
    assert run("verify", "r.html").exit_code == 0


def test_every_verdict_and_family_renders_in_every_format(example_evaluation):
    """A record holding each verdict in each family renders in HTML (with the controls
    index and the waivers), Markdown, SARIF and JUnit."""
    from mlcheck.report.formats import FORMATS

    record = example_evaluation.record().to_dict()
    families = ("schema", "performance", "fairness", "drift", "explainability",
                "robustness", "custom")
    verdicts = ("pass", "fail", "warn", "waived", "inconclusive", "error")
    template = record["checks"][0]
    checks = []
    for family in families:
        for verdict in verdicts:
            checks.append({**template, "id": f"{family}/{verdict}-check", "family": family,
                           "verdict": verdict, "message": f"{verdict} <in> {family}",
                           "blocking": verdict in ("fail", "error", "inconclusive"),
                           "controls": [f"control for {family}"],
                           "waiver": {"check": "x", "reason": "r", "approved_by": "a",
                                      "expires": "2999-01-01", "was": "fail"}
                           if verdict == "waived" else None})
    record = {**record, "checks": checks, "waivers": [
        {"check": "gone/*", "reason": "old", "approved_by": "a", "expires": "2020-01-01",
         "status": "stale", "checks": []}]}
    rendered = {name: render(record, None) for name, render in FORMATS.items()}
    html = rendered["html"]
    for check in checks:
        assert f'id="{check["id"]}"' in html
        assert f"{check['verdict']} &lt;in&gt; {check['family']}" in html
    for family in families:
        assert f"<h2>{family.capitalize()}</h2>" in html and f"control for {family}" in html
    assert "no check (stale)" in html
    assert "| <code>robustness/error-check</code> | error |" in rendered["markdown"]
    levels = {r["ruleId"]: r["level"] for r in json.loads(rendered["sarif"])["runs"][0]["results"]}
    assert levels["drift/fail-check"] == "error" and levels["drift/warn-check"] == "warning"
    assert levels["drift/waived-check"] == "note" and "drift/pass-check" not in levels
    assert ET.fromstring(rendered["junit"].split("\n", 1)[1]).find("testsuite").get(
        "errors") == str(len(families))


def test_review_findings_on_the_report(signed):
    root = signed.root
    # a report made with --compare verifies: the comparison is embedded with the record
    (root / "previous.json").write_text((root / "r.json").read_text())
    assert run("report", "r.json", "-o", "c.html", "--compare", "previous.json").exit_code == 0
    done = run("verify", "c.html")
    assert done.exit_code == 0, done.output
    # report and verify read the record an HTML report embeds
    assert run("report", "r.html", "-f", "markdown", "-o", "from-html.md").exit_code == 0
    assert (root / "from-html.md").read_text().startswith("### mlcheck: tiny")
    # a crafted verdict cannot reach the page
    record = json.loads((root / "r.json").read_text())
    record["checks"][0]["verdict"] = 'fail"/><script>alert(1)</script><x a="'
    (root / "crafted.json").write_text(json.dumps(record))
    crafted = run("report", "crafted.json", "-o", "crafted.html")
    assert crafted.exit_code == 2 and "unknown verdict" in crafted.stderr
    # unreadable input is exit 2, never "altered" (1)
    (root / "list.json").write_text("[1, 2]")
    assert run("verify", "list.json").exit_code == 2
    record = json.loads((root / "r.json").read_text())
    record["integrity"]["signature"] = "x"
    (root / "damaged.json").write_text(json.dumps(record))
    done = run("verify", "damaged.json")
    assert done.exit_code == 1 and "signature block is damaged" in done.output
    record["integrity"] = {**record["integrity"], "algorithm": "md5"}
    (root / "md5.json").write_text(json.dumps(record))
    assert "unknown digest algorithm 'md5'" in run("verify", "md5.json").output
    # a blank waiver field is refused
    signed.policy(BINARY_POLICY + "waivers:\n  - {check: a, reason: ' ', approved_by: x, "
                  "expires: 2999-01-01}\n")
    blank = run("check", "policy.yaml")
    assert blank.exit_code == 2 and "waivers[0].reason: must not be blank" in blank.stderr


def test_junit_counts_every_blocking_check_and_stays_well_formed():
    from mlcheck.report.formats import render_junit

    check = {"id": "performance/accuracy[group=a\x0bb]", "family": "performance",
             "verdict": "inconclusive", "severity": "block", "value": 0.5, "blocking": True,
             "message": "too wide\x0b", "duration_s": 0.1}
    record = {"kind": "run", "policy": {"name": "p"}, "created_at": "now",
              "checks": [check, {**check, "id": "b", "verdict": "fail"}]}
    suite = ET.fromstring(render_junit(record).split("\n", 1)[1]).find("testsuite")
    assert suite.get("failures") == "2" and len(suite.findall("testcase/failure")) == 2
