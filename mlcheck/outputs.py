"""Where and how outputs are written: all-or-nothing, never over an input.

Every front end (CLI, pytest plugin, Python API) writes records and reports through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def check_output_paths(*paths: Path, inputs: Iterable[Path] = ()) -> tuple[Path, ...]:
    """Refuse output paths that cannot be written or would overwrite an input, before a
    (possibly long) run rather than after it."""
    from mlcheck.errors import MlcheckError

    if len({p.resolve() for p in paths}) != len(paths):
        raise MlcheckError(f"the record and the report name the same file: {paths[0]}")
    read = {Path(p).resolve() for p in inputs}
    for path in paths:
        if path.resolve() in read:
            raise MlcheckError(f"output path {path} is an input of this run; refusing to "
                               "overwrite it")
        if path.is_dir():
            raise MlcheckError(f"output path is a directory: {path}")
        parent = next((p for p in path.resolve().parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise MlcheckError(f"cannot create {path}: {parent} is a file")
    return paths


def write_atomic(path: str | Path, text: str) -> Path:
    """Write a file so that readers see the old content or the new, never a half."""
    return write_files({Path(path): text})[0]


def write_files(files: dict[Path, str]) -> list[Path]:
    """Write several files all-or-nothing: every one is complete in a temporary file
    beside its target before any target is replaced."""
    temps: list[tuple[str, Path]] = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                            suffix=".tmp")
            temps.append((temp, path))
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(temp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
        for temp, path in temps:
            os.replace(temp, path)
    finally:
        for temp, _ in temps:
            Path(temp).unlink(missing_ok=True)
    return list(files)
