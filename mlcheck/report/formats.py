"""The other renderings of a record: Markdown (a pull-request comment or CI step summary),
SARIF 2.1.0 (code scanning, each failing rule at its line in the policy), JUnit XML; and
the comparison of a record with a previous one."""

from __future__ import annotations

import json
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from mlcheck.report.html import format_number, render_html

NOT_PASSED_ORDER = ("error", "fail", "inconclusive", "warn", "waived")


def runs_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    return record["runs"] if record.get("kind") == "session" else [record]


def checks_by_key(record: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every check of a record by (policy name, check id)."""
    return {(run["policy"]["name"], check["id"]): check
            for run in runs_of(record) for check in run["checks"]}


def compare(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """What changed since a previous record: verdicts, values, checks, waivers."""
    now, before = checks_by_key(current), checks_by_key(previous)
    policies = {k[0] for k in now} | {k[0] for k in before}

    def _label(key: tuple[str, str]) -> str:
        return f"{key[0]}: {key[1]}" if len(policies) > 1 else key[1]

    changed, moved = [], []
    for key in now.keys() & before.keys():
        new, old = now[key], before[key]
        if new["verdict"] != old["verdict"]:
            changed.append({"policy": key[0], "id": _label(key), "from": old["verdict"],
                            "to": new["verdict"]})
        if isinstance(new.get("value"), (int, float)) and isinstance(
                old.get("value"), (int, float)) and new["value"] != old["value"]:
            moved.append({"policy": key[0], "id": _label(key), "from": old["value"],
                          "to": new["value"], "delta": new["value"] - old["value"]})

    def waivers(record: dict[str, Any]) -> dict[tuple, dict]:
        return {(run["policy"]["name"], w["check"]): w for run in runs_of(record)
                for w in run.get("waivers", [])}

    new_w, old_w = waivers(current), waivers(previous)
    names_now = {run["policy"]["name"] for run in runs_of(current)}
    names_before = {run["policy"]["name"] for run in runs_of(previous)}
    return {
        "policies_differ": names_now != names_before,
        "previous": {"created_at": previous.get("created_at"),
                     "verdict": previous.get("verdict"),
                     "digest": (previous.get("integrity") or {}).get("digest")},
        "verdict": {"from": previous.get("verdict"), "to": current.get("verdict")},
        "verdict_changes": sorted(changed, key=lambda c: (c["policy"], c["id"])),
        "value_changes": sorted(moved, key=lambda c: -abs(c["delta"])),
        "added": sorted(_label(k) for k in now.keys() - before.keys()),
        "removed": sorted(_label(k) for k in before.keys() - now.keys()),
        "waivers_added": sorted(_label(k) for k in new_w.keys() - old_w.keys()),
        "waivers_removed": sorted(_label(k) for k in old_w.keys() - new_w.keys()),
        "waivers_changed": sorted(_label(k) for k in new_w.keys() & old_w.keys()
                                  if new_w[k] != old_w[k]),
    }


# ---------------------------------------------------------------------- markdown


def _cell(value: Any, limit: int | None = None) -> str:
    """Markdown table cell text: no HTML, no pipes, no line breaks (cut before escaping,
    so an entity is never split)."""
    text = " ".join(str(value).split())
    text = text[:limit] + "…" if limit and len(text) > limit else text
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "&#124;")


def _code(value: Any) -> str:
    """An id as inline code that survives backticks and markup in it."""
    return f"<code>{_cell(value)}</code>"


def render_markdown(record: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """A short summary: the verdict, what blocked it, what else did not pass."""
    lines = []
    for run in runs_of(record):
        counts = " · ".join(f"{n} {v}" for v, n in run["counts"].items() if n)
        lines += [f"### mlcheck: {_cell(run['policy']['name'])}: "
                  f"**{run['verdict'].upper()}**", "",
                  f"{counts} ({len(run['checks'])} checks)", ""]
        blocking = [c for c in run["checks"] if c["blocking"]]
        others = [c for c in run["checks"] if not c["blocking"] and c["verdict"] != "pass"]
        if blocking:
            lines += ["**Blocked by**", "", *_table(blocking), ""]
        if others:
            lines += ["<details><summary>Not blocking: "
                      f"{len(others)} warned, waived or inconclusive</summary>", "",
                      *_table(others), "", "</details>", ""]
        stale = [w for w in run.get("waivers", []) if w["status"] != "active"]
        for waiver in stale:
            lines.append(f"- {waiver['status']} waiver {_code(waiver['check'])} "
                         f"(approved by {_cell(waiver['approved_by'])}, expires "
                         f"{waiver['expires']})")
        if stale:
            lines.append("")
    if previous is not None:
        lines += _comparison_lines(compare(record, previous))
    digest = (record.get("integrity") or {}).get("digest")
    if digest:
        lines.append(f"<sub>record sha256 `{digest}`</sub>")
    return "\n".join(lines).rstrip("\n") + "\n"


def _table(checks: list[dict[str, Any]]) -> list[str]:
    ordered = sorted(checks, key=lambda c: (NOT_PASSED_ORDER.index(c["verdict"])
                                            if c["verdict"] in NOT_PASSED_ORDER else 9))
    rows = ["| check | verdict | value | bound | message |", "|---|---|---|---|---|"]
    for c in ordered:
        bounds = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in c["bounds"].items()) or "—"
        rows.append(f"| {_code(c['id'])} | {c['verdict']} | {format_number(c['value'])} | "
                    f"{_cell(bounds)} | {_cell(c['message'], 300)} |")
    return rows


def _comparison_lines(diff: dict[str, Any]) -> list[str]:
    verdict = diff["verdict"]
    lines = [f"**Since the previous record** ({diff['previous']['created_at']}): "
             f"{verdict['from']} → {verdict['to']}", ""]
    for change in diff["verdict_changes"]:
        lines.append(f"- {_code(change['id'])}: {change['from']} → {change['to']}")
    for change in diff["value_changes"][:10]:
        lines.append(f"- {_code(change['id'])}: {format_number(change['from'])} → "
                     f"{format_number(change['to'])} ({change['delta']:+.4g})")
    if len(diff["value_changes"]) > 10:
        lines.append(f"- and {len(diff['value_changes']) - 10} more value changes")
    for label in ("added", "removed", "waivers_added", "waivers_removed", "waivers_changed"):
        if diff[label]:
            lines.append(f"- {label.replace('_', ' ')}: "
                         + ", ".join(_code(i) for i in diff[label]))
    if len(lines) == 2:
        lines.append("- no check changed verdict or value")
    if diff["policies_differ"]:
        lines.insert(2, "- note: the two records are of different policies")
    return [*lines, ""]


# -------------------------------------------------------------------------- sarif


def render_sarif(record: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """SARIF 2.1.0: one result per check that did not pass, located at its rule's line in
    the policy file, so code scanning annotates the policy."""
    rules, results = {}, []
    for run in runs_of(record):
        for check in run["checks"]:
            if check["verdict"] == "pass":
                continue
            rules.setdefault(check["id"], {
                "id": check["id"], "name": check["family"],
                "shortDescription": {"text": check["description"] or check["id"]}})
            result: dict[str, Any] = {
                "ruleId": check["id"],
                "level": "error" if check["blocking"] else
                "note" if check["verdict"] == "waived" else "warning",
                "message": {"text": f"{check['verdict']}: {check['message']}"},
                "properties": {"verdict": check["verdict"], "severity": check["severity"],
                               "value": check["value"], "policy": run["policy"]["name"]},
            }
            if check.get("policy_file"):
                result["locations"] = [{"physicalLocation": {
                    "artifactLocation": _artifact(check["policy_file"]),
                    "region": {"startLine": check.get("policy_line") or 1}}}]
            if check["verdict"] == "waived" and check.get("waiver"):
                result["suppressions"] = [{"kind": "external", "status": "accepted",
                                           "justification": check["waiver"]["reason"]}]
            results.append(result)
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "mlcheck",
                                      "version": record.get("mlcheck_version") or "unknown",
                                      "rules": list(rules.values())}},
                  "results": results}],
    }
    return json.dumps(document, indent=2) + "\n"


def _artifact(path: str) -> dict[str, str]:
    """A SARIF artifact location: a URI (percent-encoded, forward slashes), relative to the
    source root where the policy was given relative to the working folder."""
    from pathlib import PurePath

    posix = PurePath(path).as_posix()
    if PurePath(path).is_absolute():
        return {"uri": PurePath(path).as_uri()}
    return {"uri": urllib.parse.quote(posix), "uriBaseId": "%SRCROOT%"}


# -------------------------------------------------------------------------- junit


def render_junit(record: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """JUnit XML: a test suite per policy, a test case per check."""
    suites = ET.Element("testsuites", name="mlcheck")
    for run in runs_of(record):
        checks = run["checks"]
        suite = ET.SubElement(suites, "testsuite", name=_xml(run["policy"]["name"]),
                              tests=str(len(checks)),
                              failures=str(sum(c["blocking"] and c["verdict"] != "error"
                                               for c in checks)),
                              errors=str(sum(c["verdict"] == "error" for c in checks)),
                              skipped=str(sum(c["verdict"] == "waived" for c in checks)),
                              timestamp=str(run["created_at"]))
        for check in checks:
            case = ET.SubElement(suite, "testcase", classname=check["family"],
                                 name=_xml(check["id"]),
                                 time=f"{check.get('duration_s', 0):.3f}")
            properties = ET.SubElement(case, "properties")
            for name in ("verdict", "severity", "value"):
                ET.SubElement(properties, "property", name=name, value=_xml(check[name]))
            message = _xml(check["message"])
            if check["verdict"] == "error":
                ET.SubElement(case, "error", message=message)
            elif check["blocking"]:
                ET.SubElement(case, "failure", message=message, type=check["verdict"])
            elif check["verdict"] == "waived":
                ET.SubElement(case, "skipped", message=message)
            elif check["verdict"] != "pass":
                ET.SubElement(case, "system-out").text = f"{check['verdict']}: {message}"
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(
        suites, encoding="unicode") + "\n"


def _xml(value: Any) -> str:
    """Text XML 1.0 can hold: control characters (from real data) become spaces."""
    return "".join(ch if ch in "\t\n\r" or ord(ch) >= 32 else " " for ch in str(value))


def _html(record: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    return render_html(record, compare(record, previous) if previous else None)


FORMATS: dict[str, Callable[[dict, dict | None], str]] = {
    "html": _html, "markdown": render_markdown, "sarif": render_sarif, "junit": render_junit}
SUFFIXES = {"html": ".html", "markdown": ".md", "sarif": ".sarif", "junit": ".xml"}
