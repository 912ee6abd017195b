"""`mlcheck init`: a starting policy derived from a dataset (and a model, a reference).

The policy is written by hand as YAML text, so that every generated rule keeps a one-line
comment saying where its number came from. Numbers about the model are measured by the
engine itself: a probe policy with permissive bounds is evaluated, and each floor is set a
margin beyond the measured interval, so the policy passes on the data it was made from and
fails when the model gets measurably worse. The text is validated with `load_policy`
before anything is written, and the policy and the profile are written all-or-nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcheck.errors import MlcheckError

CATEGORY_LIMIT = 20  # a text column with at most this many values gets an `isin` set
MARGIN = 0.02  # floors sit this far beyond the interval (metrics in [0, 1])
RELATIVE_MARGIN = 0.05  # errors in the target's units (mae, rmse): 5% above the interval
PROTECTED = ("sex", "gender", "race", "racial", "ethnic", "age", "religio", "marital",
             "disab", "national", "citizen", "pregnan", "orientation", "colour", "color",
             "caste", "veteran", "birth", "native", "language")  # word stems


def suggests_protected(column: object) -> bool:
    """Whether a column's name has a word starting like a protected attribute
    (`age`, `Sex`, `marital_status`, `raceEthnicity`; not `page`, `wage` or `agent`): a
    short stem must be the whole word."""
    words = re.findall(r"[a-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", str(column)).lower())
    return any(word == stem or (len(stem) > 4 and word.startswith(stem))
               for word in words for stem in PROTECTED)


DTYPES = {"int64", "int32", "Int64", "float64", "float32", "str", "string", "bool",
          "boolean", "category", "datetime64[ns]"}
PERFORMANCE = {  # metric -> higher is better
    "binary_classification": {"roc_auc": True, "accuracy": True, "recall": True,
                              "precision": True, "brier_score": False},
    "multiclass_classification": {"accuracy": True, "balanced_accuracy": True,
                                  "f1_macro": True, "log_loss": False},
    "regression": {"r2": True, "mae": False, "rmse": False},
}
UNBOUNDED = {"mae", "rmse", "log_loss"}  # not in [0, 1]: a relative margin
FAIRNESS = {  # task -> [(metric, higher is better, rule kind)]
    "binary_classification": [("equalized_odds_difference", False, "disparity"),
                              ("demographic_parity_ratio", True, "disparity")],
    "multiclass_classification": [("accuracy", False, "max_gap")],
    "regression": [("mae", False, "max_gap")],
}
DRIFT = [("psi", "max: 0.2", "both", "the industry's usual PSI limit"),
         ("ks", "min_p_value: 0.01", "numeric", "and a KS effect of at least 0.1"),
         ("chi2", "min_p_value: 0.01", "categorical", "Cramér's V at least 0.1"),
         ("unseen_categories", "max: 0.01", "categorical",
          "share of rows with a category the reference lacks")]


@dataclass
class Init:
    """What `mlcheck init` was given."""

    data: Path
    target: str
    output: Path
    model: Path | None = None
    reference: Path | None = None
    sensitive: list[str] = field(default_factory=list)
    task: str | None = None
    name: str | None = None
    trust_model: bool = False


def q(value: Any) -> str:
    """A YAML scalar: strings double-quoted (JSON escapes are valid YAML), numbers exact."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:  # YAML 1.1 needs "1.0e-05"
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    return json.dumps(str(value))


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _round(value: float, up: bool) -> float:
    """Four decimals, rounded away from the measured value (so the floor still passes)."""
    scaled = value * 10_000
    return (math.ceil(scaled) if up else math.floor(scaled)) / 10_000


def _read(path: Path, what: str) -> tuple[Any, bytes]:
    from mlcheck.inputs import DATASET, read_limited
    from mlcheck.subject import read_dataset

    if not path.is_file():
        raise MlcheckError(f"{what} not found: {path}")
    try:
        content = read_limited(path, what, DATASET)
    except OSError as exc:
        raise MlcheckError(f"cannot read {path}: {exc.strerror or exc}") from None
    return read_dataset(path, name=what, content=content), content


def guess_task(series: Any) -> str:
    """Regression for non-integer numbers or many distinct values, else by label count."""
    import pandas as pd

    values = series.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "binary_classification" if values.nunique() <= 2 else \
            "multiclass_classification"
    integral = bool((values == values.round()).all())
    if not integral or values.nunique() > CATEGORY_LIMIT:
        return "regression"
    return "binary_classification" if values.nunique() <= 2 else "multiclass_classification"


def schema_lines(frame: Any, target: str) -> list[str]:
    """One column spec per column: its dtype, nullability, observed range or category set."""
    import pandas as pd

    lines = ["schema:", f"  strict: true   # every column of the data is declared below "
                        f"({len(frame.columns)} columns)", "  columns:"]
    for name in frame.columns:
        series = frame[name]
        dtype = str(series.dtype)
        if dtype == "object" and series.dropna().map(type).eq(str).all():
            dtype = "str"
        parts, notes = [], []
        if dtype in DTYPES:
            parts.append(f"dtype: {q(dtype)}")
            notes.append(f"dtype {dtype}")
        missing = int(series.isna().sum())
        if missing:
            parts.append("nullable: true")
            notes.append(f"{missing:,} missing")
        present = series.dropna()
        checks = []
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(
            series)
        if numeric and len(present):
            low, high = present.min(), present.max()
            low = int(low) if pd.api.types.is_integer_dtype(series) else float(low)
            high = int(high) if pd.api.types.is_integer_dtype(series) else float(high)
            if all(math.isfinite(v) for v in (low, high)):
                checks += [f"ge: {q(low)}", f"le: {q(high)}"]
                notes.append("observed range")
        elif dtype in ("str", "string", "category") and 0 < present.nunique() <= CATEGORY_LIMIT:
            values = sorted(str(v) for v in present.unique())
            checks.append(f"isin: [{', '.join(q(v) for v in values)}]")
            notes.append(f"the {len(values)} values observed")
        if checks:
            parts.append(f"checks: {{{', '.join(checks)}}}")
        role = " (the target)" if name == target else ""
        lines.append(f"    {q(name)}: {{{', '.join(parts)}}}   # from the data{role}: "
                     f"{', '.join(notes) or 'no constraint found'}")
    return lines


def _model_lines(init: Init, base: Path) -> list[str]:
    lines = ["model:", f"  path: {q(_relative(init.model, base))}",
             f"  task: {init.task}"]
    suffix = init.model.suffix.lower()
    if suffix == ".skops":
        import skops.io as sio

        try:
            untrusted = sio.get_untrusted_types(file=init.model)
        except Exception as exc:
            raise MlcheckError(f"model {init.model} is not a valid skops file: {exc}") from None
        if untrusted and not init.trust_model:
            raise MlcheckError(
                f"model {init.model} contains types skops does not trust by default: "
                f"{', '.join(untrusted)}. Review them, then run `mlcheck init` again with "
                "--trust-model to list them under model.trusted_types")
        if untrusted:
            lines.append("  # listed by `mlcheck init --trust-model`: types beyond skops' "
                         "defaults, trusted after review")
            lines.append("  trusted_types:")
            lines += [f"    - {q(t)}" for t in untrusted]
    elif suffix in (".pkl", ".pickle", ".joblib"):
        if not init.trust_model:
            raise MlcheckError(f"model {init.model} is a pickle file, which can run any code "
                               "when loaded: pass --trust-model if you trust it (safer: save "
                               "it with skops)")
        sha = hashlib.sha256(init.model.read_bytes()).hexdigest()
        lines.append(f"  sha256: {sha}   # pinned by `mlcheck init`: only this file is trusted")
    return lines


def _probe_rules(init: Init, sensitive: list[str]) -> list[str]:
    """Sections with bounds nothing can violate, to measure the values the floors need."""
    lines = ["performance:", "  dataset: eval", "  rules:"]
    for metric, higher in PERFORMANCE[init.task].items():
        bound = "min: -1.0e+300" if higher else "max: 1.0e+300"
        lines.append(f"    - {{metric: {metric}, {bound}}}")
    if sensitive:
        lines += ["fairness:", "  dataset: eval",
                  f"  sensitive: [{', '.join(q(s) for s in sensitive)}]", "  rules:"]
        for metric, higher, kind in FAIRNESS[init.task]:
            bound = ("min: 0.0" if higher else "max: 1.0e+300") if kind == "disparity" \
                else "max_gap: 1.0e+300"
            lines.append(f"    - {{metric: {metric}, {bound}}}")
    lines += ["explainability:", "  dataset: eval", "  rules:",
              "    - {test: max_attribution_share, max: 1.0}",
              "robustness:", "  dataset: eval", "  rules:",
              "    - {property: valid_predictions}"]
    return lines


def _interval(check: dict) -> tuple[float, float]:
    interval = check.get("interval") or {}
    value = check["value"]
    return interval.get("low", value), interval.get("high", value)


def _measured(check: dict) -> str:
    low, high = _interval(check)
    return (f"measured {check['value']:.4g} [{low:.4g}, {high:.4g}] on eval "
            f"(n={check['n']:,})")


def _floor(metric: str, higher: bool, check: dict, *, lowest: float | None = None
           ) -> tuple[str, str, str]:
    """The bound key and value a margin beyond the measured interval, and why."""
    low, high = _interval(check)
    if higher:
        bound = _round(low - MARGIN, up=False)
        if lowest is not None:
            bound = max(bound, lowest)
        return "min", f"{bound:g}", f"{_measured(check)}; min {MARGIN} under its lower bound"
    if metric in UNBOUNDED:
        bound = _round(high * (1 + RELATIVE_MARGIN) + 1e-12, up=True)
        why = f"{_measured(check)}; max {RELATIVE_MARGIN:.0%} over its upper bound"
    else:
        bound = _round(high + MARGIN, up=True)
        why = f"{_measured(check)}; max {MARGIN} over its upper bound"
    return "max", f"{bound:g}", why


def build_policy(init: Init, frame: Any, profile_name: str | None,
                 probe_profile: str | None = None, kinds: dict[str, str] | None = None
                 ) -> str:
    """The policy text; the probe reads the profile from `probe_profile` (a temporary
    name), the policy names `profile_name`."""
    base = init.output.parent
    name = init.name or re.sub(r"[^A-Za-z0-9_.-]+", "-", init.output.stem) or "model"
    header = [f"# Starting policy written by `mlcheck init` from {init.data.name}.",
              "# Every number below says where it came from: review each one, tighten what",
              "# the model must do rather than what it does today, then commit this file.",
              "mlcheck: 1", f"name: {q(name)}", "owner: you@example.org   # who answers for "
              "this model: change it",
              f"description: {q(f'Starting policy for the model predicting {init.target}')}",
              ""]
    data = ["data:", f"  target: {q(init.target)}"]
    labels = frame[init.target].dropna()
    if init.task == "binary_classification" and not set(map(str, labels.unique())) <= {
            "0", "1", "True", "False"}:
        counts = labels.value_counts()
        positive = sorted(counts.index, key=lambda v: (counts[v], str(v)))[0]
        positive = positive.item() if hasattr(positive, "item") else positive  # numpy
        data.append(f"  positive_label: {q(positive)}   # the rarer label "
                    f"({counts[positive]:,} of {len(labels):,} rows): change it if the "
                    "other is the outcome of interest")
    data += ["  datasets:", f"    eval: {q(_relative(init.data, base))}", ""]
    stats = ["statistics:   # every value below is reported with a 95% bootstrap interval",
             "  confidence: 0.95", "  resamples: 1000", "  seed: 0", ""]
    body = [*schema_lines(frame, init.target), ""]
    if init.model is None:
        body.append("# no --model given: performance, fairness, explainability and "
                    "robustness need one")
        return "\n".join(header + data + stats + body) + "\n"
    model = _model_lines(init, base)
    kinds = kinds or {}
    protected = [c for c in frame.columns if c != init.target and suggests_protected(c)
                 and c not in init.sensitive]
    result = _probe(init, "\n".join(header + model + [""] + data + stats + body
                                    + _probe_rules(init, init.sensitive)
                                    + _drift_lines(probe_profile, {}, kinds)) + "\n")
    checks = {c["id"]: c for c in result["checks"]}
    body += _performance_lines(init, checks)
    body += _fairness_lines(init, checks, protected)
    body += _drift_lines(profile_name, checks, kinds)
    body += _explainability_lines(checks)
    body += _robustness_lines(checks)
    return "\n".join(header + model + [""] + data + stats + body) + "\n"


def _not_measured(check: dict | None) -> str | None:
    if check is None:
        return "not measured"
    value = check.get("value")
    if check["verdict"] == "error" or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        return f"could not be measured: {check['message'][:120]}"
    return None


def _performance_lines(init: Init, checks: dict) -> list[str]:
    lines = ["performance:", "  dataset: eval", "  rules:"]
    for metric, higher in PERFORMANCE[init.task].items():
        check = checks.get(f"performance/{metric}")
        problem = _not_measured(check)
        if problem:
            lines.append(f"    # {metric} left out: it {problem}")
            continue
        key, bound, why = _floor(metric, higher, check)
        lines.append(f"    - {{metric: {metric}, {key}: {bound}}}   # {why}")
    return [*lines, ""]


def _fairness_lines(init: Init, checks: dict, protected: list[str]) -> list[str]:
    lines = []
    if protected:
        lines.append("# columns whose names suggest a protected attribute, not added: "
                     f"{', '.join(map(str, protected))} (pass --sensitive to add them)")
    if not init.sensitive:
        return [*lines, "# no --sensitive columns given: no fairness section", ""]
    lines += ["fairness:", "  dataset: eval",
              f"  sensitive: [{', '.join(q(s) for s in init.sensitive)}]   # from --sensitive",
              "  inconclusive: warn   # a group too small to judge is reported, not blocking",
              "  rules:"]
    for metric, higher, kind in FAIRNESS[init.task]:
        for column in init.sensitive:
            check = checks.get(f"fairness/{metric}[{column}]")
            problem = _not_measured(check)
            if problem:
                lines.append(f"    # {metric}[{column}] left out: it {problem}")
                continue
            key, bound, why = _floor(metric, higher, check, lowest=0.0)
            if kind == "max_gap":
                key = "max_gap"
            usual = " (the four-fifths rule asks 0.8)" if metric.endswith("_ratio") else \
                " (0.1 is a common limit)" if metric.endswith("_difference") else ""
            lines.append(f"    - {{metric: {metric}, {key}: {bound}, sensitive: [{q(column)}]}}"
                         f"   # today's level, not a fairness target{usual}: {why}")
    return [*lines, ""]


def _drift_lines(profile_name: str | None, checks: dict, kinds: dict[str, str]) -> list[str]:
    """Drift rules against the profile, for the kinds of columns there are (`kinds`: column
    -> numeric or categorical); columns that already differ are excluded, and said so."""
    if profile_name is None:
        return ["# no --reference given: no drift section (give the training data to add one)",
                ""]
    lines = ["drift:", f"  reference_profile: {q(profile_name)}   # written by `mlcheck init` "
             "from --reference (as `mlcheck profile` does)", "  current: eval", "  rules:"]
    for test, bound, kind, note in DRIFT:
        columns = [c for c, k in kinds.items() if kind in ("both", k)]
        drifted = sorted(c for c in columns if f"drift/{test}[{c}]" in checks
                         and checks[f"drift/{test}[{c}]"]["verdict"] != "pass")
        if not columns or len(drifted) == len(columns):
            lines.append(f"    # {test} left out: no {kind} column to test"
                         + (" that does not already differ" if columns else ""))
            continue
        rule = f"{{test: {test}, {bound}}}"
        if drifted:
            rule = rule[:-1] + f", exclude: [{', '.join(q(c) for c in drifted)}]}}"
            note += ("; excluded, as they already differ from the reference: "
                     + ", ".join(drifted))
        lines.append(f"    - {rule}   # {note}")
    lines.append("    - {test: share_of_drifted_columns, max: 0.3}   # a usual limit")
    return [*lines, ""]


def _explainability_lines(checks: dict) -> list[str]:
    check = checks.get("explainability/max_attribution_share")
    problem = _not_measured(check)
    if problem:
        return [f"# explainability left out: max_attribution_share {problem}", ""]
    top = (check.get("evidence") or {}).get("importance") or [{}]
    share = float(check["value"])
    bound = min(1.0, _round(share + 0.1, up=True))
    return ["explainability:", "  dataset: eval", "  rules:",
            f"    - {{test: max_attribution_share, max: {bound:g}}}   # the strongest input "
            f"({top[0].get('feature', '?')}) holds {share:.1%} of mean |SHAP| today; "
            "max 0.1 above that", ""]


def _robustness_lines(checks: dict) -> list[str]:
    check = checks.get("robustness/valid_predictions[schema]")
    line = "    - {property: valid_predictions}   # any row the schema allows gets a valid " \
           "prediction"
    if check is not None and check["verdict"] != "pass":
        line = ("    - {property: valid_predictions, severity: warn}   # warns: its verdict "
                f"was {check['verdict']} at init: {check['message'][:100]}")
    return ["robustness:", "  dataset: eval", "  examples: 100", "  rules:", line]


def _probe(init: Init, text: str) -> dict:
    """Evaluate a probe policy (written beside the final one, then removed)."""
    from mlcheck.engine import evaluate

    handle, temp = tempfile.mkstemp(dir=init.output.parent, prefix=".mlcheck-init-",
                                    suffix=".yaml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        return evaluate(Path(temp), trust_model=init.trust_model).to_dict()
    finally:
        Path(temp).unlink(missing_ok=True)


def init_policy(init: Init) -> dict[Path, str]:
    """The files `mlcheck init` writes (the policy, and a profile of the reference), after
    checking the policy loads. Nothing is written here but temporary files, removed (and
    the policy's folder, created for them, is removed again when this fails)."""
    if init.output.exists() or init.output.is_symlink():
        raise MlcheckError(f"{init.output} already exists: mlcheck init never overwrites a "
                           "policy; choose another -o path or remove it")
    created = [p for p in (init.output.parent, *init.output.parent.parents) if not p.exists()]
    try:
        return _init_files(init)
    except BaseException:
        for folder in created:  # innermost first; only if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _init_files(init: Init) -> dict[Path, str]:
    from mlcheck.checks.drift import make_profile

    frame, _ = _read(init.data, "dataset")
    if init.target not in frame.columns:
        raise MlcheckError(f"--target {init.target!r} is not a column of {init.data} "
                           f"(columns: {', '.join(map(str, frame.columns))})")
    for column in init.sensitive:
        if column not in frame.columns:
            raise MlcheckError(f"--sensitive {column!r} is not a column of {init.data}")
    init.task = init.task or guess_task(frame[init.target])
    init.output.parent.mkdir(parents=True, exist_ok=True)
    if init.reference is None:
        text = build_policy(init, frame, None)
        _validate(text, init.output)
        return {init.output: text}
    reference, content = _read(init.reference, "reference")
    made = make_profile(reference, 10)
    made["source"] = {"path": _relative(init.reference, init.output.parent),
                      "sha256": hashlib.sha256(content).hexdigest()}
    profile = init.output.with_name(init.output.stem + ".profile.json")
    if profile.exists() or profile.is_symlink():
        raise MlcheckError(f"{profile} already exists: mlcheck init never overwrites it")
    profile_text = json.dumps(made, indent=1) + "\n"
    handle, temp = tempfile.mkstemp(dir=init.output.parent, prefix=".mlcheck-init-",
                                    suffix=".profile.json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(profile_text)
        kinds = {c: v["kind"] for c, v in made["columns"].items() if c != init.target}
        text = build_policy(init, frame, profile.name, Path(temp).name, kinds)
    finally:
        Path(temp).unlink(missing_ok=True)
    _validate(text, init.output)
    return {profile: profile_text, init.output: text}


def _validate(text: str, output: Path) -> None:
    """Load the policy from a temporary copy beside where it goes (paths are relative)."""
    from mlcheck.policy import load_policy

    handle, temp = tempfile.mkstemp(dir=output.parent, prefix=".mlcheck-init-", suffix=".yaml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        load_policy(Path(temp))
    except MlcheckError as exc:
        raise MlcheckError(f"mlcheck init made a policy that does not load (a bug; please "
                           f"report it): {exc}") from None
    finally:
        Path(temp).unlink(missing_ok=True)
