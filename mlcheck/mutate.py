"""Policy mutation testing: would this policy have caught it?

The policy is evaluated on its own subject, then on *mutants*: copies of that subject
damaged on purpose, each by one operator at one severity. A mutant is built by wrapping
the candidate model (its decisions degraded) or by editing a copy of one dataset (never
the user's files). A mutant is *caught* when a check that passed on the un-mutated subject
blocks on it; the first such check, in policy order, is named. Each operator has a ladder
of severities; a binary search over the ladder finds the smallest severity caught
(harm is assumed to grow with severity: ladder steps above a caught one count as caught,
below a missed one as missed, and are marked as inferred). The mutation score is the
share of ladder steps caught, per family and overall.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlcheck import DISTRIBUTION
from mlcheck.checks import label
from mlcheck.checks.drift import PREDICTION
from mlcheck.context import Context
from mlcheck.engine import Evaluation, compile_checks, describe_policy, package_version, run_check
from mlcheck.errors import MlcheckError
from mlcheck.metrics import BINARY, MULTICLASS, REGRESSION
from mlcheck.policy import Policy, matches
from mlcheck.result import CheckResult, _jsonable

MUTATION_FAMILIES = ("performance", "subgroup", "proxy", "behaviour", "data")
LEVELS = 4  # severities per operator: max * 1/4, 2/4, 3/4, 1
# Which check families see each mutation family (the rest cannot move, so are not re-run).
# Explainability is left out of model mutants: the wrapped model is not a tree, so SHAP
# would fall back to the permutation explainer, which costs minutes on real data.
MODEL_FAMILIES = ("performance", "fairness", "drift")
RERUN = {"performance": MODEL_FAMILIES, "subgroup": MODEL_FAMILIES,
         "proxy": (*MODEL_FAMILIES, "robustness"), "behaviour": ("robustness",),
         "data": ("schema", "drift")}
UNSEEN = "__mlcheck_unseen__"


@dataclass(frozen=True)
class Budget:
    """Upper limits of a mutation run: mutants evaluated and calls of the model."""

    mutants: int = 40
    model_calls: int = 5_000
    levels: int = LEVELS


@dataclass
class Operator:
    """One kind of damage with a severity knob; `build(severity)` returns the mutation."""

    family: str
    name: str
    description: str
    max_severity: float
    unit: str
    build: Callable[[float], Mutation] | None = None
    reason: str | None = None  # why it does not apply (then `build` is None)
    aimed_at: str | None = None  # the check id of the rule written against this harm


@dataclass(frozen=True)
class Mutation:
    """A model transform (frame the model got, its output) -> output, and/or an edited
    copy of one dataset."""

    degrade: Callable[[pd.DataFrame, np.ndarray], np.ndarray] | None = None
    passthrough: tuple[str, ...] = ()  # columns the transform reads besides the inputs
    dataset: str | None = None
    frame: pd.DataFrame | None = None


@dataclass
class Calls:
    """Calls of the real model, and its outputs by input content: every mutant of one
    run starts from the same outputs, so the model is called once per distinct input."""

    count: int = 0
    outputs: dict[tuple, np.ndarray] = dataclasses.field(default_factory=dict)

    def output(self, method: Callable[[Any], Any], name: str, frame: Any) -> np.ndarray:
        if not isinstance(frame, pd.DataFrame):
            self.count += 1
            return np.asarray(method(frame))
        digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy()
                                .tobytes()).hexdigest()
        key = (name, tuple(frame.columns), digest)
        if key not in self.outputs:
            self.count += 1
            if len(self.outputs) >= 64:  # bounded: robustness asks about many small frames
                self.outputs.pop(next(iter(self.outputs)))
            self.outputs[key] = np.asarray(method(frame))
        return self.outputs[key]


class MutantModel:
    """The candidate, degraded: predict/predict_proba delegate to the real estimator on its
    own input columns, then the transform changes what it returned."""

    def __init__(self, estimator: Any, task: str, inputs: list[str], mutation: Mutation,
                 calls: Calls) -> None:
        self.estimator = estimator
        self.task = task
        self.inputs = inputs
        self.degrade = mutation.degrade
        self.calls = calls
        if hasattr(estimator, "classes_"):
            self.classes_ = estimator.classes_

    def _real(self, method: str, frame: pd.DataFrame) -> np.ndarray:
        real = frame[self.inputs] if isinstance(frame, pd.DataFrame) else frame
        output = self.calls.output(getattr(self.estimator, method), method, real)
        return np.asarray(output, dtype=float)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.degrade(frame, self._real("predict_proba", frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if self.task == REGRESSION:
            return self.degrade(frame, self._real("predict", frame))
        return np.asarray(self.classes_)[self.predict_proba(frame).argmax(axis=1)]


# ------------------------------------------------------------------ per-row randomness

def row_uniform(index: pd.Index, seed: int) -> np.ndarray:
    """A uniform number per row, fixed by the row's index label and the seed: the rows hit
    at a smaller severity are hit at every larger one, and a row is hit the same way
    whichever batch it arrives in."""
    hashed = pd.util.hash_pandas_object(pd.Series(index), index=False,
                                        hash_key=f"mlcheck{seed:09d}"[:16])
    return hashed.to_numpy(dtype=np.uint64) / float(2**64)


# ------------------------------------------------------------------ operators

class Planner:
    """Builds the operators that apply to a policy and its loaded subject."""

    def __init__(self, evaluation: Evaluation, seed: int, groups: tuple[str, ...]) -> None:
        self.policy: Policy = evaluation.policy
        self.context = evaluation.context
        self.subject = evaluation.subject
        self.seed = seed
        self.task = self.context.task
        self.extra_groups = groups
        model = self.subject.model
        self.estimator = model.estimator if model is not None else None
        self.eval_name = self._model_dataset()
        self.frame = self.context.frame(self.eval_name) if self.eval_name else None

    def _model_dataset(self) -> str | None:
        policy = self.policy
        for section in (policy.performance, policy.fairness):
            if section is not None:
                return section.dataset
        names = list(self.subject.datasets)
        return "eval" if "eval" in names else (names[0] if names else None)

    # ---- model mutants

    def _model_reason(self) -> str | None:
        if self.subject.model is None:
            return "the policy names no model: there is no model to degrade"
        if self.estimator is None:
            return "the candidate is a black box (score columns): there is no model to wrap"
        if self.task != REGRESSION and not hasattr(self.estimator, "predict_proba"):
            return "the candidate has no predict_proba to degrade"
        return None

    def _prior(self) -> np.ndarray | float:
        truth = self.context.truth(self.eval_name)
        if self.task != MULTICLASS:  # the mean value, or the positive share
            return float(np.mean(truth.values))
        classes = list(self.estimator.classes_)
        values = pd.Series(truth.values)
        return np.array([float((values == c).mean()) for c in classes])

    def _positive(self) -> int:
        return self.context.positive_index(list(self.estimator.classes_))

    def _flip(self, severity: float, where: Callable[[pd.DataFrame], np.ndarray],
              passthrough: tuple[str, ...] = ()) -> Mutation:
        seed, task, prior = self.seed, self.task, self._prior() if self.task == REGRESSION \
            else None

        def degrade(frame: pd.DataFrame, output: np.ndarray) -> np.ndarray:
            hit = (row_uniform(frame.index, seed) < severity) & where(frame)
            output = output.copy()
            if task == REGRESSION:
                output[hit] = 2 * prior - output[hit]
            elif task == BINARY:
                output[hit] = output[hit][:, ::-1]
            else:
                output[hit] = np.roll(output[hit], 1, axis=1)
            return output
        return Mutation(degrade=degrade, passthrough=passthrough)

    def _shrink(self, severity: float, where: Callable[[pd.DataFrame], np.ndarray],
                passthrough: tuple[str, ...] = ()) -> Mutation:
        prior, task = self._prior(), self.task
        positive = self._positive() if task == BINARY else None

        def degrade(frame: pd.DataFrame, output: np.ndarray) -> np.ndarray:
            hit = where(frame)
            output = output.copy()
            if task == BINARY:
                p = output[hit, positive] * (1 - severity) + severity * prior
                output[hit, positive], output[hit, 1 - positive] = p, 1 - p
            else:
                output[hit] = output[hit] * (1 - severity) + severity * prior
            return output
        return Mutation(degrade=degrade, passthrough=passthrough)

    def performance(self) -> list[Operator]:
        reason = self._model_reason() or self._no_rule(RERUN["performance"])
        everywhere = lambda frame: np.ones(len(frame), dtype=bool)  # noqa: E731
        ops = [Operator("performance", "flip", "a share of the candidate's decisions flipped "
                        "(binary: the two scores swapped; multiclass: the next class; "
                        "regression: reflected about the mean)", 0.5, "share of rows"),
               Operator("performance", "shrink", "the candidate's scores shrunk toward the "
                        "base rate", 1.0, "weight of the base rate")]
        if reason:
            return [dataclasses.replace(op, reason=reason) for op in ops]
        ops[0].build = lambda s: self._flip(s, everywhere)
        ops[1].build = lambda s: self._shrink(s, everywhere)
        return ops

    def group_columns(self) -> list[str]:
        """Columns whose groups the policy names: sensitive features, `by:` slices, and
        any given on the command line, each once."""
        policy, columns = self.policy, []
        if policy.fairness is not None:
            for sensitive in (*policy.fairness.sensitive,
                              *(s for r in policy.fairness.rules for s in r.sensitive or ())):
                columns.extend([sensitive] if isinstance(sensitive, str) else sensitive)
        if policy.performance is not None:
            for rule in policy.performance.rules:
                columns.extend(rule.by)
        columns.extend(self.extra_groups)
        return list(dict.fromkeys(columns))

    def subgroup(self) -> list[Operator]:
        columns = self.group_columns()
        reason = self._model_reason() or self._no_rule(RERUN["subgroup"])
        if not columns:
            return [Operator("subgroup", "flip[group]", "decisions flipped within one group",
                             1.0, "share of the group's rows",
                             reason="no sensitive feature or `by:` slice names a group, so no "
                             "rule can see harm confined to one (name a column with "
                             "--groups to test a global rule against it)")]
        ops = []
        for column in columns:
            if self.frame is None or column not in self.frame.columns:
                ops.append(Operator("subgroup", f"flip[{column}]", "decisions flipped within "
                                    "one group", 1.0, "share of the group's rows",
                                    reason=f"column '{column}' is not in the dataset"))
                continue
            counts = self.frame[column].value_counts()
            counts = counts[counts >= 30]
            for value in sorted(counts.index, key=lambda v: (-int(counts[v]), str(v)))[:6]:
                shown = label(value)  # as the check ids name the group (escaped, cut)
                op = Operator("subgroup", f"flip[{column}={shown}]", f"a share of the "
                              f"decisions flipped for rows with {column} = {shown} only "
                              f"({int(counts[value])} rows)", 1.0, "share of the group's rows",
                              reason=reason)
                if not reason:
                    op.build = self._group_flip(column, value)
                ops.append(op)
        return ops

    def _group_flip(self, column: str, value: Any) -> Callable[[float], Mutation]:
        def where(frame: pd.DataFrame) -> np.ndarray:
            return (frame[column] == value).to_numpy() if column in frame.columns \
                else np.zeros(len(frame), dtype=bool)
        return lambda s: self._flip(s, where, (column,))

    def proxy(self) -> list[Operator]:
        policy = self.policy
        columns = []
        if policy.fairness is not None:
            for sensitive in policy.fairness.sensitive:
                columns.extend([sensitive] if isinstance(sensitive, str) else sensitive)
        if policy.robustness is not None:
            for rule in policy.robustness.rules:
                if rule.property == "invariant":
                    columns.extend(rule.features or ())
        columns = list(dict.fromkeys(columns))
        reason = self._model_reason() or self._no_rule(RERUN["proxy"])
        if self.task != BINARY:
            reason = reason or "mixing a score with an attribute is defined for binary tasks"
        if not columns:
            return [Operator("proxy", "mix[attribute]", "the score mixed with a protected "
                             "attribute", 0.5, "weight of the attribute",
                             reason="the policy names no sensitive feature (fairness) nor an "
                             "invariant feature (robustness)")]
        ops = []
        for column in columns:
            op = Operator("proxy", f"mix[{column}]", f"the candidate's score mixed with "
                          f"membership of the {column} group with the highest base rate", 0.5,
                          "weight of the attribute", reason=reason)
            if not reason:
                if self.frame is None or column not in self.frame.columns:
                    op.reason = f"column '{column}' is not in the dataset"
                else:
                    op.build = self._mix(column)
            ops.append(op)
        return ops

    def _mix(self, column: str) -> Callable[[float], Mutation]:
        truth = pd.Series(self.context.truth(self.eval_name).values, index=self.frame.index)
        rates = truth.groupby(self.frame[column].astype(str)).mean()
        favoured = sorted(rates.index, key=lambda v: (-rates[v], v))[0]
        positive = self._positive()

        def build(weight: float) -> Mutation:
            def degrade(frame: pd.DataFrame, output: np.ndarray) -> np.ndarray:
                member = (frame[column].astype(str) == favoured).to_numpy(dtype=float)
                output = output.copy()
                p = (1 - weight) * output[:, positive] + weight * member
                output[:, positive], output[:, 1 - positive] = p, 1 - p
                return output
            return Mutation(degrade=degrade, passthrough=(column,))
        return build

    def behaviour(self) -> list[Operator]:
        spec = self.policy.robustness
        if spec is None:
            return [Operator("behaviour", "nonmonotone", "the score made non-monotone or "
                             "non-invariant in a feature", 0.5, "weight",
                             reason="the policy has no robustness section: no rule reads the "
                             "model's behaviour on changed inputs")]
        reason = self._model_reason()
        if self.task == MULTICLASS:
            reason = reason or "behaviour operators are defined for binary and regression"
        ops = []
        for rule in spec.rules:
            if rule.property == "monotonic":
                sign = 1.0 if rule.direction == "increasing" else -1.0
                for feature in rule.features or ():
                    op = Operator("behaviour", f"nonmonotone[{feature}]", f"the score pushed "
                                  f"against the required {rule.direction} direction in "
                                  f"{feature}", 0.5, "score change per std", reason=reason)
                    op.aimed_at = f"robustness/{rule.id or rule.property}[{feature}]"
                    if not reason:
                        op.build = self._slope(feature, -sign)
                    ops.append(op)
            elif rule.property == "invariant":
                feature = (rule.features or ("",))[0]
                op = Operator("behaviour", f"noninvariant[{feature}]", f"the score raised for "
                              f"one value of {feature}", 0.5, "score change", reason=reason)
                op.aimed_at = (f"robustness/{rule.id or rule.property}"
                               f"[{'+'.join(rule.features or ())}]")
                if not reason:
                    op.build = self._bump(feature)
                ops.append(op)
        if not ops:
            ops.append(Operator("behaviour", "nonmonotone", "the score made non-monotone or "
                                "non-invariant", 0.5, "weight", reason="no robustness rule "
                                "names a monotonic or invariant feature"))
        return ops

    def _adjust(self, change: Callable[[pd.DataFrame], np.ndarray]) -> Callable:
        task = self.task
        positive = self._positive() if task == BINARY else None
        scale = float(np.std(self.context.truth(self.eval_name).values)) \
            if task == REGRESSION else 1.0

        def degrade(frame: pd.DataFrame, output: np.ndarray) -> np.ndarray:
            output = output.copy()
            delta = change(frame)
            if task == REGRESSION:
                return output + scale * delta
            p = np.clip(output[:, positive] + delta, 0.0, 1.0)
            output[:, positive], output[:, 1 - positive] = p, 1 - p
            return output
        return degrade

    def _slope(self, feature: str, sign: float) -> Callable[[float], Mutation]:
        values = pd.to_numeric(self.frame[feature], errors="coerce")
        mean, std = float(values.mean()), float(values.std()) or 1.0
        return lambda w: Mutation(degrade=self._adjust(
            lambda frame: sign * w * ((pd.to_numeric(frame[feature], errors="coerce")
                                       .fillna(mean).to_numpy(dtype=float) - mean) / std)))

    def _bump(self, feature: str) -> Callable[[float], Mutation]:
        value = str(self.frame[feature].astype(str).value_counts().index[0])
        return lambda w: Mutation(degrade=self._adjust(
            lambda frame: w * (frame[feature].astype(str) == value).to_numpy(dtype=float)))

    # ---- data mutants

    def data(self) -> list[Operator]:
        policy = self.policy
        if policy.drift is None and policy.schema_ is None:
            return [Operator("data", "data", "a column shifted, a category mix changed, "
                             "missing values raised, out-of-range and unseen values injected",
                             1.0, "", reason="the policy has no drift and no schema rules: "
                             "no rule reads the data itself")]
        name = policy.drift.current if policy.drift is not None else self.eval_name
        if name not in self.subject.datasets:
            return [Operator("data", "data", "data edits", 1.0, "",
                             reason=f"dataset '{name}' is not loaded")]
        if policy.drift is not None and policy.drift.reference == name:
            return [Operator("data", "data", "data edits", 1.0, "",
                             reason=f"drift compares dataset '{name}' with itself: an edit "
                             "moves both sides")]
        frame = self.context.frame(name)
        excluded = {policy.data.target}
        model = policy.model
        for source in (model, model and model.baseline):
            if source is not None:
                scores = source.scores
                excluded.update(scores.values() if isinstance(scores, dict) else [scores])
                excluded.add(source.predictions)
        columns = [c for c in frame.columns if c not in excluded]
        numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c])
                   and not pd.api.types.is_bool_dtype(frame[c]) and frame[c].nunique() > 2]
        categorical = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])
                       and frame[c].nunique() >= 2]
        seed, ops = self.seed, []
        u = row_uniform(frame.index, seed)

        def edit(column: str, change: Callable[[pd.Series, float], pd.Series]
                 ) -> Callable[[float], Mutation]:
            def build(severity: float) -> Mutation:
                copy = frame.copy()
                values = copy[column]
                if isinstance(values.dtype, pd.CategoricalDtype):  # room for new values
                    values = values.astype(object)
                copy[column] = change(values, severity)
                return Mutation(dataset=name, frame=copy)
            return build

        if numeric:
            col = numeric[0]
            std = float(frame[col].std()) or 1.0
            top = float(frame[col].max())
            span = top - float(frame[col].min()) or 1.0
            integer = pd.api.types.is_integer_dtype(frame[col])

            def shift(values: pd.Series, k: float) -> pd.Series:
                moved = values + k * std
                return moved.round().astype(values.dtype) if integer else moved

            def out_of_range(values: pd.Series, share: float) -> pd.Series:
                far = round(top + span) if integer else top + span
                return values.mask(u < share, far)

            ops.append(Operator("data", f"shift[{col}]", f"{col} shifted by k standard "
                                f"deviations in dataset '{name}'", 3.0, "standard deviations",
                                build=edit(col, shift)))
            ops.append(Operator("data", f"out_of_range[{col}]", f"a share of {col} set to "
                                f"{top + span:g} (beyond the observed range) in dataset "
                                f"'{name}'", 0.2, "share of rows", build=edit(col, out_of_range)))
        if categorical:
            col = categorical[0]
            counts = frame[col].value_counts()
            rarest = sorted(counts.index, key=lambda v: (counts[v], str(v)))[0]

            def mix(values: pd.Series, share: float) -> pd.Series:
                return values.mask((u < share) & (values != rarest).to_numpy(), rarest)

            def unseen(values: pd.Series, share: float) -> pd.Series:
                return values.mask(u < share, UNSEEN)

            ops.append(Operator("data", f"mix[{col}]", f"a share of {col} moved to its rarest "
                                f"category ({rarest}) in dataset '{name}'", 0.5,
                                "share of rows", build=edit(col, mix)))
            ops.append(Operator("data", f"unseen[{col}]", f"a share of {col} set to a category "
                                f"never seen ({UNSEEN}) in dataset '{name}'", 0.2,
                                "share of rows", build=edit(col, unseen)))
        if columns:
            col = (numeric or categorical or columns)[0]
            ops.append(Operator("data", f"missing[{col}]", f"a share of {col} made missing in "
                                f"dataset '{name}'", 0.5, "share of rows",
                                build=edit(col, lambda v, s: v.mask(u < s))))
        return ops

    def _no_rule(self, families: tuple[str, ...]) -> str | None:
        if any(getattr(self.policy, "schema_" if f == "schema" else f) is not None
               for f in families):
            return None
        return f"the policy has no {' / '.join(families)} rules: none reads the model's outputs"


# ------------------------------------------------------------------ running mutants

def _reusable(key: Any, mutation: Mutation) -> bool:
    """Cached work a mutant shares with the un-mutated run: what reads neither the
    candidate's outputs nor the edited dataset."""
    if not isinstance(key, tuple) or not key:
        return False
    if mutation.dataset is None:  # the model changed
        return key[0] in ("truth", "rows", "groups") or (
            key[0] in ("labels", "scores", "label-codes") and key[1] == "baseline") or (
            key[0] in ("drift-sample", "drift") and PREDICTION not in key)
    dataset = mutation.dataset
    if key[0] in ("truth", "rows", "schema"):
        return key[1] != dataset
    if key[0] in ("labels", "scores", "label-codes"):
        return key[2] != dataset
    if key[0] == "drift-sample":
        return key[2] != dataset
    return False


class Runner:
    """Evaluates mutants of one prepared policy, within the budget."""

    def __init__(self, evaluation: Evaluation, budget: Budget,
                 rerun: dict[str, tuple[str, ...]] = RERUN) -> None:
        self.evaluation = evaluation
        self.rerun = rerun
        self.budget = budget
        self.calls = Calls()
        self.mutants = 0
        spec = evaluation.policy.robustness
        self.invariant = tuple(f"robustness/{rule.id or rule.property}["
                               for rule in (spec.rules if spec else ())
                               if rule.property == "invariant")

    def exhausted(self) -> bool:
        return (self.mutants >= self.budget.mutants
                or self.calls.count >= self.budget.model_calls)

    def run(self, mutation: Mutation, families: tuple[str, ...], live: list[str]
            ) -> list[CheckResult]:
        base = self.evaluation
        subject = base.subject
        if mutation.dataset is not None:
            datasets = dict(subject.datasets)
            datasets[mutation.dataset] = dataclasses.replace(datasets[mutation.dataset],
                                                             frame=mutation.frame)
            subject = dataclasses.replace(subject, datasets=datasets)
        if mutation.degrade is not None:
            model = subject.model
            inputs = list(base.context.features(_dataset_of(base), model).columns)
            wrapper = MutantModel(model.estimator, base.context.task, inputs, mutation,
                                  self.calls)
            extra = [c for c in mutation.passthrough if c not in inputs]
            subject = dataclasses.replace(subject, model=dataclasses.replace(
                model, estimator=wrapper, inputs=(*inputs, *extra)))
        context = Context(base.policy, subject, model_timeout=base.context.model_timeout)
        context.adopt(base.context, lambda key: _reusable(key, mutation))
        self.mutants += 1
        before = sum(context.model_calls.values())
        wanted = set(live)
        results = [run_check(check, context) for check in compile_checks(base.policy, context)
                   if check.family in families and check.id in wanted
                   and _reads(check.id, check.family, mutation, self.invariant)]
        if mutation.degrade is None:  # the real model was called on the edited data
            self.calls.count += sum(context.model_calls.values()) - before
        return results


def _reads(check_id: str, family: str, mutation: Mutation, invariant: tuple[str, ...]
           ) -> bool:
    """Whether a check can see the mutation: of the drift checks, a model mutant moves only
    the prediction's (and the share of drifted columns); of the robustness checks, a mix
    with an attribute only the invariance ones (hypothesis searches are the slow part)."""
    if mutation.dataset is not None:
        return True
    if family == "drift":
        return f"[{PREDICTION}]" in check_id or "share_of_drifted_columns" in check_id
    if family == "robustness" and mutation.passthrough:
        return check_id.startswith(invariant)
    return True


def _dataset_of(evaluation: Evaluation) -> str:
    policy = evaluation.policy
    for section in (policy.performance, policy.fairness):
        if section is not None:
            return section.dataset
    return next(iter(evaluation.subject.datasets))


def _caught(results: list[CheckResult]) -> dict[str, Any]:
    blocking = [r.id for r in results if r.blocking]
    return {"caught": bool(blocking), "by": blocking[0] if blocking else None,
            "blocking": blocking, "warned": [r.id for r in results if r.verdict == "warn"]}


def _search(runner: Runner, op: Operator, live: list[str], levels: int) -> dict[str, Any]:
    """Binary search over the ladder for the lowest severity caught: the top first (if it
    is missed, every lower step is), then halves."""
    severities = [round(op.max_severity * (i + 1) / levels, 6) for i in range(levels)]
    steps: list[dict[str, Any] | None] = [None] * levels
    families = runner.rerun[op.family]

    def evaluate(i: int) -> bool | None:
        if runner.exhausted():
            return None
        outcome = _caught(runner.run(op.build(severities[i]), families, live))
        steps[i] = {"severity": severities[i], "evaluated": True, **outcome}
        return outcome["caught"]

    top = evaluate(levels - 1)
    lowest = None
    budget_hit = top is None
    if top:
        lo, hi = 0, levels - 1  # hi is caught; find the lowest caught in [lo, hi]
        lowest = hi
        while lo < hi:
            mid = (lo + hi) // 2
            caught = evaluate(mid)
            if caught is None:
                budget_hit = True
                break
            if caught:
                hi = lowest = mid
            else:
                lo = mid + 1
    for i in range(levels):  # fill the rest by monotonicity
        if steps[i] is None and not budget_hit:
            caught = lowest is not None and i >= lowest
            steps[i] = {"severity": severities[i], "evaluated": False, "caught": caught,
                        "by": None, "blocking": [], "warned": []}
    if budget_hit:
        return {"status": "budget", "steps": [s for s in steps if s is not None],
                "smallest_caught": None,
                "finding": "not finished: the budget ran out"}
    caught_steps = [s for s in steps if s["caught"]]
    if lowest is None:
        warned = sorted({w for s in steps if s for w in s["warned"]})
        finding = f"never caught up to the maximum severity ({op.max_severity:g} {op.unit})"
        if warned:
            finding += f"; only warned by {', '.join(warned)} (severity warn)"
        return {"status": "missed", "steps": steps, "smallest_caught": None,
                "finding": finding}
    first = steps[lowest]
    return {"status": "caught", "steps": steps, "smallest_caught": severities[lowest],
            "caught_by": first["by"],
            "finding": f"caught from {severities[lowest]:g} {op.unit} by {first['by']} "
                       f"({len(caught_steps)} of {levels} steps)"}


def mutate(policy: Any, *, families: tuple[str, ...] | None = None, budget: Budget = Budget(),
           groups: tuple[str, ...] = (), seed: int = 0, trust_model: bool = False,
           model_timeout: float | None = None, explain: bool = False,
           only: tuple[str, ...] = (), progress: Callable[[str], None] | None = None
           ) -> dict[str, Any]:
    """Mutation-test a policy (a file, a Policy, or a prepared Evaluation, whose results
    so far are reused) against its own subject; the record (plain JSON types).
    `explain` also re-runs explainability for proxy mutants (the permutation explainer
    on the wrapped model: slow on real data); `only` keeps the operators whose
    `family/operator` matches one of these patterns (`*`: any text)."""
    chosen = tuple(families or MUTATION_FAMILIES)
    unknown = [f for f in chosen if f not in MUTATION_FAMILIES]
    if unknown:
        raise MlcheckError(f"unknown mutation family: {', '.join(unknown)} (known: "
                           f"{', '.join(MUTATION_FAMILIES)})")
    if budget.levels < 1 or budget.mutants < 1 or budget.model_calls < 1:
        raise MlcheckError("the budget's mutants, model calls and levels must be at least 1")
    evaluation = policy if isinstance(policy, Evaluation) else \
        Evaluation(policy, trust_model=trust_model, model_timeout=model_timeout)
    on_spark = [name for name, d in evaluation.subject.datasets.items() if d.spark is not None]
    if on_spark:  # mutants edit rows and wrap the model in the driver's memory
        raise MlcheckError(f"mutation testing edits rows in memory, and dataset "
                           f"'{on_spark[0]}' is a Spark source: give it a `sample: {{rows, "
                           "seed}` (its rows then come to the driver) or run on a file")
    if groups and "subgroup" in chosen:
        _add_group_columns(evaluation, tuple(groups))
    planner = Planner(evaluation, seed, tuple(groups))
    planned = [op for family in chosen for op in getattr(planner, family)()
               if not only or any(matches(p, f"{op.family}/{op.name}") for p in only)]
    if not planned:
        raise MlcheckError(f"--only {' '.join(only)} matches no operator of the families "
                           f"{', '.join(chosen)}")
    if only:  # the families scored are those of the operators kept
        chosen = tuple(dict.fromkeys(op.family for op in planned))
    rerun = {**RERUN, "proxy": (*RERUN["proxy"], "explainability")} if explain else RERUN
    runner = Runner(evaluation, budget, rerun)
    reread = {f for family in chosen for f in rerun[family]}
    baseline = {}
    for check in evaluation.checks:
        if check.family in reread:
            if progress:
                progress(f"un-mutated: {check.id}")
            baseline[check.id] = evaluation.run(check)
    live = [i for i, r in baseline.items() if r.verdict == "pass"]
    excluded = [{"id": i, "verdict": r.verdict,
                 "reason": f"already {r.verdict} on the un-mutated subject: it cannot catch "
                           "a mutant"} for i, r in baseline.items() if r.verdict != "pass"]
    operators = []
    for op in planned:
        entry: dict[str, Any] = {
            "family": op.family, "operator": op.name, "description": op.description,
            "max_severity": op.max_severity, "unit": op.unit,
            "reruns": list(rerun[op.family])}
        watching = [i for i in live if baseline[i].family in rerun[op.family]]
        if op.build is None:
            entry.update(status="not_applicable", finding=op.reason)
        elif not watching:
            entry.update(status="not_applicable", finding=(
                f"no {' / '.join(rerun[op.family])} check passes on the un-mutated "
                "subject: none is left to catch it"))
        else:
            if progress:
                progress(f"mutant: {op.family}/{op.name}")
            try:
                entry.update(_search(runner, op, watching, budget.levels))
            except MlcheckError:
                raise
            except Exception as exc:  # a mutant that cannot be built says so, alone
                entry.update(status="error", finding=f"the mutant could not be built or "
                             f"run: {type(exc).__name__}: {exc}")
        aimed = baseline.get(op.aimed_at) if op.aimed_at else None
        if aimed is not None and aimed.verdict != "pass" and entry["status"] != "caught":
            entry["finding"] += (f"; the rule written against this harm, {op.aimed_at}, "
                                 f"is already {aimed.verdict} on the un-mutated subject, "
                                 "so it cannot catch more of it")
        operators.append(entry)
    return _jsonable(_record(evaluation, chosen, budget, runner, seed, operators, baseline,
                             live, excluded, groups))


def _add_group_columns(evaluation: Evaluation, groups: tuple[str, ...]) -> None:
    """Read the --groups columns the policy does not name (so the run did not load them)
    into the model's dataset; the model keeps its own input columns."""
    from mlcheck.subject import read_dataset

    name = _dataset_of(evaluation)
    loaded = evaluation.subject.datasets[name]
    missing = [g for g in groups if g not in loaded.frame.columns]
    if not missing:
        return
    if loaded.sample is not None:
        raise MlcheckError(f"--groups {', '.join(missing)}: dataset '{name}' is a sample of "
                           "its file; name the column in the policy instead")
    spec = evaluation.policy.data.datasets[name]
    path = evaluation.policy.base_dir / spec.path
    read = read_dataset(path, spec.format, name=name,
                        select=lambda names: [n for n in names if n in missing] or None)
    absent = [g for g in missing if g not in read.columns]
    if absent or len(read) != len(loaded.frame):
        raise MlcheckError(f"--groups: dataset '{name}' has no column "
                           f"{', '.join(absent or missing)}")
    subject, context = evaluation.subject, evaluation.context
    model = subject.model
    if model is not None and model.estimator is not None and not model.inputs:
        model = dataclasses.replace(model, inputs=tuple(context.features(name).columns))
    frame = loaded.frame.copy()
    for column in missing:
        frame[column] = read[column].to_numpy()
    datasets = {**subject.datasets, name: dataclasses.replace(loaded, frame=frame)}
    evaluation.subject = dataclasses.replace(subject, model=model, datasets=datasets)
    evaluation.context = Context(evaluation.policy, evaluation.subject,
                                 model_timeout=context.model_timeout)
    evaluation.checks = compile_checks(evaluation.policy, evaluation.context)


def _score(operators: list[dict[str, Any]]) -> dict[str, Any]:
    steps = [s for op in operators if op["status"] in ("caught", "missed")
             for s in op["steps"]]
    caught = sum(s["caught"] for s in steps)
    return {"mutants": len(steps), "caught": caught,
            "score": round(caught / len(steps), 4) if steps else None}


def _record(evaluation: Evaluation, chosen: tuple[str, ...], budget: Budget, runner: Runner,
            seed: int, operators: list[dict], baseline: dict[str, CheckResult],
            live: list[str], excluded: list[dict], groups: tuple[str, ...]) -> dict[str, Any]:
    families = {}
    for family in chosen:
        members = [op for op in operators if op["family"] == family]
        summary = _score(members)
        if summary["mutants"] == 0:
            reasons = sorted({op["finding"] for op in members if op["finding"]})
            summary["score"] = 0.0
            summary["finding"] = ("scores zero: " + "; ".join(reasons)) if reasons else \
                "scores zero: no operator applies"
        else:
            missed = [op["operator"] for op in members if op["status"] == "missed"]
            summary["finding"] = (f"never caught: {', '.join(missed)}" if missed
                                  else "every operator tried was caught at some severity")
            unfinished = [op["operator"] for op in members
                          if op["status"] in ("budget", "error")]
            if unfinished:
                summary["finding"] += f"; not finished or failed: {', '.join(unfinished)}"
        families[family] = summary
    overall = _score(operators)
    return {
        "record_version": 1, "kind": "mutation",
        "mlcheck_version": package_version(DISTRIBUTION),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "policy": describe_policy(evaluation.policy),
        "subject": evaluation.subject.describe(evaluation.policy),
        "seed": seed, "groups": list(groups), "families_tested": list(chosen),
        "budget": {"mutants": budget.mutants, "model_calls": budget.model_calls,
                   "levels": budget.levels, "mutants_used": runner.mutants,
                   "model_calls_used": runner.calls.count,
                   "exhausted": runner.exhausted()},
        "rerun": {family: list(runner.rerun[family]) for family in chosen},
        "unmutated": {"checks": len(baseline), "live": live, "excluded": excluded},
        "operators": operators,
        "families": families,
        # each family weighs the same, and one no rule can see scores zero: a policy
        # blind to a kind of harm does not score well by being tested on less
        "score": round(sum(f["score"] for f in families.values()) / len(families), 4),
        "mutants": overall["mutants"], "caught": overall["caught"],
    }


# ------------------------------------------------------------------ rendering

def render_text(record: dict[str, Any]) -> list[str]:
    """The terminal table: one line per operator, then the scores."""
    lines = [f"{'family':<12} {'operator':<34} {'result':<8} finding"]
    for op in record["operators"]:
        status = {"not_applicable": "n/a"}.get(op["status"], op["status"])
        lines.append(f"{op['family']:<12} {op['operator'][:34]:<34} {status:<8} "
                     f"{op['finding']}")
    lines.append("")
    for family, summary in record["families"].items():
        counts = f"{summary['caught']}/{summary['mutants']} mutants caught" \
            if summary["mutants"] else "no mutant applies"
        lines.append(f"{family:<12} score {summary['score']:.0%} ({counts}) "
                     f"{summary['finding']}")
    budget = record["budget"]
    lines.append(f"{'overall':<12} score {record['score']:.0%} (mean of the families; "
                 f"{record['caught']}/{record['mutants']} mutants caught); budget: "
                 f"{budget['mutants_used']}/{budget['mutants']} mutants evaluated, "
                 f"{budget['model_calls_used']}/{budget['model_calls']} model calls")
    excluded = record["unmutated"]["excluded"]
    if excluded:
        lines.append(f"left out of the score ({len(excluded)} checks not passing on the "
                     "un-mutated subject): " + ", ".join(e["id"] for e in excluded))
    return lines


def render_html(record: dict[str, Any]) -> str:
    """The mutation page, in the report's style (self-contained, autoescaped, no script)."""
    from mlcheck.report.html import _environment

    return _environment().get_template("mutation.html.j2").render(record=record)


__all__ = ["Budget", "MutantModel", "mutate", "render_html", "render_text"]
