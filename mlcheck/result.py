"""The record of a run: per-check results and the run as a whole, as versioned JSON.

Renderers read only this record, so a stored result re-renders identically later.
The format is documented in docs/record.md; bump RECORD_VERSION on breaking changes.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

RECORD_VERSION = 1
MAX_TEXT = 1_000  # characters per string of a check's result; longer ones are cut (clip)
VERDICTS = ("pass", "fail", "warn", "waived", "inconclusive", "error")


@dataclass
class CheckResult:
    """The outcome of one check, with the evidence an auditor needs to see why."""

    id: str
    family: str
    severity: str
    verdict: str
    description: str = ""
    value: float | None = None
    bounds: dict[str, float] = field(default_factory=dict)
    n: int | None = None
    message: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    policy_file: str | None = None
    policy_line: int | None = None
    controls: list[str] = field(default_factory=list)
    interval: dict[str, Any] | None = None
    waiver: dict[str, Any] | None = None  # the waiver that applied, and the verdict it waived
    blocking: bool = True  # stops promotion: fail, error, and inconclusive unless softened
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self), MAX_TEXT)


@dataclass
class RunResult:
    """Everything a run established; serialised as the JSON record."""

    policy: dict[str, Any]
    subject: dict[str, Any]
    checks: list[CheckResult]
    environment: dict[str, Any]
    timings: dict[str, float]
    created_at: str
    mlcheck_version: str
    not_run: list[str] = field(default_factory=list)  # compiled but not evaluated (-k, -x)
    waivers: list[dict[str, Any]] = field(default_factory=list)  # each with its status
    record_version: int = RECORD_VERSION

    @property
    def verdict(self) -> str:
        """`blocked` when any check blocks promotion; else `partial` when some compiled
        checks were not evaluated (nothing is known of them, so it is no pass); else
        `passed`."""
        if any(c.blocking for c in self.checks):
            return "blocked"
        return "partial" if self.partial else "passed"

    @property
    def partial(self) -> bool:
        """Some compiled checks were not evaluated (deselected, or not reached)."""
        return bool(self.not_run)

    @property
    def blocked(self) -> bool:
        return self.verdict == "blocked"

    def counts(self) -> dict[str, int]:
        return {v: sum(c.verdict == v for c in self.checks) for v in VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_version": self.record_version,
            "kind": "run",
            "mlcheck_version": self.mlcheck_version,
            "created_at": self.created_at,
            "verdict": self.verdict,
            "partial": self.partial,
            "counts": self.counts(),
            "policy": _jsonable(self.policy),
            "subject": _jsonable(self.subject),
            "environment": _jsonable(self.environment),
            "timings": _jsonable(self.timings),
            "checks": [c.to_dict() for c in self.checks],
            "not_run": list(self.not_run),
            "waivers": _jsonable(self.waivers),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def save(self, record_path: str | Path, report_path: str | Path | None = None, *,
             sign: str | Path | None = None, signer: str | None = None) -> dict[str, Any]:
        """Write the sealed JSON record (signed with the Ed25519 key `sign` by `signer`
        when given) and the HTML report, as `mlcheck check` writes them: both or neither,
        never over a file the run read. Returns the sealed record; `mlcheck verify`
        checks either file."""
        from mlcheck.errors import MlcheckError
        from mlcheck.integrity import seal
        from mlcheck.outputs import check_output_paths, write_files
        from mlcheck.report import render_html

        if sign is not None and not signer:
            raise MlcheckError('sign= needs signer="Name <email>": a signature names the '
                               "responsible person")
        paths = [Path(record_path), *([Path(report_path)] if report_path else [])]
        check_output_paths(*paths, inputs=[*self._input_paths(),
                                           *([Path(sign)] if sign else [])])
        record = seal(self.to_dict(), Path(sign) if sign else None, signer)
        texts = [json.dumps(record, indent=2, allow_nan=False) + "\n"]
        if report_path:
            texts.append(render_html(record))
        write_files(dict(zip(paths, texts, strict=True)))
        return record

    def _input_paths(self) -> list[Path]:
        """Files this run read, as the record names them (policy files, models, datasets)."""
        named = [s.get("path") for s in self.policy.get("sources") or []]
        named += [(self.subject.get(role) or {}).get("path") for role in ("model", "baseline")]
        named += [d.get("path") for d in (self.subject.get("datasets") or {}).values()]
        named.append((self.subject.get("reference_profile") or {}).get("path"))
        return [Path(p) for p in named if isinstance(p, str) and not p.startswith("<")]

    def _repr_html_(self) -> str:
        """Inline in Jupyter: the verdict, what blocked, and the verdicts per family."""
        from html import escape

        colour = {"passed": "#1a7f37", "blocked": "#cf222e"}.get(self.verdict, "#9a6700")
        counts = ", ".join(f"{n} {v}" for v, n in self.counts().items() if n)
        parts = [f'<div class="mlcheck-result" style="border:2px solid {colour};'
                 'padding:.5em 1em;border-radius:6px">',
                 f'<p><strong style="color:{colour}">mlcheck {escape(self.verdict.upper())}'
                 f"</strong>: {escape(str(self.policy.get('name')))} ({escape(counts)} of "
                 f"{len(self.checks)} checks)</p>"]
        if self.not_run:
            parts.append(f"<p>Partial: {len(self.not_run)} checks were not evaluated.</p>")
        blocking = [c for c in self.checks if c.blocking]
        if blocking:
            parts.append("<p>Blocked by:</p><ul>" + "".join(
                f"<li><code>{escape(c.id)}</code> ({escape(c.verdict)}): "
                f"{escape(c.message)}</li>" for c in blocking) + "</ul>")
        families = list(dict.fromkeys(c.family for c in self.checks))
        shown = [v for v in VERDICTS if any(c.verdict == v for c in self.checks)]
        rows = "".join(
            f"<tr><th>{escape(f)}</th>" + "".join(
                f"<td>{sum(c.family == f and c.verdict == v for c in self.checks) or ''}</td>"
                for v in shown) + "</tr>" for f in families)
        parts.append("<table><thead><tr><th>family</th>" + "".join(
            f"<th>{escape(v)}</th>" for v in shown) + f"</tr></thead><tbody>{rows}"
            "</tbody></table></div>")
        return "".join(parts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        version = data.get("record_version")
        if version != RECORD_VERSION:
            raise ValueError(f"unsupported record_version {version!r} (this mlcheck reads "
                             f"{RECORD_VERSION})")
        return cls(
            policy=data["policy"], subject=data["subject"],
            checks=[CheckResult(**{k: v for k, v in c.items() if k in _CHECK_FIELDS})
                    for c in data["checks"]],
            environment=data["environment"], timings=data["timings"],
            created_at=data["created_at"], mlcheck_version=data["mlcheck_version"],
            not_run=data.get("not_run", []), waivers=data.get("waivers", []),
            record_version=version,
        )

    @classmethod
    def read(cls, path: str | Path) -> RunResult:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


_CHECK_FIELDS = {f.name for f in fields(CheckResult)}  # newer records may add keys


def session_record(runs: list[RunResult],
                   policies_not_run: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The record of several policies evaluated together (one pytest session).

    `policies_not_run` are policies the session was to gate but did not evaluate at all
    (`{"policy", "reason"}`: not collected, or could not be loaded); they make it partial."""
    missing = [{"policy": clip(str(p["policy"])), "reason": clip(str(p["reason"]))}
               for p in policies_not_run or []]
    if len(runs) == 1 and not missing:
        return runs[0].to_dict()
    partial = not runs or bool(missing) or any(r.partial for r in runs)
    return {
        "record_version": RECORD_VERSION,
        "kind": "session",
        "mlcheck_version": runs[0].mlcheck_version if runs else None,
        "created_at": max((r.created_at for r in runs), default=None),
        "verdict": "blocked" if any(r.blocked for r in runs) else
        "partial" if partial else "passed",
        "partial": partial,
        "runs": [r.to_dict() for r in runs],
        "policies_not_run": missing,
    }


def read_record(path: str | Path) -> dict[str, Any]:
    """A stored run or session record, validated and normalised for rendering."""
    return normalise_record(json.loads(Path(path).read_text(encoding="utf-8")))


def normalise_record(data: Any) -> dict[str, Any]:
    """A record as rendering expects it; a verdict outside the known ones is refused."""
    if not isinstance(data, dict):
        raise ValueError("a record is a JSON object")
    runs = data["runs"] if isinstance(data.get("runs"), list) else [data]
    checks = [c for run in runs if isinstance(run, dict) for c in run.get("checks") or []]
    for check in checks:
        if not isinstance(check, dict) or check.get("verdict") not in VERDICTS:
            raise ValueError(f"check {check.get('id') if isinstance(check, dict) else check!r}"
                             " has an unknown verdict")
    kept = {"integrity": data["integrity"]} if "integrity" in data else {}
    if data.get("kind") == "session":
        runs = [RunResult.from_dict(run) for run in data["runs"]]
        missing = data.get("policies_not_run") or []
        if not isinstance(missing, list) or not all(
                isinstance(p, dict) and {"policy", "reason"} <= set(p) for p in missing):
            raise ValueError("policies_not_run holds entries without `policy` and `reason`")
        if len(runs) == 1 and not missing:
            return {**runs[0].to_dict(), **kept}
        return {**session_record(runs, missing), "created_at": data.get("created_at"),
                **kept}
    return {**RunResult.from_dict(data).to_dict(), **kept}


# C0 and C1 controls (ANSI escapes start with ESC or CSI), line and paragraph separators,
# and the bidi marks and overrides that reorder what a terminal shows
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                      "\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def terminal_text(value: Any, limit: int = MAX_TEXT) -> str:
    """Text a terminal shows as it is: control characters as visible escapes (`\\x1b`,
    `\\u202e`), so data cannot move the cursor, erase a line or reorder one; and at most
    `limit` characters of the original (with its length stated)."""
    return CONTROL_CHARACTERS.sub(escape_control, clip(str(value), limit))


def escape_control(found: re.Match) -> str:
    char = found.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100
                                else f"\\u{ord(char):04x}")


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """`text`, or its start with its original length when longer than `limit` characters.

    The result is never longer than `limit`, so clipping a clipped text changes nothing
    (a record read back and written again keeps its digest)."""
    if len(text) <= limit:
        return text
    marker = f"…[truncated, {len(text):,} characters]"
    return text[:max(limit - len(marker), 0)] + marker


def _jsonable(value: Any, limit: int | None = None) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN/inf as null, tuples as lists, and
    with a `limit`, every string (keys too) clipped to it: one huge data value must not
    inflate the record and every report rendered from it."""
    if isinstance(value, dict):
        return {_jsonable(str(k), limit): _jsonable(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, limit) for v in value]
    np = sys.modules.get("numpy")  # not imported here: `mlcheck validate` must not load it;
    if np is not None and isinstance(value, np.ndarray):  # unloaded, nothing is an array
        return _jsonable(value.tolist(), limit)
    if np is not None and isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return clip(value, limit) if limit else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _jsonable(str(value), limit)
