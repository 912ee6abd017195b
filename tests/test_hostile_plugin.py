"""`pytest --mlcheck` under hostile or careless use: a run that did not evaluate every
check is `partial`, never `passed`, in any output; model code that exits, interrupts or
skips never passes a check; the session never ends with exit 0 unless the gate held.

Threat model: deselection (`-k`, `-m`, `--deselect`, a conftest that drops items or whole
policies), early stops (`-x`, `--maxfail`, an interrupt), pytest hooks that break or skip
items, and model or factory code that calls `sys.exit()`, `pytest.exit()` or `pytest.skip()`.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mlcheck.report.formats import FORMATS
from mlcheck.result import normalise_record

from .test_plugin import add_rules, make_tiny

pytest_plugins = ["pytester"]

CHECKS = ["performance/roc_auc", "performance/accuracy[group=a]",
          "performance/accuracy[group=b]"]


@pytest.fixture
def tiny(pytester: pytest.Pytester) -> pytest.Pytester:
    return make_tiny(pytester)


def renderings(path: Path) -> dict[str, str]:
    """The record at `path` rendered in every format `mlcheck report` offers."""
    record = normalise_record(json.loads(path.read_text()))
    return {form: render(record, None) for form, render in FORMATS.items()}


def assert_partial_everywhere(path: Path, not_run: list[str]) -> None:
    """The record and every rendering of it say `partial`, and none says passed."""
    record = json.loads(path.read_text())
    assert record["verdict"] == "partial"
    assert record["partial"] is True
    assert record["not_run"] == not_run
    assert_renderings_partial(renderings(path), not_run)


def assert_renderings_partial(texts: dict[str, str], not_run: list[str]) -> None:
    assert "PASSED" not in texts["html"] and "PARTIAL" in texts["html"]
    assert 'class="banner passed"' not in texts["html"]
    for check_id in not_run:
        assert f"<code>{check_id}</code>" in texts["html"]
    assert "**PASSED**" not in texts["markdown"] and "**PARTIAL**" in texts["markdown"]
    assert f"{len(not_run)} of {len(CHECKS)} checks were not run" in texts["markdown"]
    sarif = json.loads(texts["sarif"])["runs"][0]
    partial = [r for r in sarif["results"] if r["ruleId"] == "mlcheck/partial-run"]
    assert partial and partial[0]["level"] == "error"
    assert sarif["properties"]["verdict"] == "partial"
    suite = ET.fromstring(texts["junit"]).find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["verdict"] == "partial" and props["not_run"] == str(len(not_run))
    assert suite.get("errors") != "0"


# ------------------------------------------------------------- deselected checks


DROP_IN_CONFTEST = """
def pytest_collection_modifyitems(items):
    items[:] = [i for i in items if "roc_auc" not in i.name]
"""

DESELECT_IN_CONFTEST = """
def pytest_collection_modifyitems(config, items):
    dropped = [i for i in items if "roc_auc" in i.name]
    items[:] = [i for i in items if i not in dropped]
    config.hook.pytest_deselected(items=dropped)
"""

MARK_IN_CONFTEST = """
import pytest

def pytest_configure(config):
    config.addinivalue_line("markers", "cheap: a quick check")

def pytest_collection_modifyitems(items):
    for item in items:
        if "accuracy" in item.name:
            item.add_marker(pytest.mark.cheap)
"""


@pytest.mark.parametrize(("args", "conftest"), [
    (["-k", "accuracy"], None),
    (["--deselect", "policies/tiny.yaml::performance/roc_auc"], None),
    (["-m", "cheap"], MARK_IN_CONFTEST),
    ([], DROP_IN_CONFTEST),
    ([], DESELECT_IN_CONFTEST),
], ids=["-k", "--deselect", "-m", "conftest-drops", "conftest-deselects"])
def test_deselected_checks_make_a_partial_run_that_fails_the_session(tiny, args, conftest):
    if conftest:
        tiny.makeconftest(conftest)
    result = tiny.runpytest("--mlcheck", *args, "--mlcheck-json", "r.json",
                            "--mlcheck-report", "r.html")
    result.assert_outcomes(passed=2, deselected=result.parseoutcomes().get("deselected"))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert_partial_everywhere(tiny.path / "r.json", ["performance/roc_auc"])
    assert "PASSED" not in (tiny.path / "r.html").read_text()
    result.stdout.fnmatch_lines([
        "policies/tiny.yaml: PARTIAL (2 pass); 1 of 3 checks not run: performance/roc_auc",
        "mlcheck: partial run: not every check ran, so this is no gate verdict and the "
        "session fails (--mlcheck-allow-partial accepts partial runs)"])


def test_allow_partial_exits_0_but_still_says_partial(tiny):
    result = tiny.runpytest("--mlcheck", "-k", "accuracy", "--mlcheck-allow-partial",
                            "--mlcheck-json", "r.json", "--junitxml", "junit.xml")
    assert result.ret == pytest.ExitCode.OK
    assert_partial_everywhere(tiny.path / "r.json", ["performance/roc_auc"])
    result.stdout.fnmatch_lines(["policies/tiny.yaml: PARTIAL (2 pass)*",
                                 "*partial run accepted (--mlcheck-allow-partial)*"])
    assert "PASSED" not in result.stdout.str()
    suite = ET.parse(tiny.path / "junit.xml").getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["mlcheck_verdict"] == "partial"


def test_a_complete_run_is_passed_and_exits_0(tiny):
    result = tiny.runpytest("--mlcheck", "--mlcheck-json", "r.json", "--junitxml", "j.xml")
    assert result.ret == pytest.ExitCode.OK
    record = json.loads((tiny.path / "r.json").read_text())
    assert (record["verdict"], record["partial"], record["not_run"]) == ("passed", False, [])
    texts = renderings(tiny.path / "r.json")
    assert "PASSED" in texts["html"] and "PARTIAL" not in texts["html"]
    assert not json.loads(texts["sarif"])["runs"][0]["results"]
    suite = ET.parse(tiny.path / "j.xml").getroot().find("testsuite")
    assert {p.get("name"): p.get("value") for p in suite.find("properties")} == {
        "mlcheck_verdict": "passed"}
    result.stdout.fnmatch_lines(["policies/tiny.yaml: PASSED (3 pass)"])


@pytest.mark.parametrize("args", [["-k", "nothing_matches"], ["-m", "nothing"],
                                  ["-k", "nothing_matches", "--mlcheck-allow-partial"]])
def test_a_session_where_no_check_ran_is_not_a_pass(tiny, args):
    result = tiny.runpytest("--mlcheck", *args, "--mlcheck-json", "r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["policies/tiny.yaml: PARTIAL (no check ran); 3 of 3 checks "
                                 "not run: *",
                                 "no mlcheck check ran: the gate did not run, so the session "
                                 "fails"])
    record = json.loads((tiny.path / "r.json").read_text())
    assert (record["verdict"], record["checks"], record["not_run"]) == ("partial", [], CHECKS)


def test_running_only_an_ordinary_test_with_mlcheck_is_not_a_pass(tiny):
    tiny.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = tiny.runpytest("--mlcheck", "test_plain.py::test_plain")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*no mlcheck check ran: the gate did not run*"])


def test_a_policy_dropped_by_a_conftest_makes_the_session_partial(tiny):
    second = tiny.path / "policies" / "second.yaml"
    second.write_text((tiny.path / "policies" / "tiny.yaml").read_text()
                      .replace("name: tiny", "name: second"))
    tiny.makeconftest('collect_ignore = ["policies/second.yaml"]\n')
    result = tiny.runpytest("--mlcheck", "--mlcheck-json", "r.json", "--mlcheck-report",
                            "r.html")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    record = json.loads((tiny.path / "r.json").read_text())
    assert record["kind"] == "session" and record["verdict"] == "partial"
    assert record["partial"] is True
    assert [r["verdict"] for r in record["runs"]] == ["passed"]
    assert record["policies_not_run"] == [{"policy": "policies/second.yaml",
                                           "reason": "not collected"}]
    texts = renderings(tiny.path / "r.json")
    assert "policies/second.yaml" in texts["html"] and "PARTIAL" in texts["html"]
    assert "policies/second.yaml" in texts["markdown"]
    result.stdout.fnmatch_lines(["policies/second.yaml: NOT RUN (not collected)"])


# ----------------------------------------------------------------- early stops


@pytest.mark.parametrize("stop", ["-x", "--maxfail=1"])
def test_stopping_early_is_blocked_and_partial(tiny, stop):
    path = tiny.path / "policies" / "tiny.yaml"
    path.write_text(path.read_text().replace("min: 0.7", "min: 0.99"))
    result = tiny.runpytest("--mlcheck", stop, "--mlcheck-json", "r.json")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    record = json.loads((tiny.path / "r.json").read_text())
    assert (record["verdict"], record["partial"]) == ("blocked", True)
    assert record["not_run"] == CHECKS[1:]
    assert "Partial run" in renderings(tiny.path / "r.json")["html"]
    result.stdout.fnmatch_lines(["policies/tiny.yaml: BLOCKED (1 fail): blocking checks: "
                                 "performance/roc_auc; 2 of 3 checks not run*"])


# -------------------------------------------------- items that fail under pytest


HOSTILE_FACTORY = """
import pathlib, sys
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

{at_import}

class Hostile(LogisticRegression):
    def predict_proba(self, X):
        {in_predict}
        return super().predict_proba(X)

def build():
    frame = pd.read_csv(pathlib.Path(__file__).with_name("eval.csv"))
    return Hostile().fit(frame[["x1", "x2"]], frame["y"])
"""


def hostile(pytester: pytest.Pytester, in_predict: str = "pass", at_import: str = "") -> None:
    """The tiny policy over a factory model whose scores (used by roc_auc only) misbehave."""
    (pytester.path / "hostile.py").write_text(
        HOSTILE_FACTORY.format(in_predict=in_predict, at_import=at_import))
    path = pytester.path / "policies" / "tiny.yaml"
    path.write_text(path.read_text().replace("path: ../model.skops",
                                             "factory: ../hostile.py:build"))


@pytest.mark.parametrize("code", [
    "sys.exit(0)", "pytest.exit('bye', returncode=0)", "pytest.skip('not today')",
])
def test_model_code_that_exits_or_skips_is_the_checks_error(tiny, code):
    hostile(tiny, in_predict=code)
    result = tiny.runpytest("--mlcheck", "--mlcheck-json", "r.json")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    record = json.loads((tiny.path / "r.json").read_text())
    checks = {c["id"]: c for c in record["checks"]}
    assert checks["performance/roc_auc"]["verdict"] == "error"
    assert checks["performance/roc_auc"]["blocking"] is True
    assert record["not_run"] == [] and record["verdict"] == "blocked"
    result.stdout.fnmatch_lines(["performance/roc_auc: ERROR (severity block)"])


@pytest.mark.parametrize(("code", "exit_code", "message", "not_run"), [
    # model code's own: the engine makes it the check's error, and the session goes on
    ("raise KeyboardInterrupt", pytest.ExitCode.TESTS_FAILED, "model code raised", []),
    # Ctrl-C: the session stops (exit 2) and its record is partial
    ("import os, signal; os.kill(os.getpid(), signal.SIGINT)", pytest.ExitCode.INTERRUPTED,
     "interrupted (Ctrl-C)", CHECKS[1:]),
], ids=["raised", "sigint"])
def test_a_keyboard_interrupt_in_a_check_never_passes(tiny, code, exit_code, message,
                                                      not_run):
    """The interrupted check is `error` either way, never `not_run` or pass."""
    hostile(tiny, in_predict=code)
    result = tiny.runpytest_inprocess("--mlcheck", "--mlcheck-json", "r.json",
                                      no_reraise_ctrlc=True)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert result.ret == exit_code
    record = json.loads((tiny.path / "r.json").read_text())
    checks = {c["id"]: c for c in record["checks"]}
    assert checks["performance/roc_auc"]["verdict"] == "error"
    assert message in checks["performance/roc_auc"]["message"]
    assert record["not_run"] == not_run and record["verdict"] == "blocked"


@pytest.mark.parametrize("code", ["sys.exit(0)", "raise SystemExit('no model today')"])
def test_a_factory_module_that_exits_at_import_is_a_collection_error(tiny, code):
    hostile(tiny, at_import=code)
    tiny.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = tiny.runpytest("--mlcheck", "--mlcheck-json", "r.json")
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output and "caught unexpected SystemExit" not in output
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting policies/tiny.yaml*",
                                 "mlcheck could not load this policy:",
                                 "*SystemExit*"])


def test_any_exit_while_preparing_a_policy_is_its_collection_error(tiny):
    """Whatever runs while a policy is prepared (loaders, model code outside the engine's
    guards) cannot end pytest with an INTERNALERROR."""
    tiny.makeconftest("""
import mlcheck.engine

def exits(*args, **kwargs):
    raise SystemExit(4)

mlcheck.engine.Evaluation = exits
""")
    result = tiny.runpytest_subprocess("--mlcheck")  # the patch stays in that process
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["mlcheck could not load this policy:",
                                 "loading the policy raised SystemExit: 4 (an exit from model "
                                 "code is not a verdict)"])


def test_a_factory_that_exits_under_continue_on_collection_errors(tiny):
    hostile(tiny, at_import="sys.exit(0)")
    tiny.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = tiny.runpytest("--mlcheck", "--continue-on-collection-errors",
                            "--mlcheck-json", "r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    record = json.loads((tiny.path / "r.json").read_text())
    assert record["verdict"] == "partial" and record["runs"] == []
    [missing] = record["policies_not_run"]
    assert missing["policy"] == "policies/tiny.yaml"
    assert "SystemExit" in missing["reason"]


BREAKING_CONFTEST = """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        if item.name.endswith("b]"):
            item.add_marker(pytest.mark.skip(reason="later"))

def pytest_runtest_setup(item):
    if item.name == "performance/roc_auc":
        raise RuntimeError("setup broke")
"""


def test_items_that_error_or_skip_in_setup_are_errors_not_not_run(tiny):
    tiny.makeconftest(BREAKING_CONFTEST)
    result = tiny.runpytest("--mlcheck", "--mlcheck-json", "r.json")
    result.assert_outcomes(passed=1, errors=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    record = json.loads((tiny.path / "r.json").read_text())
    checks = {c["id"]: c for c in record["checks"]}
    assert record["not_run"] == [] and record["verdict"] == "blocked"
    assert checks["performance/roc_auc"]["verdict"] == "error"
    assert "setup broke" in checks["performance/roc_auc"]["message"]
    assert checks["performance/accuracy[group=b]"]["verdict"] == "error"
    assert checks["performance/accuracy[group=b]"]["message"] == "skipped: later"


def test_a_hook_that_hides_a_failure_does_not_hide_it_from_the_gate(tiny):
    add_rules(tiny, "    - {metric: recall, min: 0.99}\n")
    tiny.makeconftest("""
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except Exception:
        return None
""")
    result = tiny.runpytest("--mlcheck", "--mlcheck-json", "r.json")
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert json.loads((tiny.path / "r.json").read_text())["verdict"] == "blocked"


# ------------------------------------------------------------------------ xdist


def test_xdist_partial_and_crashed_worker(tiny):
    """Under xdist the controller learns every collected policy from the workers, so a
    policy with every check deselected is still in the record; a worker that dies in a
    check makes that check an error."""
    pytest.importorskip("xdist")
    hostile(tiny, in_predict="import os; os._exit(1)")
    result = tiny.runpytest_subprocess("--mlcheck", "-n", "2", "-k", "not a]",
                                       "--mlcheck-json", "r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    record = json.loads((tiny.path / "r.json").read_text())
    checks = {c["id"]: c for c in record["checks"]}
    assert record["not_run"] == ["performance/accuracy[group=a]"]
    assert checks["performance/roc_auc"]["verdict"] == "error"
    assert "crashed" in checks["performance/roc_auc"]["message"]
    assert checks["performance/accuracy[group=b]"]["verdict"] == "pass"
    assert (record["verdict"], record["partial"]) == ("blocked", True)


def test_xdist_with_every_check_deselected_still_records_the_policy(tiny):
    pytest.importorskip("xdist")
    result = tiny.runpytest_subprocess("--mlcheck", "-n", "2", "-k", "nothing_matches",
                                       "--mlcheck-json", "r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    record = json.loads((tiny.path / "r.json").read_text())
    assert (record["verdict"], record["not_run"]) == ("partial", CHECKS)


def test_xdist_never_writes_over_an_input_refused_at_collection(tiny):
    """Workers find that an output would overwrite a dataset; the controller, which
    writes, must not write it anyway."""
    pytest.importorskip("xdist")
    before = (tiny.path / "eval.csv").read_bytes()
    result = tiny.runpytest_subprocess("--mlcheck", "-n", "2", "--mlcheck-json", "eval.csv")
    assert result.ret != pytest.ExitCode.OK
    assert (tiny.path / "eval.csv").read_bytes() == before


# ---------------------------------------------------------------- old records


def test_an_old_record_of_a_partial_run_renders_as_partial(tiny):
    """Records written before `partial` existed said `passed` with a non-empty
    `not_run`; rendered today they say partial."""
    tiny.runpytest("--mlcheck", "-k", "accuracy", "--mlcheck-allow-partial",
                   "--mlcheck-json", "r.json")
    record = json.loads((tiny.path / "r.json").read_text())
    del record["partial"], record["integrity"]
    record["verdict"] = "passed"
    (tiny.path / "old.json").write_text(json.dumps(record))
    assert normalise_record(record)["verdict"] == "partial"
    assert_renderings_partial(renderings(tiny.path / "old.json"), ["performance/roc_auc"])
    del record["not_run"]  # older still: no `not_run` at all
    assert normalise_record(record)["verdict"] == "passed"


def test_the_model_time_limit_applies_under_pytest(pytester):
    from .conftest import binary_frame

    binary_frame().to_csv(pytester.path / "eval.csv", index=False)
    pytester.makepyfile(make="""
import time
import numpy as np

class Slow:
    classes_ = np.array([0, 1])
    def predict(self, X):
        time.sleep(30)
    predict_proba = predict

def build():
    return Slow()
""")
    pytester.makefile(".yaml", policy="""
mlcheck: 1
name: slow
model: {factory: make.py:build, task: binary_classification}
data: {target: y, datasets: {eval: eval.csv}}
performance:
  rules:
    - {metric: roc_auc, min: 0.5}
""")
    result = pytester.runpytest("--mlcheck", "--mlcheck-model-timeout", "0.3", "policy.yaml",
                                "-p", "no:cacheprovider")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*time limit of 0.3 s*"])
