"""Outputs never damage anything: not a symlink's target, a device, a FIFO, an input, a
secret, or another policy's record; and a run that does not finish leaves no stale pass."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from mlcheck.cli import app
from mlcheck.outputs import write_files

from .conftest import BINARY_POLICY

runner = CliRunner()


def run(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def test_writing_through_a_symlink_keeps_the_link(binary_workspace):
    root = binary_workspace.root
    (root / "store").mkdir()
    (root / "reports").mkdir()
    (root / "store" / "tiny.json").write_text("old")
    (root / "reports" / "tiny.json").symlink_to(root / "store" / "tiny.json")
    result = run("check", "policy.yaml")
    assert result.exit_code == 0, result.output
    assert (root / "reports" / "tiny.json").is_symlink()
    assert json.loads((root / "store" / "tiny.json").read_text())["verdict"] == "passed"


def test_a_character_device_is_written_through_not_replaced(tmp_path):
    write_files({tmp_path / "ok.txt": "x", __import__("pathlib").Path("/dev/null"): "y"})
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert (tmp_path / "ok.txt").read_text() == "x"


def test_a_fifo_without_a_reader_is_refused_not_hung(binary_workspace):
    fifo = binary_workspace.root / "out.md"
    os.mkfifo(fifo)
    result = run("check", "policy.yaml", "--json", fifo)
    assert result.exit_code == 2
    assert "no reader" in result.output
    assert fifo.exists() and not fifo.is_file()


def test_dash_writes_to_standard_output(binary_workspace):
    assert run("check", "policy.yaml").exit_code == 0
    result = run("report", "reports/tiny.json", "--format", "markdown", "-o", "-")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output
    assert not (binary_workspace.root / "-").exists()


def test_step_summaries_are_appended_to(binary_workspace, monkeypatch):
    summary = binary_workspace.root / "summary.md"
    summary.write_text("# earlier step\n")
    assert run("check", "policy.yaml").exit_code == 0
    result = run("report", "reports/tiny.json", "-f", "markdown", "-o", summary, "--append")
    assert result.exit_code == 0, result.output
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "PASSED" in text
    other = binary_workspace.root / "gh.md"
    other.write_text("# before\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(other))
    assert run("report", "reports/tiny.json", "-f", "markdown", "-o", other).exit_code == 0
    assert other.read_text().startswith("# before\n")


def test_append_is_only_for_markdown(binary_workspace):
    assert run("check", "policy.yaml").exit_code == 0
    result = run("report", "reports/tiny.json", "-o", "x.html", "--append")
    assert result.exit_code == 2 and "markdown" in result.output


@pytest.mark.parametrize("target", ["eval.csv", "model.skops", "policy.yaml", "make.py",
                                    "key", "key.pub"])
def test_outputs_never_overwrite_inputs_or_secrets(binary_workspace, target):
    root = binary_workspace.root
    assert run("keygen", "-o", "key").exit_code == 0
    if target == "make.py":
        root.joinpath("make.py").write_text(
            "import skops.io as sio\n\ndef build():\n    return sio.load('model.skops', "
            "trusted=sio.get_untrusted_types(file='model.skops'))\n")
        binary_workspace.policy(BINARY_POLICY.replace("path: model.skops",
                                                      "factory: make.py:build"))
    before = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    result = run("check", "policy.yaml", "--json", target, "--sign", "key",
                 "--signer", "A <a@example.org>")
    assert result.exit_code == 2, result.output
    assert "refusing" in result.output
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()} == before


def test_outputs_through_a_symlink_to_an_input_are_refused(binary_workspace):
    (binary_workspace.root / "alias.json").symlink_to(binary_workspace.root / "eval.csv")
    result = run("check", "policy.yaml", "--json", "alias.json")
    assert result.exit_code == 2 and "refusing" in result.output


def test_report_refuses_to_overwrite_the_record_it_renders(binary_workspace):
    assert run("check", "policy.yaml").exit_code == 0
    result = run("report", "reports/tiny.json", "-f", "markdown", "-o", "reports/tiny.json")
    assert result.exit_code == 2 and "refusing" in result.output


def test_a_failed_run_leaves_no_previous_pass_in_place(binary_workspace):
    root = binary_workspace.root
    assert run("check", "policy.yaml").exit_code == 0
    assert (root / "reports/tiny.json").exists()
    (root / "eval.csv").write_text("x1,x2\n1,2\n")  # the target is gone: exit 2
    result = run("check", "policy.yaml")
    assert result.exit_code == 2
    assert not (root / "reports/tiny.json").exists()
    assert not (root / "reports/tiny.html").exists()


def test_an_invalid_policy_clears_the_outputs_it_names(binary_workspace):
    root = binary_workspace.root
    assert run("check", "policy.yaml", "--json", "out.json", "--report", "out.html"
               ).exit_code == 0
    binary_workspace.policy(BINARY_POLICY.replace("roc_auc", "rocauc"))
    result = run("check", "policy.yaml", "--json", "out.json", "--report", "out.html")
    assert result.exit_code == 2
    assert not (root / "out.json").exists() and not (root / "out.html").exists()


def test_a_file_that_is_not_an_mlcheck_output_is_never_cleared(binary_workspace):
    root = binary_workspace.root
    (root / "notes.json").write_text('{"mine": true}')
    binary_workspace.policy(BINARY_POLICY.replace("roc_auc", "rocauc"))
    assert run("check", "policy.yaml", "--json", "notes.json").exit_code == 2
    assert (root / "notes.json").read_text() == '{"mine": true}'


def test_another_policy_of_the_same_name_is_not_silently_overwritten(binary_workspace):
    root = binary_workspace.root
    assert run("check", "policy.yaml").exit_code == 0
    (root / "other.yaml").write_text((root / "policy.yaml").read_text())
    result = run("check", "other.yaml")
    assert result.exit_code == 2
    assert "policy.yaml" in result.output and "--json" in result.output
    assert json.loads((root / "reports/tiny.json").read_text())["policy"]["path"] == \
        "policy.yaml"


SLOW_MODEL = """
import time
import numpy as np

class Slow:
    classes_ = np.array([0, 1])
    def predict(self, X):
        time.sleep(60)
    predict_proba = predict

def build():
    return Slow()
"""


def test_a_real_interrupt_stops_the_run_with_no_verdict(binary_workspace):
    root = binary_workspace.root
    assert run("check", "policy.yaml").exit_code == 0
    root.joinpath("slow.py").write_text(SLOW_MODEL)
    binary_workspace.policy(BINARY_POLICY.replace("path: model.skops", "factory: slow.py:build"))
    process = subprocess.Popen([sys.executable, "-m", "mlcheck.cli", "check", "policy.yaml"],
                               cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    deadline = time.monotonic() + 60
    while (root / "reports/tiny.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # the previous pass is cleared before the model is called
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "interrupted" in output
    assert not (root / "reports/tiny.json").exists()


def test_a_profile_to_standard_output_is_the_profile_alone(binary_workspace):
    result = runner.invoke(app, ["profile", "eval.csv", "-o", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mlcheck_profile"] == 1
    assert "profile of" in result.stderr


@pytest.mark.parametrize("redirect", [">", ">>", "|"])
def test_dev_stdout_is_written_through_not_replaced(binary_workspace, redirect):
    assert run("check", "policy.yaml").exit_code == 0
    mlcheck = os.path.join(os.path.dirname(sys.executable), "mlcheck")
    sink = "> out.md" if redirect == ">" else ">> out.md" if redirect == ">>" else "| cat > out.md"
    (binary_workspace.root / "out.md").write_text("EARLIER\n")
    script = (f"(echo BEFORE; {mlcheck} report reports/tiny.json -f markdown -o /dev/stdout; "
              f"echo AFTER) {sink}")
    done = subprocess.run(["bash", "-c", script], cwd=binary_workspace.root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = (binary_workspace.root / "out.md").read_text()
    lines = text.splitlines()
    assert lines[-1] == "AFTER" and "BEFORE" in lines and "PASSED" in text
    assert text.startswith("EARLIER\n") == (redirect == ">>")


def test_a_policy_that_no_longer_loads_clears_its_own_default_outputs(binary_workspace):
    root = binary_workspace.root
    assert run("check", "policy.yaml").exit_code == 0
    binary_workspace.policy(BINARY_POLICY.replace("min: 0.7", "min: .nan"))
    assert run("check", "policy.yaml").exit_code == 2
    assert not (root / "reports/tiny.json").exists()
    assert not (root / "reports/tiny.html").exists()


def test_a_missing_signing_key_clears_the_previous_outputs(binary_workspace):
    root = binary_workspace.root
    assert run("check", "policy.yaml").exit_code == 0
    result = run("check", "policy.yaml", "--sign", "missing.pem", "--signer", "A <a@b.c>")
    assert result.exit_code == 2
    assert not (root / "reports/tiny.json").exists()


def test_model_code_that_changes_directory_does_not_move_the_outputs(binary_workspace,
                                                                     tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    root = binary_workspace.root
    root.joinpath("wander.py").write_text(
        "import os\nimport skops.io as sio\n\nclass Wander:\n"
        "    def __init__(self, inner):\n        self.inner = inner\n"
        "        self.classes_ = inner.classes_\n"
        "    def predict(self, X):\n"
        f"        os.chdir({str(elsewhere)!r})\n        return self.inner.predict(X)\n"
        "    def predict_proba(self, X):\n"
        f"        os.chdir({str(elsewhere)!r})\n        return self.inner.predict_proba(X)\n\n"
        "def build():\n    path = 'model.skops'\n"
        "    return Wander(sio.load(path, trusted=sio.get_untrusted_types(file=path)))\n")
    binary_workspace.policy(BINARY_POLICY.replace("path: model.skops", "factory: wander.py:build"))
    result = run("check", "policy.yaml")
    assert result.exit_code == 0, result.output
    assert (root / "reports/tiny.json").exists()
    assert not (elsewhere / "reports").exists()


def test_check_never_replaces_the_step_summary(binary_workspace, monkeypatch):
    summary = binary_workspace.root / "gs.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run("check", "policy.yaml", "--report", "gs.md")
    assert result.exit_code == 2 and "step summary" in result.output
    assert summary.read_text() == "# earlier step\n"


def test_a_fifo_policy_that_does_not_load_is_refused_without_hanging(binary_workspace):
    fifo = binary_workspace.root / "pipe.yaml"
    os.mkfifo(fifo)
    result = run("check", "pipe.yaml")
    assert result.exit_code == 2 and "not a regular file" in result.output


def test_several_policies_never_replace_the_step_summary(binary_workspace, monkeypatch):
    root = binary_workspace.root
    (root / "other.yaml").write_text((root / "policy.yaml").read_text()
                                     .replace("name: tiny", "name: other"))
    summary = root / "gs.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run("check", "policy.yaml", "other.yaml", "--json", "gs.md")
    assert result.exit_code == 2 and "step summary" in result.output
    assert summary.read_text() == "# earlier step\n"


def test_several_policies_clear_the_outputs_of_one_that_no_longer_loads(binary_workspace):
    root = binary_workspace.root
    assert run("check", "policy.yaml").exit_code == 0
    (root / "other.yaml").write_text((root / "policy.yaml").read_text()
                                     .replace("name: tiny", "name: other"))
    binary_workspace.policy(BINARY_POLICY.replace("min: 0.7", "min: .nan"))
    result = run("check", "policy.yaml", "other.yaml")
    assert result.exit_code == 2
    assert not (root / "reports/tiny.json").exists()
    assert (root / "reports/other.json").exists()


def test_folder_discovery_finds_any_policy_and_never_opens_a_fifo(binary_workspace):
    root = binary_workspace.root
    folder = root / "policies"
    folder.mkdir()
    text = (root / "policy.yaml").read_text()
    (folder / "late.yaml").write_text("# note\n" * 300 + text)  # `mlcheck:` after 300 lines
    (folder / "bom.yaml").write_text("\ufeff" + text.replace("name: tiny", "name: bom"))
    os.mkfifo(folder / "pipe.yaml")
    result = run("validate", "policies")
    assert result.exit_code == 0, result.output
    assert "late.yaml" in result.output and "bom.yaml" in result.output
