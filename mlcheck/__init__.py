"""mlcheck: policy-as-code for machine-learning models.

    >>> import mlcheck
    >>> result = mlcheck.evaluate("policies/adult-income.yaml")
    >>> result.verdict
    'blocked'

In a notebook, pass fitted models and DataFrames in place of the policy's files, see the
result inline, and write the sealed record and report as `mlcheck check` does:

    >>> result = mlcheck.evaluate("policy.yaml", model=clf, datasets={"eval": df})
    >>> result.save("reports/run.json", "reports/run.html")

Names load lazily: the pytest plugin imports this package in every pytest run, and the
engine (pandas, scikit-learn, pandera) is only loaded when it is used.
"""

from importlib import import_module
from typing import Any

DISTRIBUTION = "mlcheck-gate"  # the name on the package index (`mlcheck` there is another project)

_EXPORTS = {
    "evaluate": "mlcheck.engine",
    "Evaluation": "mlcheck.engine",
    "CheckError": "mlcheck.errors",
    "InputError": "mlcheck.errors",
    "MlcheckError": "mlcheck.errors",
    "PolicyError": "mlcheck.errors",
    "Policy": "mlcheck.policy",
    "load_policy": "mlcheck.policy",
    "CheckResult": "mlcheck.result",
    "RunResult": "mlcheck.result",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mlcheck' has no attribute {name!r}")
