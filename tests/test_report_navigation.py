"""The report as an auditor reads it: a per-family summary under the verdict, passing
checks folded away (still in the page), charts that explain themselves, values in words."""

from __future__ import annotations

import re

import pytest

from mlcheck.report import render_html
from mlcheck.report.html import bound_text, distribution_chart, value_text


@pytest.fixture
def page(example_evaluation) -> tuple[dict, str]:
    record = example_evaluation.record().to_dict()
    return record, render_html(record)


def test_the_summary_follows_the_verdict_and_links_every_family(page):
    record, html = page
    verdict, summary = html.index('aria-label="Gate verdict"'), html.index('class="summary"')
    assert verdict < summary < html.index("<h2>Subject</h2>")
    nav = html[summary:html.index("</nav>", summary)]
    families = list(dict.fromkeys(c["family"] for c in record["checks"]))
    assert re.findall(r'href="#([^"]+)"', nav) == [f"family-{f}" for f in families]
    for family in families:
        assert f'<section id="family-{family}"' in html
    # each row counts the family's verdicts: drift holds 39 passing checks and nothing else
    drift = re.search(r'family-drift">Drift</a></th>(.*?)</tr>', nav).group(1)
    assert re.findall(r">([^<]*)</td>", drift) == ["·", "·", "·", "39"]


def test_passing_checks_are_folded_per_family_and_the_rest_shown(page):
    record, html = page
    folded = re.findall(r'<details class="passing">(.*?)</details>\n</section>', html, re.S)
    ids = [i for block in folded for i in re.findall(r'<tr id="([^"]+)"', block)]
    passing = [c["id"] for c in record["checks"] if c["verdict"] == "pass"]
    assert sorted(ids) == sorted(passing)  # every passing check, in the page, folded
    assert "<details class=\"passing\" open" not in html
    assert "16 passing checks (all of this family)" in html
    # what did not pass comes first in its family, never folded
    performance = html[html.index('id="family-performance"'):html.index('id="family-fairness"')]
    assert performance.index("performance/recall[sex=Female]") < performance.index(
        '<details class="passing">')


def test_print_unfolds_the_passing_checks(page):
    _, html = page
    print_css = html[html.index("@media print"):html.index("</style>")]
    assert "details::details-content" in print_css and "content-visibility: visible" in print_css


def test_a_rank_reads_as_a_rank(page):
    record, html = page
    check = next(c for c in record["checks"]
                 if c["id"] == "explainability/not_in_top[marital_status]")
    assert value_text(check) == "rank 1 of 14"
    assert bound_text(check) == "must not be in the top 3"
    row = html[html.index('id="explainability/not_in_top[marital_status]"'):]
    assert "rank 1 of 14" in row[:2000] and "must not be in the top 3" in row[:2000]
    required = next(c for c in record["checks"] if c["id"].startswith(
        "explainability/required_in_top["))
    assert bound_text(required) == "must be in the top 5"
    share = next(c for c in record["checks"] if c["id"].startswith(
        "explainability/max_attribution_share"))
    assert value_text(share) == "27.9% of attribution" and bound_text(share) == "≤ 40%"


def test_bounds_read_as_comparisons():
    check = {"id": "performance/roc_auc", "family": "performance", "value": 0.93,
             "bounds": {"min": 0.9, "max": 1.0}}
    assert value_text(check) == "0.9300"
    assert bound_text(check) == "≥ 0.9, ≤ 1"
    assert bound_text({**check, "bounds": {}}) == "—"


def test_drift_charts_label_their_axes_and_carry_a_legend():
    chart = str(distribution_chart({"categories": ["<Female>", "Male"],
                                    "reference": [0.33, 0.67], "current": [0.4, 0.6]}))
    text = re.findall(r">([^<>]+)</text>", chart)
    assert {"reference", "current", "&lt;Female&gt;", "Male", "67%", "0"} <= set(text)
    assert "share of rows per category" in chart
    numeric = str(distribution_chart({"edges": [22.0, 30.5], "reference": [0.3, 0.3, 0.4],
                                      "current": [0.2, 0.3, 0.5]}))
    assert {"22", "30.5"} <= set(re.findall(r">([^<>]+)</text>", numeric))
    assert "per bin (edges: reference quantiles)" in numeric
    many = str(distribution_chart({"categories": [f"c{i}" for i in range(60)],
                                   "reference": [1 / 60] * 60, "current": [1 / 60] * 60}))
    assert "one label per 2 bins" in many and ">c1<" not in many and ">c2<" in many
