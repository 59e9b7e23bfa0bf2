"""``train(config) -> TrainResult``: the whole run, from data check to best model.

Order matters for the user: everything that can be wrong with the options, the
output folder, the encoder weights or the data is found, and the model is built
(loading the encoder weights), before the run folder is touched. A start that
still fails before the first epoch finishes (a full disk, Ctrl-C, an error in
the first step) is undone: no marker, config.json or split.json stays, and a
folder this call created is removed, so the same command can simply run again.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segedge.train import distribute
from segedge.train.config import TrainConfig
from segedge.train.model import resolve_encoder_weights
from segedge.train.rundir import (
    RunPaths,
    RunState,
    check_new_run,
    check_resumed_classes,
    load_split,
    load_state,
    mark_resumed,
)
from segedge.util import fileio
from segedge.util.errors import ModelError


@dataclass
class TrainResult:
    run_dir: Path
    config: TrainConfig
    split_counts: dict[str, int]
    initial_epoch: int
    epochs_completed: int
    best_epoch: int
    best_value: float | None
    stopped_early: bool
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    model: Any = field(default=None, repr=False)  # the Keras model, best weights when restored

    @property
    def best_row(self) -> dict[str, Any]:
        return next((r for r in self.history if r["epoch"] == self.best_epoch), {})

    @property
    def best_val_miou(self) -> float | None:
        return self.best_row.get("val_miou")

    def val_basis(self) -> str:
        """What the val mIoU was measured on, e.g. "449 val images at 96x96 model size".

        export and bench print other mIoU figures for the same model (held-out images at model
        size; the reference set at each photo's own size), so each names its basis.
        """
        if self.config is None or "val" not in self.split_counts:
            return ""
        images = self.split_counts["val"]
        if self.config.validation_steps:  # --validation-steps caps the batches scored
            images = min(images, self.config.validation_steps * self.config.batch_size)
        return f"{plural(images, 'val image')} at {self.config.height}x{self.config.width} model size"

    def summary(self) -> str:
        """One line: where the best epoch is and what it scored, in percent like every mIoU segedge prints."""
        if not self.best_epoch:
            return f"no epoch finished; nothing saved in {self.run_dir}"
        row = self.best_row
        how = "stopped early" if self.stopped_early else "done"
        basis = self.val_basis()
        return (
            f"{how} after {plural(self.epochs_completed, 'epoch')} in {self.seconds:.0f} s: best epoch "
            f"{self.best_epoch} val mIoU {100 * row.get('val_miou', float('nan')):.2f} %"
            f"{f' ({basis})' if basis else ''} "
            f"val_loss {row.get('val_loss', float('nan')):.4f} "
            f"-> {self.run_dir / 'model.keras'}"
        )


def plural(count: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def split_line(config: TrainConfig, counts: dict[str, int]) -> str:
    """The split the run trains and validates on, printed before the first epoch."""
    return (f"split {config.split}{_ratio_note(config)}: {counts['train']} train / {counts['val']} val / "
            f"{counts['test']} test; {config.num_classes} classes")


def _ratio_note(config: TrainConfig) -> str:
    """A pairs dataset without split files is split by ratio: say so, the kind alone reads 'official'."""
    from segedge.data.pairs import SPLITS_DIR, is_pairs_root

    root = Path(config.data_root)
    if not is_pairs_root(root) or any((root / SPLITS_DIR / f"{s}.txt").is_file() for s in ("train", "val")):
        return ""
    return f" (by ratio: --val-fraction {config.val_fraction:g}, no {SPLITS_DIR}/ files)"


def _result(paths: RunPaths, config: TrainConfig, counts: dict[str, int], initial: int, state: RunState,
            started: float, model=None) -> TrainResult:
    return TrainResult(
        run_dir=paths.root, config=config, split_counts=counts, initial_epoch=initial,
        epochs_completed=state.epoch, best_epoch=state.best_epoch, best_value=state.best,
        stopped_early=state.stopped_early, seconds=time.perf_counter() - started, history=list(state.rows),
        model=model,
    )


def build_compiled(config: TrainConfig, encoder_weights: str | None):
    """(training model, inference view sharing its weights), compiled under the current strategy."""
    import keras

    from segedge.train.losses import make_loss, make_metrics
    from segedge.train.model import build_unet

    model = build_unet((config.height, config.width), config.num_outputs, encoder_weights, config.freeze,
                       config.bn_momentum, config.encoder_width, config.decoder_widths, config.encoder)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=make_loss(config.void_handling, config.num_outputs),
        metrics=make_metrics(config.num_classes),
        jit_compile=config.jit_compile,
        run_eagerly=config.run_eagerly,
    )
    # Creating the optimizer's slots now, not inside the first traced step, halves the first
    # step's tracing time (TF otherwise traces the step twice to lift the new variables).
    model.optimizer.build(model.trainable_variables)
    inference = keras.Model(model.inputs, model.outputs, name=model.name)
    return model, inference


def _load_checkpoint(model, path: Path) -> None:
    try:
        model.load_weights(path)
    except (ValueError, OSError) as exc:
        raise ModelError(
            f"{path}: cannot restore this checkpoint into the model of {path.parent.parent / 'config.json'} "
            f"({exc}); start the run again with --overwrite"
        ) from exc


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False, callbacks: Sequence = (),
          verbose: int | None = None, strategy=None) -> TrainResult:
    """Run (or continue, with ``resume``) training into ``config.out``; see docs/design.md for the folder.

    In a cluster (TF_CONFIG, see ``segedge.train.distribute``) the chief writes ``config.out`` and every
    other worker the scratch folder ``distribute.worker_folder`` names.
    """
    started = time.perf_counter()
    cluster = distribute.cluster_from_env()
    run = Path(config.out)  # the chief's run folder, what every worker's --resume names
    paths = RunPaths.at(distribute.worker_folder(run, cluster))
    claim = None
    if resume:
        state = load_state(paths.root) or RunState()
        split = load_split(paths.root)
        for folder in (paths.root, paths.checkpoints):  # what a run killed mid-write left behind
            fileio.remove_stale_temps(folder)
        if state.stopped_early or state.epoch >= config.epochs:  # nothing left to do: don't read the data
            print(split_line(config, split.counts()), flush=True)
            return _result(paths, config, split.counts(), state.epoch, state, started)
    else:
        claim = check_new_run(paths, overwrite)
        state, split = RunState(), None
    encoder_weights = resolve_encoder_weights(config.encoder_weights, config.encoder_width, config.encoder)

    from segedge.train.pipeline import load_training_data, train_dataset, train_steps, val_dataset

    data = load_training_data(config, split)
    if resume:
        check_resumed_classes(paths.root, data.classes, data.classes_file)
    config = config.replace(split=data.split.kind, out=str(paths.root), num_classes=data.classes.num_classes)
    print(split_line(config, data.split.counts()), flush=True)  # before the minutes of training, not after
    initial = state.epoch

    import keras

    from segedge.train.callbacks import PercentProgbar, RunCheckpoint

    if strategy is None:  # a caller may pass its own (a test's MirroredStrategy over two logical CPUs)
        strategy = distribute.select_strategy(cluster, config.worker_timeout_s)  # before any other TF op
    config = config.replace(num_workers=cluster.size if cluster else 1, num_replicas=strategy.num_replicas_in_sync)
    print(f"{cluster.role if cluster else 'single worker'}: {plural(config.num_workers, 'worker')}, "
          f"{plural(config.num_replicas, 'replica')} in sync, global batch {config.batch_size} "
          f"({config.batch_size / config.num_replicas:g} per replica), lr {config.learning_rate:g} "
          f"({distribute.LEARNING_RATE_RULE}) -> {paths.root}", flush=True)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model, inference = build_compiled(config, encoder_weights)
        if config.num_replicas > 1:
            distribute.fix_symbolic_build(model)
            distribute.sync_batch_norm(model)
        if cluster is not None:
            distribute.fix_multi_worker_metrics()
        if state.weights:
            _load_checkpoint(model, paths.checkpoints / state.weights)
    try:
        if cluster is not None and resume:
            distribute.check_same_epoch(strategy, cluster, initial, paths.root)
        if claim is None:
            mark_resumed(paths)
        else:
            claim.prepare(paths.entry_names())
            data.split.save(paths.split)
            fileio.write_json(paths.classes, data.classes.to_dict())
        fileio.write_json(paths.config, config.to_dict())
        checkpoint = RunCheckpoint(paths, state, inference, config.monitor, config.monitor_mode, config.patience,
                                   config.restore_best_weights)
        model.fit(
            distribute.shard_by_data(train_dataset(data.train, config, initial_epoch=initial)),
            epochs=config.epochs,
            initial_epoch=initial,
            steps_per_epoch=train_steps(data.train, config),
            validation_data=distribute.shard_by_data(val_dataset(data.val, config)),
            callbacks=[checkpoint, *callbacks, PercentProgbar()],  # Keras' own bar would print fractions
            shuffle=False,  # the dataset already shuffles, per epoch, from the seed
            verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose,
        )
    except BaseException as exc:
        if claim is not None and state.epoch == initial:  # the start failed: leave nothing behind
            claim.undo(paths.entry_names())
        if cluster is not None and distribute.is_worker_lost(exc):
            raise distribute.WorkerLostError(distribute.lost_message(cluster, exc, run)) from exc
        raise
    return _result(paths, config, data.split.counts(), initial, state, started, model=model)
