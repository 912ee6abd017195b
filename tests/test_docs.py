"""The docs stay true to the code: every policy key is documented, the README's commands exist."""

from __future__ import annotations

import re
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from mlcheck.metrics import METRIC_NAMES
from mlcheck.policy import Policy

from .conftest import REPO


def policy_keys(model: type[BaseModel] = Policy, prefix: str = "") -> list[str]:
    """Dotted paths of every key of the policy language, e.g. `performance.rules[].metric`."""
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        keys.append(key)
        keys.extend(_nested(field.annotation, key))
    return keys


def _nested(annotation: Any, key: str) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return policy_keys(annotation, key + ".")
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (list, tuple):
        return _nested(args[0], key + "[]")
    if origin is dict:
        placeholder = {"data.datasets": "<name>", "schema.columns": "<column>"}.get(key, "<key>")
        return _nested(args[1], f"{key}.{placeholder}")
    return [k for arg in args for k in _nested(arg, key)]


def test_every_policy_key_is_in_the_reference():
    doc = (REPO / "docs" / "policy.md").read_text()
    missing = [key for key in policy_keys() if f"`{key}`" not in doc]
    assert not missing, f"docs/policy.md does not document: {missing}"


def test_every_metric_is_in_the_reference():
    doc = (REPO / "docs" / "policy.md").read_text()
    missing = [name for name in METRIC_NAMES if f"`{name}`" not in doc]
    assert not missing, f"docs/policy.md does not list metrics: {missing}"


def test_readme_holds_the_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", readme, flags=re.S)
    commands = [line for block in blocks for line in block.splitlines()]
    gate = [c for c in commands if "mlcheck check policies/adult-income.yaml" in c]
    tests = [c for c in commands if "pytest" in c and "venv" in c]
    assert gate and tests, "README must show the gate command and the test command"
    ci = (REPO / ".ci" / "run").read_text()
    assert tests[0].strip() in ci
