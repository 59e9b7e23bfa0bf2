"""Training on several workers (issue 19): real ``segedge train`` processes on 127.0.0.1, CPU only.

Two workers on the tiny synthetic set (64 px, capped steps): both finish, the chief alone writes the run
folder and worker 1 its scratch folder, and the weights they end with are the same arrays (they are
replicas). Then worker 1 is SIGKILLed mid-epoch: the chief stops, non-zero, with one error line, and
``--resume`` on both finishes the run. Finally MirroredStrategy over two logical CPU devices runs a fit.
Every process is bounded by a timeout and killed if it overstays; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import segedge

pytest.importorskip("tensorflow", reason="trains a model: needs TensorFlow (pip install 'segedge[train]')")
h5py = pytest.importorskip("h5py")


REPO = Path(segedge.__file__).resolve().parents[1]
PROCESS_TIMEOUT_S = 300  # one worker process, start to finish, on a busy 2-core machine
WORKER_TIMEOUT_S = 20    # --worker-timeout: how long a worker waits on a dead peer
RUN_OPTIONS = ["--image-size", "64", "--batch-size", "8", "--steps-per-epoch", "3", "--validation-steps", "1"]


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def launch(args: list[str], index: int, ports: list[int], log: Path) -> subprocess.Popen:
    """One ``segedge train ... --workers ... --worker-index I`` process, CPU only, output to ``log``."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    workers = ",".join(f"127.0.0.1:{port}" for port in ports)
    command = [sys.executable, "-c", "from segedge.cli import main; main()", "train", *args,
               "--workers", workers, "--worker-index", str(index), "--worker-timeout", str(WORKER_TIMEOUT_S)]
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def finish(processes: list[subprocess.Popen], timeout: float = PROCESS_TIMEOUT_S) -> list[int]:
    """Every exit code; a process still running at the deadline is killed and the test fails."""
    deadline = time.monotonic() + timeout
    codes = []
    try:
        for process in processes:
            codes.append(process.wait(timeout=max(1.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        pytest.fail(f"a worker ran past {timeout:.0f} s (hang?)")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return codes


def weights(path: Path) -> dict[str, np.ndarray]:
    """Every array of a Keras ``.weights.h5`` file by its path in the file."""
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                          else None)
    return arrays


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = weights(a), weights(b)
    assert left.keys() == right.keys() and len(left) > 100
    differ = [name for name in left if not np.array_equal(left[name], right[name])]
    assert not differ, f"the replicas' weights differ in {len(differ)} arrays, e.g. {differ[:3]}"


def state(run: Path) -> dict:
    path = run / "checkpoints" / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def log_text(path: Path) -> str:
    return path.read_text(errors="replace")


@pytest.mark.slow
def test_two_workers_train_one_model(synth_root: Path, tmp_path: Path) -> None:
    run, scratch = tmp_path / "run", tmp_path / "run.worker1"
    ports = free_ports(2)
    args = [str(synth_root), "--out", str(run), "--epochs", "2", *RUN_OPTIONS]
    logs = [tmp_path / "chief.log", tmp_path / "worker1.log"]
    codes = finish([launch(args, i, ports, logs[i]) for i in (0, 1)])
    assert codes == [0, 0], "\n".join(log_text(p)[-3000:] for p in logs)

    chief, worker = log_text(logs[0]), log_text(logs[1])
    assert "chief: 2 workers, 2 replicas in sync, global batch 8 (4 per replica)" in chief
    assert "worker 1: 2 workers, 2 replicas in sync, global batch 8 (4 per replica)" in worker
    # The run folder is the chief's: its config names it, the other worker's files went to its scratch folder.
    config = json.loads((run / "config.json").read_text())
    assert config["out"] == str(run)
    assert (config["num_workers"], config["num_replicas"], config["batch_size"]) == (2, 2, 8)
    assert config["learning_rate_rule"] == "kept" and config["learning_rate"] == 1e-3
    assert json.loads((scratch / "config.json").read_text())["out"] == str(scratch)
    for folder in (run, scratch):
        assert {p.name for p in folder.iterdir()} == {
            ".segedge.json", "config.json", "classes.json", "split.json", "history.csv", "model.keras", "checkpoints"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chief.log", "run", "run.worker1", "worker1.log"]
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 2  # header and two epochs, written once
    # Same split on both (each derives it from the data and --seed), same weights after training.
    assert (run / "split.json").read_text() == (scratch / "split.json").read_text()
    assert state(run)["epoch"] == state(scratch)["epoch"] == 2
    assert_same_weights(run / "checkpoints" / state(run)["weights"], scratch / "checkpoints" / state(run)["weights"])

    # Workers whose last checkpoints name different epochs refuse to resume (their steps would not line up).
    behind = state(scratch) | {"epoch": 1}
    (scratch / "checkpoints" / "state.json").write_text(json.dumps(behind))
    before = (run / "history.csv").read_text(), (run / ".segedge.json").read_text()
    ports = free_ports(2)
    logs = [tmp_path / "chief-resume.log", tmp_path / "worker1-resume.log"]
    codes = finish([launch(["--resume", str(run), "--epochs", "3"], i, ports, logs[i]) for i in (0, 1)])
    assert codes == [4, 4], "\n".join(log_text(p)[-3000:] for p in logs)
    for log, role in zip(logs, ("chief", "worker 1"), strict=True):
        errors = [line for line in log_text(log).splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(f"error: {role}:") and "checkpoints differ" in errors[0]
    assert ((run / "history.csv").read_text(), (run / ".segedge.json").read_text()) == before


@pytest.mark.slow
def test_killed_worker_stops_the_chief_and_resume_finishes(synth_root: Path, tmp_path: Path) -> None:
    run, scratch = tmp_path / "run", tmp_path / "run.worker1"
    ports = free_ports(2)
    # Eager steps are slow (seconds each), so the kill lands inside epoch 2, not after it.
    args = [str(synth_root), "--out", str(run), "--epochs", "2", "--run-eagerly", *RUN_OPTIONS]
    logs = [tmp_path / "chief.log", tmp_path / "worker1.log"]
    chief, worker = (launch(args, i, ports, logs[i]) for i in (0, 1))
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while not (state(run).get("epoch") == 1 and state(scratch).get("epoch") == 1):
            assert chief.poll() is None and worker.poll() is None, "\n".join(log_text(p)[-3000:] for p in logs)
            assert time.monotonic() < deadline, "epoch 1 never finished"
            time.sleep(0.2)
        time.sleep(1.0)  # into epoch 2
        worker.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        (code,) = finish([chief], timeout=WORKER_TIMEOUT_S + 60)
    finally:
        finish([worker], timeout=10)
    waited = time.monotonic() - killed
    assert code == 4, log_text(logs[0])[-3000:]
    assert waited < WORKER_TIMEOUT_S + 60
    errors = [line for line in log_text(logs[0]).splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stopped answering" in errors[0] and f"--resume {run}" in errors[0], errors
    assert state(run)["epoch"] == 1  # the last checkpoint the chief wrote: epoch 2 never finished

    ports = free_ports(2)
    resumed = [tmp_path / "chief-resume.log", tmp_path / "worker1-resume.log"]
    codes = finish([launch(["--resume", str(run)], i, ports, resumed[i]) for i in (0, 1)])
    assert codes == [0, 0], "\n".join(log_text(p)[-3000:] for p in resumed)
    assert "Epoch 2/2" in log_text(resumed[0]) and "Epoch 1/2" not in log_text(resumed[0])
    assert state(run)["epoch"] == state(scratch)["epoch"] == 2
    assert [row["epoch"] for row in state(run)["rows"]] == [1, 2]
    assert_same_weights(run / "checkpoints" / state(run)["weights"], scratch / "checkpoints" / state(run)["weights"])


def test_workers_option_writes_tf_config_and_roles() -> None:
    from segedge.train.distribute import cluster_from_env, parse_workers, tf_config, worker_folder

    cluster = parse_workers("10.0.0.5:2222, 10.0.0.6:2222", 1)
    assert json.loads(tf_config(cluster)) == {
        "cluster": {"worker": ["10.0.0.5:2222", "10.0.0.6:2222"]}, "task": {"type": "worker", "index": 1}}
    assert cluster_from_env({"TF_CONFIG": tf_config(cluster)}) == cluster
    assert (cluster.role, cluster.is_chief) == ("worker 1", False)
    assert worker_folder("/runs/a", cluster) == Path("/runs/a.worker1")
    assert worker_folder("/runs/a", parse_workers("h:1,h:2", 0)) == Path("/runs/a")
    # A TFJob-style cluster with a separate chief task: the chief is index 0, worker 0 comes next.
    chief_style = {"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]}, "task": {"type": "worker", "index": 0}}
    assert cluster_from_env({"TF_CONFIG": json.dumps(chief_style)}).index == 1
    assert cluster_from_env({}) is None
    assert cluster_from_env({"TF_CONFIG": json.dumps({"cluster": {"worker": ["h:1"]},
                                                      "task": {"type": "worker", "index": 0}})}) is None


@pytest.mark.parametrize(("spec", "index", "words"), [
    ("h:1", 0, "two or more"),
    ("h:1,h", 0, "is not host:port"),
    ("h:1,h:1", 0, "twice"),
    ("h:1,h:2", None, "--worker-index"),
    ("h:1,h:2", 2, "out of range"),
])
def test_bad_workers_option_is_one_config_error(spec: str, index: int | None, words: str) -> None:
    from segedge.train.distribute import parse_workers
    from segedge.util.errors import ConfigError

    with pytest.raises(ConfigError, match=words) as caught:
        parse_workers(spec, index)
    assert caught.value.exit_code == 2 and "\n" not in caught.value.message


def test_bad_tf_config_is_one_config_error() -> None:
    from segedge.train.distribute import cluster_from_env
    from segedge.util.errors import ConfigError

    for raw in ("{not json", json.dumps({"cluster": {"worker": ["h:1"]}}),
                json.dumps({"cluster": {"ps": ["h:1"], "worker": ["h:2"]}, "task": {"type": "ps", "index": 0}})):
        with pytest.raises(ConfigError, match="TF_CONFIG"):
            cluster_from_env({"TF_CONFIG": raw})


def _tf_config(cluster: dict, task_type: str = "worker", index: object = 0) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


@pytest.mark.parametrize(("raw", "words"), [
    # a string where TF wants a list of addresses was split into characters ("a", ":", "2")
    (_tf_config({"worker": "a:2"}), 'TF_CONFIG cluster "worker" is the string \'a:2\': it must be a list'),
    # a string chief read as three chiefs and was reported as a wrong task type
    (_tf_config({"chief": "c:1", "worker": ["w:1"]}), 'TF_CONFIG cluster "chief" is the string'),
    (_tf_config({"chief": ["c:1", "c:2"], "worker": ["w:1"]}), 'cluster "chief" names 2 tasks; .* at most one'),
    # --workers refuses a host:port twice; TF_CONFIG now does too, across chief and worker
    (_tf_config({"worker": ["a:2", "a:2"]}), "cluster names a:2 twice"),
    (_tf_config({"chief": ["a:2"], "worker": ["a:2"]}), "cluster names a:2 twice"),
    (_tf_config({"worker": ["a:2", "b"]}), 'cluster "worker": "b" is not "host:port"'),
    (_tf_config({"worker": 7}), 'cluster "worker" is 7: it must be a list'),
    (_tf_config({"worker": {"0": "a:1", "2": "b:1"}}), 'cluster "worker" names task indices \\[0, 2\\]'),
    (_tf_config({"worker": ["a:1", "b:1"]}, index=2), 'task index 2 is out of range for its 2 "worker" task'),
    (_tf_config({"worker": ["a:1", "b:1"]}, index=-1), 'task "index" is -1'),
    (_tf_config({"worker": ["a:1", "b:1"]}, "chief"), 'task index 0 is out of range for its 0 "chief" task'),
    (_tf_config({"worker": ["a:1", "b:1"]}, "evaluator"), 'task type "evaluator"'),
    (json.dumps({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker"}}), '"task" has no "index"'),
    (json.dumps({"task": {"type": "worker", "index": 0}}), 'has no "cluster" object'),
    (json.dumps(["a:1"]), "is not a JSON object"),
])
def test_tf_config_mistakes_are_one_line_naming_the_key(raw: str, words: str) -> None:
    from segedge.train.distribute import cluster_from_env
    from segedge.util.errors import ConfigError

    with pytest.raises(ConfigError, match=words) as caught:
        cluster_from_env({"TF_CONFIG": raw})
    assert caught.value.message.startswith("TF_CONFIG ") and "\n" not in caught.value.message


def test_tf_config_takes_what_tf_cluster_spec_takes() -> None:
    """A list of addresses, or a dict {task index: address} (TF's ClusterSpec accepts both)."""
    from segedge.train.distribute import Cluster, cluster_from_env

    as_dict = _tf_config({"worker": {"1": "b:1", "0": "a:1"}}, index=1)
    assert cluster_from_env({"TF_CONFIG": as_dict}) == Cluster(("a:1", "b:1"), 1)
    chief_first = _tf_config({"chief": ["c:1"], "worker": ["a:1"]}, "chief", "0")
    assert cluster_from_env({"TF_CONFIG": chief_first}) == Cluster(("c:1", "a:1"), 0)


MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from segedge.train.config import make_config
from segedge.train.fit import train
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
config = make_config(sys.argv[1], sys.argv[2], image_size=64, batch_size=8, epochs=1, steps_per_epoch=2,
                     validation_steps=1, run_eagerly=True)
result = train(config, verbose=0, strategy=strategy)
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "epochs": result.epochs_completed,
                  "loss": result.history[-1]["loss"]}))
"""


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(synth_root: Path, tmp_path: Path) -> None:
    """The one-machine multi-device path (MirroredStrategy, as over several GPUs), without a GPU."""
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(synth_root), str(run)], env=env,
                          capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["epochs"] == 1 and np.isfinite(result["loss"])
    config = json.loads((run / "config.json").read_text())
    assert (config["num_workers"], config["num_replicas"]) == (1, 2)
    assert (run / "model.keras").is_file()


@pytest.mark.parametrize("args", [
    ["--worker-index", "1"],
    ["--workers", "127.0.0.1:1", "--worker-index", "0"],
    ["--workers", "127.0.0.1:1,127.0.0.1:2", "--worker-index", "5"],
])
def test_cli_worker_mistakes_are_one_line(synth_root: Path, tmp_path: Path, args: list[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from segedge.cli import app

    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["train", str(synth_root), "--out", str(tmp_path / "run"), *args])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "worker" in lines[0] and not (tmp_path / "run").exists()
    assert "TF_CONFIG" not in os.environ  # a refused option sets nothing


def test_lost_worker_message_is_one_readable_line() -> None:
    from segedge.train.distribute import Cluster, lost_message

    raw = ("{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:0/device:CPU:0}} "
           "Collective ops is aborted by: recvmsg:Connection reset by peer\n\t [[{{node CollectiveReduceV2}}]]")
    line = lost_message(Cluster(("a:1", "b:1"), 0), RuntimeError(raw), Path("/runs/voc"))
    assert "\n" not in line and "{{" not in line
    assert line.startswith("chief: another worker of 2 stopped answering")
    assert "Connection reset by peer" in line and "--resume /runs/voc" in line
