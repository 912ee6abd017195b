"""The pytest plugin, tested with pytest's own `pytester`."""

from __future__ import annotations

import json
import shutil

import pytest

from .conftest import BINARY_POLICY, EXAMPLES, REPO, binary_frame, fitted_logistic

pytest_plugins = ["pytester"]


@pytest.fixture
def tiny(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with policies/tiny.yaml over a logistic model, and its eval data."""
    return make_tiny(pytester)


def make_tiny(pytester: pytest.Pytester) -> pytest.Pytester:
    import skops.io as sio

    frame = binary_frame()
    frame.to_csv(pytester.path / "eval.csv", index=False)
    sio.dump(fitted_logistic(frame), pytester.path / "model.skops")
    (pytester.path / "policies").mkdir()
    policy = BINARY_POLICY.replace("model.skops", "../model.skops").replace(
        "eval.csv", "../eval.csv")
    (pytester.path / "policies" / "tiny.yaml").write_text(policy.lstrip())
    return pytester


@pytest.fixture
def example(pytester: pytest.Pytester) -> pytest.Pytester:
    """A copy of the bundled example project."""
    (pytester.path / "policies").mkdir()
    shutil.copy(REPO / "policies" / "adult-income.yaml", pytester.path / "policies")
    shutil.copytree(REPO / "policies" / "controls", pytester.path / "policies" / "controls")
    shutil.copytree(EXAMPLES / "adult", pytester.path / "examples" / "adult")
    return pytester


def add_rules(pytester: pytest.Pytester, rules: str) -> None:
    path = pytester.path / "policies" / "tiny.yaml"
    path.write_text(path.read_text() + rules)


def test_inert_without_the_flag(tiny):
    result = tiny.runpytest()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_collects_default_policies_one_item_per_check(tiny):
    result = tiny.runpytest("--mlcheck", "--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "policies/tiny.yaml::performance/roc_auc",
        "policies/tiny.yaml::performance/accuracy[group=a]",
        "policies/tiny.yaml::performance/accuracy[group=b]",
    ])


def test_collects_from_the_ini_option(tiny):
    (tiny.path / "policies" / "tiny.yaml").rename(tiny.path / "gate.yaml")
    text = (tiny.path / "gate.yaml").read_text().replace("../", "")
    (tiny.path / "gate.yaml").write_text(text)
    tiny.makeini("[pytest]\nmlcheck_policies = gate.yaml\n")
    result = tiny.runpytest("--mlcheck", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["gate.yaml::performance/roc_auc"])


def test_collects_a_policy_given_as_a_path(tiny):
    other = tiny.path / "elsewhere.yaml"
    other.write_text((tiny.path / "policies" / "tiny.yaml").read_text().replace("../", ""))
    result = tiny.runpytest("--mlcheck", "elsewhere.yaml", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["elsewhere.yaml::performance/roc_auc", "*3 tests collected*"])
    assert "policies/tiny.yaml" not in result.stdout.str()


def test_k_selects_by_check_id_and_only_evaluates_what_is_selected(tiny):
    result = tiny.runpytest("--mlcheck", "-k", "accuracy and a]", "-v",
                            "--mlcheck-json", "r.json")
    result.assert_outcomes(passed=1, deselected=2)
    record = json.loads((tiny.path / "r.json").read_text())
    assert [c["id"] for c in record["checks"]] == ["performance/accuracy[group=a]"]
    assert record["not_run"] == ["performance/roc_auc", "performance/accuracy[group=b]"]
    assert record["verdict"] == "partial" and result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["policies/tiny.yaml: PARTIAL (1 pass); 2 of 3 checks not run: "
                                 "performance/roc_auc, performance/accuracy[[]group=b[]]"])


def test_a_failing_check_reads_as_a_few_lines_not_a_traceback(tiny):
    add_rules(tiny, "    - {metric: recall, min: 0.99}\n")
    result = tiny.runpytest("--mlcheck")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*_ mlcheck: performance/recall _*",
        "performance/recall: FAIL (severity block)",
        "  recall = 0.* violates >= 0.99 (n=600)",
        "  value 0.* · min 0.99 · n 600",
        "  evidence: rows=600, positive_label=1, positives=*, negatives=*",
        "  rule: policies/tiny.yaml:15",
    ])
    assert "Traceback" not in result.stdout.str()
    assert "mlcheck/" not in result.stdout.str().split("FAILURES")[1].split("short test")[0]
    result.stdout.fnmatch_lines(["policies/tiny.yaml: BLOCKED (3 pass, 1 fail): blocking "
                                 "checks: performance/recall"])


def test_error_fails_with_the_reason(tiny):
    add_rules(tiny, "    - {metric: recall, min: 0.5, by: [nope]}\n")
    result = tiny.runpytest("--mlcheck", "-k", "nope")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(["performance/recall[[]nope[]]: ERROR (severity block)",
                                 "  column 'nope' not found in dataset 'eval'*"])


def test_warn_passes_with_a_warning_at_the_rule(tiny):
    add_rules(tiny, "    - {metric: recall, min: 0.99, severity: warn}\n")
    result = tiny.runpytest("--mlcheck", "-k", "recall")
    result.assert_outcomes(passed=1, deselected=3, warnings=1)
    result.stdout.fnmatch_lines(["*policies/tiny.yaml:15: MlcheckWarning: performance/recall: "
                                 "recall = * violates >= 0.99*"])


def test_waived_is_xfail_and_inconclusive_a_failure(tiny, monkeypatch):
    from mlcheck.engine import Evaluation

    original = Evaluation.run

    def run(self, check):
        result = original(self, check)
        if check.id == "performance/roc_auc":  # waivers arrive with issue 8; fake one here
            result.verdict, result.blocking = "waived", False
            result.message = "waived until 2027-01-31 (RISK-142)"
        if check.id == "performance/accuracy[group=a]":  # as will minimum sample sizes
            result.verdict, result.blocking = "inconclusive", True
            result.message = "188 rows, fewer than the 200 the policy requires"
        return result

    monkeypatch.setattr(Evaluation, "run", run)
    result = tiny.runpytest("--mlcheck", "-rx")
    result.assert_outcomes(passed=1, xfailed=1, failed=1)
    result.stdout.fnmatch_lines(["*waived: waived until 2027-01-31 (RISK-142)*"])
    result.stdout.fnmatch_lines(["performance/accuracy[[]group=a[]]: INCONCLUSIVE (severity "
                                 "block)", "  188 rows, fewer than the 200 the policy requires"])


def test_a_broken_policy_is_a_collection_error_naming_file_and_line(tiny):
    path = tiny.path / "policies" / "tiny.yaml"
    path.write_text(path.read_text().replace("metric: roc_auc", "metric: rocauc"))
    result = tiny.runpytest("--mlcheck")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([
        "*ERROR collecting policies/tiny.yaml*",
        "mlcheck could not load this policy:",
        "policies/tiny.yaml:13:8: performance.rules[[]0[]].metric: 'rocauc' is not allowed "
        "(did you mean 'roc_auc'?)*",
    ])
    assert "Traceback" not in result.stdout.str()


def test_junit_xml_has_a_testcase_per_check_with_value_and_bound(tiny):
    tiny.runpytest("--mlcheck", "--junitxml=junit.xml")
    import xml.etree.ElementTree as ET

    cases = {c.get("name"): c for c in ET.parse(tiny.path / "junit.xml").iter("testcase")}
    assert set(cases) == {"performance/roc_auc", "performance/accuracy[group=a]",
                          "performance/accuracy[group=b]"}
    props = {p.get("name"): p.get("value") for p in cases["performance/roc_auc"].iter("property")}
    assert props["mlcheck_id"] == "performance/roc_auc"
    assert props["verdict"] == "pass"
    assert props["bound_min"] == "0.7"
    assert 0.7 < float(props["value"]) <= 1
    assert props["n"] == "600"


def test_record_and_report_match_mlcheck_check(example):
    result = example.runpytest("--mlcheck", "--mlcheck-json", "out/r.json",
                               "--mlcheck-report", "out/r.html")
    result.assert_outcomes(passed=83, failed=2)
    assert mlcheck_warnings(result) == 8
    record = json.loads((example.path / "out/r.json").read_text())
    from mlcheck.engine import evaluate

    direct = evaluate(example.path / "policies/adult-income.yaml").to_dict()
    assert [(c["id"], c["verdict"], c["value"]) for c in record["checks"]] == [
        (c["id"], c["verdict"], c["value"]) for c in direct["checks"]]
    assert record["verdict"] == direct["verdict"] == "blocked"
    assert record["policy"]["sha256"] == direct["policy"]["sha256"]
    assert record["not_run"] == []
    assert "performance/recall[sex=Female]" in (example.path / "out/r.html").read_text()
    result.stdout.fnmatch_lines(["policies/adult-income.yaml: BLOCKED (75 pass, 2 fail, 7 warn, "
                                 "1 inconclusive)*"])


CUSTOM_TESTS = """
import pytest

@pytest.mark.mlcheck(id="custom/no_leakage", controls=["NIST AI RMF MEASURE 2.7"])
def test_no_leakage(mlcheck_datasets, mlcheck_model):
    '''The model does not read the target.'''
    assert "y" not in mlcheck_model.feature_names_in_
    assert len(mlcheck_datasets["eval"]) == 600

@pytest.mark.mlcheck(id="custom/scores_in_range")
def test_scores_in_range(mlcheck_context):
    scores = mlcheck_context.scores("candidate", "eval")
    assert scores.max() < 0.5, "some scores are high"

def test_unmarked(mlcheck_policy):
    assert mlcheck_policy.name == "tiny"
"""


def test_custom_marked_tests_join_the_record(tiny):
    tiny.makepyfile(test_custom=CUSTOM_TESTS)
    result = tiny.runpytest("--mlcheck", "--mlcheck-json", "r.json")
    result.assert_outcomes(passed=5, failed=1)
    record = json.loads((tiny.path / "r.json").read_text())
    checks = {c["id"]: c for c in record["checks"]}
    assert checks["custom/no_leakage"]["verdict"] == "pass"
    assert checks["custom/no_leakage"]["family"] == "custom"
    assert checks["custom/no_leakage"]["controls"] == ["NIST AI RMF MEASURE 2.7"]
    assert checks["custom/no_leakage"]["description"] == "The model does not read the target."
    assert checks["custom/scores_in_range"]["verdict"] == "fail"
    assert "some scores are high" in checks["custom/scores_in_range"]["message"]
    assert "test_unmarked" not in json.dumps(record)
    assert record["verdict"] == "blocked"


def test_fixtures_skip_without_the_flag(tiny):
    tiny.makepyfile(test_custom=CUSTOM_TESTS)
    tiny.runpytest().assert_outcomes(skipped=3)


def test_policy_is_prepared_once_per_session(tiny):
    (tiny.path / "counting.py").write_text("""
import pathlib
from sklearn.linear_model import LogisticRegression
import pandas as pd

LOG = pathlib.Path(__file__).with_name("calls.log")

class Counting(LogisticRegression):
    def predict(self, X):
        LOG.open("a").write("predict\\n")
        return super().predict(X)
    def predict_proba(self, X):
        LOG.open("a").write("predict_proba\\n")
        return super().predict_proba(X)

def build():
    LOG.open("a").write("build\\n")
    frame = pd.read_csv(pathlib.Path(__file__).with_name("eval.csv"))
    return Counting().fit(frame[["x1", "x2"]], frame["y"])
""")
    path = tiny.path / "policies" / "tiny.yaml"
    path.write_text(path.read_text().replace("path: ../model.skops",
                                             "factory: ../counting.py:build")
                    + "    - {metric: recall, min: 0.1, by: [group]}\n"
                    + "    - {metric: brier_score, max: 0.5}\n")
    tiny.makepyfile(test_custom=CUSTOM_TESTS)
    tiny.runpytest("--mlcheck").assert_outcomes(passed=8, failed=1)
    calls = (tiny.path / "calls.log").read_text().split()
    assert sorted(calls) == ["build", "predict", "predict_proba"]


def mlcheck_warnings(result) -> int:
    """The `severity: warn` checks among pytest's warnings (libraries may add their own,
    e.g. about their dependencies' versions, which this count must not depend on)."""
    return sum(": MlcheckWarning: " in line for line in result.outlines)


def test_xdist_gives_the_same_outcomes_and_one_complete_record(example):
    single = example.runpytest_subprocess("--mlcheck", "--mlcheck-json", "one.json")
    double = example.runpytest_subprocess("--mlcheck", "-n", "2", "--mlcheck-json", "two.json",
                                          "--mlcheck-report", "two.html")
    single.assert_outcomes(passed=83, failed=2)
    double.assert_outcomes(passed=83, failed=2)
    assert mlcheck_warnings(single) == mlcheck_warnings(double) == 8
    one = json.loads((example.path / "one.json").read_text())
    two = json.loads((example.path / "two.json").read_text())
    assert [(c["id"], c["verdict"]) for c in two["checks"]] == [
        (c["id"], c["verdict"]) for c in one["checks"]]
    assert two["not_run"] == [] and two["verdict"] == "blocked"
    assert (example.path / "two.html").exists()
    double.stdout.fnmatch_lines(["policies/adult-income.yaml: BLOCKED (75 pass, 2 fail, 7 warn, "
                                 "1 inconclusive)*"])


def test_several_policies_make_a_session_record(tiny):
    second = tiny.path / "policies" / "second.yaml"
    second.write_text((tiny.path / "policies" / "tiny.yaml").read_text()
                      .replace("name: tiny", "name: second").replace("min: 0.7", "min: 0.99"))
    result = tiny.runpytest("--mlcheck", "--mlcheck-json", "r.json", "--mlcheck-report",
                            "r.html")
    result.assert_outcomes(passed=5, failed=1)
    record = json.loads((tiny.path / "r.json").read_text())
    assert record["kind"] == "session"
    assert [(r["policy"]["name"], r["verdict"]) for r in record["runs"]] == [
        ("second", "blocked"), ("tiny", "passed")]
    assert record["verdict"] == "blocked"
    html = (tiny.path / "r.html").read_text()
    assert 'id="second:performance/roc_auc"' in html and 'id="tiny:performance/roc_auc"' in html


def test_custom_tests_must_name_their_policy_when_there_are_several(tiny):
    second = tiny.path / "policies" / "second.yaml"
    second.write_text((tiny.path / "policies" / "tiny.yaml").read_text())
    tiny.makepyfile(test_custom=CUSTOM_TESTS)
    result = tiny.runpytest("--mlcheck", "-k", "custom")
    result.stdout.fnmatch_lines(["*2 policies are collected (policies/second.yaml, "
                                 "policies/tiny.yaml): name one with "
                                 "@pytest.mark.mlcheck(policy=...)*"])


def test_mlcheck_report_renders_a_session_record(tiny):
    second = tiny.path / "policies" / "second.yaml"
    second.write_text((tiny.path / "policies" / "tiny.yaml").read_text()
                      .replace("name: tiny", "name: second"))
    tiny.runpytest("--mlcheck", "--mlcheck-json", "r.json", "--mlcheck-report", "r.html")
    from typer.testing import CliRunner

    from mlcheck.cli import app

    done = CliRunner().invoke(app, ["report", str(tiny.path / "r.json"), "-o",
                                    str(tiny.path / "again.html")])
    assert done.exit_code == 0, done.output
    assert (tiny.path / "again.html").read_text() == (tiny.path / "r.html").read_text()


def test_last_failed_reruns_only_the_failed_check(tiny):
    add_rules(tiny, "    - {metric: recall, min: 0.99, by: [group]}\n")
    tiny.runpytest("--mlcheck").assert_outcomes(passed=3, failed=2)
    rerun = tiny.runpytest("--mlcheck", "--lf")
    rerun.assert_outcomes(failed=2, passed=0)
    rerun.stdout.fnmatch_lines(["*rerun previous 2 failures*"])
    rerun.stdout.fnmatch_lines(["*FAILED policies/tiny.yaml::performance/recall[[]group=a[]]*"])


EDGE_TESTS = """
import pytest

@pytest.mark.mlcheck(id="performance/roc_auc")
def test_clash():
    pass

@pytest.mark.mlcheck(id="custom/param")
@pytest.mark.parametrize("k", [1, 2])
def test_param(k):
    assert k == 2

@pytest.mark.mlcheck(controls=["x"])
def test_no_id():
    pass

@pytest.mark.mlcheck(id="custom/skipped")
def test_skipped():
    pytest.skip("data not available")

@pytest.mark.mlcheck(id="custom/static_skip")
@pytest.mark.skip(reason="never ran")
def test_static_skip():
    pass

@pytest.mark.mlcheck(id="custom/expected")
@pytest.mark.xfail(reason="known gap (RISK-7)")
def test_expected():
    assert False

@pytest.mark.mlcheck(id="custom/soft", severity="warn")
def test_soft():
    assert 1 == 2, "soft limit exceeded"

def test_after():
    pass
"""


def test_custom_check_edge_cases(tiny):
    tiny.makepyfile(test_edges=EDGE_TESTS)
    result = tiny.runpytest("--mlcheck", "--mlcheck-json", "r.json", "-rA")
    result.stdout.fnmatch_lines(["*already a check of policies/tiny.yaml; choose another id*",
                                 "*@pytest.mark.mlcheck needs an id*"])
    result.assert_outcomes(passed=6, failed=1, errors=2, skipped=2, xfailed=1, warnings=1)
    checks = {c["id"]: c for c in json.loads((tiny.path / "r.json").read_text())["checks"]}
    assert checks["performance/roc_auc"]["family"] == "performance"  # not overwritten
    assert checks["custom/param"]["verdict"] == "fail"  # the worst parametrisation wins
    assert checks["custom/skipped"]["verdict"] == "error"
    assert checks["custom/static_skip"]["verdict"] == "error"
    assert checks["custom/static_skip"]["message"] == "skipped: never ran"
    assert checks["custom/expected"]["verdict"] == "waived"
    assert checks["custom/soft"]["verdict"] == "warn"
    assert "soft limit exceeded" in checks["custom/soft"]["message"]


def test_a_blocked_gate_fails_the_session_even_when_no_test_failed(tiny):
    tiny.makepyfile(test_edges=EDGE_TESTS)
    result = tiny.runpytest("--mlcheck", "-k", "test_skipped or test_after or roc_auc")
    result.assert_outcomes(passed=2, skipped=1, deselected=result.parseoutcomes()[
        "deselected"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["policies/tiny.yaml: BLOCKED*custom/skipped*"])


def test_globs_that_match_nothing_are_a_usage_error(tiny):
    tiny.makeini("[pytest]\nmlcheck_policies = policy/*.yaml\n")
    result = tiny.runpytest("--mlcheck")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mlcheck found no policy: policy/*.yaml (from "
                                 "mlcheck_policies in *) matches no file*"])


@pytest.mark.parametrize(("args", "message"), [
    (["--mlcheck-json", "out", "--mlcheck-report", "out"], "name the same file"),
    (["--mlcheck-json", "policies/tiny.yaml"], "is an input of this run"),
    (["--mlcheck-json", "eval.csv"], "is an input of this run"),
    (["--mlcheck-json", "policies"], "output path is a directory"),
])
def test_unusable_output_paths_stop_the_run_before_it_starts(tiny, args, message):
    inputs = [tiny.path / "policies" / "tiny.yaml", tiny.path / "eval.csv"]
    before = [path.read_bytes() for path in inputs]
    result = tiny.runpytest("--mlcheck", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert [path.read_bytes() for path in inputs] == before


def test_a_broken_policy_with_custom_tests_is_an_ordinary_error(tiny):
    path = tiny.path / "policies" / "tiny.yaml"
    path.write_text(path.read_text().replace("metric: roc_auc", "metric: rocauc"))
    tiny.makepyfile(test_custom=CUSTOM_TESTS)
    result = tiny.runpytest("--mlcheck", "--continue-on-collection-errors")
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*'rocauc' is not allowed*"])


def test_warnings_as_errors_still_read_as_a_check(tiny):
    add_rules(tiny, "    - {metric: recall, min: 0.99, severity: warn}\n")
    result = tiny.runpytest("--mlcheck", "-W", "error::mlcheck.plugin.MlcheckWarning",
                            "-k", "recall")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(["performance/recall: WARN (severity warn)",
                                 "*(a warn check, failing under -W error)"])


def test_a_folder_argument_collects_the_policies_in_it(tiny):
    (tiny.path / "gates").mkdir()
    text = (tiny.path / "policies" / "tiny.yaml").read_text()
    (tiny.path / "gates" / "g.yaml").write_text(text)
    (tiny.path / "gates" / "settings.yaml").write_text("not: a policy\n")
    result = tiny.runpytest("--mlcheck", "gates", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["gates/g.yaml::performance/roc_auc"])
    assert "policies/tiny.yaml" not in result.stdout.str()


def test_selecting_one_test_does_not_collect_every_policy(tiny):
    tiny.makepyfile(test_custom=CUSTOM_TESTS)
    result = tiny.runpytest("--mlcheck", "test_custom.py::test_unmarked")
    result.assert_outcomes(passed=1)
