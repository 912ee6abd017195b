"""Schema checks: one per column, pandera underneath, with failure counts and examples."""

from __future__ import annotations

import pandas as pd

from mlcheck.engine import evaluate

POLICY = """
mlcheck: 1
name: schema-only
data:
  datasets:
    eval: eval.csv
    current: current.csv
schema:
  strict: true
  columns:
    age: {dtype: int64, checks: {ge: 18, le: 100}}
    income: {dtype: float64, nullable: true, checks: {ge: 0}}
    sex: {dtype: str, checks: {isin: [female, male]}}
    id: {dtype: int64, unique: true}
    code: {dtype: str, checks: {regex: '^[A-Z]{2}\\d$', max_length: 3}}
"""

GOOD = pd.DataFrame({
    "age": [18, 40, 100], "income": [0.0, None, 5.5], "sex": ["female", "male", "male"],
    "id": [1, 2, 3], "code": ["AB1", "CD2", "EF3"],
})


def results_by_id(workspace, eval_frame, current_frame=GOOD, policy=POLICY):
    workspace.frame("eval.csv", eval_frame)
    workspace.frame("current.csv", current_frame)
    result = evaluate(workspace.policy(policy))
    return {c.id: c for c in result.checks}, result


def test_valid_data_passes_every_column(workspace):
    checks, result = results_by_id(workspace, GOOD)
    assert set(checks) == {"schema/age", "schema/income", "schema/sex", "schema/id",
                           "schema/code", "schema/strict"}
    assert {c.verdict for c in checks.values()} == {"pass"}
    assert checks["schema/age"].n == 6  # rows checked over both datasets
    assert result.verdict == "passed"


def test_each_violation_fails_its_own_column_with_examples(workspace):
    bad = pd.DataFrame({
        "age": [17, 40, 101], "income": [-1.0, None, 2.0], "sex": ["female", "x", None],
        "id": [1, 1, 3], "code": ["AB1", "ab1", "ABCD"],
    })
    checks, result = results_by_id(workspace, bad)
    age = checks["schema/age"]
    assert age.verdict == "fail"
    assert age.value == 2
    assert age.evidence["datasets"]["eval"]["examples"] == [17, 101]
    assert age.evidence["datasets"]["current"]["failures"] == 0
    assert age.evidence["datasets"]["eval"]["by_check"] == {
        "greater_than_or_equal_to(18)": 1, "less_than_or_equal_to(100)": 1}
    sex = checks["schema/sex"].evidence["datasets"]["eval"]["by_check"]
    assert sex == {"isin(['female', 'male'])": 1, "not_nullable": 1}
    assert checks["schema/income"].value == 1  # nulls allowed, the negative is not
    assert checks["schema/id"].evidence["datasets"]["eval"]["by_check"] == {
        "field_uniqueness": 2}
    assert checks["schema/code"].verdict == "fail"
    assert checks["schema/strict"].verdict == "pass"
    assert result.verdict == "blocked"


def test_wrong_dtype_fails(workspace):
    frame = GOOD.assign(age=[18.5, 40.0, 99.0])
    checks, _ = results_by_id(workspace, frame)
    assert checks["schema/age"].verdict == "fail"
    assert "dtype('int64')" in checks["schema/age"].message


def test_missing_and_unexpected_columns(workspace):
    frame = GOOD.drop(columns=["code"]).assign(extra=1)
    checks, _ = results_by_id(workspace, frame)
    assert checks["schema/code"].verdict == "fail"
    assert "column_in_dataframe" in checks["schema/code"].message
    assert checks["schema/strict"].verdict == "fail"
    assert checks["schema/strict"].evidence["datasets"]["eval"]["examples"] == ["extra"]


def test_severity_warn_does_not_block(workspace):
    policy = POLICY.replace("age: {dtype: int64,", "age: {dtype: int64, severity: warn,")
    checks, result = results_by_id(workspace, GOOD.assign(age=[1, 2, 3]), policy=policy)
    assert checks["schema/age"].verdict == "warn"
    assert result.verdict == "passed"


def test_schema_can_be_limited_to_some_datasets(workspace):
    policy = POLICY.replace("strict: true", "strict: true\n  datasets: [current]")
    checks, _ = results_by_id(workspace, GOOD.assign(age=[1, 2, 3]), policy=policy)
    assert checks["schema/age"].verdict == "pass"
    assert set(checks["schema/age"].evidence["datasets"]) == {"current"}


def test_a_check_that_cannot_apply_is_an_error_even_when_warn(workspace):
    policy = POLICY.replace("strict: true", "strict: true\n  severity: warn").replace(
        "income: {dtype: float64, nullable: true, checks: {ge: 0}}",
        "income: {nullable: true, checks: {regex: '^a'}}")
    checks, result = results_by_id(workspace, GOOD, policy=policy)
    income = checks["schema/income"]
    assert income.verdict == "error"
    assert "str_matches('^a') raised AttributeError" in income.message
    assert result.verdict == "blocked"


def test_dtype_failure_says_what_was_found(workspace):
    checks, _ = results_by_id(workspace, GOOD.assign(age=[18.5, 40.0, 99.0]))
    assert "dtype('int64'): found float64" in checks["schema/age"].message


def test_wrong_extension_dtype_is_one_failure_naming_the_dtype_found(workspace):
    policy = POLICY.replace("income: {dtype: float64,", "income: {dtype: category,")
    checks, _ = results_by_id(workspace, GOOD, policy=policy)
    income = checks["schema/income"]
    assert income.verdict == "fail"
    assert income.value == 2  # one per dataset, not one per row
    assert "found float64" in income.message
