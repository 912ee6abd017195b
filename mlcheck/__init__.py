"""mlcheck: policy-as-code for machine-learning models.

    >>> import mlcheck
    >>> result = mlcheck.evaluate("policies/adult-income.yaml")
    >>> result.verdict
    'blocked'
"""

from mlcheck.engine import evaluate
from mlcheck.errors import CheckError, InputError, MlcheckError, PolicyError
from mlcheck.policy import Policy, load_policy
from mlcheck.result import CheckResult, RunResult

__all__ = [
    "CheckError",
    "CheckResult",
    "InputError",
    "MlcheckError",
    "Policy",
    "PolicyError",
    "RunResult",
    "evaluate",
    "load_policy",
]
