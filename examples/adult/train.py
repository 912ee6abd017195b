"""Train the bundled example models on the Adult census data, deterministically.

Run from the repository root:  python examples/adult/train.py

Writes, beside this file:
- candidate.skops — HistGradientBoosting in a scikit-learn Pipeline (the model to promote);
- champion.skops — logistic regression, the model in production it is compared with.
The models are deterministic (same data, same predictions); the .skops bytes are not,
since skops names the arrays it stores after object ids, so a retrained file has a new
SHA-256. Both see all 14 input columns, sex and race included, as many real models still do:
the example policy is there to show what that costs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

HERE = Path(__file__).parent
TARGET = "income"
NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
CATEGORICAL = ["workclass", "education", "marital_status", "occupation", "relationship",
               "race", "sex", "native_country"]


def preprocessor(scale: bool) -> ColumnTransformer:
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="unknown"),
        OneHotEncoder(handle_unknown="ignore", min_frequency=20, sparse_output=False),
    )
    numeric = StandardScaler() if scale else "passthrough"
    return ColumnTransformer([("categorical", categorical, CATEGORICAL),
                              ("numeric", numeric, NUMERIC)])


def candidate() -> Pipeline:
    return Pipeline([("prepare", preprocessor(scale=False)),
                     ("model", HistGradientBoostingClassifier(
                         max_iter=100, learning_rate=0.1, random_state=0))])


def champion() -> Pipeline:
    return Pipeline([("prepare", preprocessor(scale=True)),
                     ("model", LogisticRegression(max_iter=2000))])


def main() -> None:
    train = pd.read_csv(HERE / "data" / "adult-train.csv.gz")
    features, labels = train.drop(columns=[TARGET]), train[TARGET]
    for name, model in (("candidate", candidate()), ("champion", champion())):
        model.fit(features, labels)
        sio.dump(model, HERE / f"{name}.skops")
        print(f"{name}.skops: {type(model[-1]).__name__}, untrusted types: "
              f"{sio.get_untrusted_types(file=HERE / f'{name}.skops')}")


if __name__ == "__main__":
    main()
