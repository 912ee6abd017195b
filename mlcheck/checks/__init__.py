"""Check families. Each module turns its policy section into `Check`s.

A check is small and pure given the context: it reads shared, cached work from the
`Context` and returns an `Outcome`, or raises `CheckError` when it cannot be evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcheck.errors import CheckError, Location
from mlcheck.result import terminal_text
from mlcheck.stats import Interval
from mlcheck.subject import missing_column_message

if TYPE_CHECKING:
    from mlcheck.context import Context


@dataclass(frozen=True)
class Outcome:
    """What a check measured, and whether that satisfies its bounds.

    `inconclusive` (a reason) means the data cannot support a verdict: too few rows, or
    an interval wider than allowed. It wins over `passed`."""

    passed: bool
    value: float | None = None
    bounds: dict[str, float] = field(default_factory=dict)
    n: int | None = None
    message: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    interval: dict[str, Any] | None = None
    inconclusive: str | None = None


@dataclass(frozen=True)
class Check:
    """One compiled rule: a stable id, its family and severity, and how to evaluate it."""

    id: str
    family: str
    severity: str
    description: str
    evaluate: Callable[[Context], Outcome]
    location: Location | None = None  # where the rule was written (file and line)
    inconclusive_blocks: bool = True


def within(value: float, low: float | None, high: float | None) -> bool:
    """Whether value lies in [low, high] (either side open when None)."""
    return (low is None or value >= low) and (high is None or value <= high)


def bounds_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"in [{low:g}, {high:g}]"
    return f">= {low:g}" if low is not None else f"<= {high:g}"


def judge(value: float, interval: Interval | None, low: float | None, high: float | None,
          gate_on: str) -> tuple[bool, str]:
    """Whether the gated statistic lies within [low, high], and what was compared.

    gate_on: `value` the point estimate; `lower_bound`/`upper_bound` that end of the
    interval; `interval` the whole interval (lower end against `min`, upper against `max`).
    Without an interval (resamples: 0) the value is gated."""
    if interval is None or gate_on == "value":
        return within(value, low, high), "value"
    if gate_on == "lower_bound":
        return within(interval.low, low, high), "lower bound"
    if gate_on == "upper_bound":
        return within(interval.high, low, high), "upper bound"
    return ((low is None or interval.low >= low) and (high is None or interval.high <= high),
            "interval")


def interval_text(interval: Interval | None) -> str:
    if interval is None:
        return ""
    return f", {interval.confidence * 100:g}% CI [{interval.low:.4f}, {interval.high:.4f}]"


def doubt(interval: Interval | None, max_width: float | None, low: float | None = None,
          high: float | None = None) -> str | None:
    """Why an interval cannot support a verdict, or None: too many undefined resamples, or
    wider than `max_width`. An interval that lies wholly outside [low, high] is a
    confident failure however wide, so it is never inconclusive."""
    if interval is None:
        return None
    if (low is not None and interval.high < low) or (high is not None and interval.low > high):
        return None
    if interval.undefined > 0.05 * interval.resamples:
        return (f"the statistic is undefined in {interval.undefined} of "
                f"{interval.resamples} resamples (too few positives or rows)")
    if max_width is not None and interval.width > max_width:
        return (f"the {interval.confidence * 100:g}% interval is {interval.width:.4f} wide, more "
                f"than the allowed {max_width:g}")
    return None


SEPARATOR = "×"  # between the values of an intersection's group label: Female×Black


@dataclass(frozen=True)
class Groups:
    """Rows of a dataset grouped by columns: performance slices (`by`) and fairness groups
    (an intersection when several columns)."""

    columns: tuple[str, ...]
    codes: np.ndarray  # group index of each row
    keys: list[tuple[str, ...]]  # each group's value per column, as text
    sizes: np.ndarray

    @property
    def labels(self) -> list[str]:
        return [SEPARATOR.join(key) for key in self.keys]


def groups(context: Context, dataset: str, columns: tuple[str, ...]) -> Groups:
    """Group codes of a dataset by columns (missing values form a group), once per run."""

    def build() -> Groups:
        spark = context.spark_frame(dataset)  # its columns, not those scored on Spark
        frame = context.frame(dataset)
        for column in columns:
            if column not in (frame.columns if spark is None else spark.columns):
                raise CheckError(missing_column_message(
                    column, frame if spark is None else spark, dataset))
        from mlcheck.context import joint_codes

        codes, parts = joint_codes([frame[column] for column in columns])
        first = np.unique(codes, return_index=True)[1]  # a row of each group, in order
        keys = [tuple(uniques[own[row]] for own, uniques in parts) for row in first]
        sizes = np.bincount(codes, weights=context.weights(dataset), minlength=len(keys))
        return Groups(columns, codes, [tuple(label(v) for v in key) for key in keys],
                      sizes.astype(np.int64))

    return context.memo(("groups", dataset, columns), build)


MAX_LABEL = 100  # characters of a group value in a check id (ids are shown everywhere)


def label(value: object) -> str:
    """A group or slice value as text: 1.0 (an integer column with gaps) reads as 1.

    The value becomes part of check ids (terminal lines, pytest node ids, report anchors),
    so control characters are shown as escapes and a long value is cut."""
    import pandas as pd

    value = value.item() if hasattr(value, "item") else value
    if value is None or value is pd.NA or value is pd.NaT or (
            isinstance(value, float) and np.isnan(value)):
        return "<missing>"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return terminal_text(value, MAX_LABEL)
