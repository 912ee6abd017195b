"""Plain-text detail lines under a check: fairness groups, property counterexamples.

Shared by the terminal summary (`mlcheck check`) and pytest's failure text."""

from __future__ import annotations

from typing import Any

MAX_ROW_TEXT = 400  # a counterexample's row, cut to stay readable in a terminal


def detail_lines(family: str, evidence: dict[str, Any], verdict: str = "fail") -> list[str]:
    """Per-group evidence of a fairness check, or the counterexample of a property that
    did not pass."""
    if family == "fairness" and evidence.get("groups"):
        return group_lines(evidence["groups"])
    if evidence.get("counterexample") and verdict != "pass":
        return counterexample_lines(evidence["counterexample"])
    return []


def group_lines(groups: list[dict[str, Any]]) -> list[str]:
    metrics = [k for k in groups[0] if k not in ("group", "n") and not k.endswith("_interval")]
    lines = []
    for row in groups:
        parts = [f"{row['group']}: n={row['n']}"]
        for name in metrics:
            value = row.get(name)
            text = "nan" if value is None else f"{value:.3f}"
            interval = row.get(f"{name}_interval")
            if interval and None not in interval:
                text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
            parts.append(f"{name} {text}")
        lines.append(", ".join(parts))
    return lines


def counterexample_lines(example: dict[str, Any]) -> list[str]:
    """The shrunk counterexample: what changed, the outputs, and the whole row."""
    lines = [f"counterexample ({example.get('source', 'generated')}):"]
    for feature, (before, after) in example.get("changed", {}).items():
        lines.append(f"  {feature}: {before!r} -> {after!r}")
    if "scores" in example:
        lines.append(f"  score: {_score(example['scores'][0])} -> {_score(example['scores'][1])}")
    if "labels" in example:
        lines.append(f"  predicted: {example['labels'][0]!r} -> {example['labels'][1]!r}")
    if "problem" in example:
        lines.append(f"  problem: {example['problem']}")
    row = ", ".join(f"{k}={v!r}" for k, v in example.get("row", {}).items())
    lines.append(f"  row: {row[:MAX_ROW_TEXT]}{' …' if len(row) > MAX_ROW_TEXT else ''}")
    return lines


def _score(score: Any) -> str:
    if isinstance(score, list):
        return "[" + ", ".join(f"{s:.4g}" for s in score) + "]"
    return f"{score:.4g}"
