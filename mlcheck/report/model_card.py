"""A model card from a record (`mlcheck report RECORD --format model-card`).

Markdown in the Hugging Face layout: YAML front matter with a `model-index` whose metrics
are the record's measured values and intervals, then the usual sections. Every number
comes from the record, and the card names the record's digest and signature, so the card
can be traced to signed evidence. Record text is escaped with `markdown_text`; the front
matter is written by `yaml.safe_dump` (one-line strings only, so no line of it can end
the front matter early).
"""

from __future__ import annotations

from typing import Any

import yaml

from mlcheck.report.formats import not_run_note, policies_not_run, runs_of, sample_notes
from mlcheck.report.html import format_number
from mlcheck.report.text import ALTERED_NOTE, UNSEALED_NOTE, markdown_text, record_status

TOP_ATTRIBUTIONS = 10
NOT_PASSED = ("error", "fail", "inconclusive", "warn", "waived")
HF_TASKS = {"binary_classification": "tabular-classification",
            "multiclass_classification": "tabular-classification",
            "regression": "tabular-regression"}


def _t(value: Any, limit: int | None = None) -> str:
    return markdown_text("—" if value is None or value == "" else value, limit)


def _code(value: Any) -> str:
    return f"<code>{_t(value)}</code>"


def _one_line(value: Any) -> Any:
    return " ".join(str(value).split()) if isinstance(value, str) else value


def _slice(check_id: str) -> str | None:
    return check_id[check_id.index("[") + 1:-1] if check_id.endswith("]") else None


def performance_checks(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Performance checks with a measured value, not comparisons with the baseline."""
    return [c for c in run["checks"] if c["family"] == "performance"
            and isinstance(c.get("value"), (int, float)) and "/vs_baseline" not in c["id"]]


def _metric(check: dict[str, Any]) -> str:
    return check["id"].split("/", 1)[1].split("[", 1)[0]


def model_index(run: dict[str, Any]) -> dict[str, Any]:
    """One `model-index` entry: each performance value with its interval, and the dataset
    it was measured on (by its SHA-256)."""
    subject = run.get("subject") or {}
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for check in performance_checks(run):
        interval = check.get("interval") or {}
        entry: dict[str, Any] = {"type": _metric(check), "value": check["value"],
                                 "name": _one_line(check["id"]), "verified": False}
        args: dict[str, Any] = {"verdict": check["verdict"], "n": check.get("n")}
        if interval:
            args.update(confidence=interval.get("confidence"),
                        interval=[interval.get("low"), interval.get("high")])
        if _slice(check["id"]):
            entry["config"] = _one_line(_slice(check["id"]))
        entry["args"] = args
        dataset = (check.get("evidence") or {}).get("dataset") or "eval"
        by_dataset.setdefault(str(dataset), []).append(entry)
    results = []
    for name, metrics in by_dataset.items():
        described = (subject.get("datasets") or {}).get(name) or {}
        results.append({
            "task": {"type": HF_TASKS.get(subject.get("task"), "tabular-classification"),
                     "name": _one_line(subject.get("task") or "unknown")},
            "dataset": {"type": "tabular", "name": _one_line(name),
                        "revision": described.get("sha256")},
            "metrics": metrics})
    return {"name": _one_line(run["policy"]["name"]), "results": results}


def front_matter(record: dict[str, Any], status: str) -> str:
    runs = runs_of(record)
    first = runs[0] if runs else {}
    task = (first.get("subject") or {}).get("task")
    data = {
        "library_name": "sklearn",
        "tags": ["mlcheck", HF_TASKS.get(task, "tabular-classification")],
        "model-index": [model_index(run) for run in runs],
        "mlcheck": {"verdict": record.get("verdict"), "integrity": status,
                    "record_sha256": (record.get("integrity") or {}).get("digest"),
                    "created_at": record.get("created_at")},
    }
    return "---\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True,
                                    width=1 << 20) + "---\n"


def render_model_card(record: dict[str, Any], previous: dict[str, Any] | None = None, *,
                      status: str | None = None) -> str:
    """The card (`previous` is not used: a card describes one record)."""
    status = status or record_status(record)
    lines = [front_matter(record, status)]
    runs = runs_of(record)
    title = " + ".join(run["policy"]["name"] for run in runs) or "mlcheck"
    lines += [f"# Model card: {_t(title)}", ""]
    if status == "altered":
        lines += [f"> **UNVERIFIED: {ALTERED_NOTE}.**", ""]
    elif status == "unsealed":
        lines += [f"> {UNSEALED_NOTE}.", ""]
    verdict = _t(record.get("verdict")).upper() if status != "altered" else \
        f"UNVERIFIED (the record claims {_t(record.get('verdict'))})"
    lines += [f"Generated by mlcheck from the record of {_t(record.get('created_at'))}: "
              f"gate verdict **{verdict}**. Every number below is the record's.", ""]
    for run in runs:
        lines += _run_sections(run, len(runs) > 1)
    for missing in policies_not_run(record):
        lines += [f"**Not run**: policy {_code(missing['policy'])} "
                  f"({_t(missing['reason'])}), so this is not a gate verdict.", ""]
    lines += _governance(record, runs)
    return "\n".join(lines).rstrip("\n") + "\n"


def _run_sections(run: dict[str, Any], several: bool) -> list[str]:
    policy, subject = run["policy"], run.get("subject") or {}
    head = "##" if not several else "###"
    lines = [f"## Policy {_t(policy['name'])}", ""] if several else []
    model = subject.get("model") or {}
    lines += [f"{head} Model details", "",
              f"- Task: {_t(subject.get('task'))}",
              f"- Model: {_t(model.get('class') or model.get('kind'))}, "
              f"file {_t(model.get('path'))}, sha256 {_code(model.get('sha256'))}",
              f"- Loaded with: {_t(model.get('loaded_with'))}"]
    baseline = subject.get("baseline")
    if baseline:
        lines.append(f"- Compared with the baseline: {_t(baseline.get('class'))}, file "
                     f"{_t(baseline.get('path'))}, sha256 {_code(baseline.get('sha256'))}")
    lines += [f"- Owner: {_t(policy.get('owner'))}; policy version {_t(policy.get('version'))}",
              f"- Target: {_t(subject.get('target'))}"
              + (f", positive label {_t(subject['positive_label'])}"
                 if subject.get("positive_label") is not None else ""), "",
              f"{head} Intended use", "",
              _t(policy.get("description") or "The policy gives no description."), "",
              f"{head} Data", "", "| dataset | file | sha256 | rows | columns |",
              "|---|---|---|---|---|"]
    for name, ds in (subject.get("datasets") or {}).items():
        if isinstance(ds, dict):
            lines.append(f"| {_t(name)} | {_t(ds.get('path'))} | {_code(ds.get('sha256'))} | "
                         f"{_t(ds.get('rows'))} | {_t(ds.get('columns'))} |")
    profile = subject.get("reference_profile")
    if isinstance(profile, dict):
        lines.append(f"| reference profile | {_t(profile.get('path'))} | "
                     f"{_code(profile.get('sha256'))} | {_t(profile.get('rows'))} | — |")
    lines += [""] + [f"- {_t(note)}" for note in sample_notes(run)]
    lines += _evaluation(run, head) + _fairness(run, head) + _reliance(run, head)
    lines += _limitations(run, head)
    return lines


def _interval_text(check: dict[str, Any]) -> str:
    interval = check.get("interval") or {}
    if not interval:
        return "—"
    return (f"[{format_number(interval.get('low'))}, {format_number(interval.get('high'))}] "
            f"({interval.get('confidence', 0.95):.0%})")


def _bounds(check: dict[str, Any]) -> str:
    return ", ".join(f"{k} {format_number(v)}" for k, v in (check.get("bounds") or {}).items())


def _evaluation(run: dict[str, Any], head: str) -> list[str]:
    checks = [c for c in run["checks"] if c["family"] == "performance"]
    if not checks:
        return [f"{head} Evaluation results", "", "The policy has no performance rules.", ""]
    overall = [c for c in checks if not _slice(c["id"])]
    sliced = [c for c in checks if _slice(c["id"])]
    lines = [f"{head} Evaluation results", ""]
    for title, group in (("Overall", overall), ("Per slice", sliced)):
        if not group:
            continue
        lines += [f"**{title}**", "", "| check | value | interval | bound | n | verdict |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {_code(c['id'])} | {_t(format_number(c.get('value')))} | "
                  f"{_t(_interval_text(c))} | {_t(_bounds(c))} | {_t(c.get('n'))} | "
                  f"{_t(c['verdict'])} |" for c in group]
        lines.append("")
    return lines


def _fairness(run: dict[str, Any], head: str) -> list[str]:
    checks = [c for c in run["checks"] if c["family"] == "fairness"]
    lines = [f"{head} Fairness", ""]
    if not checks:
        return [*lines, "The policy has no fairness rules.", ""]
    for check in checks:
        lines += [f"{_code(check['id'])}: {_t(check['verdict'])}, value "
                  f"{_t(format_number(check.get('value')))} {_t(_interval_text(check))}, "
                  f"bound {_t(_bounds(check))}", ""]
        groups = (check.get("evidence") or {}).get("groups") or []
        rows = ["| group | n | selection rate | true positive rate | false positive rate |",
                "|---|---|---|---|---|"]
        rows += [f"| {_t(g.get('group'))} | {_t(g.get('n'))} | "
                 f"{_t(format_number(g.get('selection_rate')))} | "
                 f"{_t(format_number(g.get('true_positive_rate')))} | "
                 f"{_t(format_number(g.get('false_positive_rate')))} |"
                 for g in groups if isinstance(g, dict)]
        if len(rows) > 2:
            lines += [*rows, ""]
    return lines


def _reliance(run: dict[str, Any], head: str) -> list[str]:
    lines = [f"{head} What the model relies on", ""]
    for check in run["checks"]:
        evidence = check.get("evidence") or {}
        importance = evidence.get("importance") if check["family"] == "explainability" \
            else None
        if not importance:
            continue
        explainer = evidence.get("explainer") or {}
        lines += [f"Mean absolute SHAP value per input ({_t(explainer.get('explainer'))} "
                  f"explainer, {_t(explainer.get('rows'))} rows of "
                  f"{_t(explainer.get('dataset'))}, in {_t(explainer.get('units'))}):", "",
                  "| rank | feature | mean abs SHAP | share of the total |", "|---|---|---|---|"]
        lines += [f"| {_t(f.get('rank'))} | {_t(f.get('feature'))} | "
                  f"{_t(format_number(f.get('mean_abs_shap')))} | "
                  f"{_t(format_number(f.get('share')))} |"
                  for f in importance[:TOP_ATTRIBUTIONS] if isinstance(f, dict)]
        return [*lines, ""]
    return [*lines, "The record holds no attributions (no explainability rules ran).", ""]


def _limitations(run: dict[str, Any], head: str) -> list[str]:
    lines = [f"{head} Limitations", ""]
    for check in run["checks"]:
        if check["verdict"] in NOT_PASSED:
            lines.append(f"- {_t(check['verdict']).upper()} {_code(check['id'])}: "
                         f"{_t(check.get('message'), 400)}")
    for waiver in run.get("waivers") or []:
        lines.append(f"- waiver ({_t(waiver.get('status'))}) for {_code(waiver.get('check'))}: "
                     f"{_t(waiver.get('reason'), 300)}; approved by "
                     f"{_t(waiver.get('approved_by'))}, expires {_t(waiver.get('expires'))}")
    if not_run_note(run):
        lines.append(f"- **Partial run**: {_t(not_run_note(run))}: "
                     + ", ".join(_code(i) for i in run["not_run"]))
    if len(lines) == 2:
        lines.append("- Every check passed; none was waived or inconclusive.")
    return [*lines, ""]


def _governance(record: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    lines = ["## Governance", ""]
    controls: dict[str, list[str]] = {}
    approvers: set[str] = set()
    for run in runs:
        lines.append(f"- Policy {_t(run['policy']['name'])}: {_t(run['policy'].get('path'))}, "
                     f"sha256 {_code(run['policy'].get('sha256'))}")
        for check in run["checks"]:
            for control in check.get("controls") or []:
                controls.setdefault(str(control), []).append(check["id"])
        approvers |= {str(w["approved_by"]) for w in run.get("waivers") or []
                      if w.get("approved_by")}
    block = record.get("integrity") if isinstance(record.get("integrity"), dict) else {}
    signature = block.get("signature") if isinstance(block.get("signature"), dict) else None
    lines.append(f"- Record digest ({_t(block.get('algorithm') or 'sha256')}): "
                 f"{_code(block.get('digest'))}; check it with `mlcheck verify RECORD.json`")
    if signature:
        lines.append(f"- Signed ({_t(signature.get('algorithm'))}) by "
                     f"{_t(signature.get('signer'))} at {_t(signature.get('signed_at'))}, "
                     f"public key {_code(signature.get('public_key'))}")
        approvers.add(str(signature.get("signer")))
    else:
        lines.append("- Not signed: the digest detects accidental edits only")
    lines.append("- Approvers (waivers and signature): "
                 + (", ".join(_t(a) for a in sorted(approvers)) or "none recorded"))
    if controls:
        lines += ["", "| control | checks evidencing it |", "|---|---|"]
        for control, ids in controls.items():
            shown = ", ".join(_code(i) for i in ids[:8])
            more = f" and {len(ids) - 8} more" if len(ids) > 8 else ""
            lines.append(f"| {_t(control)} | {shown}{more} |")
    return [*lines, ""]
