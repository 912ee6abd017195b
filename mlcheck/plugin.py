"""`pytest --mlcheck`: every compiled check of a policy is a pytest item.

Inert unless `--mlcheck` is given. Each policy is prepared once per process (subject
loaded, checks compiled at collection); each item evaluates only its own check against
the shared context. Results travel on the test reports, so the controller of a
pytest-xdist run (or the single process otherwise) assembles the record and report.
"""

from __future__ import annotations

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


class MlcheckWarning(UserWarning):
    """A check with severity `warn` failed: the test passes, the warning is shown."""


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
        self.policies = self._policy_paths()
        self.evaluations: dict[Path, Evaluation | Exception] = {}
        self.headers: dict[str, dict] = {}  # policy key -> record header (gathered)
        self._own_headers: dict[Path, dict] = {}  # this process's, computed once
        self.results: dict[str, dict[str, CheckResult]] = {}  # policy key -> id -> result
        named = {p.resolve() for p in self.policies}
        if not any(Path(a.split("::")[0]).resolve() in named for a in config.args):
            config.args.extend(str(p) for p in self.policies)  # collect them too

    def _policy_paths(self) -> list[Path]:
        """Policies named on the command line, else the ini option's globs, else the default."""
        named = [Path(a.split("::")[0]) for a in self.config.args
                 if a.split("::")[0].endswith(POLICY_SUFFIXES)]
        if named:
            return named
        globs = self.config.getini("mlcheck_policies") or [DEFAULT_POLICIES]
        base = self.config.inipath.parent if self.config.inipath else self.root
        return sorted({p for pattern in globs for p in base.glob(pattern) if p.is_file()})

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
            if path not in {p.resolve() for p in self.policies}:
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
        if file_path.suffix in POLICY_SUFFIXES and file_path.resolve() in {
                p.resolve() for p in self.policies}:
            return PolicyFile.from_parent(parent, path=file_path)
        return None

    # ------------------------------------------------------------- reporting

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if not isinstance(item, CheckItem) and item.get_closest_marker(MARKER):
            item.mlcheck_policy = self.policy_for(item)  # fails the test if ambiguous

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report = outcome.get_result()
        result, path = None, getattr(item, "mlcheck_policy", None)
        if isinstance(item, CheckItem) and call.when == "call":
            result, path = item.result, item.path
        elif path is not None and (call.when == "call" or report.failed or report.skipped):
            result = _custom_result(item, report)
        if result is not None:
            report.mlcheck = {"policy": self.key(path), "result": result.to_dict(),
                              "header": self.header(path)}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = getattr(report, "mlcheck", None)
        if not found:
            return
        from mlcheck.result import CheckResult

        self.headers.setdefault(found["policy"], found["header"])
        result = CheckResult(**found["result"])
        self.results.setdefault(found["policy"], {})[result.id] = result

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
        if hasattr(self.config, "workerinput"):
            return  # an xdist worker: the controller writes the outputs
        json_path = self.config.getoption("mlcheck_json")
        report_path = self.config.getoption("mlcheck_report")
        if not (json_path or report_path) or not self.headers:
            return  # nothing asked for, or no check ran: no record claims a verdict
        import json

        from mlcheck.report import render_html
        from mlcheck.result import session_record, write_files

        record = session_record(self.records())
        outputs = {}
        if json_path:
            outputs[Path(json_path)] = json.dumps(record, indent=2, allow_nan=False) + "\n"
        if report_path:
            outputs[Path(report_path)] = render_html(record)
        write_files(outputs)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput"):
            return
        terminalreporter.section("mlcheck")
        if not self.headers:
            terminalreporter.write_line("no mlcheck check ran: no record written", yellow=True)
            return
        for run in self.records():
            counts = ", ".join(f"{n} {v}" for v, n in run.counts().items() if n)
            line = f"{run.policy['path']}: {run.verdict.upper()} ({counts})"
            if run.blocked:
                line += ": blocking checks: " + ", ".join(c.id for c in run.checks if c.blocking)
            if run.not_run:
                line += f" [partial: {len(run.not_run)} checks not run]"
            terminalreporter.write_line(line, red=run.blocked, green=not run.blocked)
        for option in ("mlcheck_json", "mlcheck_report"):
            if self.config.getoption(option):
                terminalreporter.write_line(f"{option.replace('_', '-')}: "
                                            f"{self.config.getoption(option)}")


def _custom_result(item: pytest.Item, report: pytest.TestReport) -> CheckResult:
    """The record entry for a test marked @pytest.mark.mlcheck(id=...)."""
    from mlcheck.result import CheckResult

    marker = item.get_closest_marker(MARKER)
    check_id = marker.kwargs.get("id") or (marker.args[0] if marker.args else None)
    if not check_id:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.mlcheck needs an id, "
                                "e.g. id='custom/no_leakage'")
    severity = marker.kwargs.get("severity", "block")
    if report.passed:
        verdict, message = "pass", "passed"
    elif report.skipped:
        verdict, message = "error", f"skipped: {_short(report)}"
    elif report.when == "call":
        verdict = "warn" if severity == "warn" else "fail"
        message = _short(report)
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
        return str(report.longrepr[2])
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
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        line = self.check.location.line if self.check.location else None
        return self.path, (line - 1) if line else None, f"mlcheck: {self.check.id}"


def failure_text(result: CheckResult) -> str:
    """The few lines pytest shows for a failing check (no traceback)."""
    from mlcheck.report.html import format_number

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


