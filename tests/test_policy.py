"""The policy language: loading, positions in errors, suggestions, extends, immutability."""

from __future__ import annotations

import hashlib

import pydantic
import pytest

from mlcheck.errors import PolicyError
from mlcheck.policy import load_policy, policy_json_schema

from .conftest import BINARY_POLICY, EXAMPLE_POLICY


def load_error(workspace, text: str, name: str = "policy.yaml") -> PolicyError:
    path = workspace.policy(text, name)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return info.value


def test_example_policy_loads_into_typed_objects():
    policy = load_policy(EXAMPLE_POLICY)
    assert policy.name == "adult-income"
    assert policy.model.task == "binary_classification"
    assert policy.schema_.strict is True
    assert policy.performance.rules[0].metric == "roc_auc"
    assert set(policy.data.datasets) == {"eval", "reference"}


def test_policy_objects_are_immutable(binary_workspace):
    policy = load_policy("policy.yaml")
    with pytest.raises(pydantic.ValidationError):
        policy.name = "other"
    with pytest.raises(pydantic.ValidationError):
        policy.performance.rules[0].min = 0.1


def test_unknown_key_names_file_line_column_and_suggests(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("{metric: roc_auc", "{metrc: roc_auc"))
    text = str(error)
    assert "policy.yaml:13:8" in text
    assert "unknown key 'metrc'" in text
    assert "did you mean 'metric'?" in text
    assert "missing required key 'metric'" not in text  # the typo explains it


def test_unknown_top_level_key_suggests(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("performance:", "performence:"))
    assert "policy.yaml:11:1" in str(error)
    assert "did you mean 'performance'?" in str(error)


def test_unknown_metric_suggests_nearest_name(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("metric: roc_auc", "metric: rocauc"))
    assert "policy.yaml:13" in str(error)
    assert "'rocauc' is not allowed (did you mean 'roc_auc'?)" in str(error)


def test_wrong_type_is_reported_at_its_line(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("min: 0.7", "min: high"))
    assert "policy.yaml:13" in str(error)
    assert "performance.rules[0].min" in str(error)
    assert "valid number" in str(error)


def test_impossible_bounds(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("min: 0.7}", "min: 0.7, max: 0.5}"))
    assert "impossible bounds: min 0.7 > max 0.5" in str(error)
    assert "policy.yaml:13" in str(error)


def test_impossible_column_range(workspace):
    error = load_error(workspace, BINARY_POLICY + """
schema:
  columns:
    x1: {checks: {ge: 5, le: 1}}
""")
    assert "impossible range" in str(error)
    assert "schema.columns.x1.checks" in str(error)


def test_missing_required_key(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("  task: binary_classification\n", ""))
    assert "missing required key 'task'" in str(error)
    assert "policy.yaml:3:1: model.task" in str(error)


def test_malformed_yaml_names_line(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("name: tiny", "name: [tiny"))
    assert "invalid YAML" in str(error)
    assert "policy.yaml:" in str(error)


def test_duplicate_key_is_an_error(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("name: tiny", "name: tiny\nname: again"))
    assert "duplicate key 'name' (first written on line 2)" in str(error)
    assert "policy.yaml:3:1" in str(error)


def test_not_a_mapping(workspace):
    error = load_error(workspace, "- just\n- a list\n")
    assert "must be a YAML mapping" in str(error)


def test_metric_must_fit_the_task(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("metric: roc_auc, min: 0.7",
                                                        "metric: rmse, max: 0.7"))
    assert "metric 'rmse' does not apply to binary_classification" in str(error)
    assert "policy.yaml:13" in str(error)


def test_unknown_dataset_reference(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("performance:\n",
                                                        "performance:\n  dataset: evl\n"))
    assert "unknown dataset 'evl' (did you mean 'eval'?)" in str(error)


def test_baseline_rule_needs_a_baseline_model(workspace):
    error = load_error(workspace, BINARY_POLICY.replace(
        "{metric: roc_auc, min: 0.7}", "{metric: roc_auc, baseline: {max_drop: 0.01}}"))
    assert "needs `model.baseline`" in str(error)


def test_baseline_needs_exactly_one_margin(workspace):
    error = load_error(workspace, BINARY_POLICY.replace(
        "{metric: roc_auc, min: 0.7}", "{metric: roc_auc, baseline: {}}"))
    assert "exactly one of `max_drop` or `min_gain`" in str(error)


def test_repeated_check_ids_are_rejected(workspace):
    error = load_error(workspace, BINARY_POLICY.replace(
        "    - {metric: accuracy", "    - {metric: roc_auc, min: 0.6}\n    - {metric: accuracy"))
    assert "repeats check id 'roc_auc'" in str(error)
    assert "give one of them an `id`" in str(error)


def test_model_needs_exactly_one_source(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("  path: model.skops\n",
                                                        "  path: model.skops\n  scores: p\n"))
    assert "exactly one of `path`, `factory`" in str(error)


def test_missing_policy_file(workspace):
    with pytest.raises(PolicyError, match="policy file not found"):
        load_policy("nope.yaml")


def test_all_problems_are_reported_in_line_order(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("name: tiny", "nme: tiny")
                       .replace("metric: roc_auc", "metric: rocauc"))
    lines = [loc.line for _, loc in error.problems]
    assert lines == sorted(lines)
    messages = [message for message, _ in error.problems]
    assert len(messages) == 2, messages  # the typo 'nme' and the unknown metric
    assert "unknown key 'nme' (did you mean 'name'?)" in messages[0]


BASE = """
mlcheck: 1
name: org-base
owner: risk@example.org
data:
  target: y
  datasets:
    eval: eval.csv
performance:
  rules:
    - {metric: accuracy, min: 0.5}
"""


def test_extends_merges_in_order_child_wins_and_records_hashes(binary_workspace):
    base = binary_workspace.policy(BASE, "base.yaml")
    second = binary_workspace.policy("version: '2'\nowner: second@example.org\n", "second.yaml")
    child = binary_workspace.policy("""
        mlcheck: 1
        name: child
        extends: [base.yaml, second.yaml]
        model:
          path: model.skops
          task: binary_classification
          features: [x1, x2]
        performance:
          rules:
            - {metric: roc_auc, min: 0.7}
        """, "child.yaml")
    policy = load_policy(child)
    assert policy.name == "child"                      # the child wins
    assert policy.owner == "second@example.org"        # later bases win over earlier ones
    assert policy.version == "2"
    assert policy.data.target == "y"                   # inherited
    assert [r.metric for r in policy.performance.rules] == ["roc_auc"]  # lists are replaced
    sources = dict(policy.origin.sources)
    for path in (child, base, second):
        assert sources[path.name] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert policy.extends == ("base.yaml", "second.yaml")
    assert "extends" not in policy.origin.resolved  # merged in: the result is what counts


def test_policy_hash_depends_on_content_not_on_where_it_is_run(binary_workspace, monkeypatch):
    first = load_policy("policy.yaml").origin.sha256
    monkeypatch.chdir(binary_workspace.root.parent)
    assert load_policy(binary_workspace.root / "policy.yaml").origin.sha256 == first
    binary_workspace.policy(BINARY_POLICY + "# a comment changes the file, not the policy\n")
    assert load_policy(binary_workspace.root / "policy.yaml").origin.sha256 == first
    binary_workspace.policy(BINARY_POLICY.replace("min: 0.7", "min: 0.71"))
    assert load_policy(binary_workspace.root / "policy.yaml").origin.sha256 != first


def test_errors_in_a_base_policy_name_the_base_file(binary_workspace):
    binary_workspace.policy(BASE.replace("target: y", "targit: y"), "base.yaml")
    child = binary_workspace.policy("mlcheck: 1\nname: child\nextends: base.yaml\n", "child.yaml")
    with pytest.raises(PolicyError) as info:
        load_policy(child)
    assert "base.yaml:5:3: data.targit: unknown key 'targit' (did you mean 'target'?)" in str(
        info.value)


def test_extends_cycle_and_missing_base(workspace):
    workspace.policy("extends: b.yaml\n", "a.yaml")
    workspace.policy("extends: a.yaml\n", "b.yaml")
    with pytest.raises(PolicyError, match="cycle"):
        load_policy("a.yaml")
    workspace.policy("mlcheck: 1\nextends: [missing.yaml]\n", "c.yaml")
    with pytest.raises(PolicyError, match=r"c.yaml:2:11: extends\[0\]: base policy not found"):
        load_policy("c.yaml")


def test_json_schema_describes_every_section():
    schema = policy_json_schema()
    assert {"mlcheck", "name", "model", "data", "schema", "performance"} <= set(
        schema["properties"])
    metric = schema["$defs"]["PerformanceRule"]["properties"]["metric"]
    assert "roc_auc" in metric["enum"]
    assert schema["additionalProperties"] is False


def test_keys_are_taken_as_written(workspace):
    path = workspace.policy(BINARY_POLICY + """
schema:
  columns:
    on: {dtype: bool}
    0: {dtype: int64}
""")
    assert set(load_policy(path).schema_.columns) == {"on", "0"}


def test_text_fields_given_numbers_hint_at_quoting(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("name: tiny", "name: tiny\nversion: 2.1"))
    assert "YAML read 2.1 as a float: quote it to mean text" in str(error)


def test_merge_keys_keep_positions_and_allow_overrides(workspace):
    path = workspace.policy(BINARY_POLICY.replace("    - {metric: roc_auc, min: 0.7}\n", """\
    - &auc {metric: roc_auc, min: 0.7}
    - {<<: *auc, id: auc_floor, min: 0.6}
"""))
    rules = load_policy(path).performance.rules
    assert (rules[1].metric, rules[1].id, rules[1].min) == ("roc_auc", "auc_floor", 0.6)


def test_self_referencing_alias_is_refused(workspace):
    error = load_error(workspace, BINARY_POLICY + "loop: &a [*a]\n")
    assert "an alias refers to itself" in str(error)


def test_alias_bombs_are_refused_quickly(workspace):
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    error = load_error(workspace, "\n".join(bomb) + "\n")
    assert "expands to more than 50,000 values" in str(error)


def test_keys_that_do_not_fit_the_task_are_errors(workspace):
    regression = BINARY_POLICY.replace("binary_classification", "regression").replace(
        "path: model.skops", "path: model.skops\n  threshold: 0.5").replace(
        "target: y", "target: y\n  positive_label: 1").split("performance:")[0]
    error = load_error(workspace, regression)
    assert "`threshold` applies to binary_classification only" in str(error)
    assert "`positive_label` applies to binary_classification only" in str(error)


def test_a_base_policy_paths_are_relative_to_the_base(workspace):
    workspace.policy("""
        data:
          datasets:
            reference: reference.csv
        """, "org/base.yaml")
    path = workspace.policy("""
        mlcheck: 1
        name: team
        extends: ../org/base.yaml
        data:
          datasets:
            eval: eval.csv
        schema:
          columns: {y: {dtype: int64}}
        """, "team/policy.yaml")
    datasets = load_policy(path).data.datasets
    assert datasets["reference"].path == "../org/reference.csv"
    assert datasets["eval"].path == "eval.csv"


def test_yes_no_on_off_are_text_not_booleans(workspace):
    path = workspace.policy(BINARY_POLICY + """
schema:
  columns:
    answer: {dtype: str, checks: {notin: [no, off], isin: [yes, maybe, true]}}
""")
    checks = load_policy(path).schema_.columns["answer"].checks
    assert checks.notin == ("no", "off")
    assert checks.isin == ("yes", "maybe", True)


def test_a_policy_without_checks_is_an_error(workspace):
    error = load_error(workspace, "mlcheck: 1\nname: empty\ndata: {datasets: {eval: e.csv}}\n")
    assert "the policy defines no checks" in str(error)


def test_predictions_and_threshold_together_are_ambiguous(workspace):
    error = load_error(workspace, BINARY_POLICY.replace(
        "  path: model.skops\n", "  predictions: p\n  scores: s\n  threshold: 0.5\n"))
    assert "give `predictions` or a `threshold` on `scores`, not both" in str(error)


def test_features_must_not_include_the_answer(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("features: [x1, x2]",
                                                        "features: [x1, x2, y]"))
    assert "policy.yaml:6:" in str(error)
    assert "feature 'y' is the target: the model would see the answer" in str(error)


def test_extends_naming_a_folder_is_positioned(workspace):
    (workspace.root / "folder").mkdir()
    error = load_error(workspace, BINARY_POLICY + "extends: folder\n")
    assert "policy.yaml:15:1: extends: base policy not found: folder" in str(error)


def test_union_errors_give_one_message_per_key(workspace):
    error = load_error(workspace, BINARY_POLICY.replace("target: y",
                                                        "target: y\n  positive_label: [1]"))
    assert len(error.problems) == 1
