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
    """A run with its checks grouped by family (policy order), failures first in each."""
    checks = sorted(run["checks"], key=lambda c: (_ORDER.get(c["verdict"], 9), c["id"]))
    families: dict[str, list] = {check["family"]: [] for check in run["checks"]}
    for check in checks:
        families[check["family"]].append(check)
    blocking = [c for c in checks if c["blocking"]]
    controls: dict[str, list] = {}
    for check in run["checks"]:
        for control in check.get("controls", []):
            controls.setdefault(control, []).append(check)
    explained = next((c["evidence"] for c in run["checks"]
                      if c["family"] == "explainability" and c["evidence"].get(
                          "importance")), {})
    return {"record": run, "families": families, "blocking": blocking,
            "anchor": anchor_prefix, "controls": controls,
            "importance": explained.get("importance"), "explainer": explained.get("explainer")}


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
    """Reference against current shares per bin (drift): paired columns."""
    reference, current = bins.get("reference") or [], bins.get("current") or []
    if not reference or len(reference) != len(current):
        return Markup("")
    top = max([*reference, *current]) or 1.0
    step = min(24, 300 // len(reference))
    width, height = step * len(reference) + 4, 44
    body = ""
    for i, (r, c) in enumerate(zip(reference, current, strict=True)):
        x0 = 2 + i * step
        rh, ch = round(r / top * 40, 1), round(c / top * 40, 1)
        body += (f'<rect x="{x0}" y="{42 - rh}" width="{step / 2 - 1:.1f}" height="{rh}" '
                 f'class="ref"/><rect x="{x0 + step / 2:.1f}" y="{42 - ch}" '
                 f'width="{step / 2 - 1:.1f}" height="{ch}" class="cur"/>')
    return _svg(width, height, body, "binned shares: reference (grey) and current (dark) "
                f"over {len(reference)} bins")
