"""The HTML governance report: one self-contained, autoescaped page rendered from the record."""

from __future__ import annotations

import re
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

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


def render_html(record: dict[str, Any]) -> str:
    """Render the governance report for a run record (`RunResult.to_dict`) or a session
    record (`session_record`): one page, one section per policy."""
    session = record.get("kind") == "session"
    runs, seen = [], set()
    for run in record["runs"] if session else [record]:
        anchor = run["policy"]["name"] if session else ""
        while anchor and anchor in seen:  # two policies of one name keep distinct anchors
            anchor += "+"
        seen.add(anchor)
        runs.append(_prepare(run, f"{anchor}:" if anchor else ""))
    return _environment().get_template("report.html.j2").render(
        record=record, runs=runs, session=session)


def _prepare(run: dict[str, Any], anchor_prefix: str) -> dict[str, Any]:
    """A run with its checks grouped by family (policy order), failures first in each."""
    checks = sorted(run["checks"], key=lambda c: (_ORDER.get(c["verdict"], 9), c["id"]))
    families: dict[str, list] = {check["family"]: [] for check in run["checks"]}
    for check in checks:
        families[check["family"]].append(check)
    blocking = [c for c in checks if c["blocking"]]
    return {"record": run, "families": families, "blocking": blocking,
            "anchor": anchor_prefix}
