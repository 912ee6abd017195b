"""The HTML governance report: one self-contained, autoescaped page rendered from the record."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

SHOWN_ONCE = ("importance", "explainer")  # explainability evidence, shown once per family
_ORDER = {"error": 0, "fail": 1, "inconclusive": 2, "warn": 3, "waived": 4, "pass": 5}


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("mlcheck", "report/templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.tests["search"] = lambda value, pattern: re.search(pattern, str(value)) is not None
    env.filters["bound"] = lambda value: f"{value:g}" if isinstance(value, float) else value
    env.filters["compact"] = lambda value: json.dumps(
        {k: v for k, v in value.items() if k not in SHOWN_ONCE}, ensure_ascii=False,
        separators=(", ", ": "))
    env.filters["zip"] = lambda first, second: zip(first, second, strict=False)
    env.filters["value_text"] = value_text
    env.filters["bound_text"] = bound_text
    env.globals.update(metric_chart=metric_chart, bars_chart=bars_chart,
                       distribution_chart=distribution_chart)
    return env


def format_number(value: Any) -> str:
    """Numbers as a reader wants them: 4 significant decimals, integers whole."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4f}"


def render_html(record: dict[str, Any], comparison: dict[str, Any] | None = None, *,
                status: str | None = None) -> str:
    """Render the governance report for a run record (`RunResult.to_dict`) or a session
    record (`session_record`): one page, one section per policy, the record embedded (so
    `mlcheck verify` can check the page against it), and optionally what changed since a
    previous record. A record whose digest does not match (`status` "altered", by default
    its own `record_status`) is shown as unverified, never as passed."""
    from mlcheck.integrity import embed
    from mlcheck.report.text import ALTERED_NOTE, UNSEALED_NOTE, record_status

    status = status or record_status(record)
    session = record.get("kind") == "session"
    runs, seen = [], set()
    for run in record["runs"] if session else [record]:
        anchor = run["policy"]["name"] if session else ""
        while anchor and anchor in seen:  # two policies of one name keep distinct anchors
            anchor += "+"
        seen.add(anchor)
        runs.append(_prepare(run, f"{anchor}:" if anchor else ""))
    return _environment().get_template("report.html.j2").render(
        record=record, runs=runs, session=session, comparison=comparison,
        embedded=Markup(embed(record)), integrity=record.get("integrity"), status=status,
        altered_note=ALTERED_NOTE, unsealed_note=UNSEALED_NOTE,
        embedded_comparison=Markup(embed(comparison)) if comparison else None)


def _prepare(run: dict[str, Any], anchor_prefix: str) -> dict[str, Any]:
    """A run with its checks grouped by family (policy order), failures first in each,
    and per family the count of each verdict (for the summary at the top)."""
    checks = sorted(run["checks"], key=lambda c: (_ORDER.get(c["verdict"], 9), c["id"]))
    families: dict[str, list] = {check["family"]: [] for check in run["checks"]}
    for check in checks:
        families[check["family"]].append(check)
    summary = {family: {v: sum(c["verdict"] == v for c in members) for v in _ORDER}
               for family, members in families.items()}
    blocking = [c for c in checks if c["blocking"]]
    controls: dict[str, list] = {}
    for check in run["checks"]:
        for control in check.get("controls", []):
            controls.setdefault(control, []).append(check)
    explained = next((c["evidence"] for c in run["checks"]
                      if c["family"] == "explainability" and c["evidence"].get(
                          "importance")), {})
    verdicts = [v for v in _ORDER if any(counts[v] for counts in summary.values())]
    return {"record": run, "families": families, "summary": summary, "verdicts": verdicts,
            "blocking": blocking,
            "anchor": anchor_prefix, "controls": controls,
            "importance": explained.get("importance"), "explainer": explained.get("explainer")}


# ------------------------------------------------------------------ values in words
# A value and its bounds read as what they measure: a rank as a rank, a share as a share.

RANK_TESTS = ("explainability/not_in_top[", "explainability/required_in_top[")


def _features_ranked(check: dict[str, Any]) -> int | None:
    importance = check.get("evidence", {}).get("importance")
    return len(importance) if isinstance(importance, list) and importance else None


def value_text(check: dict[str, Any]) -> str:
    """The value as a reader says it: "rank 1 of 14", "27.9%", or the number."""
    value = check.get("value")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return format_number(value)
    if check["id"].startswith(RANK_TESTS):
        of = _features_ranked(check)
        return f"rank {int(value)}" + (f" of {of}" if of else "")
    if check["id"].startswith("explainability/max_attribution_share"):
        return f"{value:.1%} of attribution"
    if check["family"] == "schema":
        return f"{format_number(value)} failing"
    return format_number(value)


def bound_text(check: dict[str, Any]) -> str:
    """The bounds as a requirement: "must not be in the top 3", "≥ 0.9", "≤ 40%"."""
    bounds = {k: v for k, v in (check.get("bounds") or {}).items()}
    if not bounds:
        return "—"
    if check["id"].startswith("explainability/not_in_top[") and "min" in bounds:
        return f"must not be in the top {format_number(bounds['min'] - 1)}"
    if check["id"].startswith("explainability/required_in_top[") and "max" in bounds:
        return f"must be in the top {format_number(bounds['max'])}"
    share = check["id"].startswith("explainability/max_attribution_share")
    shown = {k: (f"{v:.0%}" if share and isinstance(v, (int, float)) else
                 f"{v:g}" if isinstance(v, float) else str(v)) for k, v in bounds.items()}
    words = {"min": "≥", "max": "≤"}
    return ", ".join(f"{words.get(name, name)} {text}" for name, text in shown.items())


# ------------------------------------------------------------------ inline charts
# Small SVGs written here (no JavaScript, no chart library): each is a few hundred bytes,
# readable when printed, with a text alternative in <title>.

def _svg(width: int, height: int, body: str, label: str) -> Markup:
    return Markup(f'<svg class="chart" role="img" width="{width}" height="{height}" '
                  f'viewBox="0 0 {width} {height}"><title>{escape(label)}</title>'
                  f"{body}</svg>")


def metric_chart(check: dict[str, Any]) -> Markup:
    """The value against its bounds, with its interval: a number line."""
    value = check.get("value")
    bounds = [v for v in check.get("bounds", {}).values() if isinstance(v, (int, float))]
    interval = check.get("interval") or {}
    points = [value, *bounds, interval.get("low"), interval.get("high")]
    points = [p for p in points if isinstance(p, (int, float)) and math.isfinite(p)]
    if not isinstance(value, (int, float)) or not bounds or len(points) < 2:
        return Markup("")
    low, high = min(points), max(points)
    if low >= 0 and high <= 1 and high - low > 0.05:
        low, high = 0.0, 1.0
    pad = (high - low) * 0.08 or 1.0
    low, high = low - pad, high + pad
    width, height = 220, 22

    def x(v: float) -> float:
        return round(6 + (v - low) / (high - low) * (width - 12), 1)

    body = f'<line x1="6" y1="11" x2="{width - 6}" y2="11" class="axis"/>'
    for bound in bounds:
        body += f'<line x1="{x(bound)}" y1="2" x2="{x(bound)}" y2="20" class="bound"/>'
    if isinstance(interval.get("low"), (int, float)) and isinstance(
            interval.get("high"), (int, float)):
        body += (f'<line x1="{x(interval["low"])}" y1="11" x2="{x(interval["high"])}" '
                 f'y2="11" class="interval"/>')
    verdict = check["verdict"] if check["verdict"] in _ORDER else "unknown"
    body += f'<circle cx="{x(value)}" cy="11" r="4" class="v-{verdict}"/>'
    label = f"value {format_number(value)}, bounds " + ", ".join(map(format_number, bounds))
    return _svg(width, height, body, label)


def bars_chart(rows: list[tuple[str, float]], label: str, limit: int = 20) -> Markup:
    """Horizontal bars, one per (name, value): group rates, SHAP importances."""
    rows = [(str(n), float(v)) for n, v in rows[:limit]
            if isinstance(v, (int, float)) and math.isfinite(v)]
    if not rows:
        return Markup("")
    top = max(abs(v) for _, v in rows) or 1.0
    width, line = 360, 16
    body = ""
    for i, (name, value) in enumerate(rows):
        y = i * line
        size = round(abs(value) / top * 180, 1)
        body += (f'<text x="0" y="{y + 12}" class="label">{escape(name[:22])}</text>'
                 f'<rect x="150" y="{y + 3}" width="{size}" height="10" class="bar"/>'
                 f'<text x="{150 + size + 4}" y="{y + 12}" class="label">'
                 f"{escape(format_number(value))}</text>")
    return _svg(width, len(rows) * line + 2, body, label)


def distribution_chart(bins: dict[str, Any]) -> Markup:
    """Reference against current shares per bin (drift): paired columns over labelled bins
    (categories, or the reference-quantile edges between numeric bins), a share axis and a
    legend drawn in the picture, so that it reads the same printed."""
    reference, current = bins.get("reference") or [], bins.get("current") or []
    if not reference or len(reference) != len(current):
        return Markup("")
    numbers = [v for v in (*reference, *current) if isinstance(v, (int, float))]
    if len(numbers) != 2 * len(reference):
        return Markup("")
    top = max(numbers) or 1.0
    count = len(reference)
    step = max(6, min(24, 320 // count))
    left, plot, base = 34, 40, 56  # y axis width, plot height, baseline y
    width = left + step * count + 4
    every = max(1, -(-12 // step))  # label every bin when there is room, else every k-th
    body = (f'<rect x="{left}" y="2" width="8" height="8" class="ref"/>'
            f'<text x="{left + 11}" y="10" class="label">reference</text>'
            f'<rect x="{left + 72}" y="2" width="8" height="8" class="cur"/>'
            f'<text x="{left + 83}" y="10" class="label">current</text>'
            f'<text x="{left - 3}" y="{base - plot + 4}" class="tick" text-anchor="end">'
            f'{top:.0%}</text><text x="{left - 3}" y="{base}" class="tick" '
            f'text-anchor="end">0</text><line x1="{left}" y1="{base - plot}" x2="{left}" '
            f'y2="{base}" class="axis"/>')
    half = f"{step / 2 - 1:g}"
    paths = {"ref": "", "cur": ""}
    for i, (r, c) in enumerate(zip(reference, current, strict=True)):
        for kind, share, x0 in (("ref", r, left + 2 + i * step),
                                ("cur", c, left + 2 + i * step + step / 2)):
            h = round(share / top * plot, 1)
            paths[kind] += f"M{x0:g} {base}v{-h:g}h{half}v{h:g}z"
    body += "".join(f'<path class="{kind}" d="{d}"/>' for kind, d in paths.items())
    categories, edges = bins.get("categories"), bins.get("edges")
    labels: list[tuple[float, str]] = []
    if isinstance(categories, list) and len(categories) == count:
        labels = [(left + 2 + i * step + step / 2, str(name)[:14])
                  for i, name in enumerate(categories)]
        axis = "category"
    elif isinstance(edges, list) and len(edges) == count - 1:
        labels = [(left + 2 + (i + 1) * step, format_number(edge)
                   if isinstance(edge, (int, float)) and float(edge).is_integer()
                   else f"{edge:.4g}") for i, edge in enumerate(edges)]
        axis = "bin (edges: reference quantiles)"
    else:
        axis = "bin"
    if labels:
        body += '<g class="tick" text-anchor="end">' + "".join(
            f'<text transform="translate({x:g},{base + 8})rotate(-45)">{escape(text)}</text>'
            for x, text in labels[::every]) + "</g>"
    height = base + (72 if labels else 12)
    note = "" if every == 1 else f", one label per {every} bins"
    body += (f'<text x="{left}" y="{height - 2}" class="tick">share of rows per {axis}'
             f"{note}</text>")
    return _svg(max(width, left + 180), height, body,
                f"binned shares: reference (grey) and current (dark) over {count} bins")
