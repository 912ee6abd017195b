"""The command line starts fast and shows what it is doing.

`mlcheck --help`, `validate` and `schema` must not import the numerical stack (a
pre-commit hook runs `validate` on every commit), so these tests check which modules a
fresh interpreter has loaded, not how long it took. While `check` runs, the terminal
line names the check running now."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from rich.console import Console
from rich.progress import Progress

from mlcheck.engine import Evaluation, evaluate

from .conftest import EXAMPLE_POLICY, REPO

HEAVY = ("numpy", "pandas", "scipy", "sklearn", "shap", "pandera", "fairlearn", "hypothesis",
         "pyarrow", "skops")


def loaded_after(code: str) -> list[str]:
    """Heavy modules a fresh interpreter holds after running `code`."""
    probe = (f"import sys\n{code}\n"
             f"import json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=REPO, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_cli(*args: str) -> str:
    """Run the CLI in this process's interpreter, as the console script does."""
    return ("from mlcheck.cli import app\n"
            "try:\n"
            f"    app({list(args)!r})\n"
            "except SystemExit as exc:\n"
            "    assert not exc.code, exc.code\n")


def test_importing_the_cli_loads_no_heavy_module():
    assert loaded_after("import mlcheck.cli") == []


def test_help_loads_no_heavy_module():
    assert loaded_after(run_cli("--help")) == []


def test_validating_the_example_policy_loads_no_heavy_module():
    assert loaded_after(run_cli("validate", str(EXAMPLE_POLICY))) == []


def test_schema_loads_no_heavy_module():
    assert loaded_after(run_cli("schema")) == []


def test_the_engine_reports_each_check_before_and_after_it_runs(binary_workspace):
    calls = []
    result = evaluate("policy.yaml", progress=lambda check, result, done, total: calls.append(
        (check.id, result is None, done, total)))
    ids = [c.id for c in result.checks]
    total = len(ids)
    expected = [event for i, check_id in enumerate(ids)
                for event in ((check_id, True, i, total), (check_id, False, i + 1, total))]
    assert calls == expected


class Ticking:
    """A clock for rich's Progress that the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_progress_line_names_the_running_check_and_the_time_once_it_is_long(
        binary_workspace, monkeypatch):
    import mlcheck.cli as cli

    clock = Ticking()
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    monkeypatch.setattr(cli, "err", console)
    made = []

    class Recorded(Progress):
        def __init__(self, *columns, **options):
            super().__init__(*columns, **{**options, "get_time": clock, "auto_refresh": False})
            made.append(self)

    monkeypatch.setattr("rich.progress.Progress", Recorded)
    evaluation = Evaluation("policy.yaml")
    first, second = evaluation.checks[:2]
    with cli._progress() as show:
        bar = made[0]
        task = bar.tasks[0]
        described, elapsed = bar.columns[0], bar.columns[-1]
        assert str(described.render(task)) == "loading model and data"
        assert str(elapsed.render(task)) == ""  # a short run shows no clock
        show(first, None, 0, 3)
        assert str(described.render(task)) == first.id and task.completed == 0
        show(first, evaluation.run(first), 1, 3)
        assert str(described.render(task)) == first.id and task.completed == 1
        show(second, None, 1, 3)  # named while it runs, not after
        assert str(described.render(task)) == second.id  # `[group=a]` shown as written
        clock.now = 75.0
        assert str(elapsed.render(task)) == "1:15"
        clock.now = 4.0
        assert str(elapsed.render(task)) == "4s"


def test_no_progress_line_when_stderr_is_not_a_terminal(binary_workspace):
    from typer.testing import CliRunner

    from mlcheck.cli import app

    done = CliRunner().invoke(app, ["check", "policy.yaml"])
    assert done.exit_code == 0, done.output
    assert "loading model and data" not in done.stderr
    assert "performance/" not in done.stderr
