"""Hostile text in data, policies and records: what reaches the terminal carries no control
characters, Markdown carries no live markup, one huge value cannot inflate the outputs, and
a report of an altered record says so instead of showing a forged PASSED."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from mlcheck.cli import app
from mlcheck.report.formats import render_markdown
from mlcheck.report.text import terminal_text
from mlcheck.result import MAX_TEXT, CheckResult

from .conftest import BINARY_POLICY, binary_frame, fitted_logistic

runner = CliRunner()
ERASE = "\x1b[2K\x1b[1APASSED"  # erase the line above, print PASSED in its place
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                      "\u202a-\u202e\u2066-\u2069]")
BIG = 5 * 1024 * 1024
ALTERED = "does not match its content"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def hostile_frame():
    """The tiny binary data with a group value that tries to erase the BLOCKED line."""
    frame = binary_frame()
    frame["group"] = frame["group"].replace({"a": ERASE + "\b\u202e"})
    return frame


# ------------------------------------------------------------------------ terminal


@pytest.mark.parametrize("text", [ERASE, "a\rPASSED", "x\b\b\bPASSED", "\x9b2K", "\x00\x07\x7f",
                                  "\u202eDESSAP\u202c", "\u2066x\u2069", "line\nPASSED"])
def test_terminal_text_shows_control_characters_as_escapes(text):
    safe = terminal_text(text)
    assert not CONTROLS.search(safe) and "\n" not in safe
    assert "PASSED" in safe or "DESSAP" in safe or "\\x" in safe or "\\u" in safe


def test_terminal_text_names_the_character():
    assert terminal_text(ERASE) == "\\x1b[2K\\x1b[1APASSED"
    assert terminal_text("a\tb\nc\u202e") == "a\\tb\\nc\\u202e"
    assert terminal_text("plain text, [brackets] and ünïcode") == \
        "plain text, [brackets] and ünïcode"


def test_check_summary_cannot_erase_the_blocked_line(workspace):
    workspace.frame("eval.csv", hostile_frame())
    workspace.skops("model.skops", fitted_logistic(binary_frame()))
    workspace.policy(BINARY_POLICY + "    - {metric: recall, min: 0.99, by: [group]}\n"
                     "fairness:\n  sensitive: [group]\n  rules:\n"
                     "    - {metric: selection_rate, min: 0.99}\n")
    done = run("check", "policy.yaml", "-v")
    assert done.exit_code == 1, done.output
    assert not CONTROLS.search(done.output)
    assert "performance/recall[group=\\x1b[2K\\x1b[1APASSED\\x08\\u202e]" in done.output
    assert "\\x1b[2K\\x1b[1APASSED\\x08\\u202e: n=" in done.output  # a fairness group line
    assert done.output.splitlines()[-2].startswith("BLOCKED")


def test_validate_and_errors_show_policy_text_without_controls(workspace):
    workspace.policy('mlcheck: 1\nname: "gate\\e[2K\\rPASSED"\n'
                     "data: {datasets: {eval: eval.csv}}\nschema: {columns: {x1: {}}}\n")
    workspace.frame("eval.csv", binary_frame())
    done = run("validate", "policy.yaml")
    assert done.exit_code == 0, done.output
    assert not CONTROLS.search(done.output)
    assert "gate\\x1b[2K\\rPASSED" in done.output
    workspace.policy('mlcheck: 1\nname: x\n"\\e[2Kbad": 1\n')
    done = run("validate", "policy.yaml")
    assert done.exit_code == 2 and not CONTROLS.search(done.stderr)
    assert "\\x1b[2Kbad" in done.stderr


def test_verify_output_shows_a_forged_signer_without_controls(binary_workspace):
    from mlcheck.integrity import seal

    assert run("check", "policy.yaml", "--json", "r.json").exit_code == 0
    assert run("keygen", "-o", "k").exit_code == 0
    record = json.loads((binary_workspace.root / "r.json").read_text())
    record.pop("integrity")
    sealed = seal(record, binary_workspace.root / "k", f"Mallory {ERASE}")
    (binary_workspace.root / "s.json").write_text(json.dumps(sealed))
    done = run("verify", "s.json")
    assert done.exit_code == 0, done.output
    assert not CONTROLS.search(done.output) and "Mallory \\x1b[2K" in done.output


def test_pytest_failure_text_and_summary_have_no_controls(pytester):
    import skops.io as sio

    hostile_frame().to_csv(pytester.path / "eval.csv", index=False)
    sio.dump(fitted_logistic(binary_frame()), pytester.path / "model.skops")
    (pytester.path / "gate.yaml").write_text(
        BINARY_POLICY.lstrip().replace("{metric: accuracy, min: 0.6, by: [group]}",
                                       "{metric: accuracy, min: 0.6}")
        + "fairness:\n  sensitive: [group]\n  rules:\n"
        "    - {metric: selection_rate, min: 0.99}\n")
    result = pytester.runpytest("--mlcheck", "gate.yaml", "-p", "no:cacheprovider")
    text = result.stdout.str()
    failure = text.split("FAILURES")[1].split("short test summary")[0]
    assert "\\x1b[2K\\x1b[1APASSED\\x08\\u202e: n=" in failure
    assert not CONTROLS.search(failure)
    summary = text.split(" mlcheck ")[-1]
    assert "gate.yaml: BLOCKED" in summary and not CONTROLS.search(summary)


# ------------------------------------------------------------------------ markdown


HOSTILE = [
    "@team please approve", "![pixel](https://evil.example/p.png)", "[click](https://evil.example)",
    "<https://evil.example>", "https://evil.example/x", "www.evil.example", "<img src=x>",
    "<script>alert(1)</script>", "a | b | c", "code `span` and ``two``", "line\n# heading",
    "**bold** _em_ ~~gone~~", "&amp; &#64;", "a\\|b", "mail me@evil.example", ":warning: #12",
    "$x^2$", "\x1b[2Kerased",
]


def hostile_record() -> dict:
    checks = [{"id": f"performance/recall[g={text}]", "family": "performance",
               "severity": "block", "verdict": "fail", "blocking": True, "value": 0.5,
               "bounds": {"min": 0.9}, "message": f"recall {text} too low", "waiver": None}
              for text in HOSTILE]
    checks.append({**checks[0], "id": "warned", "verdict": "warn", "blocking": False,
                   "message": "@team ![x](y)"})
    return {"kind": "run", "verdict": "blocked", "policy": {"name": "@team ![x](y) `z`"},
            "counts": {"fail": len(HOSTILE), "warn": 1}, "checks": checks,
            "waivers": [{"check": "@team/*", "status": "expired", "approved_by": "[x](y)",
                         "expires": "2000-01-01"}]}


def test_markdown_has_no_live_mentions_links_images_or_html():
    text = render_markdown(hostile_record())
    assert not re.search(r"@\w", text)  # no mention, no e-mail address
    assert not re.search(r"(https?|ftp)://|www\.", text, re.I)  # no autolink
    for fragment in ("![", "](", "<img", "<script", "`", "**bold**", "~~", "$x", "\x1b"):
        assert fragment not in text, fragment
    allowed = ("### mlcheck", "|", "**Blocked by**", "<details>", "</details>", "- expired",
               "<sub>", "> ", "**Headline values**", "**Checks by family**")
    for line in text.splitlines():
        assert not line or line.startswith(allowed) or line[0].isdigit(), line


def test_markdown_table_cells_hold_whatever_the_text(tmp_path):
    markdown_it = pytest.importorskip("markdown_it")
    text = render_markdown(hostile_record())
    rows = [line for line in text.splitlines() if line.startswith("|")]
    tables = sum(line.startswith("|---") for line in rows)
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert tables == 4 and html.count("<tr>") == len(rows) - tables  # a row is a table row
    assert html.count("<td>") == 5 * (len(rows) - 2 * tables)  # five cells each, no more
    assert "<a " not in html and "<img" not in html and "<script" not in html
    assert "<em>" not in html and "<strong>bold" not in html and "<h1>" not in html
    tags = set(re.findall(r"</?([a-z0-9]+)", html))
    assert tags <= {"h3", "p", "strong", "table", "thead", "tbody", "tr", "th", "td",
                    "code", "details", "summary", "ul", "li", "sub", "blockquote"}, tags


# ------------------------------------------------------------------- large values


def test_a_huge_string_is_cut_stating_its_length_and_only_once():
    result = CheckResult(id="x", family="robustness", severity="block", verdict="error",
                         message="model raised: " + "x" * BIG, evidence={"row": {"a": "y" * BIG}})
    record = result.to_dict()
    assert len(record["message"]) <= MAX_TEXT
    assert record["message"].endswith(f"[truncated, {BIG + 14:,} characters]")
    assert record["evidence"]["row"]["a"].endswith(f"[truncated, {BIG:,} characters]")
    assert CheckResult(**record).to_dict() == record  # a record read back stays the same
    assert len(terminal_text("x" * BIG)) <= MAX_TEXT


def test_failure_text_of_a_huge_message_is_short():
    from mlcheck.plugin import failure_text

    result = CheckResult(id="x", family="robustness", severity="block", verdict="error",
                         message="model raised: " + "x" * BIG)
    assert len(failure_text(result)) < 3 * MAX_TEXT


def test_a_5mb_category_value_keeps_record_report_and_terminal_small(workspace):
    frame = binary_frame()
    frame["kind"] = "ok"
    frame.loc[3, "kind"] = "v" * BIG
    workspace.frame("eval.csv", frame)
    workspace.policy("mlcheck: 1\nname: big\ndata: {datasets: {eval: eval.csv}}\n"
                     "schema:\n  columns:\n    kind: {dtype: str, checks: {isin: [ok]}}\n")
    done = run("check", "policy.yaml", "--json", "r.json", "--report", "r.html", "-v")
    assert done.exit_code == 1, done.output
    assert len(done.output) < 10_000
    for name in ("r.json", "r.html"):
        assert (workspace.root / name).stat().st_size < 1_000_000
    record = json.loads((workspace.root / "r.json").read_text())
    example = record["checks"][0]["evidence"]["datasets"]["eval"]["examples"][0]
    assert example.endswith(f"…[truncated, {BIG:,} characters]") and len(example) <= MAX_TEXT
    assert run("verify", "r.html").exit_code == 0
    assert run("report", "r.json", "-f", "markdown").exit_code == 0
    assert ALTERED not in (workspace.root / "r.md").read_text()


# ------------------------------------------------------------------ altered records


@pytest.fixture
def checked(binary_workspace):
    """A blocked, sealed record r.json (and its report r.html) of the tiny policy."""
    binary_workspace.policy(BINARY_POLICY + "    - {metric: accuracy, min: 0.99}\n")
    done = run("check", "policy.yaml", "--json", "r.json", "--report", "r.html")
    assert done.exit_code == 1, done.output
    return binary_workspace


def forge(root, name: str, unseal: bool = False) -> dict:
    """r.json with its failing check turned into a pass, as someone editing it would."""
    record = json.loads((root / "r.json").read_text())
    for check in record["checks"]:
        check["verdict"], check["blocking"] = "pass", False
    record["verdict"] = "passed"
    record["counts"] = {**record["counts"], "pass": len(record["checks"]), "fail": 0}
    if unseal:
        record.pop("integrity")
    (root / name).write_text(json.dumps(record))
    return record


def render_all(root, name: str) -> dict[str, str]:
    texts = {}
    for form, suffix in (("html", "html"), ("markdown", "md"), ("sarif", "sarif"),
                         ("junit", "xml")):
        done = run("report", name, "-f", form, "-o", f"out.{suffix}")
        assert done.exit_code == 0, done.output
        texts[form] = (root / f"out.{suffix}").read_text()
        texts[f"{form} stderr"] = done.stderr
    return texts


def test_a_report_of_an_altered_record_says_so_in_every_format(checked):
    forge(checked.root, "forged.json")
    texts = render_all(checked.root, "forged.json")
    html = texts["html"]
    assert ALTERED in html and "UNVERIFIED" in html
    assert "PASSED" not in html and "may be promoted" not in html
    assert "— unverified</title>" in html
    markdown = texts["markdown"]
    assert markdown.startswith("> **UNVERIFIED:") and ALTERED in markdown
    assert "**PASSED**" not in markdown
    sarif = json.loads(texts["sarif"])["runs"][0]
    flagged = [r for r in sarif["results"] if r["ruleId"] == "mlcheck/record-integrity"]
    assert flagged and flagged[0]["level"] == "error"
    assert ALTERED in flagged[0]["message"]["text"]
    assert sarif["properties"]["integrity"] == "altered"
    suites = ET.fromstring(texts["junit"].split("\n", 1)[1])
    failures = suites.findall("testsuite/testcase[@name='mlcheck/record-integrity']/failure")
    assert failures and ALTERED in failures[0].get("message")
    assert all(ALTERED in texts[f"{form} stderr"] for form in ("html", "markdown"))
    assert run("verify", "out.html").exit_code == 1


def test_a_report_of_an_unsealed_record_says_it_is_unsealed(checked):
    forge(checked.root, "unsealed.json", unseal=True)
    texts = render_all(checked.root, "unsealed.json")
    for form in ("html", "markdown", "sarif", "junit"):
        assert "is unsealed" in texts[form], form
        assert ALTERED not in texts[form], form
    assert texts["markdown"].startswith("> This record is unsealed")
    sarif = json.loads(texts["sarif"])["runs"][0]
    assert sarif["properties"]["integrity"] == "unsealed"
    assert [r["level"] for r in sarif["results"]
            if r["ruleId"] == "mlcheck/record-integrity"] == ["note"]


def test_a_genuine_record_renders_as_it_did_and_verifies(checked):
    texts = render_all(checked.root, "r.json")
    for form in ("html", "markdown", "sarif", "junit"):
        assert ALTERED not in texts[form] and "is unsealed" not in texts[form], form
        assert "UNVERIFIED" not in texts[form] and not texts[f"{form} stderr"]
    assert texts["html"] == (checked.root / "r.html").read_text()
    assert texts["markdown"].startswith("### mlcheck: tiny: **BLOCKED**")
    assert run("verify", "out.html").exit_code == 0
    assert "record-integrity" not in texts["sarif"] + texts["junit"]


def test_a_forged_signature_is_never_rendered_as_a_real_one(tmp_path, monkeypatch):
    """A record resealed with a made-up signature block: its digest holds, its signature
    does not; every format must say UNVERIFIED, not "Signed by CISO"."""
    import base64
    import os as os_module

    from mlcheck.integrity import seal
    from mlcheck.report.text import record_status

    record = seal({"record_version": 1, "kind": "run", "verdict": "passed"})
    assert record_status(record) == "sealed"
    record["integrity"]["signature"] = {
        "algorithm": "ed25519", "signer": "CISO <ciso@example.org>",
        "signed_at": "2026-11-30T00:00:00+00:00",
        "public_key": base64.b64encode(os_module.urandom(32)).decode(),
        "value": base64.b64encode(os_module.urandom(64)).decode()}
    assert record_status(record) == "altered"
    record["integrity"]["signature"] = {"signer": "CISO"}  # damaged
    assert record_status(record) == "altered"
    record["integrity"] = {"algorithm": "md5", "digest": None}  # malformed, not unsealed
    assert record_status(record) == "altered"
