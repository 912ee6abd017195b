"""mlcheck in CI: which policy files a command line names, and GitHub workflow annotations.

`find_policies` turns the files, globs and folders given to `mlcheck check` and `mlcheck
validate` into policy files (a folder: every YAML file in it with a top-level `mlcheck:`
key, as `pytest --mlcheck` finds them). `render_annotations` is `mlcheck report --format
github`: one workflow command per check that did not pass, at its rule's line in the policy,
which the GitHub action (action.yml) prints so a pull request shows each failure on the
policy file. This module imports nothing heavy: `mlcheck validate` runs in a pre-commit hook.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from mlcheck.errors import MlcheckError

POLICY_SUFFIXES = (".yaml", ".yml")
_GLOB_CHARACTERS = frozenset("*?[")


def is_policy(path: Path) -> bool:
    """A regular YAML file whose top level has an `mlcheck:` key anywhere in it (a FIFO or
    a device found in a folder is not opened; the read is bounded by the policy limit)."""
    from mlcheck.inputs import POLICY, read_limited

    try:
        text = read_limited(path, "policy file", POLICY).decode("utf-8-sig", errors="replace")
    except (MlcheckError, OSError):
        return False
    return any(line.startswith("mlcheck:") for line in text.splitlines())


def find_policies(names: list[Path], *, only_policies: bool = False) -> list[Path]:
    """The policy files that files, globs and folders name, in order, each once.

    A folder gives every YAML file under it with a top-level `mlcheck:` key (hidden folders
    are skipped); a glob (quoted, so the shell left it alone) gives what it matches, and
    must match something; a file is taken as named, or, with `only_policies`, skipped when
    it has no `mlcheck:` key (pre-commit passes every changed YAML file). A name that is
    none of these is kept, so loading it says it was not found."""
    found: list[Path] = []
    for name in names:
        text = str(name)
        if name.is_dir():
            inside = _policies_in(name)
            if not inside:
                raise MlcheckError(f"{text}: no policy in this folder (a YAML file with a "
                                   "top-level `mlcheck:` key)")
            found += inside
        elif not name.exists() and _GLOB_CHARACTERS & set(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise MlcheckError(f"{text}: no file matches this pattern")
            found += [p for p in files if not only_policies or is_policy(p)]
        elif not only_policies or not name.is_file() or is_policy(name):
            found.append(name)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _policies_in(folder: Path) -> list[Path]:
    """Policy files under a folder, in a stable order, without entering hidden folders
    (`.git`, `.venv`)."""
    found = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        found += [Path(root, f) for f in sorted(files)
                  if f.endswith(POLICY_SUFFIXES) and not f.startswith(".")]
    return [path for path in found if is_policy(path)]


# ------------------------------------------------------------ GitHub workflow commands


def escape_data(value: Any) -> str:
    """A workflow command's message, as GitHub's runner reads it back (`%`, CR, LF)."""
    return str(value).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: Any) -> str:
    """A workflow command's property value (`file=`, `title=`): also `:` and `,`."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(level: str, message: Any, **properties: Any) -> str:
    """One workflow command line, `::level key=value,...::message`, every part escaped and
    free of control characters (data must not start a command of its own)."""
    from mlcheck.report.text import terminal_text

    props = ",".join(f"{key}={escape_property(terminal_text(value))}"
                     for key, value in properties.items() if value not in (None, ""))
    return f"::{level}{' ' + props if props else ''}::{escape_data(terminal_text(message))}"


def render_annotations(record: dict[str, Any], previous: dict[str, Any] | None = None, *,
                       status: str | None = None) -> str:
    """GitHub Actions annotations: an `error` per blocking check, a `warning` per other
    check that did not pass, a `notice` per waived one, each at its rule's line in the
    policy file; an `error` for checks or policies not run and for an altered record.
    Blocking ones come first (GitHub shows at most 10 of each level per step)."""
    from mlcheck.report.formats import not_run_note, policies_not_run, runs_of
    from mlcheck.report.text import ALTERED_NOTE, UNSEALED_NOTE, record_status

    status = status or record_status(record)
    found: list[tuple[int, str]] = []  # (order, line)
    if status == "altered":
        found.append((0, command("error", ALTERED_NOTE, title="mlcheck: record altered")))
    elif status == "unsealed":
        found.append((2, command("notice", UNSEALED_NOTE, title="mlcheck: record unsealed")))
    for run in runs_of(record):
        for check in run["checks"]:
            verdict = check["verdict"]
            if verdict == "pass":
                continue
            level = "error" if check["blocking"] else "notice" if verdict == "waived" \
                else "warning"
            file = check.get("policy_file")
            found.append((0 if level == "error" else 1, command(
                level, f"{verdict}: {check['message']}", file=file and _posix(file),
                line=file and (check.get("policy_line") or 1),
                title=f"mlcheck {verdict}: {check['id']}")))
        if not_run_note(run):
            path = run["policy"].get("path")
            found.append((0, command("error", f"{not_run_note(run)}: "
                                     f"{', '.join(run['not_run'][:20])}",
                                     file=path and _posix(path), line=path and 1,
                                     title=f"mlcheck partial: {run['policy']['name']}")))
    for missing in policies_not_run(record):
        found.append((0, command("error", f"not run ({missing['reason']}), so this is not a "
                                 "gate verdict", file=_posix(missing["policy"]), line=1,
                                 title="mlcheck: policy not run")))
    return "".join(line + "\n" for _, line in sorted(found, key=lambda item: item[0]))


def _posix(path: str) -> str:
    return Path(path).as_posix()
