"""Check families. Each module turns its policy section into `Check`s.

A check is small and pure given the context: it reads shared, cached work from the
`Context` and returns an `Outcome`, or raises `CheckError` when it cannot be evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlcheck.errors import Location

if TYPE_CHECKING:
    from mlcheck.context import Context


@dataclass(frozen=True)
class Outcome:
    """What a check measured, and whether that satisfies its bounds."""

    passed: bool
    value: float | None = None
    bounds: dict[str, float] = field(default_factory=dict)
    n: int | None = None
    message: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """One compiled rule: a stable id, its family and severity, and how to evaluate it."""

    id: str
    family: str
    severity: str
    description: str
    evaluate: Callable[[Context], Outcome]
    location: Location | None = None  # where the rule was written (file and line)


def within(value: float, low: float | None, high: float | None) -> bool:
    """Whether value lies in [low, high] (either side open when None)."""
    return (low is None or value >= low) and (high is None or value <= high)


def bounds_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"in [{low:g}, {high:g}]"
    return f">= {low:g}" if low is not None else f"<= {high:g}"
