"""`mlcheck history`: what happened to each check over a series of records of one policy.

Per check, the value and its interval across runs as a small inline SVG chart with the
policy's bounds, and a verdict timeline; markers where the policy itself changed (its
SHA-256, and which bounds changed). One self-contained page, no JavaScript, autoescaped
(jinja2), and the same bytes for the same records (runs are ordered by their time).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcheck.errors import MlcheckError
from mlcheck.report.formats import runs_of, verdict_cause
from mlcheck.report.html import format_number

WIDTH, HEIGHT = 420, 110  # chart size in px
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 10, 22  # room for the axis labels
COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "error": "#82071e", "warn": "#bf8700",
           "inconclusive": "#8250df", "waived": "#6e7781"}


def history_path(folder: Path, stem: str, created_at: str) -> Path:
    """Where `check --keep-history` keeps a record: `<stem>-<UTC time>.json`, sorted by
    time, never an existing file (a second run in the same second gets `_2`, which sorts
    after it)."""
    moment = re.sub(r"[^0-9T]", "", str(created_at).split("+")[0])[:15] + "Z"
    path = folder / f"{stem}-{moment}.json"
    number = 2
    while path.exists() or path.is_symlink():
        path = folder / f"{stem}-{moment}_{number}.json"
        number += 1
    return path


@dataclass
class Run:
    """One run of a policy, as a record gives it."""

    label: str  # where it was read from
    record: dict[str, Any]  # the run (a session's run, or the record itself)
    status: str  # sealed, unsealed or altered (of the file it came from)
    digest: str | None

    @property
    def created_at(self) -> str:
        return str(self.record.get("created_at") or "")

    @property
    def sha256(self) -> str | None:
        return self.record["policy"].get("sha256")


@dataclass
class PolicyHistory:
    name: str
    runs: list[Run]
    changes: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)


def collect(records: list[tuple[str, dict[str, Any], str]], *, group: bool = False
            ) -> list[PolicyHistory]:
    """Runs per policy name, in time order. Records of several policies are refused unless
    `group` (then each policy gets its own history)."""
    by_name: dict[str, list[Run]] = {}
    for label, record, status in records:
        digest = (record.get("integrity") or {}).get("digest") \
            if isinstance(record.get("integrity"), dict) else None
        for run in runs_of(record):
            by_name.setdefault(str(run["policy"]["name"]), []).append(
                Run(label, run, status, digest))
    if len(by_name) > 1 and not group:
        raise MlcheckError("the records are of different policies ("
                           + ", ".join(sorted(by_name)) + "); pass --group-by-policy to "
                           "show each policy's history, or give records of one policy")
    return [_history(name, sorted(runs, key=lambda r: (r.created_at, r.label)))
            for name, runs in sorted(by_name.items())]


def _history(name: str, runs: list[Run]) -> PolicyHistory:
    history = PolicyHistory(name, runs)
    order: list[str] = []
    for run in runs:
        order += [c["id"] for c in run.record["checks"] if c["id"] not in order]
    for index in range(1, len(runs)):
        before, after = runs[index - 1], runs[index]
        if before.sha256 != after.sha256:
            history.changes.append(_policy_change(index, before, after))
    changed_at = {c["index"] for c in history.changes}
    for check_id in order:
        points = []
        for index, run in enumerate(runs):
            check = next((c for c in run.record["checks"] if c["id"] == check_id), None)
            points.append(_point(index, check))
        steady = all(p["verdict"] == "pass" for p in points) and len(
            {(p["value"], tuple(sorted(p["bounds"].items()))) for p in points}) == 1
        history.checks.append({"id": check_id, "family": check_id.split("/", 1)[0],
                               "points": points, "chart": chart(points, changed_at),
                               "verdicts": _verdict_changes(runs, check_id),
                               "steady": steady})
    # what moved first; checks that passed every run unchanged go in a short table
    history.checks.sort(key=lambda c: c["steady"])
    return history


def _point(index: int, check: dict[str, Any] | None) -> dict[str, Any]:
    if check is None:
        return {"index": index, "verdict": None, "value": None, "low": None, "high": None,
                "bounds": {}}
    interval = check.get("interval") or {}
    value = check.get("value")
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None
    return {"index": index, "verdict": check["verdict"], "value": number,
            "low": interval.get("low"), "high": interval.get("high"),
            "bounds": {k: v for k, v in (check.get("bounds") or {}).items()
                       if isinstance(v, (int, float)) and math.isfinite(v)},
            "message": check.get("message", "")}


def _verdict_changes(runs: list[Run], check_id: str) -> list[dict[str, Any]]:
    """Each verdict change of the check, with why (the bound, the value, or both)."""
    changes, previous = [], None
    for index, run in enumerate(runs):
        check = next((c for c in run.record["checks"] if c["id"] == check_id), None)
        if check is not None and previous is not None and \
                check["verdict"] != previous["verdict"]:
            cause, why = verdict_cause(previous, check)
            changes.append({"index": index, "from": previous["verdict"],
                            "to": check["verdict"], "cause": cause, "why": why})
        previous = check if check is not None else previous
    return changes


def _policy_change(index: int, before: Run, after: Run) -> dict[str, Any]:
    """What changed in the policy between two runs: its SHA-256 and the checks whose bounds
    moved (as the two records give them), added or removed."""
    old = {c["id"]: c for c in before.record["checks"]}
    new = {c["id"]: c for c in after.record["checks"]}
    bounds = [{"id": i, "from": old[i].get("bounds") or {}, "to": new[i].get("bounds") or {}}
              for i in new if i in old and (old[i].get("bounds") or {}) !=
              (new[i].get("bounds") or {})]
    return {"index": index, "from": before.sha256, "to": after.sha256, "bounds": bounds,
            "added": [i for i in new if i not in old],
            "removed": [i for i in old if i not in new]}


def _scale(lo: float, hi: float, size: float, top: float, invert: bool) -> Any:
    span = hi - lo or 1.0
    if invert:
        return lambda v: round(top + size - (v - lo) / span * size, 2)
    return lambda v: round(top + (v - lo) / span * size, 2)


def chart(points: list[dict[str, Any]], changed_at: set[int]) -> dict[str, Any] | None:
    """Coordinates of a small chart: value dots with interval whiskers, bound lines (as
    steps, since a bound can change with the policy), policy-change markers and the axis
    labels. None when the check has no numeric value in any run."""
    numbers = [p["value"] for p in points if p["value"] is not None]
    if not numbers:
        return None
    extent = numbers + [v for p in points for v in (p["low"], p["high"])
                        if isinstance(v, (int, float)) and math.isfinite(v)]
    extent += [v for p in points for v in p["bounds"].values()]
    lo, hi = min(extent), max(extent)
    if lo == hi:  # one value: a band around it
        delta = abs(lo) * 0.1 or 0.5
        lo, hi = lo - delta, hi + delta
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(points) - 1, 1)
    x = (lambda i: round(LEFT + plot_w / 2, 2)) if len(points) == 1 else \
        (lambda i: round(LEFT + i * step, 2))
    y = _scale(lo, hi, plot_h, TOP, invert=True)
    dots, whiskers = [], []
    for p in points:
        if p["value"] is not None:
            dots.append({"x": x(p["index"]), "y": y(p["value"]),
                         "colour": COLOURS.get(p["verdict"], "#57606a"),
                         "title": f"run {p['index'] + 1}: {format_number(p['value'])} "
                                  f"({p['verdict']})"})
        if isinstance(p["low"], (int, float)) and isinstance(p["high"], (int, float)):
            whiskers.append({"x": x(p["index"]), "y1": y(p["low"]), "y2": y(p["high"])})
    bounds = []
    for key in ("min", "max"):
        segments = []
        for p in points:
            if key in p["bounds"]:
                half = step / 2 if len(points) > 1 else plot_w / 2
                segments.append({"x1": round(max(LEFT, x(p["index"]) - half), 2),
                                 "x2": round(min(WIDTH - RIGHT, x(p["index"]) + half), 2),
                                 "y": y(p["bounds"][key])})
        if segments:
            bounds.append({"key": key, "segments": segments})
    line = " ".join(f"{d['x']},{d['y']}" for d in dots)
    return {"width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT,
            "top": TOP, "bottom": HEIGHT - BOTTOM, "dots": dots, "whiskers": whiskers,
            "bounds": bounds, "line": line,
            "changes": [x(i) - step / 2 for i in sorted(changed_at)],
            "y_labels": [{"y": y(v), "text": format_number(v)} for v in (hi - pad, lo + pad)],
            "x_labels": [{"x": x(p["index"]), "text": str(p["index"] + 1)} for p in points]}


def render_history(records: list[tuple[str, dict[str, Any], str]], *, group: bool = False
                   ) -> str:
    """The history page of these records (label, record, integrity status)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    if not records:
        raise MlcheckError("history needs at least one record")
    histories = collect(records, group=group)
    env = Environment(loader=PackageLoader("mlcheck", "report/templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_number
    env.filters["bounds"] = lambda b: ", ".join(f"{k} {format_number(v)}"
                                                for k, v in (b or {}).items()) or "none"
    return env.get_template("history.html.j2").render(histories=histories, colours=COLOURS)
