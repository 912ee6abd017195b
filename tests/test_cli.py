"""End-to-end tests of the `mlcheck` command on the bundled example and on bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mlcheck.cli import app

from .conftest import BINARY_POLICY, EXAMPLE_POLICY, EXAMPLES

runner = CliRunner()
FAILING_RULES = ("    - {metric: recall, min: 0.62, by: [sex]}\n",
                 "    - {test: not_in_top, k: 3, features: [sex, race, marital_status, "
                 "relationship]}\n")


def typo_line() -> int:
    lines = EXAMPLE_POLICY.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if "metric: brier_score" in line)


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def example_copy(workspace, drop_failing_rule: bool = False, typo: bool = False):
    """The example policy, written into the workspace with its paths made absolute."""
    text = EXAMPLE_POLICY.read_text().replace("../examples/", f"{EXAMPLES}/").replace(
        "extends: controls/", f"extends: {EXAMPLE_POLICY.parent}/controls/")
    if drop_failing_rule:
        for rule in FAILING_RULES:
            assert rule in text
            text = text.replace(rule, "")
    if typo:
        text = text.replace("metric: brier_score", "metric: brier")
    path = workspace.root / "adult.yaml"
    path.write_text(text)
    return path


def test_example_is_blocked_by_the_intended_rules(workspace):
    result = run("check", example_copy(workspace))
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output
    assert "performance/recall[sex=Female]" in result.output
    assert "BLOCKED" in result.output
    record = json.loads((workspace.root / "reports/adult-income.json").read_text())
    assert record["verdict"] == "blocked"
    failing = [c["id"] for c in record["checks"] if c["verdict"] == "fail"]
    assert failing == ["performance/recall[sex=Female]",
                       "explainability/not_in_top[marital_status]"]
    html = (workspace.root / "reports/adult-income.html").read_text()
    assert "BLOCKED" in html and 'id="performance/recall[sex=Female]"' in html


def test_example_passes_without_the_failing_rules(workspace):
    result = run("check", example_copy(workspace, drop_failing_rule=True), "--json", "out.json",
                 "--report", "out.html")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output
    assert json.loads((workspace.root / "out.json").read_text())["verdict"] == "passed"
    assert (workspace.root / "out.html").exists()


def test_policy_typo_exits_2_naming_the_line_and_writes_nothing(workspace):
    result = run("check", example_copy(workspace, typo=True))
    assert result.exit_code == 2
    assert f"adult.yaml:{typo_line()}:8: performance.rules[3].metric" in result.stderr
    assert "'brier' is not allowed (did you mean 'brier_score'?)" in result.stderr
    assert "Traceback" not in result.output
    assert not (workspace.root / "reports").exists()


def test_input_error_exits_2_and_keeps_previous_outputs_untouched(binary_workspace):
    (binary_workspace.root / "old.json").write_text("previous record")
    (binary_workspace.root / "eval.csv").write_text("x1,x2,group,y\n")  # header, no rows
    result = run("check", "policy.yaml", "--json", "old.json", "--report", "new.html")
    assert result.exit_code == 2
    assert "dataset 'eval' (eval.csv) has no rows" in result.stderr
    assert (binary_workspace.root / "old.json").read_text() == "previous record"
    assert not (binary_workspace.root / "new.html").exists()
    assert [p.name for p in binary_workspace.root.iterdir() if p.name.startswith(".")] == []


def test_missing_policy_file_exits_2(workspace):
    result = run("check", "missing.yaml")
    assert result.exit_code == 2
    assert "missing.yaml: policy file not found" in result.stderr


def test_untrusted_pickle_exits_2_with_the_reason(binary_workspace):
    import pickle

    (binary_workspace.root / "model.pkl").write_bytes(pickle.dumps(object()))
    binary_workspace.policy(BINARY_POLICY.replace("model.skops", "model.pkl"))
    result = run("check", "policy.yaml")
    assert result.exit_code == 2
    assert "Unpickling runs arbitrary code" in result.stderr
    trusted = run("check", "policy.yaml", "--trust-model")
    assert trusted.exit_code == 2
    assert "is not a model: object has no `predict` method" in trusted.stderr


def test_summary_lists_what_did_not_pass_and_verbose_lists_all(workspace):
    policy = example_copy(workspace)
    default = run("check", policy).output
    assert "schema/age" not in default
    assert re.search(r"^INCONCLUSIVE +fairness/equal_opportunity_difference\[race\]  "
                     r"inconclusive: the 95% interval is", default, flags=re.M)
    assert ("passed: 16 schema, 9 performance, 1 fairness, 39 drift, 8 explainability, "
            "2 robustness checks") in default
    # whole ids on one line, however narrow the terminal
    assert re.search(r"^WARN +performance/precision\[race=Amer-Indian-Eskimo\]  precision = "
                     r"0\.7500, 95% CI", default, flags=re.M)
    assert "schema/age  valid in eval, reference" in run("check", policy, "-v").output
    assert re.search(r"^ +Female: n=5421, selection_rate 0\.08\d \[0\.0\d\d, 0\.0\d\d\], "
                     r"true_positive_rate 0\.59\d", default, flags=re.M)  # per-group evidence
    quiet = run("check", policy, "-q").stdout.splitlines()
    assert quiet[0].startswith("BLOCKED (75 pass, 2 fail, 7 warn, 1 inconclusive)")


def test_output_paths_are_checked_before_the_run(workspace):
    policy = example_copy(workspace)
    same = run("check", policy, "--json", "out.x", "--report", "out.x")
    assert same.exit_code == 2 and "name the same file" in same.stderr
    (workspace.root / "adir").mkdir()
    directory = run("check", policy, "--report", "adir")
    assert directory.exit_code == 2 and "output path is a directory: adir" in directory.stderr
    assert not (workspace.root / "reports").exists()


def test_paths_with_markup_characters_are_printed_as_given(binary_workspace):
    result = run("check", "policy.yaml", "--json", "[red]x.json", "--report", "r.html")
    assert result.exit_code == 0
    assert "record: [red]x.json" in result.output
    assert (binary_workspace.root / "[red]x.json").exists()


def test_unexpected_failures_exit_2_without_a_traceback(binary_workspace, monkeypatch):
    import mlcheck.cli

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(mlcheck.cli, "render_html", broken)
    result = run("check", "policy.yaml")
    assert result.exit_code == 2
    assert "internal error: RuntimeError: disk on fire" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (binary_workspace.root / "reports").exists()  # neither output was written


def test_validate(workspace):
    assert run("validate", EXAMPLE_POLICY).exit_code == 0
    result = run("validate", example_copy(workspace, typo=True))
    assert result.exit_code == 2
    assert f"adult.yaml:{typo_line()}:8: performance.rules[3].metric" in result.stderr


def test_schema_prints_the_json_schema():
    result = run("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "mlcheck policy"
    assert "performance" in schema["properties"]


def test_report_rerenders_identically_from_the_record(workspace):
    run("check", example_copy(workspace), "--json", "r.json", "--report", "r.html")
    result = run("report", "r.json", "-o", "again.html")
    assert result.exit_code == 0
    assert (workspace.root / "again.html").read_text() == (workspace.root / "r.html").read_text()


def test_report_on_a_file_that_is_not_a_record(workspace):
    (workspace.root / "x.json").write_text('{"hello": 1}')
    result = run("report", "x.json")
    assert result.exit_code == 2
    assert "not a complete mlcheck record" in result.stderr
    assert run("report", "nothing.json").exit_code == 2


@pytest.mark.skipif(shutil.which("mlcheck") is None and not (
    sys.prefix and (shutil.which("mlcheck", path=f"{sys.prefix}/bin"))), reason="not installed")
def test_console_script_is_installed():
    exe = shutil.which("mlcheck", path=f"{sys.prefix}/bin") or shutil.which("mlcheck")
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("mlcheck ")


def test_outputs_never_overwrite_inputs(binary_workspace):
    policy = binary_workspace.root / "policy.yaml"
    before = policy.read_text()
    result = run("check", "policy.yaml", "--json", "policy.yaml")
    assert result.exit_code == 2
    assert "output path policy.yaml is an input of this run" in result.stderr
    assert run("check", "policy.yaml", "--report", "eval.csv").exit_code == 2
    assert policy.read_text() == before
    run("check", "policy.yaml", "--json", "r.json", "--report", "r.html")
    record = binary_workspace.root / "r.json"
    kept = record.read_text()
    again = run("report", "r.json", "-o", "r.json")
    assert again.exit_code == 2 and "is an input of this run" in again.stderr
    assert record.read_text() == kept


def test_a_write_failure_exits_2_with_the_reason(binary_workspace, monkeypatch):
    import mlcheck.cli

    def full_disk(files, **options):
        raise OSError(28, "No space left on device", "r.json")

    monkeypatch.setattr(mlcheck.cli, "write_files", full_disk)
    result = run("check", "policy.yaml", "--json", "r.json", "--report", "r.html")
    assert result.exit_code == 2
    assert "cannot write r.json: No space left on device" in result.stderr


# ------------------------------------------------------------- several policies at once


def several(workspace, **texts: str) -> list[str]:
    """Policies beside the tiny model and data, each named after its file."""
    for name, text in texts.items():
        workspace.policy(text.replace("name: tiny", f"name: {name}"), f"{name}.yaml")
    return [f"{name}.yaml" for name in texts]


BLOCKING_RULE = "    - {metric: accuracy, min: 0.99}\n"


def test_validate_takes_files_globs_and_folders_and_names_each_error(binary_workspace):
    several(binary_workspace, a=BINARY_POLICY, b=BINARY_POLICY.replace("roc_auc", "rocauc"))
    binary_workspace.write("sub/c.yaml", BINARY_POLICY)
    binary_workspace.write("sub/notes.yaml", "title: not a policy\n")
    result = run("validate", "a.yaml", "b.yaml", "sub", "[ab].yaml")
    assert result.exit_code == 2, result.output
    assert "b.yaml:13:8: performance.rules[0].metric: 'rocauc' is not allowed" in result.stderr
    assert result.stdout.splitlines() == ["a.yaml: valid policy 'a'",
                                          "sub/c.yaml: valid policy 'tiny'",
                                          "2 of 3 policies valid"]
    assert run("validate", "a.yaml", "sub").exit_code == 0


def test_validate_only_policies_skips_other_yaml(binary_workspace):
    binary_workspace.write("workflow.yaml", "on: push\n")
    result = run("validate", "--only-policies", "policy.yaml", "workflow.yaml")
    assert result.exit_code == 0, result.output
    assert "workflow.yaml" not in result.output
    assert run("validate", "--only-policies", "workflow.yaml").exit_code == 0
    assert run("validate", "workflow.yaml").exit_code == 2  # named alone: it must be one


@pytest.mark.parametrize("name, message", [("nothing*.yaml", "no file matches this pattern"),
                                           ("empty", "no policy in this folder")])
def test_a_glob_or_folder_without_policies_exits_2(workspace, name, message):
    (workspace.root / "empty").mkdir()
    for command in ("validate", "check"):
        result = run(command, name)
        assert result.exit_code == 2 and f"{name}: {message}" in result.stderr


def test_check_several_policies_writes_each_record_and_the_session(binary_workspace):
    names = several(binary_workspace, good=BINARY_POLICY, bad=BINARY_POLICY + BLOCKING_RULE)
    result = run("check", *names, "--output-dir", "out")
    assert result.exit_code == 1, result.output
    root = binary_workspace.root
    assert {p.name for p in (root / "out").iterdir()} == {
        "good.json", "good.html", "bad.json", "bad.html", "session.json", "session.html"}
    session = json.loads((root / "out/session.json").read_text())
    assert session["kind"] == "session" and session["verdict"] == "blocked"
    assert [r["policy"]["name"] for r in session["runs"]] == ["good", "bad"]
    assert json.loads((root / "out/good.json").read_text())["verdict"] == "passed"
    assert run("verify", "out/session.json", "out/good.json", "out/bad.html").exit_code == 0
    tail = result.stdout.splitlines()[-4:]
    assert tail[0] == "2 policies:"
    assert tail[1].split() == ["PASSED", "good.yaml", "(3", "pass)", "record:",
                               "out/good.json"]
    assert tail[2].startswith("  BLOCKED  bad.yaml (3 pass, 1 fail)")
    assert tail[3].startswith("BLOCKED (1 passed, 1 blocked, 0 not run)   record: "
                              "out/session.json")
    assert run("check", "good.yaml", "good.yaml", "--output-dir", "once").exit_code == 0
    assert not (root / "once/session.json").exists()  # the same policy twice is one


def test_check_several_runs_the_others_when_one_is_invalid_and_exits_2(binary_workspace):
    names = several(binary_workspace, good=BINARY_POLICY,
                    typo=BINARY_POLICY.replace("roc_auc", "rocauc"),
                    nodata=BINARY_POLICY.replace("eval.csv", "missing.csv"))
    result = run("check", *names, "--json", "s.json", "--report", "s.html")
    assert result.exit_code == 2, result.output
    assert "typo.yaml:13:8: performance.rules[0].metric" in result.stderr
    assert "missing.csv" in result.stderr
    session = json.loads((binary_workspace.root / "s.json").read_text())
    assert session["verdict"] == "partial"  # never passed
    assert [r["policy"]["name"] for r in session["runs"]] == ["good"]
    assert [p["policy"] for p in session["policies_not_run"]] == ["typo.yaml", "nodata.yaml"]
    lines = result.stdout.splitlines()
    assert "  INVALID  typo.yaml: could not be loaded" in lines
    assert "  INVALID  nodata.yaml: its model or data could not be used" in lines


def test_check_several_refuses_two_policies_with_one_name_before_running(binary_workspace):
    binary_workspace.policy(BINARY_POLICY, "again.yaml")
    result = run("check", "policy.yaml", "again.yaml")
    assert result.exit_code == 2
    assert "policy.yaml and again.yaml are both named 'tiny'" in result.stderr
    assert not (binary_workspace.root / "reports").exists()


def test_promote_takes_exactly_one_policy(binary_workspace):
    names = several(binary_workspace, a=BINARY_POLICY, b=BINARY_POLICY)
    result = run("check", *names, "--promote", "champion")
    assert result.exit_code == 2
    assert "--promote gates one policy's candidate: name exactly one policy (got 2)" \
        in result.stderr


def test_verify_several_exits_with_the_worst(binary_workspace):
    assert run("check", "policy.yaml").exit_code == 0
    root = binary_workspace.root
    record = (root / "reports/tiny.json").read_text()
    (root / "altered.json").write_text(record.replace('"verdict": "pass"', '"verdict": "waived"',
                                                      1))
    result = run("verify", "reports/tiny.json", "altered.json")
    assert result.exit_code == 1
    assert "reports/tiny.json: INTACT" in result.output and "altered.json: ALTERED" in result.output
    assert run("verify", "reports/tiny.json", "nothing.json").exit_code == 2
