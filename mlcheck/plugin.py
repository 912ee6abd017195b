"""`pytest --mlcheck`: every compiled check of a policy is a pytest item.

Inert unless `--mlcheck` is given. Each policy is prepared once per process (subject
loaded, checks compiled at collection); each item evaluates only its own check against
the shared context. Results travel on the test reports, so the controller of a
pytest-xdist run (or the single process otherwise) assembles the record and report.
"""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the engine imports pandas and scikit-learn: only load it when asked
    from mlcheck.engine import Evaluation
    from mlcheck.result import CheckResult

POLICY_SUFFIXES = (".yaml", ".yml")
DEFAULT_POLICIES = "policies/*.yaml"
MARKER = "mlcheck"


class MlcheckWarning(Warning):
    """A check with severity `warn` failed: the test passes, the warning is shown.

    Not a UserWarning, so a blanket `ignore::UserWarning` filter does not hide it."""


class CheckFailed(Exception):
    """A check whose verdict blocks promotion; rendered by `CheckItem.repr_failure`."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.message)
        self.result = result


# ------------------------------------------------------------------------ options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlcheck", "mlcheck policies as tests")
    group.addoption("--mlcheck", action="store_true",
                    help="collect mlcheck policies and run each of their checks as a test")
    group.addoption("--mlcheck-json", metavar="PATH",
                    help="write the JSON record of the session's policies to PATH")
    group.addoption("--mlcheck-report", metavar="PATH",
                    help="write the HTML governance report of the session's policies to PATH")
    group.addoption("--mlcheck-trust-model", action="store_true",
                    help="trust pickle/joblib model files and unreviewed skops types")
    parser.addini("mlcheck_policies", type="args", default=[],
                  help=f"policy files or globs to collect with --mlcheck "
                       f"(default: {DEFAULT_POLICIES})")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(id, controls=(), severity='block', policy=None): record this "
        "test as a custom mlcheck check with the given id")
    if config.getoption("mlcheck"):
        config.pluginmanager.register(MlcheckSession(config), "mlcheck-session")


def _session(config: pytest.Config) -> MlcheckSession | None:
    return config.pluginmanager.get_plugin("mlcheck-session")


# -------------------------------------------------------------------- the session


class MlcheckSession:
    """State of one pytest process: prepared policies, and (controller) gathered results."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.root = config.rootpath
        self.evaluations: dict[Path, Evaluation | Exception] = {}
        self.headers: dict[str, dict] = {}  # policy key -> record header (gathered)
        self._own_headers: dict[Path, dict] = {}  # this process's, computed once
        self.results: dict[str, dict[str, CheckResult]] = {}  # policy key -> id -> result
        self.write_error: str | None = None
        named = self._named_policies()
        self.policies = named or self._configured_policies()
        selecting_tests = any("::" in a for a in config.args)
        if not named and not selecting_tests:
            config.args.extend(str(p) for p in self.policies)  # collect them too
        self._paths = {p.resolve() for p in self.policies}
        self._check_outputs()

    def _named_policies(self) -> list[Path]:
        """Policy files named on the command line, and policy files in named folders."""
        found = []
        for arg in self.config.args:
            path = Path(arg.split("::")[0])
            if path.suffix in POLICY_SUFFIXES and path.is_file():
                found.append(path)
            elif path.is_dir() and self.config.args_source == pytest.Config.ArgsSource.ARGS:
                found.extend(p for p in sorted(path.rglob("*.y*ml")) if _is_policy(p))
        return found

    def _configured_policies(self) -> list[Path]:
        """The ini option's globs (relative to the ini file), else policies/*.yaml."""
        globs = self.config.getini("mlcheck_policies")
        base = self.config.inipath.parent if self.config.inipath else self.root
        patterns = globs or [DEFAULT_POLICIES]
        found = sorted({Path(p) for pattern in patterns
                        for p in glob.glob(os.path.join(base, pattern), recursive=True)
                        if Path(p).is_file()})
        if not found:
            where = "mlcheck_policies in " + str(self.config.inipath) if globs else \
                f"the default {DEFAULT_POLICIES}"
            raise pytest.UsageError(
                f"--mlcheck found no policy: {', '.join(patterns)} (from {where}) matches no "
                f"file under {base}. Name policy files on the command line or set the "
                "mlcheck_policies ini option.")
        return found

    def _check_outputs(self) -> None:
        """Refuse unusable output paths before anything runs."""
        from mlcheck.errors import MlcheckError
        from mlcheck.outputs import check_output_paths

        paths = [Path(p) for p in (self.config.getoption("mlcheck_json"),
                                   self.config.getoption("mlcheck_report")) if p]
        try:
            check_output_paths(*paths, inputs=self.policies)
        except MlcheckError as exc:
            raise pytest.UsageError(f"mlcheck: {exc}") from None

    def key(self, path: Path) -> str:
        """How a policy is named in results: relative to the rootdir, as in node ids."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def evaluation(self, path: Path) -> Evaluation:
        """The policy prepared once per process; a load error is remembered and re-raised."""
        path = path.resolve()
        if path not in self.evaluations:
            from mlcheck.engine import Evaluation
            from mlcheck.errors import MlcheckError

            try:
                self.evaluations[path] = Evaluation(
                    path, trust_model=self.config.getoption("mlcheck_trust_model"))
            except MlcheckError as exc:
                self.evaluations[path] = exc
        found = self.evaluations[path]
        if isinstance(found, Exception):
            raise found
        return found

    def header(self, path: Path) -> dict:
        path = path.resolve()
        if path not in self._own_headers:
            self._own_headers[path] = self.evaluation(path).header()
        return self._own_headers[path]

    def policy_for(self, item: pytest.Item) -> Path:
        """The policy a custom test belongs to: its marker's `policy=`, or the only one."""
        marker = item.get_closest_marker(MARKER)
        named = marker.kwargs.get("policy") if marker else None
        if named:
            path = (self.root / named).resolve()
            if path not in self._paths:
                pytest.fail(f"policy {named!r} is not collected; collected: {self._names()}",
                            pytrace=False)
            return path
        if len(self.policies) == 1:
            return self.policies[0].resolve()
        pytest.fail(f"{len(self.policies)} policies are collected ({self._names()}): name "
                    "one with @pytest.mark.mlcheck(policy=...)" if self.policies
                    else "no mlcheck policy is collected (see the mlcheck_policies option)",
                    pytrace=False)

    def _names(self) -> str:
        return ", ".join(self.key(p) for p in self.policies) or "none"

    # ------------------------------------------------------------ collection

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector):
        if file_path.suffix in POLICY_SUFFIXES and file_path.resolve() in self._paths:
            return PolicyFile.from_parent(parent, path=file_path)
        return None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Outputs must not overwrite a dataset or model of a collected policy."""
        from mlcheck.errors import MlcheckError
        from mlcheck.outputs import check_output_paths
        from mlcheck.subject import input_files

        inputs = [f for found in self.evaluations.values() if not isinstance(found, Exception)
                  for f in input_files(found.policy)]
        paths = [Path(p) for p in (self.config.getoption("mlcheck_json"),
                                   self.config.getoption("mlcheck_report")) if p]
        try:
            check_output_paths(*paths, inputs=inputs)
        except MlcheckError as exc:
            raise pytest.UsageError(f"mlcheck: {exc}") from None

    # ------------------------------------------------------------- reporting

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if not isinstance(item, CheckItem) and item.get_closest_marker(MARKER):
            item.mlcheck_policy = self.policy_for(item)  # fails the test if ambiguous
            check_id = custom_id(item)
            self.evaluation(item.mlcheck_policy)  # a policy that cannot load fails the test
            if self._is_compiled(item.mlcheck_policy, check_id):
                pytest.fail(f"@pytest.mark.mlcheck id {check_id!r} is already a check of "
                            f"{self.key(item.mlcheck_policy)}; choose another id",
                            pytrace=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        """A failing custom check with severity `warn` passes with a warning, as a
        declarative `warn` check does."""
        marker = None if isinstance(item, CheckItem) else item.get_closest_marker(MARKER)
        try:
            return (yield)
        except AssertionError as exc:
            if marker is None or marker.kwargs.get("severity") != "warn":
                raise
            item.mlcheck_warned = str(exc).split("\n")[0]
            warnings.warn(f"{custom_id(item)}: {item.mlcheck_warned}", MlcheckWarning,
                          stacklevel=1)
            return None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report = outcome.get_result()
        if isinstance(item, CheckItem):
            if call.when == "call" and item.result is not None:
                self._attach(report, item.path, item.result)
            return
        if not item.get_closest_marker(MARKER):
            return
        if call.when != "call" and not (report.failed or report.skipped):
            return
        path = getattr(item, "mlcheck_policy", None) or self._quiet_policy_for(item)
        check_id = _quiet_custom_id(item)
        if path is None or check_id is None or self._is_compiled(path, check_id):
            return  # the test itself reports why (ambiguous policy, missing or taken id)
        result = _custom_result(item, report, check_id)
        report.user_properties.extend(_properties(result))
        self._attach(report, path, result)

    def _attach(self, report: pytest.TestReport, path: Path, result: CheckResult) -> None:
        """Put a result on the report: it travels to the xdist controller with it."""
        found = self.evaluations.get(path.resolve())
        if found is None or isinstance(found, Exception):
            return  # the policy did not load: there is no record to join
        report.mlcheck = {"policy": self.key(path), "result": result.to_dict(),
                          "header": self.header(path)}

    def _is_compiled(self, path: Path, check_id: str) -> bool:
        found = self.evaluations.get(path.resolve())
        return not isinstance(found, (Exception, type(None))) and check_id in {
            c.id for c in found.checks}

    def _quiet_policy_for(self, item: pytest.Item) -> Path | None:
        try:
            return self.policy_for(item)
        except pytest.fail.Exception:
            return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = getattr(report, "mlcheck", None)
        if not found:
            return
        from mlcheck.result import CheckResult

        self.headers.setdefault(found["policy"], found["header"])
        result = CheckResult(**found["result"])
        by_id = self.results.setdefault(found["policy"], {})
        earlier = by_id.get(result.id)  # parametrized custom tests share an id: worst wins
        if earlier is None or _rank(result) > _rank(earlier):
            by_id[result.id] = result

    def _key_of(self, run: Any) -> str:
        return next((key for key, header in self.headers.items()
                     if header["policy"]["sha256"] == run.policy["sha256"]
                     and header["policy"]["path"] == run.policy["path"]), run.policy["path"])

    def records(self) -> list:
        from mlcheck.engine import build_record

        runs = []
        for policy, header in self.headers.items():
            by_id = self.results[policy]
            order = {check_id: i for i, check_id in enumerate(header["check_ids"])}
            results = sorted(by_id.values(), key=lambda r: order.get(r.id, len(order)))
            runs.append(build_record(header, results))
        return runs

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput") or not self.headers:
            return  # an xdist worker (the controller writes), or no check ran
        runs = self.records()
        if any(run.blocked for run in runs) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # the gate decides, not pytest
        json_path = self.config.getoption("mlcheck_json")
        report_path = self.config.getoption("mlcheck_report")
        if not (json_path or report_path):
            return
        import json

        from mlcheck.integrity import seal
        from mlcheck.outputs import write_files
        from mlcheck.report import render_html
        from mlcheck.result import session_record

        record = seal(session_record(runs))
        outputs = {}
        if json_path:
            outputs[Path(json_path)] = json.dumps(record, indent=2, allow_nan=False) + "\n"
        if report_path:
            outputs[Path(report_path)] = render_html(record)
        try:
            write_files(outputs)
        except OSError as exc:
            self.write_error = f"cannot write {exc.filename or ''}: {exc.strerror or exc}"
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput"):
            return
        if self.config.getoption("collectonly"):
            return
        terminalreporter.section("mlcheck")
        if not self.headers:
            terminalreporter.write_line("no mlcheck check ran: no record written", yellow=True)
            return
        for run in self.records():
            counts = ", ".join(f"{n} {v}" for v, n in run.counts().items() if n)
            line = f"{self._key_of(run)}: {run.verdict.upper()} ({counts})"
            if run.blocked:
                line += ": blocking checks: " + ", ".join(c.id for c in run.checks if c.blocking)
            if run.not_run:
                line += f" [partial: {len(run.not_run)} checks not run]"
            terminalreporter.write_line(line, red=run.blocked, green=not run.blocked)
        if self.write_error:
            terminalreporter.write_line(f"mlcheck: {self.write_error}", red=True)
            return
        for option in ("mlcheck_json", "mlcheck_report"):
            if self.config.getoption(option):
                terminalreporter.write_line(f"{option.replace('_', '-')}: "
                                            f"{self.config.getoption(option)}")


def custom_id(item: pytest.Item) -> str:
    """The check id of a test marked @pytest.mark.mlcheck; a missing id fails the test."""
    check_id = _quiet_custom_id(item)
    if not check_id:
        pytest.fail("@pytest.mark.mlcheck needs an id, e.g. "
                    "@pytest.mark.mlcheck(id='custom/no_leakage')", pytrace=False)
    return check_id


def _quiet_custom_id(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker(MARKER)
    return marker.kwargs.get("id") or (marker.args[0] if marker.args else None)


_RANKS = {"pass": 0, "waived": 1, "warn": 2, "inconclusive": 3, "fail": 4, "error": 5}


def _rank(result: CheckResult) -> int:
    return _RANKS.get(result.verdict, 5)


def _custom_result(item: pytest.Item, report: pytest.TestReport,
                   check_id: str) -> CheckResult:
    """The record entry for a test marked @pytest.mark.mlcheck(id=...).

    A skipped test is an `error` (a check that did not run never passes); an expected
    failure (xfail) is `waived`, with its reason."""
    from mlcheck.result import CheckResult

    marker = item.get_closest_marker(MARKER)
    severity = marker.kwargs.get("severity", "block")
    warned = getattr(item, "mlcheck_warned", None)
    if hasattr(report, "wasxfail"):
        verdict, message = "waived", f"xfail: {report.wasxfail or _short(report)}"
    elif report.passed and warned:
        verdict, message = "warn", warned
    elif report.passed:
        verdict, message = "pass", "passed"
    elif report.skipped:
        verdict, message = "error", f"skipped: {_short(report)}"
    elif report.when == "call":
        verdict, message = "fail", _short(report)
    else:
        verdict, message = "error", f"error in {report.when}: {_short(report)}"
    return CheckResult(
        id=check_id, family="custom", severity=severity, verdict=verdict,
        description=(item.function.__doc__ or "").strip().split("\n")[0]
        if hasattr(item, "function") else "",
        message=message, evidence={"test": item.nodeid},
        policy_file=None, policy_line=None, duration_s=report.duration,
        blocking=verdict in ("fail", "error"),
        controls=list(marker.kwargs.get("controls", ())),
    )


def _short(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.split("\n")[0]
    if isinstance(report.longrepr, tuple):  # skip: (file, line, reason)
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr).strip().split("\n")[-1]


# ---------------------------------------------------------- collectors and items


class PolicyFile(pytest.File):
    """A policy file: one item per compiled check."""

    def collect(self):
        session = _session(self.config)
        evaluation = session.evaluation(self.path)
        for check in evaluation.checks:
            # the node id is given as text so that pytest parses "[...]" as params, exactly
            # as it parses ids read back from its cache (--lf, --sw)
            yield CheckItem.from_parent(self, name=check.id, check=check,
                                        nodeid=f"{self.nodeid}::{check.id}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):
        from mlcheck.errors import MlcheckError

        if isinstance(excinfo.value, MlcheckError):
            return f"mlcheck could not load this policy:\n{excinfo.value}"
        return super().repr_failure(excinfo, style)


class CheckItem(pytest.Item):
    """One check of a policy; evaluates only itself, against the policy's shared context."""

    def __init__(self, *, check: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.policy_path = self.path
        self.result: CheckResult | None = None

    def runtest(self) -> None:
        evaluation = _session(self.config).evaluation(self.path)
        self.result = result = evaluation.run(self.check)
        self.user_properties.extend(_properties(result))
        if result.blocking:
            raise CheckFailed(result)
        if result.verdict == "waived":
            pytest.xfail(f"waived: {result.message}")
        if result.verdict in ("warn", "inconclusive"):  # at the rule's line in the policy
            warnings.warn_explicit(f"{result.id}: {result.message}", MlcheckWarning,
                                   str(self.path), result.policy_line or 0)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):
        if isinstance(excinfo.value, CheckFailed):
            return failure_text(excinfo.value.result)
        if isinstance(excinfo.value, MlcheckWarning) and self.result is not None:
            return failure_text(self.result) + "\n  (a warn check, failing under -W error)"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        line = self.check.location.line if self.check.location else None
        return self.path, (line - 1) if line else None, f"mlcheck: {self.check.id}"


def failure_text(result: CheckResult) -> str:
    """The few lines pytest shows for a failing check (no traceback)."""
    from mlcheck.report.html import format_number
    from mlcheck.report.text import detail_lines

    lines = [f"{result.id}: {result.verdict.upper()} (severity {result.severity})",
             f"  {result.message}"]
    facts = []
    if result.value is not None:
        facts.append(f"value {format_number(result.value)}")
    facts.extend(f"{name} {bound:g}" for name, bound in result.bounds.items())
    if result.n is not None:
        facts.append(f"n {result.n:,}")
    if facts:
        lines.append("  " + " · ".join(facts))
    summary = _evidence_summary(result.evidence)
    if summary:
        lines.append(f"  evidence: {summary}")
    lines.extend("  " + line for line in detail_lines(result.family, result.evidence,
                                                      result.verdict))
    if result.policy_file:
        lines.append(f"  rule: {result.policy_file}:{result.policy_line}")
    return "\n".join(lines)


def _evidence_summary(evidence: dict[str, Any]) -> str:
    """Top-level scalar evidence, e.g. `positives=591, negatives=4830`."""
    shown = [f"{k}={format_scalar(v)}" for k, v in evidence.items()
             if isinstance(v, (int, float, str, bool)) and k not in ("metric", "dataset")]
    return ", ".join(shown[:8])


def format_scalar(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _properties(result: CheckResult) -> list[tuple[str, Any]]:
    """JUnit XML properties of a check's testcase."""
    props = [("mlcheck_id", result.id), ("verdict", result.verdict),
             ("severity", result.severity)]
    if result.value is not None:
        props.append(("value", repr(result.value)))
    props.extend((f"bound_{name}", repr(bound)) for name, bound in result.bounds.items())
    if result.n is not None:
        props.append(("n", result.n))
    return props


# ------------------------------------------------------------------- fixtures


def _evaluation_for(request: pytest.FixtureRequest) -> Evaluation:
    session = _session(request.config)
    if session is None:
        pytest.skip("mlcheck fixtures need `pytest --mlcheck`")
    return session.evaluation(session.policy_for(request.node))


@pytest.fixture
def mlcheck_context(request: pytest.FixtureRequest):
    """The evaluation context of the test's policy: cached predictions, scores, data."""
    return _evaluation_for(request).context


@pytest.fixture
def mlcheck_policy(request: pytest.FixtureRequest):
    """The loaded, validated policy (`mlcheck.Policy`)."""
    return _evaluation_for(request).policy


@pytest.fixture
def mlcheck_model(request: pytest.FixtureRequest):
    """The candidate model object (None in black-box mode)."""
    model = _evaluation_for(request).subject.model
    return model.estimator if model else None


@pytest.fixture
def mlcheck_datasets(request: pytest.FixtureRequest) -> dict:
    """The policy's datasets by name, as pandas DataFrames."""
    return {name: ds.frame for name, ds in _evaluation_for(request).subject.datasets.items()}




def _is_policy(path: Path) -> bool:
    """A YAML file whose top level has an `mlcheck:` key (read cheaply, line by line)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            head = (line for line, _ in zip(handle, range(200), strict=False))
            return any(line.startswith("mlcheck:") for line in head)
    except OSError:
        return False
