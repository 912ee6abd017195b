"""mlcheck in CI: the GitHub action (its shell steps run for real, as GitHub's runner runs
them), the documented workflow, GitLab and shell snippets, the pre-commit hooks (through
the real pre-commit), GitHub annotations and the size of the Markdown summary."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlcheck.ci import command, escape_property, render_annotations
from mlcheck.cli import app
from mlcheck.report.formats import MARKDOWN_LIMIT, render_markdown

from .conftest import BINARY_POLICY, REPO
from .test_startup import loaded_after, run_cli

BIN = Path(sys.executable).parent  # this environment's `mlcheck`, `check-jsonschema`, ...
ACTION = yaml.safe_load((REPO / "action.yml").read_text())
DOC = (REPO / "docs" / "ci.md").read_text()
BLOCKED_POLICY = BINARY_POLICY.replace("{metric: roc_auc, min: 0.7}",
                                       "{metric: roc_auc, min: 0.99}")
ROC_LINE = 1 + textwrap.dedent(BINARY_POLICY).lstrip("\n").splitlines().index(
    "    - {metric: roc_auc, min: 0.7}")
TYPO_POLICY = BINARY_POLICY.replace("metric: roc_auc", "metric: rocauc")
MATCHER = json.loads((REPO / ".github" / "mlcheck-problem-matcher.json").read_text())
runner = CliRunner()


def tool(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """A command-line tool installed in this environment (check-jsonschema, pre-commit)."""
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=900, env={**os.environ, **env})


# ------------------------------------------------------------ running workflow steps

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
RUN_ANYWAY = {"always()", "!cancelled()"}


@dataclass
class Run:
    """What a sequence of steps did: the last failing step's exit code (0 when none did),
    what they printed, the job summary, and each step's outputs by id."""

    code: int = 0
    stdout: str = ""
    stderr: str = ""
    summary: str = ""
    steps: dict[str, dict[str, str]] = field(default_factory=dict)
    temp: Path | None = None


class Runner:
    """Runs the `run:` steps of a composite action or a workflow job the way GitHub's
    runner does: each script with bash (`--noprofile --norc -eo pipefail` for `shell:
    bash`, else `-e`) in the workspace, with its own GITHUB_OUTPUT and GITHUB_STEP_SUMMARY
    files; `${{ }}` expressions in the script and `env:` replaced by their values. `uses:`
    steps cannot run here: they are skipped (no outputs), as when their `if:` is false.
    An expression or an `if:` it cannot evaluate fails the test."""

    def __init__(self, workspace: Path, inputs: dict[str, str] | None = None) -> None:
        self.workspace, self.inputs = workspace, inputs or {}
        self.temp = workspace.parent / f"{workspace.name}-runner-temp"
        self.temp.mkdir(exist_ok=True)
        self.result = Run(temp=self.temp)

    def value(self, expression: str) -> str:
        found = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression)
        if found:
            return self.result.steps.get(found[1], {}).get(found[2], "")
        if expression.startswith("inputs."):
            return self.inputs[expression.removeprefix("inputs.")]
        known = {"github.action_path": str(REPO), "github.workspace": str(self.workspace),
                 "runner.temp": str(self.temp)}
        assert expression in known, f"the test runner cannot evaluate ${{{{ {expression} }}}}"
        return known[expression]

    def substitute(self, text: str) -> str:
        return EXPRESSION.sub(lambda m: self.value(m[1]), text)

    def run(self, steps: list[dict], skip: tuple[str, ...] = ()) -> Run:
        failed = False
        for index, step in enumerate(steps):
            if "uses" in step or step.get("name") in skip:
                continue
            condition = step.get("if")
            if condition is not None:
                condition = EXPRESSION.sub(lambda m: m[1], str(condition)).strip()
                assert condition in RUN_ANYWAY, f"the test runner cannot evaluate if: {condition}"
            elif failed:
                continue
            self._step(index, step)
            failed = failed or self.result.code != 0
        return self.result

    def _step(self, index: int, step: dict) -> None:
        output, summary = (self.temp / f"{kind}-{index}" for kind in ("output", "summary"))
        output.write_text("")
        summary.write_text("")
        script = self.temp / f"step-{index}.sh"
        script.write_text(self.substitute(step["run"]))
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
               "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(self.workspace),
               "RUNNER_TEMP": str(self.temp), "GITHUB_OUTPUT": str(output),
               "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_SERVER_URL": "https://github.com",
               "GITHUB_REPOSITORY": "acme/models", "GITHUB_RUN_ID": "42"}
        env.update({k: self.substitute(str(v)) for k, v in (step.get("env") or {}).items()})
        shell = ["bash", "--noprofile", "--norc", "-eo", "pipefail"] \
            if step.get("shell") == "bash" else ["bash", "-e"]
        done = subprocess.run([*shell, str(script)], cwd=self.workspace, env=env,
                              capture_output=True, text=True, timeout=600)
        self.result.stdout += done.stdout
        self.result.stderr += done.stderr
        self.result.summary += summary.read_text()
        if step.get("id"):
            self.result.steps[step["id"]] = parse_outputs(output.read_text())
        if done.returncode:
            self.result.code = done.returncode


def parse_outputs(text: str) -> dict[str, str]:
    """A GITHUB_OUTPUT file: `name=value` lines and `name<<DELIMITER` blocks."""
    outputs, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            outputs[name] = "\n".join(iter(lines.__next__, delimiter))
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def run_action(workspace: Path, **inputs: str) -> tuple[Run, dict[str, str]]:
    """The action with these inputs (on this environment's mlcheck, not installed again),
    and its outputs as a workflow sees them."""
    given = {"python": sys.executable, "install": "false",
             **{k.replace("_", "-"): v for k, v in inputs.items()}}
    spec = ACTION["inputs"]
    assert set(given) <= set(spec), set(given) - set(spec)
    missing = [name for name, item in spec.items() if item.get("required") and name not in given]
    assert not missing, missing
    runner = Runner(workspace, {name: str(item.get("default", "")) for name, item in
                                spec.items()} | given)
    result = runner.run(ACTION["runs"]["steps"])
    return result, {name: runner.substitute(item["value"])
                    for name, item in ACTION["outputs"].items()}


def annotations(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"::(error|warning|notice) ", line)]


# ------------------------------------------------------------------------ the action


def test_action_metadata_and_hooks_manifest_are_valid():
    done = tool("check-jsonschema", "--builtin-schema", "vendor.github-actions",
                str(REPO / "action.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    done = tool("pre-commit", "validate-manifest", str(REPO / ".pre-commit-hooks.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_action_installs_this_project_never_mlcheck_from_the_index():
    text = (REPO / "action.yml").read_text()
    assert '"$MLCHECK_ACTION_PATH$extra"' in text
    assert not re.search(r"pip install[^\n]*\bmlcheck\b(?!-gate)", text)
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), "inputs reach scripts through env only"


def test_action_installs_from_its_own_checkout_unless_told_not_to(tmp_path):
    fake = tmp_path / "python"  # records how it was called instead of installing
    fake.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/calls"\n')
    fake.chmod(0o755)
    install = [s for s in ACTION["runs"]["steps"] if s.get("name", "").startswith("Install")]
    defaults = {name: str(item.get("default", "")) for name, item in ACTION["inputs"].items()}
    for given in ({}, {"promote": "champion"}, {"install": "false"}):
        inputs = {**defaults, "policies": "p.yaml", "python": str(fake), **given}
        assert Runner(tmp_path, inputs).run(install).code == 0
    assert (tmp_path / "calls").read_text().splitlines() == [
        f"-m pip install --disable-pip-version-check --quiet {REPO}",
        f"-m pip install --disable-pip-version-check --quiet {REPO}[mlflow]"]


def test_action_on_a_passing_policy(binary_workspace):
    result, outputs = run_action(binary_workspace.root, policies="policy.yaml")
    assert result.code == 0, result.stdout + result.stderr
    assert outputs["verdict"] == "passed" and outputs["exit-code"] == "0"
    record = json.loads(Path(outputs["record"]).read_text())
    assert record["verdict"] == "passed" and record["integrity"]["digest"]
    for name in ("report", "sarif", "junit", "markdown"):
        assert Path(outputs[name]).is_file(), name
    assert Path(outputs["dir"]).parent == result.temp  # not in the repository
    assert json.loads(Path(outputs["sarif"]).read_text())["runs"][0]["results"] == []
    assert result.summary.startswith("### mlcheck: tiny: **PASSED**")
    assert result.summary == Path(outputs["markdown"]).read_text()
    assert "artifact `mlcheck-report` of [this run](https://github.com/acme/models/" \
           "actions/runs/42)" in result.summary
    assert annotations(result.stdout) == []


def test_action_on_a_blocked_policy_annotates_the_rule_and_signs(binary_workspace):
    root = binary_workspace.root
    binary_workspace.policy(BLOCKED_POLICY)
    assert runner.invoke(app, ["keygen", "-o", "keys/ci"]).exit_code == 0
    secret = (root / "keys/ci").read_text()
    (root / "keys/ci").unlink()  # the secret's only copy is the input
    result, outputs = run_action(root, policies="policy.yaml", signing_key=secret,
                                 signer="CI Bot <ci@example.org>")
    assert result.code == 1, result.stdout + result.stderr
    assert outputs["verdict"] == "blocked" and outputs["exit-code"] == "1"
    found = annotations(result.stdout)
    assert found[0].startswith(f"::error file=policy.yaml,line={ROC_LINE},title=mlcheck fail"
                               "%3A performance/roc_auc::fail: roc_auc = ")
    assert len(found) == 1
    summary = result.summary
    assert summary.startswith("### mlcheck: tiny: **BLOCKED**")
    assert summary.index("**Blocked by** 1 check") < summary.index("**Headline values**") \
        < summary.index("**Checks by family**")
    sarif = json.loads(Path(outputs["sarif"]).read_text())["runs"][0]["results"]
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in sarif] \
        == [ROC_LINE]
    verified = runner.invoke(app, ["verify", outputs["record"], "--public-key", "keys/ci.pub",
                                   "--require-signature"])
    assert verified.exit_code == 0, verified.output
    key_body = secret.splitlines()[1]
    assert key_body not in result.stdout + result.stderr + summary
    for folder in (root, result.temp):  # the key file was removed after the run
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith("step-"):
                assert key_body not in path.read_text(errors="replace"), path


def test_action_on_an_invalid_policy_exits_2_and_says_so(binary_workspace):
    binary_workspace.policy(TYPO_POLICY)
    result, outputs = run_action(binary_workspace.root, policies="policy.yaml")
    assert result.code == 2
    assert outputs["verdict"] == "invalid" and outputs["exit-code"] == "2"
    assert outputs["record"] == outputs["sarif"] == ""
    assert result.summary.startswith("### mlcheck: **INVALID** (exit 2)")
    matcher = re.search(r"^::add-matcher::(.+)$", result.stdout, re.M)
    assert matcher and Path(matcher[1]).resolve() == REPO / ".github/mlcheck-problem-matcher.json"
    assert "::remove-matcher owner=mlcheck::" in result.stdout
    assert matched_problems(result.stderr) == [("policy.yaml", str(ROC_LINE), "8")]


def matched_problems(log: str) -> list[tuple[str, str, str]]:
    """(file, line, column) of each log line the problem matcher turns into an annotation."""
    pattern = MATCHER["problemMatcher"][0]["pattern"][0]
    assert (pattern["file"], pattern["line"], pattern["column"]) == (1, 2, 3)
    return [found.group(1, 2, 3) for line in log.splitlines()
            if (found := re.match(pattern["regexp"], line))]


def test_problem_matcher_reads_policy_errors_even_in_colour():
    line = "policies/a b.yaml:7:12: performance.rules[0].metric: 'rocauc' is not allowed"
    assert matched_problems(f"error: {line}") == [("policies/a b.yaml", "7", "12")]
    assert matched_problems(f"\x1b[1;31merror:\x1b[0m {line}") == [
        ("policies/a b.yaml", "7", "12")]
    assert matched_problems("FAIL  performance/roc_auc  roc_auc = 0.92 (n=600)\n"
                            "record: reports/x.json   report: reports/x.html") == []


def test_action_gates_a_folder_of_policies_with_a_quoted_name(binary_workspace):
    root = binary_workspace.root
    for name, text in (("good.yaml", BINARY_POLICY), ("blocked.yaml", BLOCKED_POLICY)):
        binary_workspace.write(f"my policies/{name}", text.replace(
            "name: tiny", f"name: {name[:-5]}").replace("path: model.skops",
            "path: ../model.skops").replace("eval: eval.csv", "eval: ../eval.csv"))
    binary_workspace.write("my policies/notes.yaml", "title: not a policy\n")
    result, outputs = run_action(root, policies='"my policies"')
    assert result.code == 1, result.stdout + result.stderr
    record = json.loads(Path(outputs["record"]).read_text())
    assert record["kind"] == "session" and record["verdict"] == "blocked"
    assert [run["policy"]["name"] for run in record["runs"]] == ["blocked", "good"]
    assert {p.name for p in Path(outputs["dir"]).iterdir()} >= {
        "blocked.json", "blocked.html", "good.json", "good.html", "record.json",
        "report.html"}
    assert annotations(result.stdout)[0].startswith(
        f"::error file=my policies/blocked.yaml,line={ROC_LINE},")
    assert result.summary.startswith("## mlcheck: **BLOCKED**: 2 policies (1 passed, 1 blocked)")


# ------------------------------------------------------------ annotations and markdown


def test_validating_a_folder_for_a_hook_loads_no_heavy_module(binary_workspace):
    root = str(binary_workspace.root)
    assert loaded_after(run_cli("validate", "--only-policies", root, f"{root}/*.csv")) == []


def test_annotation_data_cannot_start_or_break_a_command():
    hostile = "50% of\r\n::error file=x::forged, a:b"
    check = {"id": f"performance/recall[g={hostile}]", "family": "performance",
             "verdict": "fail", "blocking": True, "message": hostile,
             "policy_file": "policies/a,b:c.yaml", "policy_line": 3}
    record = {"kind": "run", "verdict": "blocked", "policy": {"name": "x"},
              "checks": [{**check, "blocking": False, "verdict": "warn"}, check]}
    lines = render_annotations(record, status="sealed").splitlines()
    assert len(lines) == 2 and lines[0].startswith("::error ")  # blocking first
    assert lines[1].startswith("::warning ")
    assert "\n" not in lines[0] and "\r" not in lines[0]  # one line: one command
    head, message = lines[0].removeprefix("::").split("::", 1)  # as the runner reads it
    assert head.startswith("error file=policies/a%2Cb%3Ac.yaml,line=3,title=mlcheck fail")
    properties = head.split(" ", 1)[1]
    assert [item.split("=", 1)[0] for item in properties.split(",")] == ["file", "line",
                                                                         "title"]
    assert message.startswith("fail: 50%25 of")
    assert escape_property("a%b\r\n:,") == "a%25b%0D%0A%3A%2C"
    assert command("notice", "x") == "::notice::x"


def big_record(checks: int) -> dict:
    many = [{"id": f"performance/recall[g=group {i}]", "family": "performance",
             "severity": "block", "verdict": "fail" if i % 2 else "warn", "blocking": bool(i % 2),
             "value": 0.5, "bounds": {"min": 0.9}, "message": "recall too low " * 20,
             "interval": {"low": 0.4, "high": 0.6, "confidence": 0.95}, "waiver": None}
            for i in range(checks)]
    return {"kind": "run", "verdict": "blocked", "policy": {"name": "big"},
            "counts": {"fail": checks // 2, "warn": checks - checks // 2}, "checks": many,
            "waivers": [], "integrity": {"digest": "ab" * 32}}


def test_markdown_of_a_big_policy_stays_within_githubs_limits():
    text = render_markdown(big_record(5_000), status="sealed")
    assert len(text) <= MARKDOWN_LIMIT < 65_536
    assert len(text.encode()) < 1 << 20  # a step summary's limit
    assert "… and 2450 more checks: the HTML report lists them" in text
    assert "… and 4975 more performance and fairness checks" in text
    assert text.count("<details>") == text.count("</details>")
    assert text.rstrip().endswith(f"<code>{'ab' * 32}</code></sub>")  # the digest stays


def test_markdown_cut_at_the_limit_says_where_the_rest_is():
    records = {"kind": "session", "verdict": "blocked", "partial": False,
               "runs": [{**big_record(200), "policy": {"name": f"p{i}"}} for i in range(20)],
               "policies_not_run": []}
    text = render_markdown(records, status="unsealed", limit=20_000)
    assert len(text) <= 20_000
    assert "**Truncated** to 20,000 characters" in text and "report artifact" in text
    assert text.startswith("> This record is unsealed")  # the warning is never cut
    assert text.count("<details>") == text.count("</details>")


def test_markdown_headline_shows_each_value_with_its_interval():
    record = big_record(3)
    record["checks"].append({**record["checks"][0], "id": "fairness/demographic_parity_ratio"
                             "[sex]", "family": "fairness", "verdict": "pass",
                             "blocking": False, "value": 0.91, "bounds": {"min": 0.8}})
    record["checks"].append({**record["checks"][0], "id": "schema/age", "family": "schema",
                             "verdict": "pass", "blocking": False, "interval": None})
    text = render_markdown(record, status="sealed")
    headline = text.split("**Headline values**")[1].split("**Checks by family**")[0]
    rows = [line for line in headline.splitlines() if line.startswith("| <code>")]
    assert [row.split(" | ")[1] for row in rows] == ["fail", "warn", "warn", "pass"]
    assert "| 0.9100 | &#91;0.4000, 0.6000&#93; 95% | min 0.8 |" in rows[-1]
    assert "schema" not in headline
    families = text.split("**Checks by family**")[1]
    assert "| performance | 3 | 0 | 1 fail, 2 warn | 1 |" in families
    assert "| schema | 1 | 1 | — | 0 |" in families


# ------------------------------------------------------------------ the documentation


def snippets() -> dict[str, str]:
    """Each code block of docs/ci.md by the file its first comment line names."""
    found = {}
    for body in re.findall(r"```(?:yaml|sh)\n(.*?)```", DOC, re.S):
        lines = body.splitlines()
        comment = lines[1] if lines[0].startswith("#!") else lines[0]
        found[comment.lstrip("# ").split()[0].rstrip(":")] = body
    return found


def test_docs_hold_every_snippet_with_the_exit_code_contract():
    assert set(snippets()) == {
        ".github/workflows/mlcheck.yml", ".github/workflows/mlcheck-own-python.yml",
        ".github/workflows/mlcheck-steps.yml", ".gitlab-ci.yml", "ci/mlcheck.sh",
        ".pre-commit-config.yaml"}
    for code, meaning in (("0", "passed"), ("1", "blocked"),
                          ("2", "the policy or an input could not be used"),
                          ("130", "interrupted")):
        assert re.search(rf"^\| {code} \| {meaning}", DOC, re.M), code
    assert "pip install mlcheck " not in DOC and "pip install mlcheck\n" not in DOC


def test_documented_workflows_and_gitlab_job_are_valid(tmp_path):
    for name, body in snippets().items():
        schema = "vendor.gitlab-ci" if name == ".gitlab-ci.yml" else \
            "vendor.github-workflows" if name.startswith(".github/") else None
        if schema:
            path = tmp_path / name.replace("/", "_")
            path.write_text(body)
            done = tool("check-jsonschema", "--builtin-schema", schema, str(path))
            assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    path = tmp_path / ".pre-commit-config.yaml"
    path.write_text(snippets()[".pre-commit-config.yaml"])
    done = tool("pre-commit", "validate-config", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def policy_folder(binary_workspace):
    """The tiny policy in policies/, as the snippets expect; `blocked()` makes it fail."""
    def write(text: str) -> None:
        binary_workspace.write("policies/tiny.yaml", text.replace(
            "path: model.skops", "path: ../model.skops").replace("eval: eval.csv",
                                                                 "eval: ../eval.csv"))
    write(BINARY_POLICY)
    (binary_workspace.root / "policy.yaml").unlink()
    binary_workspace.blocked = lambda: write(BLOCKED_POLICY)
    return binary_workspace


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, capture_output=True,
                          text=True, timeout=600,
                          env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})


def test_documented_shell_step_exits_with_the_gate(policy_folder):
    root = policy_folder.root
    script = snippets()["ci/mlcheck.sh"]
    done = bash(script, root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mlcheck: passed" in done.stdout and (root / "reports/junit.xml").is_file()
    policy_folder.blocked()
    done = bash(script, root)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "mlcheck: blocked" in done.stdout
    assert "**BLOCKED**" in (root / "reports/summary.md").read_text()


def test_documented_gitlab_job_runs(policy_folder):
    root = policy_folder.root
    job = yaml.safe_load(snippets()[".gitlab-ci.yml"])["mlcheck"]
    done = bash("\n".join(job["script"]), root)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in job["after_script"]:  # each item runs on its own, whatever the script did
        after = bash(line, root)
        assert after.returncode == 0, after.stdout + after.stderr
    junit = (root / job["artifacts"]["reports"]["junit"]).read_text()
    assert 'name="performance/roc_auc"' in junit
    assert (root / "reports/summary.md").read_text().startswith("### mlcheck: tiny: **PASSED**")


def test_documented_plain_steps_workflow_runs(policy_folder):
    root = policy_folder.root
    policy_folder.blocked()
    job = yaml.safe_load(snippets()[".github/workflows/mlcheck-steps.yml"])["jobs"]["mlcheck"]
    result = Runner(root).run(job["steps"], skip=("Install mlcheck",))
    assert result.code == 1, result.stdout + result.stderr
    assert result.summary.startswith("### mlcheck: tiny: **BLOCKED**")
    assert annotations(result.stdout)[0].startswith(
        f"::error file=policies/tiny.yaml,line={ROC_LINE},")
    assert (root / "reports/results.sarif").is_file()


# -------------------------------------------------------------------------- pre-commit


@pytest.fixture(scope="session")
def hooks_repo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """This project as pre-commit fetches it: a git repository tagged v0.1.0 holding the
    hooks manifest and what `pip install .` needs (so uncommitted work is what is tested),
    and one pre-commit home for the session: the hooks' environment (`language: python`,
    mlcheck-gate and its dependencies from the package index) is installed once."""
    if shutil.which("git") is None:
        pytest.fail("pre-commit needs git")
    repo = tmp_path_factory.mktemp("hooks-repo")
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(REPO / name, repo / name)
    shutil.copytree(REPO / "mlcheck", repo / "mlcheck",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
           "PRE_COMMIT_HOME": str(tmp_path_factory.mktemp("pre-commit-home"))}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "hooks"], ["tag", "v0.1.0"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env={**os.environ, **env})
    return repo, env


def precommit(hooks: tuple[Path, dict], root: Path, files: dict[str, str], hook: str,
              *names: str) -> subprocess.CompletedProcess:
    """`pre-commit run HOOK` in a new git repository holding `files` and the documented
    .pre-commit-config.yaml (its `repo:` pointed at the local copy of this project), on
    every file or on `names`."""
    config = snippets()[".pre-commit-config.yaml"]
    assert "repo: https://github.com/YOUR-ORG/mlcheck\n" in config
    files = {**files, ".pre-commit-config.yaml": config.replace(
        "https://github.com/YOUR-ORG/mlcheck", str(hooks[0]))}
    if not (root / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    chosen = ["--files", *names] if names else ["--all-files"]
    return tool("pre-commit", "run", hook, *chosen, cwd=root, **hooks[1])


def test_precommit_validate_hook_fails_a_broken_policy_with_its_line(hooks_repo, tmp_path):
    files = {"policies/good.yaml": textwrap.dedent(BINARY_POLICY).lstrip(),
             "policies/broken.yaml": textwrap.dedent(TYPO_POLICY).lstrip(),
             "policies/controls/base.yaml": "controls: {}\n",
             ".github/workflows/ci.yml": "on: push\n"}
    done = precommit(hooks_repo, tmp_path, files, "mlcheck-validate")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"policies/broken.yaml:{ROC_LINE}:8: performance.rules[0].metric: 'rocauc' " \
           "is not allowed" in done.stdout
    assert "policies/good.yaml: valid policy 'tiny'" in done.stdout
    done = precommit(hooks_repo, tmp_path, {}, "mlcheck-validate", "policies/good.yaml",
                     "policies/controls/base.yaml", ".github/workflows/ci.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_precommit_verify_hook_fails_an_altered_record(hooks_repo, binary_workspace):
    root = binary_workspace.root
    assert runner.invoke(app, ["keygen", "-o", "keys/mlcheck"]).exit_code == 0
    done = runner.invoke(app, ["check", "policy.yaml", "--sign", "keys/mlcheck", "--signer",
                               "CI <ci@example.org>"])
    assert done.exit_code == 0, done.output
    record = (root / "reports/tiny.json").read_text()
    altered = record.replace('"verdict": "pass"', '"verdict": "waived"', 1)
    assert altered != record
    repo = root / "repo"
    files = {"reports/good.json": record, "reports/altered.json": altered,
             "data/other.json": "{}", "keys/mlcheck.pub": (root / "keys/mlcheck.pub").read_text()}
    repo.mkdir()
    done = precommit(hooks_repo, repo, files, "mlcheck-verify")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "reports/altered.json: ALTERED" in done.stdout
    assert "reports/good.json: INTACT" in done.stdout
    done = precommit(hooks_repo, repo, {}, "mlcheck-verify", "reports/good.json",
                     "data/other.json")
    assert done.returncode == 0, done.stdout + done.stderr


def test_action_never_reads_an_earlier_runs_record(binary_workspace):
    """With a kept output folder, a run that stops before writing (a glob that matches
    nothing) must not report the previous run's PASSED record as its own."""
    first, outputs = run_action(binary_workspace.root, policies="policy.yaml",
                                output_dir="kept")
    assert first.code == 0 and outputs["verdict"] == "passed"
    second, outputs = run_action(binary_workspace.root, policies="nothing-*.yaml",
                                 output_dir="kept")
    assert second.code == 2
    assert outputs["verdict"] != "passed"
    assert not (binary_workspace.root / "kept" / "record.json").exists()
