"""The one engine: load -> compile -> run -> gate. Every front end is a thin layer over it."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlcheck import DISTRIBUTION
from mlcheck.checks import (
    Check,
    drift,
    explainability,
    fairness,
    performance,
    robustness,
    schema,
)
from mlcheck.context import Context
from mlcheck.errors import CheckError, InputError
from mlcheck.guard import escaped_model_code, model_code
from mlcheck.policy import Policy, load_policy, matches
from mlcheck.result import CheckResult, RunResult
from mlcheck.subject import load_subject

FAMILIES = {"schema": schema.compile_checks, "performance": performance.compile_checks,
            "fairness": fairness.compile_checks, "drift": drift.compile_checks,
            "explainability": explainability.compile_checks,
            "robustness": robustness.compile_checks}
RECORDED_PACKAGES = ("numpy", "pandas", "scikit-learn", "pandera", "pydantic", "skops",
                     "pyarrow", "scipy", "shap", "hypothesis")

# Called as each check starts (result None) and as it ends: (check, result, done, in all).
Progress = Callable[[Check, "CheckResult | None", int, int], None]


def compile_checks(policy: Policy, context: Context) -> list[Check]:
    """Every check the policy asks for, in policy order, with unique ids."""
    checks = [check for compile_family in FAMILIES.values()
              for check in compile_family(policy, context)]
    ids = [c.id for c in checks]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:  # e.g. a slice value that collides with another rule's id
        raise InputError(f"the policy compiles to duplicate check ids: {', '.join(duplicates)}; "
                         "give one of the rules an `id`")
    return checks


def run_check(check: Check, context: Context) -> CheckResult:
    """Evaluate one check; anything that stops it is an `error`, never a pass."""
    started = time.perf_counter()
    result = CheckResult(id=check.id, family=check.family, severity=check.severity,
                         verdict="error", description=check.description,
                         policy_file=check.location and check.location.file,
                         policy_line=check.location and check.location.line)
    try:
        with model_code():
            outcome = check.evaluate(context)
    except CheckError as exc:
        result.message = _one_line(str(exc))
    except Exception as exc:  # a bug or an unexpected library error must not pass silently
        result.message = _one_line(f"internal error: {type(exc).__name__}: {exc}")
    except BaseException as exc:  # sys.exit() or an interrupt from model code, a time limit
        reason = escaped_model_code(exc)
        if reason is None:
            raise  # the user pressed Ctrl-C: the run stops, with no verdict
        result.message = _one_line(reason)
    else:
        result.value, result.bounds, result.n = outcome.value, outcome.bounds, outcome.n
        result.message, result.evidence = outcome.message, outcome.evidence
        if outcome.interval is not None:  # the seed makes the interval reproducible
            result.interval = {**outcome.interval, "seed": context.policy.statistics.seed}
        if outcome.inconclusive:
            result.verdict = "inconclusive"
            result.message = f"inconclusive: {outcome.inconclusive} ({outcome.message})"
        elif outcome.passed:
            result.verdict = "pass"
        else:
            result.verdict = "warn" if check.severity == "warn" else "fail"
    result.blocking = result.verdict in ("fail", "error") or (
        result.verdict == "inconclusive" and check.inconclusive_blocks)
    policy = context.policy
    result.controls = [control for pattern, controls in policy.controls.items()
                       if matches(pattern, check.id) for control in controls]
    _apply_waivers(result, policy, today())
    result.duration_s = time.perf_counter() - started
    return result


def today() -> dt.date:
    """The date waivers are judged on (UTC)."""
    return dt.datetime.now(dt.timezone.utc).date()


def _apply_waivers(result: CheckResult, policy: Policy, on: dt.date) -> None:
    """A failing, warning or inconclusive check named by a waiver in force is `waived`:
    shown with the waiver, never hidden, and not blocking. An `error` is never waived (a
    check that could not run says nothing), and an expired waiver does not apply."""
    if result.verdict not in ("fail", "warn", "inconclusive"):
        return
    for waiver in policy.waivers:
        if not matches(waiver.check, result.id):
            continue
        if waiver.expires < on:
            result.message += f" (waiver by {waiver.approved_by} expired {waiver.expires})"
            continue
        result.waiver = {"check": waiver.check, "reason": waiver.reason,
                         "approved_by": waiver.approved_by,
                         "expires": waiver.expires.isoformat(), "was": result.verdict}
        result.message = (f"waived until {waiver.expires} by {waiver.approved_by}: "
                          f"{waiver.reason} (was {result.verdict}: {result.message})")
        result.verdict, result.blocking = "waived", False
        return


def waiver_status(policy: Policy, check_ids: list[str], on: dt.date) -> list[dict]:
    """Each waiver of the policy: `active`, `expired`, or `stale` (it names no check)."""
    statuses = []
    for waiver in policy.waivers:
        named = [i for i in check_ids if matches(waiver.check, i)]
        status = "stale" if not named else "expired" if waiver.expires < on else "active"
        statuses.append({"check": waiver.check, "reason": waiver.reason,
                         "approved_by": waiver.approved_by,
                         "expires": waiver.expires.isoformat(), "status": status,
                         "checks": named})
    return statuses


def _one_line(text: str) -> str:
    """Library messages can span lines; a check's message is one line."""
    return " ".join(text.split())


class Evaluation:
    """One policy, prepared: subject loaded, context shared, checks compiled.

    Each check is evaluated at most once, on demand: `mlcheck check` runs them all, the
    pytest plugin one item at a time (so deselected items cost nothing)."""

    def __init__(self, policy: Policy | str | Path, *, trust_model: bool = False,
                 model_timeout: float | None = None, model: Any = None, baseline: Any = None,
                 datasets: dict[str, Any] | None = None) -> None:
        started = time.perf_counter()
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy)
        self.subject = load_subject(self.policy, trust_model=trust_model, model=model,
                                    baseline=baseline, datasets=datasets)
        self.context = Context(self.policy, self.subject, model_timeout=model_timeout)
        self.checks = compile_checks(self.policy, self.context)
        self.load_s = time.perf_counter() - started
        self._results: dict[str, CheckResult] = {}

    def run(self, check: Check) -> CheckResult:
        if check.id not in self._results:
            self._results[check.id] = run_check(check, self.context)
        return self._results[check.id]

    def header(self) -> dict:
        """Everything the record says besides the check results (plain JSON types)."""
        ids = [c.id for c in self.checks]
        return {"policy": describe_policy(self.policy),
                "waivers": waiver_status(self.policy, ids, today()),
                "subject": self.subject.describe(self.policy),
                "environment": environment(self.policy.base_dir),
                "mlcheck_version": package_version(DISTRIBUTION),
                "load_s": self.load_s,
                "check_ids": ids}

    def record(self) -> RunResult:
        """The record of the checks evaluated so far, in policy order."""
        return build_record(self.header(), [self._results[c.id] for c in self.checks
                                            if c.id in self._results])


def build_record(header: dict, results: list[CheckResult]) -> RunResult:
    """A RunResult from a run's header and its results (which may come from several
    processes, as under pytest-xdist). Compiled checks without a result are `not_run`."""
    evaluated = {r.id for r in results}
    checks_s = sum(r.duration_s for r in results)
    return RunResult(
        policy=header["policy"], subject=header["subject"], checks=results,
        environment=header["environment"],
        timings={"load_s": header["load_s"], "checks_s": checks_s,
                 "total_s": header["load_s"] + checks_s},
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        mlcheck_version=header["mlcheck_version"],
        not_run=[i for i in header["check_ids"] if i not in evaluated],
        waivers=header.get("waivers", []),
    )


def evaluate(policy: Policy | str | Path, *, model: Any = None, baseline: Any = None,
             datasets: dict[str, Any] | None = None, trust_model: bool = False,
             progress: Progress | None = None, model_timeout: float | None = None
             ) -> RunResult:
    """Load what the policy names, run every check, and return the record.

    From a notebook, pass objects in place of the policy's files: a fitted `model` and
    `baseline`, and `datasets` as {name: DataFrame} for datasets the policy declares;
    the record holds a digest of each (the policy's paths for them are not read).
    `model_timeout` (seconds per model call) overrides the policy's `model.timeout`."""
    evaluation = Evaluation(policy, trust_model=trust_model, model_timeout=model_timeout,
                            model=model, baseline=baseline, datasets=datasets)
    total = len(evaluation.checks)
    for done, check in enumerate(evaluation.checks):
        if progress:  # before, too: a display names the check running now
            progress(check, None, done, total)
        result = evaluation.run(check)
        if progress:
            progress(check, result, done + 1, total)
    return evaluation.record()


def describe_policy(policy: Policy) -> dict:
    origin = policy.origin
    return {"name": policy.name, "owner": policy.owner, "version": policy.version,
            "description": policy.description, "path": origin.sources[0][0],
            "sha256": origin.sha256,
            "sources": [{"path": p, "sha256": h} for p, h in origin.sources],
            "resolved": origin.resolved}


def environment(where: Path) -> dict:
    """Python, platform, library versions and the git commit of the policy's repository."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: package_version(name) for name in RECORDED_PACKAGES},
        "git": _git(where),
    }


def package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(where: Path) -> dict | None:
    """Commit and dirtiness of the repository holding the policy (None outside one)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return None
