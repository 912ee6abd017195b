"""The HTML governance report: one self-contained, autoescaped page rendered from the record."""

from __future__ import annotations

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
    """Render the governance report for a record (as produced by `RunResult.to_dict`)."""
    checks = sorted(record["checks"], key=lambda c: (_ORDER.get(c["verdict"], 9), c["id"]))
    blocking = [c for c in checks if c["verdict"] in ("fail", "error", "inconclusive")]
    families: dict[str, list] = {check["family"]: [] for check in record["checks"]}
    for check in checks:  # families in policy order, failures first within each
        families[check["family"]].append(check)
    return _environment().get_template("report.html.j2").render(
        record=record, families=families, blocking=blocking)
