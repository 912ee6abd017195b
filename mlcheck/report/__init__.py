"""Renderers. Each reads only the JSON record (a `RunResult` dict), never the models or data."""

from mlcheck.report.html import render_html

__all__ = ["render_html"]
