"""Renderers. Each reads only the JSON record (a `RunResult` dict), never the models or data."""

from typing import Any

__all__ = ["render_html"]


def render_html(record: dict[str, Any], comparison: dict[str, Any] | None = None,
                **options: Any) -> str:
    """The HTML report of a record (jinja2 is loaded only when a report is rendered)."""
    from mlcheck.report.html import render_html as render

    return render(record, comparison, **options)
