"""Text made safe for where it goes, and plain-text detail lines under a check.

- `terminal_text`: for the terminal (`mlcheck` output, pytest's failure text and summary):
  no control characters, no bidi overrides, bounded length.
- `markdown_text`: for Markdown (pull-request comments, CI step summaries): no markup,
  mentions, links or HTML, whatever the text holds.
- `record_status`: whether a record's digest matches its content, for every renderer.
- `detail_lines`: fairness groups and property counterexamples, under a check in the
  terminal summary (`mlcheck check`) and in pytest's failure text.
"""

from __future__ import annotations

import re
from typing import Any

from mlcheck.result import (  # noqa: F401  (terminal_text: re-exported for renderers)
    CONTROL_CHARACTERS,
    MAX_TEXT,
    clip,
    escape_control,
    terminal_text,
)

MAX_ROW_TEXT = 400  # a counterexample's row, cut to stay readable in a terminal

# Markdown: every character that can start markup becomes a numeric character reference
# (CommonMark reads those as plain characters, never as structure), and a zero-width space
# goes after `@` and before what follows `#` or `:`, and inside `www.`, so GitHub makes no
# mention, issue reference, emoji or autolink of the text.
_MARKUP = frozenset("\\`*~[]<>&|$")
_ZWSP = "&#8203;"


def markdown_text(value: Any, limit: int | None = None) -> str:
    """Text for a Markdown line or table cell that renders as the text itself: on one
    line, cut to `limit` characters, with no emphasis, code, link, image, HTML, mention,
    autolink or table cell boundary, whatever it holds."""
    text = CONTROL_CHARACTERS.sub(escape_control, " ".join(str(value).split()))
    text = clip(text, limit) if limit else text
    out = []
    for i, char in enumerate(text):
        after = text[i + 1] if i + 1 < len(text) else " "
        intraword = i > 0 and text[i - 1].isalnum() and after.isalnum()
        out.append(f"&#{ord(char)};" if char in _MARKUP or (char == "_" and not intraword)
                   else char)
        if (char == "@" and not after.isspace()) or (char == "#" and after.isalnum()) or (
                char == ":" and (after == "/" or after.isalpha())):
            out.append(_ZWSP)
    return re.sub(r"(?i)\b(www)\.", rf"\1{_ZWSP}.", "".join(out))


# ---------------------------------------------------------------- record integrity

ALTERED_NOTE = ("This record's integrity digest does not match its content: it was altered "
                "after it was written, so its verdict cannot be trusted (run mlcheck verify "
                "on it)")
UNSEALED_NOTE = ("This record is unsealed: it carries no integrity digest, so nothing shows "
                 "that it is unchanged since it was written (mlcheck check and pytest "
                 "--mlcheck-json seal every record)")


def record_status(record: dict[str, Any]) -> str:
    """`sealed` when the record's digest matches its content (and a signature it carries
    holds against its own key), `unsealed` when it carries no integrity block, and
    `altered` otherwise (an edited record, a malformed block, an unknown algorithm, a
    forged or damaged signature)."""
    from mlcheck.integrity import digest, own_signature_problem

    if "integrity" not in record or record["integrity"] is None:
        return "unsealed"  # as `mlcheck verify` sees it: nothing to check
    block = record["integrity"]
    if not isinstance(block, dict) or block.get("algorithm") != "sha256" \
            or not isinstance(block.get("digest"), str):
        return "altered"  # a block that cannot be checked is not a seal
    try:
        if block["digest"] != digest(record):
            return "altered"
    except (TypeError, ValueError):  # not JSON (e.g. NaN): not what was sealed
        return "altered"
    return "altered" if own_signature_problem(block) else "sealed"


# ---------------------------------------------------------------------- detail lines


def detail_lines(family: str, evidence: dict[str, Any], verdict: str = "fail") -> list[str]:
    """Per-group evidence of a fairness check, or the counterexample of a property that
    did not pass."""
    if family == "fairness" and evidence.get("groups"):
        lines = group_lines(evidence["groups"])
    elif evidence.get("counterexample") and verdict != "pass":
        lines = counterexample_lines(evidence["counterexample"])
    else:
        return []
    return [terminal_text(line) for line in lines]


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
