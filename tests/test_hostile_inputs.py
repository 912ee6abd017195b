"""Hostile files: none may hang mlcheck, exhaust its memory or be mistaken for a pass.

Threat model: a path that is not a regular file (a FIFO, /dev/zero, a directory), a file
far larger than its kind ever is (a 24 MB policy, a gzip bomb, a record that expands
without bound), a record from someone else that names files outside the folder being
verified, a record without a digest or with a damaged signature, and data whose CSV
header repeats a column. Limits are lowered through their environment variables so the
files stay tiny."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlcheck.cli import app
from mlcheck.errors import InputError, MlcheckError
from mlcheck.integrity import RECORD_SCRIPT_ID, RECORD_SCRIPT_TYPE, seal, verify
from mlcheck.policy import load_policy
from mlcheck.subject import load_subject, read_dataset

from .conftest import BINARY_POLICY

runner = CliRunner()
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1 and "Traceback" not in text


# ------------------------------------------------------------- only regular files


@needs_fifo
def test_a_fifo_is_refused_as_policy_dataset_and_record_without_hanging(binary_workspace):
    root = binary_workspace.root
    os.mkfifo(root / "pipe.yaml")
    done = run("validate", "pipe.yaml")
    assert done.exit_code == 2 and "pipe.yaml" in done.stderr
    assert "not a regular file" in done.stderr and one_line(done.stderr)

    (root / "eval.csv").unlink()
    os.mkfifo(root / "eval.csv")
    with pytest.raises(InputError, match=r"dataset 'eval'.*eval\.csv.*not a regular file"):
        load_subject(load_policy("policy.yaml"))

    os.mkfifo(root / "r.json")
    for command in (["verify", "r.json"], ["report", "r.json", "-o", "out.html"],
                    ["profile", "eval.csv", "-o", "p.json"]):
        done = run(*command)
        assert done.exit_code == 2, command
        assert "not a regular file" in done.stderr and one_line(done.stderr), command
    assert not (root / "out.html").exists() and not (root / "p.json").exists()


def test_a_directory_or_a_device_is_refused(binary_workspace):
    root = binary_workspace.root
    (root / "dir.yaml").mkdir()
    done = run("validate", "dir.yaml")  # a folder on the command line holds policies
    assert done.exit_code == 2 and "no policy in this folder" in done.stderr
    with pytest.raises(MlcheckError, match=r"dir\.yaml is a directory, not a regular file"):
        load_policy(root / "dir.yaml")
    if Path("/dev/zero").exists():
        binary_workspace.policy(BINARY_POLICY.replace("eval: eval.csv",
                                                      "eval: {path: /dev/zero, format: csv}"))
        with pytest.raises(InputError, match=r"/dev/zero is a character device"):
            load_subject(load_policy("policy.yaml"))
        done = run("verify", "/dev/zero")
        assert done.exit_code == 2 and "character device" in done.stderr


# ------------------------------------------------------------------- size limits


def test_a_policy_over_its_size_limit_is_refused_before_it_is_parsed(workspace, monkeypatch):
    monkeypatch.setenv("MLCHECK_MAX_POLICY_BYTES", "300")
    workspace.policy("mlcheck: 1\nname: big\n" + "# padding\n" * 100)
    done = run("validate", "policy.yaml")
    assert done.exit_code == 2 and one_line(done.stderr)
    assert "policy.yaml" in done.stderr and "MLCHECK_MAX_POLICY_BYTES" in done.stderr
    assert "300" in done.stderr
    # a base it extends is held to the same limit
    workspace.policy("mlcheck: 1\nname: child\nextends: policy.yaml\n", "child.yaml")
    done = run("validate", "child.yaml")
    assert done.exit_code == 2 and "MLCHECK_MAX_POLICY_BYTES" in done.stderr


def test_a_bad_limit_setting_is_named(workspace, monkeypatch):
    monkeypatch.setenv("MLCHECK_MAX_POLICY_BYTES", "lots")
    workspace.policy("mlcheck: 1\n")
    done = run("validate", "policy.yaml")
    assert done.exit_code == 2 and "MLCHECK_MAX_POLICY_BYTES" in done.stderr
    assert "'lots'" in done.stderr


def write_gz(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode(), mtime=0))
    return path


def test_a_gzip_bomb_is_refused_at_the_decompressed_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCHECK_MAX_DATASET_BYTES", "5000")
    bomb = write_gz(tmp_path / "bomb.csv.gz", "a,b\n" + "0,0\n" * 100_000)  # 400 kB inside
    assert bomb.stat().st_size < 5000
    with pytest.raises(InputError) as caught:
        read_dataset(bomb, name="eval")
    message = str(caught.value)
    assert "dataset 'eval'" in message and "bomb.csv.gz" in message
    assert "decompress" in message and "MLCHECK_MAX_DATASET_BYTES" in message
    # under the limit it reads, and the fingerprint is of the compressed file
    small = write_gz(tmp_path / "small.csv.gz", "a,b\n1,2\n3,4\n")
    assert read_dataset(small, name="eval").shape == (2, 2)


def test_a_plain_dataset_over_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCHECK_MAX_DATASET_BYTES", "100")
    path = tmp_path / "eval.csv"
    path.write_text("a,b\n" + "1,2\n" * 100)
    with pytest.raises(InputError, match="MLCHECK_MAX_DATASET_BYTES"):
        read_dataset(path, name="eval")


def test_rows_are_capped_for_csv_and_parquet(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCHECK_MAX_DATASET_ROWS", "5")
    frame = pd.DataFrame({"a": range(10), "b": range(10)})
    frame.to_csv(tmp_path / "eval.csv", index=False)
    frame.to_parquet(tmp_path / "eval.parquet", index=False)
    for name in ("eval.csv", "eval.parquet"):
        with pytest.raises(InputError, match=r"rows: the limit for datasets is 5 rows"):
            read_dataset(tmp_path / name, name="eval")
    monkeypatch.setenv("MLCHECK_MAX_DATASET_ROWS", "10")
    assert read_dataset(tmp_path / "eval.parquet").shape == (10, 2)
    assert read_dataset(tmp_path / "eval.csv").shape == (10, 2)


def test_running_out_of_memory_is_an_input_error(tmp_path, monkeypatch):
    path = tmp_path / "eval.csv"
    path.write_text("a,b\n1,2\n")

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(pd, "read_csv", exhausted)
    with pytest.raises(InputError) as caught:
        read_dataset(path, name="eval")
    assert "dataset 'eval'" in str(caught.value) and "memory" in str(caught.value)
    assert "MLCHECK_MAX_DATASET_BYTES" in str(caught.value)


# ------------------------------------------------------------ duplicate columns


@pytest.mark.parametrize("name", ["eval.csv", "eval.csv.gz"])
def test_a_repeated_csv_column_is_an_input_error(tmp_path, name):
    text = "income,age,income\n1,2,3\n"
    path = tmp_path / name
    write_gz(path, text) if name.endswith(".gz") else path.write_text(text)
    with pytest.raises(InputError, match=r"dataset 'eval'.*column 'income' appears 2 times"):
        read_dataset(path, name="eval")


def test_a_real_column_named_like_a_renamed_one_is_kept(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text("income,income.1,x\n1,2,3\n")
    assert list(read_dataset(path, name="eval").columns) == ["income", "income.1", "x"]


def test_a_repeated_parquet_column_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([pa.array([1]), pa.array([2])], names=["income", "income"]),
                   tmp_path / "eval.parquet")
    with pytest.raises(InputError, match=r"column 'income' appears 2 times"):
        read_dataset(tmp_path / "eval.parquet", name="eval")


# ------------------------------------------------------- verify: artifacts and pages


def sealed_record(datasets: dict[str, dict]) -> dict:
    return seal({"record_version": 1, "kind": "run", "policy": {"sources": []},
                 "subject": {"model": None, "baseline": None, "datasets": datasets}})


def test_verify_artifacts_reads_only_regular_files_inside_the_folder(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("outside")
    (root / "eval.csv").write_text("a\n1\n")
    (root / "link.csv").symlink_to(tmp_path / "secret.txt")
    (root / "folder").mkdir()
    outside = hashlib.sha256(b"outside").hexdigest()
    entries = {"ok": {"path": "eval.csv", "sha256": hashlib.sha256(b"a\n1\n").hexdigest()},
               "up": {"path": "../secret.txt", "sha256": outside},
               "absolute": {"path": str(tmp_path / "secret.txt"), "sha256": outside},
               "link": {"path": "link.csv", "sha256": outside},
               "folder": {"path": "folder", "sha256": outside}}
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "pipe.csv")
        entries["pipe"] = {"path": "pipe.csv", "sha256": outside}
    record = tmp_path / "r.json"
    record.write_text(json.dumps(sealed_record(entries)))
    result = verify(record, artifacts=root)
    assert "dataset ok eval.csv: SHA-256 matches" in result.checked
    assert result.checked == ["digest sha256 " + json.loads(record.read_text())[
        "integrity"]["digest"], "dataset ok eval.csv: SHA-256 matches"]
    assert not result.problems  # nothing was shown to differ: it was not read at all
    missing = {line.split(" ")[1]: line for line in result.missing}
    assert "leads outside" in missing["up"] and "leads outside" in missing["link"]
    assert "absolute path" in missing["absolute"]
    assert "folder: is a directory, not a regular file" in missing["folder"]
    if hasattr(os, "mkfifo"):
        assert "pipe.csv: is a named pipe" in missing["pipe"]
    done = run("verify", record, "--artifacts", root)
    assert done.exit_code == 1 and "UNVERIFIED" in done.output and "MISSING" in done.output


def page_with(payload: bytes) -> str:
    data = base64.b64encode(gzip.compress(payload, mtime=0)).decode()
    return (f'<html><script type="{RECORD_SCRIPT_TYPE}" id="{RECORD_SCRIPT_ID}">{data}'
            "</script></html>")


def test_an_embedded_record_is_decompressed_with_a_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCHECK_MAX_RECORD_BYTES", "2000")
    (tmp_path / "bomb.html").write_text(page_with(b"{" + b" " * 100_000 + b"}"))
    monkeypatch.chdir(tmp_path)
    for command in (["verify", "bomb.html"], ["report", "bomb.html", "-f", "markdown"]):
        done = run(*command)
        assert done.exit_code == 2, command
        assert "MLCHECK_MAX_RECORD_BYTES" in done.stderr and one_line(done.stderr), command
    (tmp_path / "bomb.html").write_text(page_with(b"{}").replace("H4sI", "AAAA", 1))
    done = run("verify", "bomb.html")  # not gzip at all
    assert done.exit_code == 2 and "embedded in this HTML file is damaged" in done.stderr


def test_a_record_over_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCHECK_MAX_RECORD_BYTES", "100")
    (tmp_path / "r.json").write_text(json.dumps(sealed_record({"x": {"path": "a" * 200}})))
    done = run("verify", tmp_path / "r.json")
    assert done.exit_code == 2 and "MLCHECK_MAX_RECORD_BYTES" in done.stderr


# ---------------------------------------------------------------- honest integrity


def test_an_unsigned_digest_is_described_honestly_and_can_be_required(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(sealed_record({})))
    done = run("verify", path)
    assert done.exit_code == 0 and "INTACT" in done.output
    assert "accidental" in done.output and "anyone can recompute" in done.output
    assert run("keygen", "-o", tmp_path / "alice").exit_code == 0
    done = run("verify", path, "--require-signature", "--public-key", tmp_path / "alice.pub")
    assert done.exit_code == 1 and "not signed" in done.output


def test_a_signature_can_be_required(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("keygen", "-o", "alice").exit_code == 0
    assert run("keygen", "-o", "mallory").exit_code == 0
    record = seal({"record_version": 1, "kind": "run"}, Path("alice"), "Alice <a@example.org>")
    Path("signed.json").write_text(json.dumps(record))
    done = run("verify", "signed.json", "--require-signature", "--public-key", "alice.pub")
    assert done.exit_code == 0 and "signature by Alice" in done.output
    done = run("verify", "signed.json", "--require-signature", "--public-key", "mallory.pub")
    assert done.exit_code == 1


def test_requiring_a_signature_without_a_key_is_refused(tmp_path, monkeypatch):
    """Any key can sign: without --public-key a required signature would prove nothing."""
    monkeypatch.chdir(tmp_path)
    assert run("keygen", "-o", "mallory").exit_code == 0
    record = seal({"record_version": 1, "kind": "run"}, Path("mallory"), "CISO <c@example.org>")
    Path("forged.json").write_text(json.dumps(record))
    done = run("verify", "forged.json", "--require-signature")
    assert done.exit_code == 2 and "--public-key" in done.output


def test_a_record_without_a_digest_is_unsealed_not_altered(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"record_version": 1, "kind": "run"}))
    done = run("verify", path)
    assert done.exit_code == 1
    assert "UNSEALED" in done.output and "ALTERED" not in done.output
    assert "mismatch" not in done.output.lower()


@pytest.mark.parametrize("damage", [
    lambda s: s.pop("public_key"),
    lambda s: s.pop("value"),
    lambda s: s.update(public_key="not base64!!"),
    lambda s: s.update(value=12),
    lambda s: s.update(signer=["a"]),
    lambda s: s.update(public_key=base64.b64encode(b"short").decode()),
])
def test_a_malformed_signature_is_one_clear_line(tmp_path, monkeypatch, damage):
    monkeypatch.chdir(tmp_path)
    assert run("keygen", "-o", "alice").exit_code == 0
    record = seal({"record_version": 1, "kind": "run"}, Path("alice"), "Alice <a@example.org>")
    damage(record["integrity"]["signature"])
    Path("r.json").write_text(json.dumps(record))
    done = run("verify", "r.json")
    assert done.exit_code == 1, done.output
    assert "signature block is damaged" in done.output
    assert "KeyError" not in done.output + done.stderr and "Traceback" not in done.output


def test_a_malformed_public_key_file_is_named(tmp_path):
    key = tmp_path / "huge.pub"
    key.write_bytes(b"x" * 100_000)
    with pytest.raises(MlcheckError, match=r"huge\.pub"):
        from mlcheck.integrity import load_public_key

        load_public_key(key)


# ------------------------------------------------------------------ clean messages


@pytest.mark.parametrize(("version", "expected"), [
    ("2", "unsupported policy language version 2"),
    ("'1'", "write `mlcheck: 1`"),
    ("1.5", "unsupported policy language version 1.5"),
])
def test_an_unsupported_version_is_one_line(workspace, version, expected):
    workspace.policy(f"mlcheck: {version}\nname: x\ndata: {{datasets: {{}}}}\n")
    done = run("validate", "policy.yaml")
    assert done.exit_code == 2 and expected in done.stderr
    assert one_line(done.stderr) and "allowed: \n" not in done.stderr + "\n"
    assert "policy.yaml:1" in done.stderr


def test_no_message_lists_nothing_as_allowed():
    from pydantic import BaseModel, ValidationError

    from mlcheck.policy import _explain

    class Numbered(BaseModel):
        level: __import__("typing").Literal[1, 2]

    with pytest.raises(ValidationError) as caught:
        Numbered(level=3)
    [(message, _)] = _explain(caught.value, {"level": 3}, {}, Path("p.yaml"))
    assert message.endswith("allowed: 1, 2"), message


def test_the_version_check_runs_before_other_problems(workspace):
    workspace.policy("mlcheck: 2\nname: x\nsomething_new: {a: 1}\n")
    done = run("validate", "policy.yaml")
    assert done.exit_code == 2 and one_line(done.stderr)
    assert "something_new" not in done.stderr



def test_a_model_that_is_a_fifo_or_too_large_is_refused(binary_workspace, monkeypatch):
    import os

    from typer.testing import CliRunner

    from mlcheck.cli import app

    root = binary_workspace.root
    monkeypatch.setenv("MLCHECK_MAX_MODEL_BYTES", "100")
    result = CliRunner().invoke(app, ["check", "policy.yaml"])
    assert result.exit_code == 2 and "MLCHECK_MAX_MODEL_BYTES" in result.output
    monkeypatch.delenv("MLCHECK_MAX_MODEL_BYTES")
    (root / "model.skops").unlink()
    os.mkfifo(root / "model.skops")
    result = CliRunner().invoke(app, ["check", "policy.yaml"])
    assert result.exit_code == 2 and "not a regular file" in result.output


def test_a_gzip_bomb_is_refused_by_its_expansion_ratio(workspace, monkeypatch):
    import gzip

    from mlcheck.errors import InputError
    from mlcheck.subject import read_dataset

    monkeypatch.setattr("mlcheck.subject.GZIP_FLOOR", 1 << 16)
    path = workspace.root / "bomb.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n" + b"0,0\n" * 500_000))
    with pytest.raises(InputError) as caught:
        read_dataset(path, name="eval")
    assert "MLCHECK_MAX_GZIP_RATIO" in str(caught.value)
