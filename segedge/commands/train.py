"""``segedge train``: fit the U-Net on a dataset folder (VOC or pairs layout) into a run folder.

Options left unset take the preset's value (``--preset default`` or ``seed``;
see ``segedge.train.config``). TensorFlow is imported inside the command only,
so ``segedge train --help`` works on an edge install.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from segedge.commands import user_errors
from segedge.contract.preprocess import ResizeMode
from segedge.train.config import Augment, CacheMode, Monitor, Preset, SplitChoice, TrainScaling, VoidHandling
from segedge.util.errors import EXIT_INTERRUPTED, ConfigError, user_path

PANEL_RECIPE = "Recipe (unset options take the preset's value)"
PANEL_RUN = "Run"

# Options a resumed run may change: they do not alter what the checkpoint means.
RESUME_MAY_CHANGE = ("epochs", "cache", "worker_timeout_s")


def _value(option: Any) -> Any:
    return option.value if hasattr(option, "value") else option


def train_command(
    data: Annotated[
        Path | None,
        typer.Argument(help="Dataset folder: VOC layout (VOC2012 or its VOCdevkit parent) or pairs layout "
                            "(images/ + masks/); its classes.json sets the classes (else VOC's 21). "
                            "Optional with --resume."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder to create (new, or an empty folder).")]
    = None,
    preset: Annotated[
        Preset, typer.Option(help="default: void ignored, [-1,1] input, h-flip; seed: the write-up exactly.")
    ] = Preset.default,
    epochs: Annotated[int | None, typer.Option(min=1, help="Most epochs (preset: 30).", rich_help_panel=PANEL_RECIPE)]
    = None,
    batch_size: Annotated[int | None, typer.Option(
        min=1, help="Global images per step, split across every replica of every worker (preset: 32). "
                    "The learning rate is kept as given, not scaled with the replicas; config.json records "
                    "num_workers, num_replicas and learning_rate_rule.", rich_help_panel=PANEL_RECIPE)] = None,
    image_size: Annotated[str | None, typer.Option(
        metavar="N|HxW", help="Model input: N for N x N, or HEIGHTxWIDTH such as 160x224; each side a multiple "
                              "of 32 (224).", rich_help_panel=PANEL_RECIPE)] = None,
    resize: Annotated[ResizeMode | None, typer.Option(
        help="How images reach the input size: stretch (default) or letterbox (keep the aspect ratio; pad the "
             "image with the pixel value that scales to 0 and the mask with void).",
        rich_help_panel=PANEL_RECIPE)] = None,
    learning_rate: Annotated[float | None, typer.Option(min=0.0, help="Adam learning rate (preset: 1e-3).",
                                                        rich_help_panel=PANEL_RECIPE)] = None,
    patience: Annotated[int | None, typer.Option(min=0, help="Early-stopping patience in epochs (preset: 5).",
                                                 rich_help_panel=PANEL_RECIPE)] = None,
    monitor: Annotated[Monitor | None, typer.Option(
        help="What early stopping and the best checkpoint follow (default: val_miou; seed: val_loss).",
        rich_help_panel=PANEL_RECIPE)] = None,
    encoder_weights: Annotated[str | None, typer.Option(
        help="Encoder start: none (random), imagenet (Keras' no-top weights from ~/.keras/models "
             "or $KERAS_HOME/models, downloaded there once if missing) or PATH to a local no-top .h5 (offline).",
        rich_help_panel=PANEL_RECIPE)] = None,
    encoder: Annotated[str | None, typer.Option(
        metavar="mobilenet_v2|mobilenet_v3_small|mobilenet_v3_large",
        help="The encoder: mobilenet_v2 (the seed's), or MobileNetV3 Small or Large (benchmarks/bench_frontier.py "
             "compares them on this machine). Default mobilenet_v2.",
        rich_help_panel=PANEL_RECIPE, show_default=False)] = None,
    encoder_width: Annotated[float | None, typer.Option(
        metavar="0.35|0.5|0.75|1.0",
        help="The encoder's width multiplier (Keras' alpha; MobileNetV2 0.35-1.0, MobileNetV3 0.75 or 1.0): "
             "smaller is faster and less accurate. The decoder's widths scale with it unless --decoder-widths "
             "is given (1.0; the seed preset's too).",
        rich_help_panel=PANEL_RECIPE, show_default=False)] = None,
    decoder_widths: Annotated[str | None, typer.Option(
        metavar="A,B,C,D", help="The four up-sampling stages' filters, deepest first (default: 512,256,128,64 "
                                "times --encoder-width, in multiples of 8).",
        rich_help_panel=PANEL_RECIPE, show_default=False)] = None,
    freeze_encoder: Annotated[bool | None, typer.Option(
        "--freeze-encoder/--no-freeze-encoder",
        help="Freeze the encoder (default: only when pretrained weights are loaded).",
        rich_help_panel=PANEL_RECIPE, show_default=False)] = None,
    bn_momentum: Annotated[float | None, typer.Option(
        help="BatchNorm moving-average momentum (default: 0.5 from random weights, else the layers' own).",
        rich_help_panel=PANEL_RECIPE)] = None,
    split: Annotated[SplitChoice | None, typer.Option(
        help="official (train.txt/val.txt), seed (2164/449/300 proportions), auto (official when present) or "
             "train_aug (VOC+SBD, 10,582 ids, from 'segedge data fetch sbd'; validated on VOC val).",
        rich_help_panel=PANEL_RECIPE)] = None,
    val_fraction: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Pairs layout without splits/train.txt and val.txt: the share of images that "
                               "validates, chosen by a hash of each file stem (0.2). split.json records it.",
        rich_help_panel=PANEL_RECIPE)] = None,
    scaling: Annotated[TrainScaling | None, typer.Option(
        help="Input scaling: mobilenet [-1,1] (default) or unit [0,1] (seed).", rich_help_panel=PANEL_RECIPE)]
    = None,
    void: Annotated[VoidHandling | None, typer.Option(
        help="ignore: void (255) skipped by loss and metrics (default); class: void is an extra class 21 (seed).",
        rich_help_panel=PANEL_RECIPE)] = None,
    augment: Annotated[Augment | None, typer.Option(
        help="hflip: random horizontal flip (default); flip-copies: add an h- and a v-flipped copy (seed, 3x).",
        rich_help_panel=PANEL_RECIPE)] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed for split, init, shuffles and flips (0).",
                                             rich_help_panel=PANEL_RECIPE)] = None,
    steps_per_epoch: Annotated[int | None, typer.Option(min=1, help="Cap training steps per epoch.",
                                                        rich_help_panel=PANEL_RUN)] = None,
    validation_steps: Annotated[int | None, typer.Option(min=1, help="Cap validation steps per epoch.",
                                                         rich_help_panel=PANEL_RUN)] = None,
    cache: Annotated[CacheMode | None, typer.Option(
        help="Keep resized images in memory: auto (when they fit), memory, none.", rich_help_panel=PANEL_RUN)]
    = None,
    jit_compile: Annotated[bool | None, typer.Option(
        "--jit-compile/--no-jit-compile", help="XLA-compile the step (slow to compile on CPU; off by default).",
        rich_help_panel=PANEL_RUN, show_default=False)] = None,
    run_eagerly: Annotated[bool | None, typer.Option(
        "--run-eagerly", help="No graph tracing (debugging, tiny runs).", rich_help_panel=PANEL_RUN,
        show_default=False)] = None,
    workers: Annotated[str | None, typer.Option(
        help="Train on several machines: every worker's host:port, comma-separated, the same list on each "
             "(writes TF_CONFIG; or set TF_CONFIG yourself). Worker 0, the chief, writes --out; the others "
             "write only their scratch folder OUT.workerI.", rich_help_panel=PANEL_RUN)] = None,
    worker_index: Annotated[int | None, typer.Option(
        min=0, help="This machine's place in --workers (0 is the chief).", rich_help_panel=PANEL_RUN)] = None,
    worker_timeout: Annotated[int | None, typer.Option(
        min=1, help="Seconds a worker waits for the others before it stops with an error (300).",
        rich_help_panel=PANEL_RUN)] = None,
    resume: Annotated[Path | None, typer.Option(
        help="Continue the run in this folder from its last finished epoch (its config.json is used; "
             "--epochs may raise the limit).", rich_help_panel=PANEL_RUN)] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Start over in an --out folder that holds a run segedge wrote: its run files are replaced, "
             "other files there stay.", rich_help_panel=PANEL_RUN)] = False,
) -> None:
    """Train the U-Net (MobileNetV2 encoder, pix2pix decoder) and write RUN/model.keras, config.json,
    split.json, classes.json, history.csv and checkpoints/."""
    from segedge.util.optional import require_extra

    require_extra("train")  # one line naming segedge[train], before any slow import
    from segedge.train import distribute
    from segedge.train.config import absolute_path, make_config
    from segedge.train.fit import plural, train
    from segedge.train.rundir import load_config

    # messages show the paths as typed, without detours: flow/../own/x is own/x
    data, out, resume = (None if p is None else user_path(p) for p in (data, out, resume))
    if workers is not None:
        os.environ["TF_CONFIG"] = distribute.tf_config(distribute.parse_workers(workers, worker_index))
    elif worker_index is not None:
        raise ConfigError("--worker-index needs --workers host:port,host:port")
    cluster = distribute.cluster_from_env()

    options = {
        "epochs": epochs, "batch_size": batch_size, "image_size": image_size, "resize": resize,
        "learning_rate": learning_rate,
        "patience": patience, "monitor": monitor, "encoder_weights": encoder_weights,
        "encoder": encoder, "encoder_width": encoder_width, "decoder_widths": decoder_widths,
        "freeze_encoder": freeze_encoder, "bn_momentum": bn_momentum, "split": split, "scaling": scaling,
        "void_handling": void, "augment": augment, "seed": seed, "steps_per_epoch": steps_per_epoch,
        "validation_steps": validation_steps, "val_fraction": val_fraction, "cache": cache, "jit_compile": jit_compile,
        "run_eagerly": run_eagerly, "worker_timeout_s": worker_timeout,
    }
    options = {k: _value(v) for k, v in options.items()}
    if image_size is not None:
        from segedge.train.config import normalize_image_size

        options["image_size"] = normalize_image_size(image_size)  # "224" and 224 are the same run
    if encoder_width is not None or decoder_widths is not None:  # compared with a resumed run's as numbers
        from segedge.train.widths import parse_decoder_widths

        options["encoder_width"] = None if encoder_width is None else float(encoder_width)  # TrainConfig checks
        options["decoder_widths"] = parse_decoder_widths(decoder_widths)
    if resume is not None:
        # A worker other than the chief continues from its own scratch folder (the chief's may be on another host).
        saved = load_config(distribute.worker_folder(resume, cluster))
        config = _resume_config(saved.replace(out=str(absolute_path(resume))), resume, data, out, preset,
                                overwrite, options)
    else:
        if data is None or out is None:
            raise ConfigError("pass the dataset folder and --out RUN (or --resume RUN to continue a run)")
        config = make_config(data, out, preset.value, **options)
    typer.echo(
        f"{'resuming' if resume else 'training'} {config.preset} recipe: {config.height}x{config.width} px "
        f"(HxW, {config.resize}), "
        f"batch {config.batch_size}, up to {plural(config.epochs, 'epoch')}, lr {config.learning_rate:g}, "
        f"encoder {config.encoder} {config.encoder_width:g} "
        f"({config.encoder_weights}{', frozen' if config.freeze else ''}), "
        f"decoder {'/'.join(map(str, config.decoder_widths))} -> {config.out}"
    )
    try:
        with _sigterm_interrupts():
            result = train(config, resume=resume is not None, overwrite=overwrite)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (kill, a scheduler's timeout) as _Terminated
        raise typer.Exit(_interrupted(Path(config.out), exc)) from None
    if resume is not None and result.epochs_completed == result.initial_epoch:
        why = ("it stopped early" if result.stopped_early
               else f"it already ran {plural(result.epochs_completed, 'epoch')}")
        typer.echo(f"nothing to resume: {why}; raise --epochs to continue")
    typer.echo(result.summary())


class _Terminated(KeyboardInterrupt):
    """SIGTERM raised where Ctrl-C raises KeyboardInterrupt, so both unwind a run the same way."""

    signal_name = "SIGTERM"
    exit_code = 128 + signal.SIGTERM  # 143, the shell's code for a process ended by SIGTERM


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While training, SIGTERM ends the run as Ctrl-C does: the start undone or the finished epochs kept,
    and one line saying how to resume. Without it the process died on the spot, silently, exit 143.

    Only where Python's default is in place, on the main thread (where handlers can be set). A second
    SIGTERM while the first unwinds gets the default again: it ends the process at once.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def interrupt(signum, frame):  # noqa: ARG001 - the signal module's signature
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise _Terminated()

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupted(run: Path, exc: KeyboardInterrupt) -> int:
    """Ctrl-C or SIGTERM: finished epochs are checkpointed, so say how to continue instead of "discarded"."""
    from segedge.train.fit import plural
    from segedge.train.rundir import RunPaths, load_state

    what = f"terminated ({exc.signal_name})" if isinstance(exc, _Terminated) else "interrupted"
    code = exc.exit_code if isinstance(exc, _Terminated) else EXIT_INTERRUPTED
    if not RunPaths.at(run).config.is_file():
        typer.echo(f"{what} before training started; nothing was written", err=True)
        return code
    state = load_state(run)
    done = state.epoch if state else 0
    typer.echo(f"{what} after {plural(done, 'finished epoch')}; continue with: segedge train --resume {run}",
               err=True)
    return code


def _flag(field: str) -> str:
    return "--void" if field == "void_handling" else "--" + field.replace("_", "-")


def _resume_config(saved, run: Path, data: Path | None, out: Path | None, preset: Preset, overwrite: bool,
                   options: dict[str, Any]):
    """The saved config, with only what a resume may change (and a moved dataset or run folder)."""
    changed = sorted(k for k, v in options.items() if v is not None and k not in RESUME_MAY_CHANGE
                     and v != getattr(saved, k))
    if changed or (preset is not Preset.default and preset.value != saved.preset):
        names = ", ".join(_flag(k) for k in changed) or "--preset"
        raise ConfigError(
            f"--resume {run} continues with {run / 'config.json'}; {names} cannot change. "
            "Start a new run (another --out) to change them"
        )
    if overwrite:
        raise ConfigError("--overwrite and --resume contradict each other; pick one")
    from segedge.train.config import absolute_path

    if out is not None and absolute_path(out) != absolute_path(run):
        raise ConfigError(f"--out {out} and --resume {run} differ; --resume writes into the run it continues")
    changes: dict[str, Any] = {"out": str(absolute_path(run))}
    if data is not None:
        changes["data_root"] = str(absolute_path(data))
    changes.update({k: options[k] for k in RESUME_MAY_CHANGE if options[k] is not None})
    return saved.replace(**changes)


def register(app: typer.Typer) -> None:
    app.command("train", no_args_is_help=True)(user_errors(train_command))
