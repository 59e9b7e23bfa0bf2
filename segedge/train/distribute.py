"""Which ``tf.distribute`` strategy a run uses, and this process's place in a cluster.

segedge grows no cluster code of its own: several machines train one model with
TensorFlow's ``MultiWorkerMirroredStrategy``, which takes its cluster from the
standard ``TF_CONFIG`` environment variable (so Kubernetes/TFJob or any launcher
works). ``segedge train --workers host1:port,host2:port --worker-index I`` only
writes that variable for you.

Roles: worker 0 (or the ``chief`` task when TF_CONFIG names one) is the chief.
It alone writes the run folder; every other worker runs the same callbacks into
its own scratch folder (``RUN.workerI`` next to ``--out``), so no two processes
write one file, and a worker's scratch folder is what its ``--resume`` reads.
Every worker derives the same split from the dataset and ``--seed``.

``--batch-size`` is the global batch: tf.distribute splits each batch across the
replicas of all workers, and the learning rate is kept as given (no scaling
with the number of replicas), so a run means the same recipe on 1 or N replicas.
The TF import happens inside the functions: this module loads without TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from segedge.util.errors import ConfigError, SegedgeError

LEARNING_RATE_RULE = "kept"  # --learning-rate is used as given, whatever the number of replicas
DEFAULT_TIMEOUT_S = 300


class WorkerLostError(SegedgeError):
    """Another worker of a multi-worker run stopped answering (killed, crashed, network gone)."""

    exit_code = 4


@dataclass(frozen=True)
class Cluster:
    """This process's place among the workers: all addresses, and its own index (0 is the chief)."""

    workers: tuple[str, ...]
    index: int

    @property
    def size(self) -> int:
        return len(self.workers)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def role(self) -> str:
        return "chief" if self.is_chief else f"worker {self.index}"


def parse_workers(spec: str, index: int | None) -> Cluster:
    """``host:port,host:port`` and ``--worker-index`` -> Cluster; every mistake is one ConfigError line."""
    workers = tuple(w.strip() for w in spec.split(",") if w.strip())
    if len(workers) < 2:
        raise ConfigError(f"--workers {spec!r} names {len(workers)} worker(s); give two or more host:port, "
                          "comma-separated (one machine needs no --workers)")
    for worker in workers:
        host, _, port = worker.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--workers: {worker!r} is not host:port (e.g. 10.0.0.5:12345)")
    if len(set(workers)) != len(workers):
        raise ConfigError(f"--workers {spec!r} names a worker twice; each needs its own host:port")
    if index is None:
        raise ConfigError("--workers needs --worker-index I (0 on the chief, 1, 2, ... on the others)")
    if not 0 <= index < len(workers):
        raise ConfigError(f"--worker-index {index} is out of range for {len(workers)} workers (0..{len(workers) - 1})")
    return Cluster(workers, index)


def tf_config(cluster: Cluster) -> str:
    """The TF_CONFIG JSON for this worker."""
    task = {"type": "worker", "index": cluster.index}
    return json.dumps({"cluster": {"worker": list(cluster.workers)}, "task": task})


TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'


def _tf_config_error(what: str) -> ConfigError:
    return ConfigError(f"TF_CONFIG {what}; expected {TF_CONFIG_EXAMPLE}")


def _is_address(value: object) -> bool:
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def _job_addresses(cluster: dict, job: str) -> list[str]:
    """One job's addresses in task order, as TF's ClusterSpec reads them: a list, or a dict {index: address}.

    A bare string is neither (TF refuses it too); taken as a list it would be split into characters.
    """
    tasks = cluster.get(job, [])
    if isinstance(tasks, dict):
        try:
            by_index = {int(i): a for i, a in tasks.items()}
        except (TypeError, ValueError):
            raise _tf_config_error(f'cluster "{job}" maps task indices to addresses, but a key of '
                                   f"{sorted(map(str, tasks))} is not a number") from None
        if sorted(by_index) != list(range(len(by_index))):
            raise _tf_config_error(f'cluster "{job}" names task indices {sorted(by_index)}; '
                                   f"segedge needs 0..{len(by_index) - 1} with none missing")
        tasks = [by_index[i] for i in range(len(by_index))]
    elif isinstance(tasks, str):
        raise _tf_config_error(f'cluster "{job}" is the string {tasks!r}: it must be a list of "host:port" '
                               f"(e.g. [{json.dumps(tasks)}])")
    elif not isinstance(tasks, (list, tuple)):
        raise _tf_config_error(f'cluster "{job}" is {json.dumps(tasks)}: it must be a list of "host:port"')
    for address in tasks:
        if not _is_address(address):
            raise _tf_config_error(f'cluster "{job}": {json.dumps(address)} is not "host:port" (e.g. "10.0.0.5:12345")')
    return list(tasks)


def cluster_from_env(environ: dict[str, str] | None = None) -> Cluster | None:
    """The cluster TF_CONFIG describes, or None when it is unset or names a single worker.

    Every mistake is one ConfigError line naming TF_CONFIG and the key: a malformed cluster would
    otherwise surface minutes later as a TensorFlow traceback, or (a string split into characters,
    a worker listed twice) as a cluster that never forms.
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _tf_config_error(f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _tf_config_error("is not a JSON object")
    cluster, task = data.get("cluster"), data.get("task")
    if not isinstance(cluster, dict):
        raise _tf_config_error('has no "cluster" object' if cluster is None else '"cluster" is not an object')
    if not isinstance(task, dict):
        raise _tf_config_error('has no "task" object' if task is None else '"task" is not an object')
    kind, index = task.get("type"), task.get("index")
    if kind not in ("chief", "worker"):
        raise ConfigError(f"TF_CONFIG task type {json.dumps(kind)}: segedge runs 'worker' tasks "
                          "(and at most one 'chief')")
    if index is None:
        raise _tf_config_error('"task" has no "index"')
    if isinstance(index, bool) or not isinstance(index, (int, str)) or not str(index).strip().isdigit():
        raise _tf_config_error(f'task "index" is {json.dumps(index)}: it must be a whole number from 0')
    index = int(index)
    chief, workers = _job_addresses(cluster, "chief"), _job_addresses(cluster, "worker")
    if len(chief) > 1:
        raise ConfigError(f'TF_CONFIG cluster "chief" names {len(chief)} tasks; a cluster has at most one chief')
    everyone = tuple(chief + workers)
    twice = sorted({a for a in everyone if everyone.count(a) > 1})
    if twice:
        raise ConfigError(f"TF_CONFIG cluster names {', '.join(twice)} twice; each task needs its own host:port")
    position = index if kind == "chief" else len(chief) + index
    if not 0 <= position < len(everyone) or (kind == "chief" and not chief):
        size = len(chief) if kind == "chief" else len(workers)
        raise ConfigError(f'TF_CONFIG task index {index} is out of range for its {size} "{kind}" '
                          f"task{'' if size == 1 else 's'}")
    return Cluster(everyone, position) if len(everyone) > 1 else None


def worker_folder(out: str | Path, cluster: Cluster | None) -> Path:
    """Where this process writes: the run folder on the chief, ``RUN.workerI`` beside it on the others."""
    out = Path(out)
    if cluster is None or cluster.is_chief:
        return out
    return out.with_name(f"{out.name}.worker{cluster.index}")


def select_strategy(cluster: Cluster | None, timeout_s: int = DEFAULT_TIMEOUT_S):
    """MultiWorkerMirroredStrategy in a cluster; MirroredStrategy over several local GPUs; TF's default else.

    Must run before any other TensorFlow op in the process (MultiWorkerMirroredStrategy's rule).
    ``timeout_s`` bounds every collective, so a dead worker ends the run instead of hanging it.
    """
    import tensorflow as tf

    if cluster is not None:
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING, timeout_seconds=timeout_s)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def shard_by_data(dataset):
    """Each worker keeps its share of every batch's elements (AutoShardPolicy.DATA): any dataset size works."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def is_worker_lost(exc: BaseException) -> bool:
    """A TF error that means a peer is gone: unavailable, timed out, aborted or cancelled collectives."""
    import tensorflow as tf

    return isinstance(exc, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
                            tf.errors.CancelledError, tf.errors.InternalError))


def lost_message(cluster: Cluster, exc: BaseException, run: Path) -> str:
    lines = [line.strip() for line in str(getattr(exc, "message", exc)).splitlines() if line.strip()]
    telling = [line for line in lines if any(word in line.lower() for word in ("unhealthy", "heartbeat", "timed out",
                                                                                "timeout", "deadline", "unavailable"))]
    detail = re.sub(r"\{\{[^}]*\}\}\s*", "", (telling or lines or [type(exc).__name__])[0])[:200]  # TF node names
    return (f"{cluster.role}: another worker of {cluster.size} stopped answering ({type(exc).__name__}: {detail}); "
            f"restart every worker with --resume {run} to continue from the last finished epoch")


def fix_symbolic_build(model) -> None:
    """Let ``model.fit`` start under a tf.distribute strategy (Keras 3.15 fails before the first step).

    Keras' TF trainer builds the compiled metrics from one batch first, taking it through a single
    ``strategy.reduce("MEAN", (images, labels))`` call; tf.distribute reduces one tensor, not a tuple, and
    raises "Attempt to convert a value (PerReplica...)". A batch of the right shapes and dtypes is all
    that build needs, so this model builds from the first local replica's slice of each element instead.
    The override is on this model instance only; without a strategy nothing changes.
    """
    import tensorflow as tf
    from keras import tree

    strategy = model.distribute_strategy

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(local, next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = build


def fix_multi_worker_metrics() -> None:
    """Let Keras 3.15 average a step's scalar results across workers (it fails on the first step otherwise).

    Under MultiWorkerMirroredStrategy Keras' TF trainer averages every step output with
    ``strategy.reduce("MEAN", value, axis=0)``; the loss and metric results are scalars, which have no
    axis 0 ("Invalid reduction dimension 0 for input with 0 dimensions"). A scalar is averaged over the
    workers with ``axis=None`` instead; everything else goes to Keras' own function. Idempotent.
    """
    from keras import tree
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "segedge_fixed", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            def mean(value):
                if getattr(value, "shape", None) is not None and value.shape.rank == 0:
                    return strategy.reduce("MEAN", value, axis=None)
                return original(value, strategy, reduction)

            return tree.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica.segedge_fixed = True
    trainer.reduce_per_replica = reduce_per_replica


def sync_batch_norm(model) -> int:
    """Batch statistics over the global batch on every replica; returns how many layers were switched.

    Without it each replica normalises, and updates its BatchNorm moving mean/variance, from its own
    slice of the batch: the trained weights agree on every worker but the moving statistics drift apart,
    so the chief's model.keras would not be what the other replicas hold. Keras' ``synchronized`` flag
    all-reduces the statistics, which also makes a batch of 32 on N replicas normalise like 32 on one.
    """
    import keras

    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.synchronized = True
    return len(layers)


def check_same_epoch(strategy, cluster: Cluster, epoch: int, folder: Path) -> None:
    """Every worker must continue from the same finished epoch, or their collectives would not line up.

    After a crash one worker may have written its epoch-N checkpoint and another not. Each worker adds its
    epoch and its square across the cluster: n * sum(e^2) == sum(e)^2 holds only when all are equal.
    """
    import tensorflow as tf

    value = tf.constant([epoch, epoch * epoch], tf.float64)
    total = strategy.reduce("SUM", value, axis=None).numpy()
    if abs(cluster.size * total[1] - total[0] ** 2) > 0.5:
        raise WorkerLostError(
            f"{cluster.role}: {folder} continues from epoch {epoch}, but the workers' last checkpoints differ "
            f"(mean epoch {total[0] / cluster.size:g}); copy the chief's checkpoints/ folder into every "
            "worker's RUN.workerI/checkpoints/ and resume again"
        )
