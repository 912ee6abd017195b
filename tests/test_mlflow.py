"""MLflow registry models in, verdicts and promotions out, against a real MLflow tracking
server (`mlflow server` with a SQLite store and local artifacts, on 127.0.0.1): nothing
here is mocked. A failure mid-promotion is a real outage: a proxy in front of the server
goes dark when it sees the chosen request.

Without MLflow these tests skip (visibly); with MLCHECK_REQUIRE_MLFLOW=1 (set by .ci/run)
they run and fail instead. The tests that need no MLflow (policy keys, the message when
it is missing, plain policies never importing it) always run."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlcheck.cli import app
from mlcheck.errors import InputError, PolicyError
from mlcheck.policy import load_policy

from .conftest import BINARY_POLICY, EXAMPLES, binary_frame, fitted_logistic

HAVE_MLFLOW = importlib.util.find_spec("mlflow") is not None
needs_mlflow = pytest.mark.skipif(
    not HAVE_MLFLOW and not os.environ.get("MLCHECK_REQUIRE_MLFLOW"),
    reason='MLflow is not installed (pip install "mlcheck-gate[mlflow]"; .ci/run installs '
           "it and sets MLCHECK_REQUIRE_MLFLOW=1)")
runner = CliRunner()
ADULT = EXAMPLES / "adult"
TRUSTED = "trusted_types: [numpy.dtype]"  # what skops asks of these pipelines


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------ the server and models


class Server:
    """`mlflow server` on 127.0.0.1 and a free port, in its own process group."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job workers: not needed here
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server",
                 "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                 "--artifacts-destination", str(root / "artifacts"),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
                start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the group this fixture started
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    started = Server(tmp_path_factory.mktemp("mlflow"))
    yield started
    started.stop()


@pytest.fixture(scope="session")
def adult(tmp_path_factory):
    """Two fitted pipelines (the example's logistic-regression champion, on different
    rows) and a small evaluation file, from the bundled Adult data."""
    spec = importlib.util.spec_from_file_location("adult_train", ADULT / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    rows = pd.read_csv(ADULT / "data" / "adult-train.csv.gz")
    models = []
    for size, seed in ((1500, 1), (3000, 2)):
        part = rows.sample(size, random_state=seed)
        models.append(train.champion().fit(part.drop(columns=["income"]), part["income"]))
    folder = tmp_path_factory.mktemp("adult")
    evaluation = pd.read_csv(ADULT / "data" / "adult-test.csv.gz").sample(1500, random_state=0)
    evaluation.to_csv(folder / "eval.csv", index=False)
    return {"champion": models[0], "candidate": models[1], "eval": folder / "eval.csv"}


class Registry:
    """Registers models on the test server, and reads it back with MlflowClient."""

    def __init__(self, server: Server) -> None:
        from mlflow import MlflowClient

        self.uri = server.uri
        self.client = MlflowClient(tracking_uri=server.uri)

    def register(self, name: str, model: object, alias: str | None = None, *,
                 fmt: str = "skops", pyfunc: bool = False) -> str:
        """Log `model` in a run, register it under `name`; returns the version."""
        import mlflow

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", self.uri)
            with mlflow.start_run():
                if pyfunc:
                    info = mlflow.pyfunc.log_model(name="model", python_model=model,
                                                   registered_model_name=name,
                                                   pip_requirements=[])
                else:
                    info = mlflow.sklearn.log_model(model, name="model",
                                                    registered_model_name=name,
                                                    serialization_format=fmt,
                                                    skops_trusted_types=["numpy.dtype"]
                                                    if fmt == "skops" else None,
                                                    pip_requirements=[])
        version = str(info.registered_model_version)
        if alias:
            self.client.set_registered_model_alias(name, alias, version)
        return version

    def alias(self, name: str, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except Exception:
            return None

    def tags(self, name: str, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(name, version).tags)


@pytest.fixture(scope="session")
def registry(server):
    return Registry(server)


@pytest.fixture
def gate(registry, adult, tmp_path, monkeypatch):
    """A registered model `name` with the champion (@champion, version 1) and the
    candidate (@challenger, version 2), and a policy gating @challenger against
    @champion; MLFLOW_TRACKING_URI points at the server."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)

    def make(name: str, minimum: float = 0.7, candidate: object = None, extra: str = "",
             baseline: bool = True) -> Path:
        registry.register(name, adult["champion"], "champion")
        registry.register(name, candidate or adult["candidate"], "challenger",
                          pyfunc=candidate is not None)
        return write_policy(tmp_path, f"models:/{name}@challenger", adult["eval"],
                            f"accuracy, min: {minimum}"
                            + (", baseline: {max_drop: 0.05}" if baseline else ""),
                            baseline=f"models:/{name}@champion" if baseline else None,
                            extra=f"  {TRUSTED}\n{extra}")

    return make


def write_policy(folder: Path, uri: str, data: Path, rule: str = "accuracy, min: 0.7", *,
                 baseline: str | None = None, extra: str = f"  {TRUSTED}\n") -> Path:
    path = folder / "policy.yaml"
    path.write_text(
        "mlcheck: 1\nname: adult-mlflow\n"
        f"model:\n  uri: {uri}\n  task: binary_classification\n{extra}"
        + (f"  baseline: {{uri: '{baseline}', {TRUSTED}}}\n" if baseline else "")
        + f"data:\n  target: income\n  positive_label: '>50K'\n  datasets: {{eval: {data}}}\n"
        "statistics: {resamples: 200}\n"
        f"performance:\n  rules:\n    - {{metric: {rule}}}\n")
    return path


def record_of(folder: Path) -> dict:
    return json.loads((folder / "reports" / "adult-mlflow.json").read_text())


# ------------------------------------------------------------------------------ promotion


@needs_mlflow
def test_a_pass_moves_the_alias_tags_the_version_and_logs_the_evidence(gate, registry,
                                                                      tmp_path):
    policy = gate("adult-pass")
    result = run("check", policy, "--promote", "champion")
    assert result.exit_code == 0, result.output
    assert "promoted: @champion now names adult-pass version 2 (was version 1)" in result.output
    assert registry.alias("adult-pass", "champion") == "2"

    record = record_of(tmp_path)
    tags = registry.tags("adult-pass", "2")
    assert tags["mlcheck.verdict"] == "passed"
    assert tags["mlcheck.promotion"] == "promoted: @champion (was version 1)"
    assert tags["mlcheck.record_sha256"] == record["integrity"]["digest"]
    assert tags["mlcheck.policy_sha256"] == record["policy"]["sha256"]
    assert tags["mlcheck.version"] == record["mlcheck_version"]
    assert tags["mlcheck.model_sha256"] == record["subject"]["model"]["sha256"]
    assert tags["mlcheck.counts"] == "2 pass"

    # the auditor's path: version tags -> run -> the report, intact
    run_id = tags["mlcheck.run_id"]
    evidence = registry.client.get_run(run_id)
    assert evidence.data.tags["mlcheck.verdict"] == "passed"
    assert evidence.info.status == "FINISHED"
    names = {a.path for a in registry.client.list_artifacts(run_id, "mlcheck")}
    assert names == {"mlcheck/record.json", "mlcheck/report.html", "mlcheck/report.sarif"}
    import mlflow

    report = mlflow.artifacts.download_artifacts(tags["mlcheck.report"],
                                                 dst_path=str(tmp_path / "audit"))
    assert Path(report).read_bytes() == (tmp_path / "reports/adult-mlflow.html").read_bytes()
    assert run("verify", report).exit_code == 0

    # provenance: what was gated, as resolved when it was loaded
    candidate, champion = record["subject"]["model"], record["subject"]["baseline"]
    version = registry.client.get_model_version("adult-pass", "2")
    assert candidate["uri"] == "models:/adult-pass@challenger"
    assert candidate["mlflow"]["registered_model"] == "adult-pass"
    assert candidate["mlflow"]["version"] == "2"
    assert candidate["mlflow"]["alias"] == "challenger"
    assert candidate["mlflow"]["run_id"] == version.run_id
    assert candidate["mlflow"]["model_id"].startswith("m-")
    assert candidate["mlflow"]["source"] == version.source
    assert candidate["mlflow"]["mlflow_version"] == mlflow.__version__
    assert candidate["mlflow"]["flavor"] == "sklearn"
    assert candidate["mlflow"]["serialization_format"] == "skops"
    assert candidate["class"].startswith("Pipeline(")  # the estimator itself, not a pyfunc
    assert champion["mlflow"]["version"] == "1" and champion["mlflow"]["alias"] == "champion"
    assert champion["sha256"] != candidate["sha256"]
    assert "path" not in candidate  # nothing for `verify --artifacts` to look for on disk


@needs_mlflow
def test_the_digest_is_the_same_for_every_uri_naming_the_same_model(registry, adult,
                                                                     tmp_path, monkeypatch):
    from mlcheck.subject import load_subject

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the policy key says where
    version = registry.register("adult-digest", adult["candidate"], "challenger")
    found = registry.client.get_model_version("adult-digest", version)
    model_id = found.source.removeprefix("models:/")
    digests = set()
    for uri in ("models:/adult-digest@challenger", f"models:/adult-digest/{version}",
                f"models:/{model_id}", f"runs:/{found.run_id}/model"):
        policy = write_policy(tmp_path, uri, adult["eval"],
                              extra=f"  tracking_uri: {registry.uri}\n  {TRUSTED}\n")
        described = load_subject(load_policy(policy)).model.describe()
        digests.add(described["sha256"])
        assert described["mlflow"]["model_id"] == model_id
        assert described["mlflow"]["run_id"] == found.run_id
    assert len(digests) == 1

    # the skops types MLflow recorded in the model's own MLmodel file do not count
    policy = write_policy(tmp_path, f"models:/adult-digest/{version}", adult["eval"],
                          extra=f"  tracking_uri: {registry.uri}\n")
    with pytest.raises(InputError) as refused:
        load_subject(load_policy(policy))
    assert (f"candidate model models:/adult-digest/{version} contains types skops does not "
            "trust by default: numpy.dtype") in str(refused.value)


@needs_mlflow
def test_a_block_moves_no_alias(gate, registry, tmp_path):
    policy = gate("adult-block", minimum=0.99)
    result = run("check", policy, "--promote", "champion")
    assert result.exit_code == 1, result.output
    assert "BLOCKED" in result.output and "not promoted: the gate blocked" in result.output
    assert registry.alias("adult-block", "champion") == "1"
    tags = registry.tags("adult-block", "2")
    assert tags["mlcheck.verdict"] == "blocked"
    assert tags["mlcheck.promotion"] == "none: the gate blocked"
    assert tags["mlcheck.record_sha256"] == record_of(tmp_path)["integrity"]["digest"]
    assert registry.client.get_run(tags["mlcheck.run_id"]).data.tags["mlcheck.verdict"] \
        == "blocked"


def alias_mover(tracking_uri: str, name: str, to_version: str, wrapped: object):
    """A pyfunc model whose predict moves @challenger to another version, once: a retrain
    landing while the gate runs."""
    import mlflow

    class MovesTheAlias(mlflow.pyfunc.PythonModel):
        def __init__(self) -> None:
            self.model, self.moved = wrapped, False

        def predict(self, context, model_input: pd.DataFrame, params=None):
            if not self.moved:
                from mlflow import MlflowClient

                MlflowClient(tracking_uri).set_registered_model_alias(name, "challenger",
                                                                      to_version)
                self.moved = True
            return self.model.predict(model_input)

    return MovesTheAlias()


@needs_mlflow
def test_a_candidate_alias_moved_during_the_run_is_refused(gate, registry, adult):
    name = "adult-stale"
    retrain = "3"  # registered below, after the two versions `gate` registers
    policy = gate(name, candidate=alias_mover(registry.uri, name, retrain,
                                              adult["candidate"]), baseline=False)
    assert registry.register(name, adult["candidate"]) == retrain
    result = run("check", policy, "--promote", "champion", "--trust-model")
    assert result.exit_code == 1, result.output
    assert "PASSED" in result.output
    assert ("not promoted: models:/adult-stale@challenger now names version 3, not the "
            "gated version 2") in result.output
    assert registry.alias(name, "champion") == "1"
    tags = registry.tags(name, "2")
    assert tags["mlcheck.verdict"] == "passed"
    assert tags["mlcheck.promotion"] == "refused: @challenger names version 3, not this one"


@needs_mlflow
def test_a_pyfunc_model_needs_trust_and_says_what_it_cannot_do(gate, registry, adult,
                                                               tmp_path):
    import mlflow

    class Wrapper(mlflow.pyfunc.PythonModel):
        def __init__(self, model):
            self.model = model

        def predict(self, context, model_input: pd.DataFrame, params=None):
            return self.model.predict(model_input)

    policy = gate("adult-pyfunc", candidate=Wrapper(adult["candidate"]), baseline=False)
    refused = run("check", policy)
    assert refused.exit_code == 2
    assert "python_function flavor" in refused.output and "--trust-model" in refused.output
    policy.write_text(policy.read_text() + "    - {metric: roc_auc, min: 0.7}\n")
    result = run("check", policy, "--trust-model")
    assert result.exit_code == 1, result.output
    checks = {c["id"]: c for c in record_of(tmp_path)["checks"]}
    assert checks["performance/accuracy"]["verdict"] == "pass"
    assert checks["performance/roc_auc"]["verdict"] == "error"
    assert "has no `predict_proba` method" in checks["performance/roc_auc"]["message"]
    assert "python_function" in record_of(tmp_path)["subject"]["model"]["loaded_with"]


class TouchOnUnpickle:
    """Unpickling this creates a marker file: proof that it was (or was not) unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def predict(self, frame):  # MLflow adds a pyfunc flavor only to what can predict
        return frame

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@needs_mlflow
def test_a_pickled_model_is_refused_without_trust_and_never_unpickled(registry, adult,
                                                                      tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    marker = tmp_path / "unpickled"
    trap = registry.register("adult-trap", TouchOnUnpickle(marker), fmt="cloudpickle")
    marker.unlink(missing_ok=True)  # only what mlcheck does from here on counts
    refused = run("check", write_policy(tmp_path, f"models:/adult-trap/{trap}",
                                        adult["eval"]))
    assert refused.exit_code == 2
    assert "saved with cloudpickle" in refused.output and "--trust-model" in refused.output
    assert not marker.exists()
    assert not (tmp_path / "reports" / "adult-mlflow.json").exists()

    version = registry.register("adult-pickle", adult["candidate"], fmt="cloudpickle")
    policy = write_policy(tmp_path, f"models:/adult-pickle/{version}", adult["eval"])
    trusted = run("check", policy, "--trust-model")
    assert trusted.exit_code == 0, trusted.output
    described = record_of(tmp_path)["subject"]["model"]
    assert "cloudpickle" in described["loaded_with"] and "--trust-model" in described["loaded_with"]
    pinned = write_policy(tmp_path, f"models:/adult-pickle/{version}", adult["eval"],
                          extra=f"  {TRUSTED}\n  sha256: '{described['sha256']}'\n")
    assert run("check", pinned).exit_code == 0
    wrong = write_policy(tmp_path, f"models:/adult-pickle/{version}", adult["eval"],
                         extra=f"  {TRUSTED}\n  sha256: '{'f' * 64}'\n")
    mismatch = run("check", wrong)
    assert mismatch.exit_code == 2 and "SHA-256 mismatch" in mismatch.output


@needs_mlflow
def test_an_unreachable_server_is_exit_2(adult, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    port = free_port()  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    result = run("check", write_policy(tmp_path, "models:/adult@challenger", adult["eval"]),
                 "--promote", "champion")
    assert result.exit_code == 2, result.output
    assert f"candidate model models:/adult@challenger (MLflow at http://127.0.0.1:{port})" \
        in result.output
    assert "cannot resolve alias @challenger" in result.output
    assert not (tmp_path / "reports").exists()


@needs_mlflow
def test_promote_needs_a_registered_candidate_version(adult, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    policy = write_policy(tmp_path, "models:/m-0123456789abcdef", adult["eval"])
    result = run("check", policy, "--promote", "champion")
    assert result.exit_code == 2
    assert "the candidate must be a registered model version" in result.output
    bad = run("check", write_policy(tmp_path, "models:/adult@challenger", adult["eval"]),
              "--promote", "latest")
    assert bad.exit_code == 2 and "not an alias MLflow accepts" in bad.output


# --------------------------------------------------------------- failures mid-promotion


class FaultyProxy:
    """A TCP proxy in front of the server that goes dark when a request line starts with
    `fail_on`: that request never arrives, and every connection after it is refused."""

    def __init__(self, upstream: int, fail_on: bytes) -> None:
        self.upstream, self.fail_on = upstream, fail_on
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.uri = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.dark = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.dark.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            self.sockets += [conn, upstream]
            for source, target, watch in ((conn, upstream, True), (upstream, conn, False)):
                threading.Thread(target=self._pipe, args=(source, target, watch),
                                 daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, watch: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                if watch and data.startswith(self.fail_on):
                    self.close()
                    return
                target.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.dark.set()
        for sock in (self.listener, *self.sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@needs_mlflow
@pytest.mark.parametrize("fail_on", [b"POST /api/2.0/mlflow/model-versions/set-tag ",
                                     b"POST /api/2.0/mlflow/registered-models/alias "],
                         ids=["first-tag", "alias-move"])
def test_a_registry_outage_mid_promotion_never_leaves_an_unvetted_alias(
        gate, registry, server, monkeypatch, fail_on):
    name = f"adult-outage-{fail_on.split(b'/')[-1].split()[0].decode()}"
    policy = gate(name)
    proxy = FaultyProxy(server.port, fail_on)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        result = run("check", policy, "--promote", "champion")
    finally:
        proxy.close()
    assert proxy.dark.is_set(), "the outage never happened"
    assert result.exit_code == 2, result.output
    assert "PASSED" in result.output and "registry error" in result.output
    assert registry.alias(name, "champion") == "1"  # the vetted champion stays
    tags = registry.tags(name, "2")
    assert not tags.get("mlcheck.promotion", "").startswith("promoted")
    if b"alias" in fail_on:  # tagged before the move: passed, promotion still pending
        assert tags["mlcheck.verdict"] == "passed"
        assert tags["mlcheck.promotion"] == "pending: @champion"
        assert "so @champion names either the old version or this vetted one" in result.output
    else:
        assert "mlcheck.verdict" not in tags


# ------------------------------------------------------------ without MLflow, and policies


def test_a_uri_policy_without_mlflow_says_what_to_install(tmp_path):
    frame = binary_frame()
    frame.to_csv(tmp_path / "eval.csv", index=False)
    (tmp_path / "policy.yaml").write_text(BINARY_POLICY.replace(
        "path: model.skops", "uri: models:/tiny@challenger"))
    code = ("import sys\nsys.modules['mlflow'] = None  # as if it were not installed\n"
            "from mlcheck.cli import app\napp(['check', 'policy.yaml'])")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert 'needs MLflow, which is not installed: pip install "mlcheck-gate[mlflow]"' \
        in done.stderr
    assert "policy.yaml:5:3: model.uri:" in done.stderr
    assert not (tmp_path / "reports").exists()


def test_a_plain_policy_never_imports_mlflow(tmp_path):
    import skops.io as sio

    frame = binary_frame()
    frame.to_csv(tmp_path / "eval.csv", index=False)
    sio.dump(fitted_logistic(frame), tmp_path / "model.skops")
    (tmp_path / "policy.yaml").write_text(BINARY_POLICY)
    code = ("import sys\nfrom mlcheck.cli import app\ntry:\n    app(['check', 'policy.yaml', "
            "'-q'])\nexcept SystemExit as done:\n    print('exit', done.code)\n"
            "print('mlflow imported:', 'mlflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert "exit 0" in done.stdout, done.stdout + done.stderr
    assert "mlflow imported: False" in done.stdout


@pytest.mark.parametrize("uri", ["models:/credit@challenger", "models:/credit/3",
                                 "models:/m-0123456789abcdef", "runs:/0a1b2c/model"])
def test_model_uri_forms_are_accepted(workspace, uri):
    policy = load_policy(workspace.policy(BINARY_POLICY.replace(
        "path: model.skops", f"uri: '{uri}'\n  {TRUSTED}\n  sha256: {'a' * 64}")
        .replace("  task:", f"  baseline: '{uri}'\n  task:")))
    assert policy.model.uri == uri and policy.model.baseline.uri == uri
    assert policy.model.baseline.path is None


@pytest.mark.parametrize(("model", "message"), [
    ("uri: models:/credit/Production", "names a stage or 'latest', which moves without "
                                      "notice"),
    ("uri: models:/credit/latest", "name an alias (models:/NAME@ALIAS) or a version"),
    ("uri: s3://bucket/model", "is not an MLflow model URI; use models:/NAME@ALIAS"),
    ("path: models:/credit@challenger", "write the MLflow model URI 'models:/credit@challenger'"
                                        " under `uri`"),
    ("uri: models:/credit/3\n  path: m.skops", "give exactly one of `path`, `factory`, `uri`"),
    ("uri: models:/credit/3\n  tracking_uri: https://ci:s3cret@mlflow.example.org",
     "model.tracking_uri: holds a credential"),
    ("uri: models:/credit/3\n  registry_uri: https://mlflow.example.org/?access_token=x",
     "model.registry_uri: holds a credential"),
])
def test_bad_model_uris_and_secrets_are_policy_errors(workspace, model, message):
    with pytest.raises(PolicyError) as caught:
        load_policy(workspace.policy(BINARY_POLICY.replace("path: model.skops", model)))
    assert message in str(caught.value)
    assert "policy.yaml:" in str(caught.value)


# ------------------------------------------------ native xgboost and lightgbm flavors

HAVE_LIGHTGBM = importlib.util.find_spec("lightgbm") is not None
HAVE_XGBOOST = importlib.util.find_spec("xgboost") is not None
LGBM_TYPES = "[collections.OrderedDict, lightgbm.basic.Booster, lightgbm.sklearn.LGBMClassifier]"


def boosted_policy(folder: Path, uri: str, task: str = "binary_classification",
                   extra: str = "") -> Path:
    """A numeric data set, an AUC rule, a rule only the tree explainer can answer, and a
    robustness property: all need the estimator itself (predict_proba, classes_, trees)."""
    binary_frame(seed=1).to_csv(folder / "eval.csv", index=False)
    path = folder / "policy.yaml"
    path.write_text(
        "mlcheck: 1\nname: adult-mlflow\n"
        f"model:\n  uri: {uri}\n  task: {task}\n  features: [x1, x2]\n{extra}"
        "data: {target: y, datasets: {eval: eval.csv}}\n"
        "statistics: {resamples: 200}\n"
        "performance:\n  rules:\n    - {metric: roc_auc, min: 0.7}\n"
        "explainability:\n  explainer: tree\n  rows: 100\n  rules:\n"
        "    - {test: required_in_top, k: 1, features: [x1]}\n"
        "robustness:\n  examples: 30\n  rules:\n"
        "    - {property: valid_predictions, inputs: data}\n")
    return path


def log_boosted(registry: Registry, flavor: str, name: str, model: object, alias: str,
                **options: object) -> str:
    """Log with mlflow.xgboost / mlflow.lightgbm, register, set `alias`; the version."""
    import mlflow

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", registry.uri)
        with mlflow.start_run():
            info = getattr(mlflow, flavor).log_model(model, name="model",
                                                     registered_model_name=name,
                                                     pip_requirements=[], **options)
    version = str(info.registered_model_version)
    registry.client.set_registered_model_alias(name, alias, version)
    return version


def assert_gated_natively(tmp_path: Path, result, flavor: str, fmt: str, cls: str) -> dict:
    assert result.exit_code == 0, result.output
    record = record_of(tmp_path)
    model = record["subject"]["model"]
    assert model["mlflow"]["flavor"] == flavor
    assert model["mlflow"]["serialization_format"] == fmt
    assert cls in model["class"]  # the estimator itself, not a pyfunc
    checks = {c["id"]: c for c in record["checks"]}
    assert {c["verdict"] for c in checks.values()} == {"pass"}, checks
    explained = checks["explainability/required_in_top[x1]"]
    assert explained["evidence"]["explainer"]["explainer"] == "tree"
    assert "robustness/valid_predictions[data]" in checks
    return model


@needs_mlflow
@pytest.mark.skipif(not HAVE_LIGHTGBM, reason="lightgbm is not installed")
def test_a_lightgbm_classifier_loads_natively_with_its_trees(registry, tmp_path, monkeypatch):
    from lightgbm import LGBMClassifier

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    frame = binary_frame()
    model = LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1)
    log_boosted(registry, "lightgbm", "lgbm", model.fit(frame[["x1", "x2"]], frame["y"]),
                "challenger")
    policy = boosted_policy(tmp_path, "models:/lgbm@challenger")
    refused = run("check", policy)  # skops: the policy reviews the types, not the MLmodel
    assert refused.exit_code == 2
    assert "lightgbm.sklearn.LGBMClassifier" in refused.output
    assert "trusted_types" in refused.output
    policy = boosted_policy(tmp_path, "models:/lgbm@challenger",
                            extra=f"  trusted_types: {LGBM_TYPES}\n")
    model = assert_gated_natively(tmp_path, run("check", policy), "lightgbm", "skops",
                                  "LGBMClassifier")
    assert model["loaded_with"].startswith("MLflow lightgbm flavor, skops")


@needs_mlflow
@pytest.mark.skipif(not HAVE_LIGHTGBM, reason="lightgbm is not installed")
def test_a_pickled_lightgbm_classifier_needs_trust(registry, tmp_path, monkeypatch):
    from lightgbm import LGBMClassifier

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    frame = binary_frame()
    model = LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1)
    log_boosted(registry, "lightgbm", "lgbm-pickle", model.fit(frame[["x1", "x2"]],
                                                              frame["y"]),
                "challenger", serialization_format="cloudpickle")
    policy = boosted_policy(tmp_path, "models:/lgbm-pickle@challenger")
    refused = run("check", policy)
    assert refused.exit_code == 2
    assert "LightGBM model MLflow saved with cloudpickle" in refused.output
    assert "--trust-model" in refused.output
    assert not (tmp_path / "reports" / "adult-mlflow.json").exists()
    model = assert_gated_natively(tmp_path, run("check", policy, "--trust-model"), "lightgbm",
                                  "cloudpickle", "LGBMClassifier")
    assert "trusted by --trust-model" in model["loaded_with"]


@needs_mlflow
@pytest.mark.skipif(not HAVE_LIGHTGBM, reason="lightgbm is not installed")
def test_a_raw_lightgbm_booster_classifier_is_refused_with_what_to_log(registry, tmp_path,
                                                                        monkeypatch):
    import lightgbm

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    frame = binary_frame()
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "num_leaves": 7},
                             lightgbm.Dataset(frame[["x1", "x2"]], frame["y"]), 10)
    log_boosted(registry, "lightgbm", "lgbm-booster", booster, "challenger")
    result = run("check", boosted_policy(tmp_path, "models:/lgbm-booster@challenger"),
                 "--trust-model")
    assert result.exit_code == 2
    assert "raw LightGBM Booster" in result.output and "LGBMClassifier" in result.output
    assert not (tmp_path / "reports" / "adult-mlflow.json").exists()


@needs_mlflow
@pytest.mark.skipif(not HAVE_XGBOOST, reason="xgboost is not installed")
def test_an_xgboost_classifier_loads_natively_without_trust(registry, tmp_path, monkeypatch):
    from xgboost import XGBClassifier

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    frame = binary_frame()
    model = XGBClassifier(n_estimators=20, max_depth=3)
    log_boosted(registry, "xgboost", "xgb", model.fit(frame[["x1", "x2"]], frame["y"]),
                "challenger")
    model = assert_gated_natively(tmp_path, run("check", boosted_policy(
        tmp_path, "models:/xgb@challenger")), "xgboost", "ubj", "XGBClassifier")
    assert model["loaded_with"] == ("MLflow xgboost flavor, XGBClassifier from its ubj file "
                                    "(XGBoost's own format, not pickle)")
