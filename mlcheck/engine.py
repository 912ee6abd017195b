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

from mlcheck.checks import Check, performance, schema
from mlcheck.context import Context
from mlcheck.errors import CheckError, InputError
from mlcheck.policy import Policy, load_policy
from mlcheck.result import CheckResult, RunResult
from mlcheck.subject import load_subject

FAMILIES = {"schema": schema.compile_checks, "performance": performance.compile_checks}
RECORDED_PACKAGES = ("numpy", "pandas", "scikit-learn", "pandera", "pydantic", "skops",
                     "pyarrow", "scipy")

Progress = Callable[[CheckResult, int, int], None]  # (result, checks done, checks in all)


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
        outcome = check.evaluate(context)
    except CheckError as exc:
        result.message = _one_line(str(exc))
    except Exception as exc:  # a bug or an unexpected library error must not pass silently
        result.message = _one_line(f"internal error: {type(exc).__name__}: {exc}")
    else:
        result.value, result.bounds, result.n = outcome.value, outcome.bounds, outcome.n
        result.message, result.evidence = outcome.message, outcome.evidence
        if outcome.passed:
            result.verdict = "pass"
        else:
            result.verdict = "warn" if check.severity == "warn" else "fail"
    result.duration_s = time.perf_counter() - started
    return result


def _one_line(text: str) -> str:
    """Library messages can span lines; a check's message is one line."""
    return " ".join(text.split())


def evaluate(policy: Policy | str | Path, *, trust_model: bool = False,
             progress: Progress | None = None) -> RunResult:
    """Load what the policy names, run every (selected) check, and return the record."""
    started = time.perf_counter()
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    subject = load_subject(policy, trust_model=trust_model)
    loaded = time.perf_counter()
    context = Context(policy, subject)
    checks = compile_checks(policy, context)
    results = []
    for check in checks:
        results.append(run_check(check, context))
        if progress:
            progress(results[-1], len(results), len(checks))
    finished = time.perf_counter()
    return RunResult(
        policy=describe_policy(policy),
        subject=subject.describe(policy),
        checks=results,
        environment=environment(policy.base_dir),
        timings={"load_s": loaded - started, "checks_s": finished - loaded,
                 "total_s": finished - started},
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        mlcheck_version=package_version("mlcheck"),
    )


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
