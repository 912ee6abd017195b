"""Explainer timings per model family: shap called directly against mlcheck's explainability.

    python benchmarks/explainers.py [--rows 20000] [--explained 1000] [--permutation-rows 50]
                                    [--repeats 3] [--families hgb rf gb logistic mlp]

Generates binary data with a fixed seed (20 numeric and 5 categorical text columns), trains
each model family on half of it in a scikit-learn Pipeline (a ColumnTransformer one-hot
encodes the text columns, scales the numbers), pickles it, and explains the other half:

- shap direct: what a user would write. Tree and linear models: transform the explained rows
  with the pipeline's preprocessing, then `shap.TreeExplainer(final).shap_values(...)` or
  `shap.LinearExplainer(final, background).shap_values(...)` (attributions per encoded
  column). Other models: `shap.PermutationExplainer` on the whole pipeline, text columns
  passed as integer codes (shap cannot mask text), with mlcheck's budget: 10 x (columns + 1)
  evaluations per row against 100 background rows. mlcheck's default is 200 rows for this
  explainer; the benchmark explains 50 by default to stay within about 3 minutes (the time
  grows in proportion to the rows: `--permutation-rows 200`).
- mlcheck: `evaluate()` of a policy whose only section is explainability. `mlcheck shap s`
  is the evidence's `seconds` (shap, plus finding which input column each encoded column
  comes from and summing their attributions); `mlcheck step s` is the run's time without
  loading (`timings.checks_s`): that plus choosing the rows and the bootstrap intervals of
  mean |SHAP| (1,000 resamples). `ratio` is `mlcheck step s` / `shap direct s`.

Both sides explain the same rows with the same background rows (and the same permutation
seed), so their mean |SHAP| per input column must agree; `max diff` is the largest
difference, relative to the largest mean |SHAP| (mlcheck's evidence keeps 6 significant
digits, so about 1e-6 is agreement). `additivity` is the evidence's largest error of the
attributions plus the base value against the model's output. Times are medians of `repeats`
runs, the two sides alternating which goes first; shap is imported before anything is timed.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats  # noqa: F401  (imported up front, as shap is: no timed run pays an import)
import shap
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlcheck.engine import evaluate

NUMERIC = [f"num{i}" for i in range(20)]
CATEGORICAL = [f"cat{i}" for i in range(5)]
BACKGROUND, SEED = 100, 0  # mlcheck's defaults: `explainability.background`, `.seed`

FAMILIES = {  # name: (model, explainer mlcheck chooses)
    "hgb": (lambda: HistGradientBoostingClassifier(max_iter=100, random_state=0), "tree"),
    "rf": (lambda: RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0,
                                          n_jobs=-1), "tree"),
    "gb": (lambda: GradientBoostingClassifier(n_estimators=100, random_state=0), "tree"),
    "logistic": (lambda: LogisticRegression(max_iter=1000), "linear"),
    "mlp": (lambda: MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True,
                                  random_state=0), "permutation"),
}

POLICY = """
mlcheck: 1
name: explainer-benchmark
model: {{path: {model}, task: binary_classification, trust: true}}
data: {{target: y, positive_label: 1, datasets: {{eval: {data}}}}}
statistics: {{resamples: 1000}}
explainability:
  rows: {rows}
  rules:
    - {{test: max_attribution_share, max: 1.0}}
"""


def make_data(rows: int, seed: int = SEED) -> pd.DataFrame:
    """Numbers with linear, interacting and non-linear effects; text columns of 4 to 8
    levels, two of them with an effect."""
    rng = np.random.default_rng(seed)
    data = {name: rng.normal(0, 1, rows) for name in NUMERIC}
    for i, name in enumerate(CATEGORICAL):
        data[name] = rng.choice(list("abcdefgh"[:4 + i]), rows)
    frame = pd.DataFrame(data)
    logit = (0.8 * frame.num0 - 0.6 * frame.num1 + 0.5 * frame.num2 * frame.num3
             + 0.7 * np.sin(2 * frame.num4) + 0.3 * frame.num5
             + 0.8 * (frame.cat0 == "a") - 0.5 * frame.cat1.isin(["b", "c"]))
    frame["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def pipeline(final) -> Pipeline:
    prepare = ColumnTransformer([
        ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
         CATEGORICAL),
        ("numeric", StandardScaler(), NUMERIC)])
    return Pipeline([("prepare", prepare), ("model", final)])


def chosen_rows(n: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows mlcheck explains and its background rows (explainability.py, `_sample`)."""
    order = np.random.default_rng([SEED, 1]).permutation(n)
    return np.sort(order[:rows]), np.sort(order[rows:rows + BACKGROUND])


def shap_direct(model: Pipeline, kind: str, features: pd.DataFrame, rows: int
                ) -> tuple[float, np.ndarray]:
    """Time of explaining the rows with shap as a user would; mean |SHAP| per input column
    (encoded columns summed, outside the timing)."""
    explained, background = chosen_rows(len(features), rows)
    sample = features.iloc[explained]
    prepare, final = model[:-1], model[-1]
    started = time.perf_counter()
    if kind == "tree":
        phi = shap.TreeExplainer(final).shap_values(prepare.transform(sample))
    elif kind == "linear":
        explainer = shap.LinearExplainer(final, prepare.transform(features.iloc[background]))
        phi = explainer.shap_values(prepare.transform(sample))
    else:
        levels = {c: pd.factorize(features[c])[1] for c in CATEGORICAL}
        matrix = np.column_stack([levels[c].get_indexer(features[c]) if c in levels
                                  else features[c].to_numpy() for c in features.columns]
                                 ).astype(float)

        def positive(values: np.ndarray) -> np.ndarray:
            frame = pd.DataFrame(values, columns=features.columns)
            for c in CATEGORICAL:
                frame[c] = levels[c].take(frame[c].to_numpy(dtype=int))
            return model.predict_proba(frame)[:, 1]

        masker = shap.maskers.Independent(matrix[background], max_samples=BACKGROUND)
        explainer = shap.PermutationExplainer(positive, masker, seed=SEED)
        phi = explainer(matrix[explained], max_evals=10 * (features.shape[1] + 1),
                        silent=True).values
    seconds = time.perf_counter() - started
    phi = np.asarray(phi)
    if phi.ndim == 3:  # one set of attributions per class: the positive class, 1
        phi = phi[:, :, 1]
    if kind == "permutation":
        return seconds, np.abs(phi).mean(axis=0)
    names = [name.split("__", 1)[1] for name in prepare.get_feature_names_out()]
    owner = np.array([[name == c or name.startswith(c + "_") for c in features.columns]
                      for name in names], dtype=float)
    return seconds, np.abs(phi @ owner).mean(axis=0)


def mlcheck_run(policy: Path) -> dict:
    result = evaluate(policy)
    check = result.checks[0]
    if check.verdict != "pass":
        raise SystemExit(f"{policy}: {check.verdict}: {check.message}")
    about = check.evidence["explainer"]
    by_feature = {row["feature"]: row["mean_abs_shap"] for row in check.evidence["importance"]}
    return {"shap": about["seconds"], "step": result.timings["checks_s"],
            "load": result.timings["load_s"], "explainer": about["explainer"],
            "rows": about["rows"], "additivity": about["additivity_max_error"],
            "mean_abs": by_feature}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="half trains, half is explained")
    parser.add_argument("--explained", type=int, default=1000, help="rows, exact explainers")
    parser.add_argument("--permutation-rows", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    args = parser.parse_args()
    frame = make_data(args.rows)
    train, held_out = frame.iloc[:args.rows // 2], frame.iloc[args.rows // 2:]
    held_out = held_out.reset_index(drop=True)
    features = held_out.drop(columns=["y"])
    print(f"{args.rows:,} rows ({len(NUMERIC)} numeric + {len(CATEGORICAL)} text columns), "
          f"explained on {len(held_out):,}; medians of {args.repeats}")
    print(f"{'family':<9} {'explainer':<12} {'rows':>5} {'shap direct s':>14} "
          f"{'mlcheck shap s':>15} {'mlcheck step s':>15} {'ratio':>6} {'additivity':>11} "
          f"{'max diff':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "eval.parquet"
        held_out.to_parquet(data)
        for name in args.families:
            build, kind = FAMILIES[name]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = pipeline(build()).fit(train.drop(columns=["y"]), train["y"])
            path = folder / f"{name}.pkl"
            path.write_bytes(pickle.dumps(model))
            rows = args.permutation_rows if kind == "permutation" else args.explained
            policy = folder / f"{name}.yaml"
            policy.write_text(POLICY.format(model=path, data=data, rows=rows))
            direct, ours = [], []
            for repeat in range(args.repeats):  # alternate which side goes first
                for side in ("direct", "mlcheck") if repeat % 2 == 0 else ("mlcheck", "direct"):
                    if side == "direct":
                        direct.append(shap_direct(model, kind, features, rows))
                    else:
                        ours.append(mlcheck_run(policy))
            shap_s = statistics.median(seconds for seconds, _ in direct)
            ours_shap = statistics.median(run["shap"] for run in ours)
            ours_step = statistics.median(run["step"] for run in ours)
            theirs = direct[0][1]
            mine = np.array([ours[0]["mean_abs"][c] for c in features.columns])
            diff = np.max(np.abs(mine - theirs)) / np.max(theirs)
            print(f"{name:<9} {ours[0]['explainer']:<12} {ours[0]['rows']:>5} {shap_s:>14.3f} "
                  f"{ours_shap:>15.3f} {ours_step:>15.3f} {ours_step / shap_s:>5.2f}x "
                  f"{ours[0]['additivity']:>11.1e} {diff:>9.1e}", flush=True)


if __name__ == "__main__":
    main()
