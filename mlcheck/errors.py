"""Errors that stop a run before any check is evaluated (exit code 2)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    """Where in a policy file something was written (1-based line and column)."""

    file: str
    line: int | None = None
    column: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.key}" if self.key else where


class MlcheckError(Exception):
    """Base class: a problem with the user's input, reported without a traceback."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class PolicyError(MlcheckError):
    """The policy file is malformed or inconsistent. May carry several problems."""

    def __init__(self, problems: list[tuple[str, Location | None]]) -> None:
        self.problems = problems
        first_message, first_location = problems[0]
        super().__init__(first_message, first_location)

    def __str__(self) -> str:
        lines = [f"{loc}: {msg}" if loc else msg for msg, loc in self.problems]
        return "\n".join(lines)


class InputError(MlcheckError):
    """A model or dataset named by the policy cannot be used (missing, untrusted, empty…)."""


def display_path(path: Path | str) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class CheckError(Exception):
    """A single check cannot be evaluated; it becomes an `error` verdict, never a pass."""


def suggest(word: str, options: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest option, ignoring case; empty when none is close."""
    options = [str(o) for o in options]
    same = [o for o in options if o.lower() == word.lower() and o != word]
    close = same or difflib.get_close_matches(word.lower(), [o.lower() for o in options], n=1,
                                              cutoff=0.6)
    if not close:
        return ""
    match = next(o for o in options if o.lower() == close[0].lower())
    return f" (did you mean '{match}'?)"
