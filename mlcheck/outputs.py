"""Where and how outputs are written: all-or-nothing, never over an input or a secret.

Every front end (CLI, pytest plugin, Python API) writes records and reports through here.
A regular file is replaced atomically (through a symlink, its target is); a device or a
FIFO is written through, never replaced; `-` is standard output; a CI step summary is
appended to.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from mlcheck.errors import MlcheckError

STDOUT = Path("-")
_OUTPUT_MARKERS = ('"record_version"', '<meta name="generator" content="mlcheck')


_DESCRIPTOR = re.compile(r"/dev/(?P<name>stdout|stderr)|/(?:dev|proc/self)/fd/(?P<fd>\d+)")


def _descriptor(path: Path) -> int | None:
    """The open file descriptor a path like /dev/stdout or /dev/fd/3 names, or None.

    Such a path is written through its descriptor: following the link would replace or
    truncate whatever the descriptor is redirected to (a CI log, a comment being built
    with `>>`)."""
    found = _DESCRIPTOR.fullmatch(os.path.abspath(path)) if path != STDOUT else None
    if found is None:
        return None
    return {"stdout": 1, "stderr": 2}[found["name"]] if found["name"] else int(found["fd"])


def _identity(path: Path) -> tuple | None:
    """(device, inode) of what a path names after links, or None when nothing is there."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def check_output_paths(*paths: Path, inputs: Iterable[Path] = (),
                       appending: bool = False) -> tuple[Path, ...]:
    """Refuse output paths that cannot be written or would overwrite an input (a policy, a
    dataset, a model, a factory module, a key, the record being rendered) or the CI step
    summary (unless `appending` to it), before a (possibly long) run rather than after it.
    Links are followed: a symlink or hard link to an input is that input."""
    files = [p for p in paths if p != STDOUT]
    if len({p.resolve() for p in files}) != len(files):
        raise MlcheckError(f"two outputs name the same file: {files[0]}")
    inputs = [Path(p) for p in inputs]
    read_paths = {p.resolve() for p in inputs}
    read_ids = {found for found in map(_identity, inputs) if found is not None}
    for path in files:
        if path.resolve() in read_paths or _identity(path) in read_ids:
            raise MlcheckError(f"output path {path} is an input of this run (a policy, "
                               "dataset, model, factory module, key or record); refusing "
                               "to overwrite it")
        if not appending and is_step_summary(path):
            raise MlcheckError(f"{path} is this job's step summary ($GITHUB_STEP_SUMMARY), "
                               "which each step appends to; writing it would replace what "
                               "earlier steps wrote. Write elsewhere and add the summary with "
                               "`mlcheck report RECORD -f markdown -o $GITHUB_STEP_SUMMARY`")
        if path.is_dir():
            raise MlcheckError(f"output path is a directory: {path}")
        parent = next((p for p in path.resolve().parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise MlcheckError(f"cannot create {path}: {parent} is a file")
        if _descriptor(path) is None and path.exists() and stat.S_ISFIFO(path.stat().st_mode):
            os.close(_open_fifo(path))  # refuse now, not after the run, when none reads
    return paths


def _open_fifo(path: Path) -> int:
    """Open a FIFO for writing without blocking forever when nobody reads it."""
    try:
        handle = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise MlcheckError(f"output path {path} is a FIFO with no reader; start the "
                               "reader first, or write to a file") from None
        raise
    os.set_blocking(handle, True)
    return handle


def is_step_summary(path: Path) -> bool:
    """Whether a path is this CI job's step summary (GitHub Actions), which is appended to."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    return bool(summary) and path != STDOUT and Path(summary).resolve() == path.resolve()


def write_atomic(path: str | Path, text: str) -> Path:
    """Write a file so that readers see the old content or the new, never a half."""
    return write_files({Path(path): text})[0]


def write_files(files: dict[Path, str], *, append: bool = False) -> list[Path]:
    """Write several outputs all-or-nothing: every regular file is complete in a temporary
    file beside its target before any target is replaced. A symlink's target is replaced
    (the link stays); devices and FIFOs are written through after that; `-` is stdout.
    With `append`, text is added at the end of each file instead."""
    temps: list[tuple[str, Path]] = []
    through: list[tuple[Path, str]] = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for path, text in files.items():
            if path == STDOUT or _descriptor(path) is not None:
                through.append((path, text))
                continue
            target = Path(os.path.realpath(path))
            if append or (target.exists() and not target.is_file()):
                through.append((target, text))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                            suffix=".tmp")
            temps.append((temp, target))
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(temp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
        for temp, target in temps:
            os.replace(temp, target)
        for target, text in through:
            _write_through(target, text, append)
    finally:
        for temp, _ in temps:
            Path(temp).unlink(missing_ok=True)
    return list(files)


def _write_through(target: Path, text: str, append: bool) -> None:
    descriptor = 1 if target == STDOUT else _descriptor(target)
    if descriptor is not None:  # where it points is left as it is: appended to, in order
        stream = {1: sys.stdout, 2: sys.stderr}.get(descriptor)
        if stream is not None:
            stream.write(text)
            stream.flush()
            return
        data = text.encode("utf-8")
        while data:
            data = data[os.write(descriptor, data):]
        return
    if target.exists() and stat.S_ISFIFO(target.stat().st_mode):
        with os.fdopen(_open_fifo(target), "w", encoding="utf-8") as out:
            out.write(text)
        return
    if append:
        target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a" if append else "w", encoding="utf-8") as out:
        out.write(text)


def clear_previous(paths: Iterable[Path]) -> None:
    """Remove earlier mlcheck records and reports at these paths, so a run that stops
    (invalid input, an interrupt, a failed write) never leaves an old verdict looking
    current. Only regular files that are recognisably mlcheck outputs are removed."""
    for path in paths:
        if path == STDOUT or path.is_symlink() or not path.is_file():
            continue
        try:
            with path.open("r", encoding="utf-8", errors="replace") as handle:
                head = handle.read(4096)
        except OSError:
            continue
        if any(marker in head for marker in _OUTPUT_MARKERS):
            path.unlink(missing_ok=True)
