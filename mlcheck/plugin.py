"""`pytest --mlcheck`: every compiled check of a policy is a pytest item.

Inert unless `--mlcheck` is given. Each policy is prepared once per process (subject
loaded, checks compiled at collection); each item evaluates only its own check against
the shared context. Results travel on the test reports, so the controller of a
pytest-xdist run (or the single process otherwise) assembles the record and report;
what reports do not carry (every policy a worker prepared, those it could not load, a
check interrupted by Ctrl-C) travels in the worker's `workeroutput`.

A session that did not evaluate every compiled check of every policy it was to gate is
`partial`: never `passed`, and a failure unless `--mlcheck-allow-partial` (docs/pytest.md).
"""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mlcheck.ci import POLICY_SUFFIXES, is_policy

if TYPE_CHECKING:  # the engine imports pandas and scikit-learn: only load it when asked
    from mlcheck.engine import Evaluation
    from mlcheck.result import CheckResult, RunResult

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
    group.addoption("--mlcheck-model-timeout", type=float, metavar="SECONDS",
                    help="longest time one model call may take (overrides model.timeout)")
    group.addoption("--mlcheck-allow-partial", action="store_true",
                    help="exit 0 when some checks did not run (deselected, -x) and none that "
                         "ran blocks; the record still says partial, never passed")
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
        self.load_errors: dict[str, str] = {}  # policy key -> why it could not be loaded
        self.unreported: list[dict] = []  # results of checks stopped by Ctrl-C (no report)
        self.orphans: dict[str, str] = {}  # node id -> why: failed without a result (crash)
        self.runs: dict[str, RunResult] = {}  # policy key -> the run, at the session's end
        self.policies_not_run: list[dict[str, str]] = []
        self.verdict, self.ran = "partial", False  # of the session, once judged
        self.outputs_refused = False
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
                found.extend(p for p in sorted(path.rglob("*.y*ml")) if is_policy(p))
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
        """The policy prepared once per process; a load error is remembered and re-raised.

        Loading runs model code (a factory, an unpickled model): a `sys.exit()` there is
        this policy's load error too, never an exit of pytest (which would be an
        INTERNALERROR at collection). Only an interrupt propagates."""
        path = path.resolve()
        if path not in self.evaluations:
            from mlcheck.engine import Evaluation
            from mlcheck.errors import MlcheckError

            try:
                self.evaluations[path] = Evaluation(
                    path, trust_model=self.config.getoption("mlcheck_trust_model"),
                    model_timeout=self.config.getoption("mlcheck_model_timeout"))
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # MlcheckError, or a bug shown with its traceback
                self.evaluations[path] = exc
            except BaseException as exc:  # SystemExit, pytest.exit() and the like
                self.evaluations[path] = MlcheckError(
                    f"loading the policy raised {type(exc).__name__}"
                    f"{f': {exc}' if str(exc) else ''} (an exit from model code is not a "
                    "verdict)")
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
            self.outputs_refused = True  # the session still finishes: write nothing then
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
            if call.when == "teardown":
                return
            if item.result is None and (report.failed or report.skipped):
                # stopped before the engine judged it (a setup hook that raised, a skip
                # marker): the check's error, never "not run"
                item.result = item.error(_not_evaluated(report))
            if item.result is not None:
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
        report.mlcheck = self.transported(path, result)

    def transported(self, path: Path, result: CheckResult) -> dict:
        """A result as it travels between processes (plain JSON types)."""
        return {"policy": self.key(path), "result": result.to_dict(),
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
        if found:
            self._gather(found)
        elif report.failed and "::" in report.nodeid:  # e.g. an xdist worker that crashed
            self.orphans.setdefault(report.nodeid, _short(report))

    def _gather(self, found: dict) -> None:
        from mlcheck.result import CheckResult

        self.headers.setdefault(found["policy"], found["header"])
        result = CheckResult(**found["result"])
        by_id = self.results.setdefault(found["policy"], {})
        earlier = by_id.get(result.id)  # parametrized custom tests share an id: worst wins
        if earlier is None or _rank(result) > _rank(earlier):
            by_id[result.id] = result

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: what a worker's reports did not carry."""
        self._merge((getattr(node, "workeroutput", None) or {}).get("mlcheck") or {})

    def _own_state(self) -> dict:
        """What this process knows beyond its reports: the header of every policy it
        prepared (also those none of whose checks ran), why others could not be loaded,
        and the results of checks stopped by Ctrl-C."""
        state: dict[str, Any] = {"headers": {}, "load_errors": {}, "results": self.unreported,
                                 "outputs_refused": self.outputs_refused}
        for path, found in self.evaluations.items():
            if isinstance(found, Exception):
                state["load_errors"][self.key(path)] = (" ".join(str(found).split())
                                                        or type(found).__name__)
            else:
                state["headers"][self.key(path)] = self.header(path)
        return state

    def _merge(self, state: dict) -> None:
        self.outputs_refused |= bool(state.get("outputs_refused"))  # a worker's collection
        for key, header in state.get("headers", {}).items():
            self.headers.setdefault(key, header)
        for key, why in state.get("load_errors", {}).items():
            self.load_errors.setdefault(key, why)
        for found in state.get("results", []):
            self._gather(found)

    def records(self) -> dict[str, RunResult]:
        """The run of every policy prepared anywhere, in the order the policies were named
        or found; compiled checks without a result are its `not_run`."""
        from mlcheck.engine import build_record

        self._adopt_orphans()
        order = [self.key(p) for p in self.policies]
        keys = sorted(self.headers, key=lambda k: order.index(k) if k in order else len(order))
        runs = {}
        for key in keys:
            header = self.headers[key]
            position = {check_id: i for i, check_id in enumerate(header["check_ids"])}
            results = sorted(self.results.get(key, {}).values(),
                             key=lambda r: position.get(r.id, len(position)))
            runs[key] = build_record(header, results)
        return runs

    def _adopt_orphans(self) -> None:
        """A check item that failed without a result (its xdist worker crashed) is an
        `error`, not "not run"."""
        from mlcheck.result import CheckResult

        for nodeid, why in self.orphans.items():
            key, _, check_id = nodeid.partition("::")
            header, by_id = self.headers.get(key), self.results.setdefault(key, {})
            if header and check_id in header["check_ids"] and check_id not in by_id:
                by_id[check_id] = CheckResult(
                    id=check_id, family=check_id.split("/")[0], severity="block",
                    verdict="error", message=why, blocking=True)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session):
        """Judge the session before other plugins finish it: pytest's JUnit XML, written
        in its own sessionfinish, carries the gate verdict."""
        if hasattr(self.config, "workerinput"):  # the controller judges and writes
            self.config.workeroutput["mlcheck"] = self._own_state()
        elif not self.config.getoption("collectonly"):
            self._finish(session)
        return (yield)

    def _finish(self, session: pytest.Session) -> None:
        """The gate: exit non-zero when a check blocks, when no check ran, and when the
        run is partial (unless allowed); then write the record and report."""
        from mlcheck.result import session_record

        self._merge(self._own_state())
        self.runs = self.records()
        self.policies_not_run = [
            {"policy": key, "reason": f"could not be loaded: {self.load_errors[key]}"
             if key in self.load_errors else "not collected"}
            for key in dict.fromkeys(self.key(p) for p in self.policies)
            if key not in self.runs]
        record = session_record(list(self.runs.values()), self.policies_not_run)
        self.verdict, self.ran = record["verdict"], any(r.checks for r in self.runs.values())
        allowed = self.config.getoption("mlcheck_allow_partial")
        fails = self.verdict == "blocked" or not self.ran or (record["partial"] and not allowed)
        if fails and session.exitstatus in (pytest.ExitCode.OK,
                                            pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # the gate decides, not pytest
        self._junit_verdict(self.verdict)
        json_path = self.config.getoption("mlcheck_json")
        report_path = self.config.getoption("mlcheck_report")
        if not (json_path or report_path) or self.outputs_refused:
            return
        import json

        from mlcheck.integrity import seal
        from mlcheck.outputs import write_files
        from mlcheck.report import render_html

        record = seal(record)
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

    def _junit_verdict(self, verdict: str) -> None:
        """`--junitxml`: the gate verdict as a property of the test suite."""
        try:
            from _pytest.junitxml import xml_key  # what record_testsuite_property uses
        except ImportError:
            return
        xml = self.config.stash.get(xml_key, None)
        if xml is not None:
            xml.add_global_property("mlcheck_verdict", verdict)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput") or self.config.getoption("collectonly"):
            return
        from mlcheck.report.text import terminal_text as safe  # no control characters

        write = terminalreporter.write_line
        allowed = self.config.getoption("mlcheck_allow_partial")
        terminalreporter.section("mlcheck")
        for key, run in self.runs.items():
            counts = ", ".join(f"{n} {v}" for v, n in run.counts().items() if n)
            line = f"{safe(key)}: {run.verdict.upper()} ({counts or 'no check ran'})"
            if run.blocked:
                line += ": blocking checks: " + ", ".join(safe(c.id) for c in run.checks
                                                          if c.blocking)
            if run.not_run:
                compiled = len(run.not_run) + sum(c.family != "custom" for c in run.checks)
                line += (f"; {len(run.not_run)} of {compiled} checks not run: "
                         + safe(_listed(run.not_run)))
            write(line, red=run.blocked or (run.partial and not allowed),
                  yellow=run.partial and allowed and not run.blocked,
                  green=run.verdict == "passed")
        for missing in self.policies_not_run:
            write(f"{safe(missing['policy'])}: NOT RUN ({safe(missing['reason'])})",
                  red=not allowed, yellow=allowed)
        if not self.ran:
            write("no mlcheck check ran: the gate did not run, so the session fails",
                  red=True)
        elif self.verdict == "partial" and allowed:
            write("mlcheck: partial run accepted (--mlcheck-allow-partial): not every check "
                  "ran, so this is no gate verdict", yellow=True)
        elif self.verdict == "partial":
            write("mlcheck: partial run: not every check ran, so this is no gate verdict and "
                  "the session fails (--mlcheck-allow-partial accepts partial runs)", red=True)
        if self.write_error:
            write(f"mlcheck: {safe(self.write_error)}", red=True)
            return
        for option in ("mlcheck_json", "mlcheck_report"):
            if self.config.getoption(option):
                write(f"{option.replace('_', '-')}: {safe(self.config.getoption(option))}")


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
    elif report.failed and report.when == "call":
        verdict, message = "fail", _short(report)
    else:
        verdict, message = "error", _not_evaluated(report)
    return CheckResult(
        id=check_id, family="custom", severity=severity, verdict=verdict,
        description=(item.function.__doc__ or "").strip().split("\n")[0]
        if hasattr(item, "function") else "",
        message=message, evidence={"test": item.nodeid},
        policy_file=None, policy_line=None, duration_s=report.duration,
        blocking=verdict in ("fail", "error"),
        controls=list(marker.kwargs.get("controls", ())),
    )


def _not_evaluated(report: pytest.TestReport) -> str:
    """Why pytest stopped a test before it passed or failed on its own terms."""
    if report.skipped:
        return f"skipped: {_short(report)}"
    return f"error in {report.when}: {_short(report)}"


def _listed(ids: list[str], shown: int = 5) -> str:
    """The first few ids, and how many more."""
    more = f", … ({len(ids) - shown} more)" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more


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
        session = _session(self.config)
        evaluation = session.evaluation(self.path)
        try:
            self.result = result = evaluation.run(self.check)
        except KeyboardInterrupt:  # Ctrl-C (the engine makes model code's own an error)
            self.result = self.error("interrupted (Ctrl-C) while this check ran")
            session.unreported.append(session.transported(self.path, self.result))
            raise  # pytest ends the session, and makes no report of this item
        self.user_properties.extend(_properties(result))
        if result.blocking:
            raise CheckFailed(result)
        from mlcheck.report.text import terminal_text as safe  # pytest prints these

        if result.verdict == "waived":
            pytest.xfail(f"waived: {safe(result.message)}")
        if result.verdict in ("warn", "inconclusive"):  # at the rule's line in the policy
            warnings.warn_explicit(f"{safe(result.id)}: {safe(result.message)}",
                                   MlcheckWarning, str(self.path), result.policy_line or 0)

    def error(self, message: str) -> CheckResult:
        """This check's `error`, when it was stopped before the engine could judge it."""
        from mlcheck.policy import matches
        from mlcheck.result import CheckResult

        check, policy = self.check, _session(self.config).evaluation(self.path).policy
        return CheckResult(
            id=check.id, family=check.family, severity=check.severity, verdict="error",
            description=check.description, message=message, blocking=True,
            policy_file=check.location and check.location.file,
            policy_line=check.location and check.location.line,
            controls=[control for pattern, controls in policy.controls.items()
                      if matches(pattern, check.id) for control in controls])

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):
        if isinstance(excinfo.value, CheckFailed):
            return failure_text(excinfo.value.result)
        if isinstance(excinfo.value, MlcheckWarning) and self.result is not None:
            return failure_text(self.result) + "\n  (a warn check, failing under -W error)"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        from mlcheck.report.text import terminal_text  # the header of the failure text

        line = self.check.location.line if self.check.location else None
        return self.path, (line - 1) if line else None, f"mlcheck: {terminal_text(self.check.id)}"


def failure_text(result: CheckResult) -> str:
    """The few lines pytest shows for a failing check (no traceback); data in them is made
    terminal-safe (no control characters, bounded length)."""
    from mlcheck.report.html import format_number
    from mlcheck.report.text import detail_lines
    from mlcheck.report.text import terminal_text as safe

    lines = [f"{safe(result.id)}: {result.verdict.upper()} (severity {result.severity})",
             f"  {safe(result.message)}"]
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
        lines.append(f"  evidence: {safe(summary)}")
    lines.extend("  " + line for line in detail_lines(result.family, result.evidence,
                                                      result.verdict))
    if result.policy_file:
        lines.append(f"  rule: {safe(result.policy_file)}:{result.policy_line}")
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
