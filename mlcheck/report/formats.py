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
from mlcheck.report.text import ALTERED_NOTE, UNSEALED_NOTE, markdown_text, record_status

NOT_PASSED_ORDER = ("error", "fail", "inconclusive", "warn", "waived")
INTEGRITY_ID = "mlcheck/record-integrity"  # the finding a report adds for an altered record
PARTIAL_ID = "mlcheck/partial-run"  # the finding for checks or policies a run did not evaluate


def runs_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    return record["runs"] if record.get("kind") == "session" else [record]


def not_run_note(run: dict[str, Any]) -> str | None:
    """What a partial run did not evaluate, as a sentence; None when it evaluated all."""
    not_run = run.get("not_run") or []
    if not not_run:
        return None
    compiled = len(not_run) + sum(c["family"] != "custom" for c in run["checks"])
    return f"{len(not_run)} of {compiled} checks were not run, so this is not a gate verdict"


def sample_notes(run: dict[str, Any]) -> list[str]:
    """One sentence per dataset the run evaluated a sample of (`sample` in the policy)."""
    return [f"ran on a sample of {ds['sample']['rows']:,} of {ds['sample']['of']:,} rows of "
            f"dataset '{name}' (seed {ds['sample']['seed']})"
            for name, ds in (run.get("subject") or {}).get("datasets", {}).items()
            if isinstance(ds, dict) and ds.get("sample")]


def policies_not_run(record: dict[str, Any]) -> list[dict[str, str]]:
    """Policies a session was to gate but did not evaluate (`{policy, reason}`)."""
    if record.get("kind") != "session":
        return []
    return record.get("policies_not_run") or []


def checks_by_key(record: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every check of a record by (policy name, check id)."""
    return {(run["policy"]["name"], check["id"]): check
            for run in runs_of(record) for check in run["checks"]}


def _bounds_text(bounds: dict[str, Any] | None) -> str:
    return ", ".join(f"{k} {format_number(v)}" for k, v in (bounds or {}).items()) or "none"


def verdict_cause(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, str]:
    """Why a check's verdict changed between two records: `bound` (the policy's bound
    changed, the value did not), `value`, `bound and value`, or `other` (neither: a
    waiver, a severity, an error), with a sentence saying so."""
    bound_moved = (old.get("bounds") or {}) != (new.get("bounds") or {})
    value_moved = old.get("value") != new.get("value")
    bounds = f"{_bounds_text(old.get('bounds'))} → {_bounds_text(new.get('bounds'))}"
    values = f"{format_number(old.get('value'))} → {format_number(new.get('value'))}"
    if bound_moved and not value_moved:
        return "bound", f"the policy's bound changed ({bounds}); the value did not " \
                        f"({format_number(new.get('value'))})"
    if bound_moved:
        return "bound and value", f"both the policy's bound ({bounds}) and the value " \
                                  f"({values}) changed"
    if value_moved:
        return "value", f"the value changed ({values}) under the same bound ({bounds})"
    return "other", "neither the value nor the bound changed (a waiver, severity or error)"


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
            cause, why = verdict_cause(old, new)
            changed.append({"policy": key[0], "id": _label(key), "from": old["verdict"],
                            "to": new["verdict"], "cause": cause, "why": why})
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
    sha_now = {run["policy"].get("sha256") for run in runs_of(current)}
    sha_before = {run["policy"].get("sha256") for run in runs_of(previous)}
    return {
        "policies_differ": names_now != names_before,
        "policy_changed": sha_now != sha_before,
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
    """Markdown text (a line or a table cell): no markup, mentions, links, HTML, pipes or
    line breaks, whatever the record holds (cut before escaping, so no entity is split)."""
    return markdown_text(value, limit)


def _code(value: Any) -> str:
    """An id as inline code that survives backticks and markup in it."""
    return f"<code>{_cell(value)}</code>"


# characters: under a GitHub comment's 65,536 (a step summary may hold 1 MiB), with room
# for a line CI adds (the mlcheck action links the report artifact)
MARKDOWN_LIMIT = 64_000
TABLE_ROWS = 50  # checks per table; the rest are counted, and listed in the HTML report
HEADLINE_ROWS = 25  # headline values per policy
HEADLINE_FAMILIES = ("performance", "fairness")


def render_markdown(record: dict[str, Any], previous: dict[str, Any] | None = None, *,
                    status: str | None = None, limit: int = MARKDOWN_LIMIT) -> str:
    """A pull-request comment or CI step summary. For each policy: the verdict and what
    blocked it, then the headline values with their intervals (each performance and
    fairness check), the checks by family, what else did not pass; first a warning when
    the record is altered (its digest does not match) or unsealed. At most `limit`
    characters: a longer summary is cut at a line and says where the rest is."""
    status = status or record_status(record)
    lines = []
    if status == "altered":
        lines += [f"> **UNVERIFIED: {ALTERED_NOTE}.**", ""]
    elif status == "unsealed":
        lines += [f"> {UNSEALED_NOTE}.", ""]
    runs, missing = runs_of(record), policies_not_run(record)
    if record.get("kind") == "session":
        tally = {v: sum(r["verdict"] == v for r in runs) for v in ("passed", "blocked",
                                                                  "partial")}
        parts = [f"{n} {v}" for v, n in tally.items() if n]
        parts += [f"{len(missing)} not run"] if missing else []
        lines += [f"## mlcheck: {_verdict(record['verdict'], status)}: {len(runs) + len(missing)}"
                  f" policies ({', '.join(parts)})", ""]
    for run in runs:
        counts = _cell(" · ".join(f"{n} {v}" for v, n in run["counts"].items() if n))
        lines += [f"### mlcheck: {_cell(run['policy']['name'])}: "
                  f"{_verdict(run['verdict'], status)}", "",
                  f"{counts} ({len(run['checks'])} checks)", ""]
        if not_run_note(run):
            shown = ", ".join(_code(i) for i in run["not_run"][:20])
            more = len(run["not_run"]) - 20
            lines += [f"**Partial run**: {not_run_note(run)}: {shown}"
                      + (f" and {more} more" if more > 0 else ""), ""]
        for note in sample_notes(run):
            lines += [f"**Sample**: {_cell(note)}", ""]
        blocking = [c for c in run["checks"] if c["blocking"]]
        others = [c for c in run["checks"] if not c["blocking"] and c["verdict"] != "pass"]
        if blocking:
            lines += [f"**Blocked by** {len(blocking)} check{'s' * (len(blocking) > 1)}", "",
                      *_table(blocking), ""]
        lines += _headline(run["checks"])
        lines += ["**Checks by family**", "", *_families(run["checks"]), ""]
        if others:
            lines += ["<details><summary>Not blocking: "
                      f"{len(others)} warned, waived or inconclusive</summary>", "",
                      *_table(others), "", "</details>", ""]
        stale = [w for w in run.get("waivers", []) if w["status"] != "active"]
        for waiver in stale:
            lines.append(f"- {_cell(waiver['status'])} waiver {_code(waiver['check'])} "
                         f"(approved by {_cell(waiver['approved_by'])}, expires "
                         f"{_cell(waiver['expires'])})")
        if stale:
            lines.append("")
    for gone in missing:
        lines += [f"### mlcheck: {_code(gone['policy'])}: **NOT RUN** "
                  f"({_cell(gone['reason'])}), so this session is not a gate verdict", ""]
    if previous is not None:
        lines += _comparison_lines(compare(record, previous))
    block = record["integrity"] if isinstance(record.get("integrity"), dict) else {}
    footer = []
    if status == "sealed":
        footer.append(f"<sub>record sha256 <code>{_cell(block.get('digest'))}</code></sub>")
    elif status == "altered":
        footer.append(f"<sub>recorded sha256 <code>{_cell(block.get('digest'))}</code>, "
                      "which does not match the record's content</sub>")
    return _fit(lines, footer, limit)


def _verdict(verdict: Any, status: str) -> str:
    return f"**{_cell(verdict).upper()}**" if status != "altered" else \
        f"**UNVERIFIED** (the record claims {_cell(verdict)})"


def _fit(lines: list[str], footer: list[str], limit: int) -> str:
    """The summary within `limit` characters: whole lines, every `<details>` closed, and a
    note saying it was cut and where the rest is."""
    text = "\n".join([*lines, *footer]).rstrip("\n") + "\n"
    if len(text) <= limit:
        return text
    note = (f"**Truncated** to {limit:,} characters (for GitHub's comment limit): the "
            "HTML report and the JSON record (in CI, the job's report artifact) hold every "
            "check.")
    budget = limit - len(note) - sum(len(line) + 1 for line in footer) - 32
    kept, size, open_details = [], 0, 0
    for line in lines:
        if size + len(line) + 1 > budget:
            break
        kept.append(line)
        size += len(line) + 1
        open_details += line.startswith("<details>") - line.startswith("</details>")
    kept += ["", "</details>"] * open_details + ["", note, "", *footer]
    return "\n".join(kept).rstrip("\n") + "\n"


def _bounds(check: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in check["bounds"].items()) or "—"


def _interval(check: dict[str, Any]) -> str:
    """`[low, high] 95%`, or a dash when the check has no interval."""
    interval = check.get("interval") or {}
    low, high = interval.get("low"), interval.get("high")
    if not all(isinstance(v, (int, float)) for v in (low, high)):
        return "—"
    confidence = interval.get("confidence")
    level = f" {confidence:.0%}" if isinstance(confidence, (int, float)) else ""
    return f"[{format_number(low)}, {format_number(high)}]{level}"


def _more(rows: list[str], hidden: int, what: str) -> list[str]:
    """A table's rows, and when some were left out, a line saying how many."""
    if hidden <= 0:
        return rows
    return [*rows, "", f"… and {hidden} more {what}: the HTML report lists them"]


def _table(checks: list[dict[str, Any]]) -> list[str]:
    ordered = sorted(checks, key=lambda c: (NOT_PASSED_ORDER.index(c["verdict"])
                                            if c["verdict"] in NOT_PASSED_ORDER else 9))
    rows = ["| check | verdict | value | bound | message |", "|---|---|---|---|---|"]
    for c in ordered[:TABLE_ROWS]:
        rows.append(f"| {_code(c['id'])} | {_cell(c['verdict'])} | "
                    f"{_cell(format_number(c['value']))} | {_cell(_bounds(c))} | "
                    f"{_cell(c['message'], 300)} |")
    return _more(rows, len(ordered) - TABLE_ROWS, "checks")


def _headline(checks: list[dict[str, Any]]) -> list[str]:
    """Each performance and fairness check's value with its interval: blocking ones first,
    then the others that did not pass, then the passed ones, each in policy order."""
    chosen = [c for c in checks if c["family"] in HEADLINE_FAMILIES]
    if not chosen:
        return []
    chosen.sort(key=lambda c: 0 if c["blocking"] else 2 if c["verdict"] == "pass" else 1)
    rows = ["**Headline values** (performance and fairness, with their intervals)", "",
            "| check | verdict | value | interval | bound |", "|---|---|---|---|---|"]
    for c in chosen[:HEADLINE_ROWS]:
        rows.append(f"| {_code(c['id'])} | {_cell(c['verdict'])} | "
                    f"{_cell(format_number(c['value']))} | {_cell(_interval(c))} | "
                    f"{_cell(_bounds(c))} |")
    return [*_more(rows, len(chosen) - HEADLINE_ROWS, "performance and fairness checks"), ""]


def _families(checks: list[dict[str, Any]]) -> list[str]:
    """Counts per family: checks, passed, what did not pass (by verdict), blocking."""
    families: dict[str, list[dict[str, Any]]] = {}
    for c in checks:
        families.setdefault(c["family"], []).append(c)
    rows = ["| family | checks | pass | not passed | blocking |", "|---|---|---|---|---|"]
    for family, members in families.items():
        verdicts = [c["verdict"] for c in members]
        failed = ", ".join(f"{verdicts.count(v)} {v}" for v in NOT_PASSED_ORDER
                           if v in verdicts) or "—"
        rows.append(f"| {_cell(family)} | {len(members)} | {verdicts.count('pass')} | "
                    f"{_cell(failed)} | {sum(bool(c['blocking']) for c in members)} |")
    return rows


def _comparison_lines(diff: dict[str, Any]) -> list[str]:
    verdict = diff["verdict"]
    lines = [f"**Since the previous record** ({_cell(diff['previous']['created_at'])}): "
             f"{_cell(verdict['from'])} → {_cell(verdict['to'])}", ""]
    for change in diff["verdict_changes"]:
        lines.append(f"- {_code(change['id'])}: {_cell(change['from'])} → "
                     f"{_cell(change['to'])}"
                     + (f": {_cell(change['why'])}" if change.get("why") else ""))
    for change in diff["value_changes"][:10]:
        lines.append(f"- {_code(change['id'])}: {_cell(format_number(change['from']))} → "
                     f"{_cell(format_number(change['to']))} ({change['delta']:+.4g})")
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
    elif diff.get("policy_changed"):
        lines.insert(2, "- note: the policy changed between the two records (its SHA-256 "
                        "differs)")
    return [*lines, ""]


# -------------------------------------------------------------------------- sarif


def render_sarif(record: dict[str, Any], previous: dict[str, Any] | None = None, *,
                 status: str | None = None) -> str:
    """SARIF 2.1.0: one result per check that did not pass, located at its rule's line in
    the policy file, so code scanning annotates the policy; and one for the record itself
    when it is altered (an error) or unsealed (a note)."""
    status = status or record_status(record)
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
        if not_run_note(run):
            results.append(_partial_result(
                f"{run['policy']['name']}: {not_run_note(run)}: "
                f"{', '.join(run['not_run'][:20])}", run["policy"].get("path"), run["not_run"]))
    for missing in policies_not_run(record):
        results.append(_partial_result(
            f"policy {missing['policy']} was not run ({missing['reason']}), so this session "
            "is not a gate verdict", missing["policy"], []))
    if any(r["ruleId"] == PARTIAL_ID for r in results):
        rules[PARTIAL_ID] = {"id": PARTIAL_ID, "name": "partial",
                             "shortDescription": {"text": "every check of the policy ran"}}
    if status != "sealed":
        rules[INTEGRITY_ID] = {"id": INTEGRITY_ID, "name": "integrity",
                               "shortDescription": {"text": "the record is intact"}}
        path = runs_of(record)[0]["policy"].get("path") if runs_of(record) else None
        results.insert(0, {
            "ruleId": INTEGRITY_ID, "level": "error" if status == "altered" else "note",
            "message": {"text": ALTERED_NOTE if status == "altered" else UNSEALED_NOTE},
            "properties": {"integrity": status},
            **({"locations": [{"physicalLocation": {"artifactLocation": _artifact(path),
                                                    "region": {"startLine": 1}}}]}
               if path else {})})
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "mlcheck",
                                      "version": record.get("mlcheck_version") or "unknown",
                                      "rules": list(rules.values())}},
                  "results": results,
                  "properties": {"integrity": status, "verdict": record.get("verdict"),
                                 "partial": bool(record.get("partial"))}}],
    }
    return json.dumps(document, indent=2) + "\n"


def _partial_result(text: str, path: str | None, not_run: list[str]) -> dict[str, Any]:
    """The finding that a run left checks (or a whole policy) unevaluated: an error, since
    a partial run fails the gate unless it was explicitly allowed."""
    result: dict[str, Any] = {"ruleId": PARTIAL_ID, "level": "error", "message": {"text": text},
                              "properties": {"verdict": "partial", "not_run": not_run}}
    if path:
        result["locations"] = [{"physicalLocation": {"artifactLocation": _artifact(path),
                                                     "region": {"startLine": 1}}}]
    return result


def _artifact(path: str) -> dict[str, str]:
    """A SARIF artifact location: a URI (percent-encoded, forward slashes), relative to the
    source root where the policy was given relative to the working folder."""
    from pathlib import PurePath

    posix = PurePath(path).as_posix()
    if PurePath(path).is_absolute():
        return {"uri": PurePath(path).as_uri()}
    return {"uri": urllib.parse.quote(posix), "uriBaseId": "%SRCROOT%"}


# -------------------------------------------------------------------------- junit


def render_junit(record: dict[str, Any], previous: dict[str, Any] | None = None, *,
                 status: str | None = None) -> str:
    """JUnit XML: a test suite per policy, a test case per check, each suite with the
    record's `integrity` as a property; an altered record adds a failing test case."""
    status = status or record_status(record)
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
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="integrity", value=status)
        ET.SubElement(properties, "property", name="verdict",
                      value=_xml(run.get("verdict", "")))
        ET.SubElement(properties, "property", name="not_run",
                      value=str(len(run.get("not_run") or [])))
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
        if not_run_note(run):  # a partial run is never all green
            case = ET.SubElement(suite, "testcase", classname="mlcheck", name=PARTIAL_ID)
            ET.SubElement(case, "error", type="partial", message=_xml(
                f"{not_run_note(run)}: {', '.join(run['not_run'])}"))
            suite.set("tests", str(len(checks) + 1))
            suite.set("errors", str(int(suite.get("errors")) + 1))
    for missing in policies_not_run(record):
        suite = ET.SubElement(suites, "testsuite", name=_xml(missing["policy"]), tests="1",
                              failures="0", errors="1", skipped="0")
        case = ET.SubElement(suite, "testcase", classname="mlcheck", name=PARTIAL_ID)
        ET.SubElement(case, "error", type="partial", message=_xml(
            f"not run ({missing['reason']}), so this session is not a gate verdict"))
    if status != "sealed":
        suite = ET.SubElement(suites, "testsuite", name="mlcheck record integrity", tests="1",
                              failures=str(int(status == "altered")), errors="0",
                              skipped="0")
        case = ET.SubElement(suite, "testcase", classname="integrity", name=INTEGRITY_ID)
        if status == "altered":
            ET.SubElement(case, "failure", message=ALTERED_NOTE, type="altered")
        else:
            ET.SubElement(case, "system-out").text = UNSEALED_NOTE
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(
        suites, encoding="unicode") + "\n"


def _xml(value: Any) -> str:
    """Text XML 1.0 can hold: control characters (from real data) become spaces."""
    return "".join(ch if ch in "\t\n\r" or ord(ch) >= 32 else " " for ch in str(value))


def _html(record: dict[str, Any], previous: dict[str, Any] | None = None, *,
          status: str | None = None) -> str:
    return render_html(record, compare(record, previous) if previous else None,
                       status=status)


def _model_card(record: dict[str, Any], previous: dict[str, Any] | None = None, *,
                status: str | None = None) -> str:
    from mlcheck.report.model_card import render_model_card  # it imports this module

    return render_model_card(record, previous, status=status)


def _github(record: dict[str, Any], previous: dict[str, Any] | None = None, *,
            status: str | None = None) -> str:
    from mlcheck.ci import render_annotations  # workflow commands for GitHub Actions

    return render_annotations(record, previous, status=status)


# each renders (record, previous record or None, status=...): `status` is the record's
# `record_status` as read from its file (before it was normalised); by default, its own
FORMATS: dict[str, Callable[..., str]] = {
    "html": _html, "markdown": render_markdown, "sarif": render_sarif, "junit": render_junit,
    "model-card": _model_card, "github": _github}
SUFFIXES = {"html": ".html", "markdown": ".md", "sarif": ".sarif", "junit": ".xml",
            "model-card": ".card.md", "github": ".annotations"}
