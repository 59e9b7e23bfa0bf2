"""The float fallback on a model built so that ONE layer's int8 error dominates (CPU independent).

``poison`` is a 1x1 convolution that is the identity in float: its extra input
channel is exactly zero, but that channel's weight is 1000. int8 weights are
symmetric per output channel (scale = max |w| / 127), so the identity weight
1 rounds to 0 in every output channel and the int8 model sees a blank image:
it predicts the background bias everywhere, whatever the CPU's kernels.
With ``poison`` left in float the model is the float one up to ordinary
rounding. The ground truth is the float classifier itself (computed with
numpy on the dataset's own images), so the Keras mIoU is high and the plain
int8 drop is tens of points by construction.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from segedge.cli import app
from segedge.contract.manifest import load_manifest
from segedge.contract.metrics import confusion_matrix, mean_iou
from segedge.util.errors import ParityError

SIZE = 64
BOUND = 20.0  # mIoU points: K = 0 misses it by construction, K = 1 meets it by construction
EVAL = 6


def _classifier() -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel colour classes on mobilenet-scaled RGB: background, red (1), green (15), blue (12)."""
    weights = np.zeros((3, 21), np.float32)
    bias = np.full(21, -5.0, np.float32)
    bias[0] = 0.3  # a blank (all-zero) input is background
    for cls, channel in ((1, 0), (15, 1), (12, 2)):
        weights[:, cls] = -2.0
        weights[channel, cls] = 4.0
        bias[cls] = 0.0
    return weights, bias


def poisoned_model():
    import keras

    weights, bias = _classifier()
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    features = keras.layers.Conv2D(4, 1, name="features")(inputs)   # RGB and an always-zero channel
    clean = keras.layers.Conv2D(3, 1, name="poison")(features)      # identity + 1000 x (zero channel)
    logits = keras.layers.Conv2D(21, 1, name="logits")(clean)
    model = keras.Model(inputs, logits, name="poisoned")
    feature_kernel = np.zeros((1, 1, 3, 4), np.float32)
    feature_kernel[0, 0, [0, 1, 2], [0, 1, 2]] = 1.0
    poison_kernel = np.zeros((1, 1, 4, 3), np.float32)
    poison_kernel[0, 0, [0, 1, 2], [0, 1, 2]] = 1.0
    poison_kernel[0, 0, 3, :] = 1000.0
    model.get_layer("features").set_weights([feature_kernel, np.zeros(4, np.float32)])
    model.get_layer("poison").set_weights([poison_kernel, np.zeros(3, np.float32)])
    model.get_layer("logits").set_weights([weights[None, None], bias])
    return model


@pytest.fixture(scope="module")
def poisoned(synth_root: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(run, bundle): masks rewritten to the float classifier's classes; fp32 + int8 TFLite, read-only."""
    from fixtures_export import write_run

    from segedge.contract.targets import parse_targets
    from segedge.data.images import mask_to_image
    from segedge.data.voc import VocDataset
    from segedge.export.bundle import export_bundle

    base = tmp_path_factory.mktemp("poisoned")
    root = Path(shutil.copytree(synth_root, base / "voc"))
    dataset = VocDataset.open(root)
    weights, bias = _classifier()
    for sample_id in dataset.ids("trainval"):
        pixels = np.asarray(dataset.load_image(sample_id), np.float32) / 127.5 - 1.0
        mask_to_image((pixels @ weights + bias).argmax(-1).astype(np.uint8)).save(dataset.mask_path(sample_id))
    run = write_run(root, base / "run", poisoned_model())
    bundle = base / "bundle"
    export_bundle(run, bundle, parse_targets("fp32,int8"), calib=8, eval_count=EVAL)
    return run, bundle


@pytest.fixture
def bundle_copy(poisoned, tmp_path) -> Path:
    return Path(shutil.copytree(poisoned[1], tmp_path / "bundle"))


def _digests(bundle: Path) -> dict[str, str]:
    """sha256 of every file in the bundle except the report the command writes (and the marker, which
    records that report as segedge's)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(bundle.iterdir())
            if not p.name.startswith("quant_report") and p.name != ".segedge.json"}


def _keras_miou(bundle: Path) -> float:
    with np.load(bundle / "reference.npz") as data:
        return mean_iou(confusion_matrix(data["truth"], data["keras"], 21))


def test_auto_fallback_leaves_exactly_the_broken_layer_in_float(poisoned, bundle_copy):
    from segedge.quant.requant_tflite import float_layer_dtypes
    from segedge.quant.stage import QuantOptions, quant_stage

    run, _ = poisoned
    before = load_manifest(bundle_copy).artifacts["int8"]
    keras = _keras_miou(bundle_copy)
    assert keras > 0.8  # the float classifier is (nearly) its own ground truth
    outcome = quant_stage(run, bundle_copy, QuantOptions(samples=4, onnx=False, k="auto", max_miou_drop=BOUND,
                                                         allow_large=True))
    assert not outcome.failed
    assert "poison" in outcome.report.worst(1)[0]  # the per-layer report found it
    (result,) = outcome.fallbacks
    tried = {t.k: t for t in result.tried}
    # K = 0 is the exported int8 model: its drop is what export itself verified, far past the bound
    assert tried[0].drop == pytest.approx(100 * (keras - before.verify["miou"]), abs=1e-6)
    assert tried[0].drop > 50 and not tried[0].meets
    assert result.chosen_k == 1 and result.replaced
    assert len(result.float_layers) == 1 and "poison" in result.float_layers[0]

    after = load_manifest(bundle_copy).artifacts["int8"]
    path = bundle_copy / after.file
    fp32_bytes = (bundle_copy / load_manifest(bundle_copy).artifacts["fp32"].file).stat().st_size
    assert after.precision == "mixed"
    assert after.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() != before.sha256
    assert after.bytes == path.stat().st_size
    assert after.details["size_ratio_fp32"] == pytest.approx(path.stat().st_size / fp32_bytes)
    assert after.details["float_layers"] == result.float_layers and after.details["fallback_k"] == 1
    # re-measured as written, within the bound, and agreeing with Keras almost everywhere
    assert 100 * (keras - after.verify["miou"]) <= BOUND and after.verify["agreement"] > 0.9
    dtypes = float_layer_dtypes(path, outcome.report.worst(len(outcome.report.tflite)))
    assert dtypes[result.float_layers[0]] == "float32"
    others = {name: d for name, d in dtypes.items() if name != result.float_layers[0]}
    assert len(others) == len(dtypes) - 1 >= 2 and set(others.values()) <= {"int8", "uint8"}  # nothing else float
    assert after.input.dtype == before.input.dtype == "uint8"
    written = json.loads((bundle_copy / "quant_report.json").read_text())["fallback"]["int8"]
    assert written["met"] and written["replaced"] and written["chosen_k"] == 1
    # predict's default pick is still the (now mixed) integer TFLite model, not the float one
    from segedge.edge.artifacts import choose_artifact

    assert choose_artifact(bundle_copy, load_manifest(bundle_copy))[0] == "int8"


def test_a_large_fallback_is_refused_with_the_table_printed_and_the_bundle_byte_identical(poisoned, bundle_copy):
    """The model is a few kB: flatbuffer overhead makes any K > 0 model >= 0.5 x fp32; refused by default."""
    run, _ = poisoned
    before = _digests(bundle_copy)
    result = CliRunner().invoke(app, ["quant-report", str(run), "--bundle", str(bundle_copy), "--samples", "4",
                                      "--int8-fallback", "auto", "--fallback-max-drop", str(BOUND)])
    assert result.exit_code == 7, result.output
    assert _digests(bundle_copy) == before
    lines = result.output.splitlines()
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["0", "1"]  # K = 1 met the bound but is refused; nothing larger tried
    assert rows[1][-3:] == ["yes,", "too", "large"] and rows[0][-1] == "no"
    assert "--allow-large-fallback" in result.output and "FAILED" in result.output
    report = json.loads((bundle_copy / "quant_report.json").read_text())["fallback"]["int8"]
    assert report["failed"] and not report["replaced"] and report["tried"][1]["size_ratio"] >= 0.5


def test_an_unreachable_bound_fails_after_trying_every_k_and_changes_nothing(poisoned, bundle_copy):
    run, _ = poisoned
    before = _digests(bundle_copy)
    unreachable = -(100 - 100 * _keras_miou(bundle_copy)) - 1  # would need an mIoU above 100 %
    result = CliRunner().invoke(app, ["quant-report", str(run), "--bundle", str(bundle_copy), "--samples", "4",
                                      "--int8-fallback", "auto", "--fallback-max-drop", f"{unreachable:.3f}",
                                      "--allow-large-fallback"])
    assert result.exit_code == 7, result.output
    assert _digests(bundle_copy) == before
    layers = len(json.loads((bundle_copy / "quant_report.json").read_text())["tflite"]["layers"])
    rows = [line.split() for line in result.output.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in rows] == sorted({0, 1, 2, 4, 8, 16, 32, 64, 128} & set(range(layers)) | {layers})
    assert all(row[-1] == "no" for row in rows)
    assert "no K met" in result.output


def test_a_model_other_than_the_one_measured_is_never_written(poisoned, bundle_copy, tmp_path):
    from segedge.quant.apply import apply_results
    from segedge.quant.context import load_context
    from segedge.quant.fallback import tflite_fallback
    from segedge.quant.report import build_report

    run, _ = poisoned
    before = _digests(bundle_copy)
    ctx = load_context(run, bundle_copy)
    report, debug = build_report(ctx, tmp_path, 4, onnx=False)
    result = tflite_fallback(ctx, report, debug.debugger, tmp_path, 1, BOUND, allow_large=True)
    assert result.applied_k == 1 and result.trial(1).meets
    result.model_path = tmp_path / "fallback_int8_k0.tflite"  # not the bytes the search measured for K = 1
    with pytest.raises(ParityError, match="not the one the search measured"):
        apply_results(ctx, [result])
    assert _digests(bundle_copy) == before and not result.replaced


def test_bundle_and_run_problems_exit_4(poisoned, bundle_copy, tmp_path):
    run, _ = poisoned
    runner = CliRunner()
    missing = runner.invoke(app, ["quant-report", str(run), "--bundle", str(tmp_path / "nowhere")])
    assert missing.exit_code == 4 and "bundle folder not found" in missing.output
    not_bundle = runner.invoke(app, ["quant-report", str(run), "--bundle", str(run)])
    assert not_bundle.exit_code == 4 and "no manifest.json" in not_bundle.output
    no_run = runner.invoke(app, ["quant-report", str(tmp_path / "norun"), "--bundle", str(bundle_copy)])
    assert no_run.exit_code == 4 and "run folder not found" in no_run.output
    other_run = Path(shutil.copytree(run, tmp_path / "other_run"))
    with open(other_run / "model.keras", "ab") as handle:  # another model file: its sha256 differs
        handle.write(b"\0")
    other = runner.invoke(app, ["quant-report", str(other_run), "--bundle", str(bundle_copy)])
    assert other.exit_code == 4 and "different model" in other.output
    tampered = Path(shutil.copytree(bundle_copy, tmp_path / "tampered"))
    with open(tampered / "model_int8.tflite", "ab") as handle:  # K = 0 stands for this file: it must be intact
        handle.write(b"\0")
    changed = runner.invoke(app, ["quant-report", str(run), "--bundle", str(tampered), "--samples", "2",
                                  "--int8-fallback", "auto", "--allow-large-fallback"])
    assert changed.exit_code == 4 and "does not match the manifest" in changed.output
    (bundle_copy / "manifest.json").write_text("{broken", encoding="utf-8")
    broken = runner.invoke(app, ["quant-report", str(run), "--bundle", str(bundle_copy)])
    assert broken.exit_code == 4 and "manifest.json" in broken.output


@pytest.mark.parametrize("allow_large", [True, False])
def test_export_int8_fallback_prints_the_table_and_applies_all_or_nothing(poisoned, tmp_path, allow_large):
    run, _ = poisoned
    out = tmp_path / "bundle"
    args = ["export", str(run), "--out", str(out), "--format", "fp32", "--calib-images", "8",
            "--eval-images", str(EVAL), "--int8-fallback", "auto", "--fallback-max-drop", str(BOUND)]
    result = CliRunner().invoke(app, args + (["--allow-large-fallback"] if allow_large else []))
    # --int8-fallback implies --int8, which exports the int8 model of both runtimes: one per-K table each.
    tflite_part, _, onnx_part = result.output.partition("onnx-int8: Keras mIoU")
    rows = [line.split() for line in tflite_part.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["0", "1"], result.output  # the TFLite per-K table, either way
    assert [ln.split()[0] for ln in onnx_part.splitlines()[1:] if ln.strip()[:1].isdigit()][0] == "0"
    manifest = load_manifest(out)
    int8 = manifest.artifacts["int8"]
    assert int8.sha256 == hashlib.sha256((out / int8.file).read_bytes()).hexdigest()  # the manifest tells the truth
    if allow_large:
        assert result.exit_code == 0, result.output
        assert int8.precision == "mixed" and int8.details["fallback_k"] == 1
    else:
        assert result.exit_code == 7, result.output
        assert int8.precision == "int8" and "fallback_k" not in int8.details  # as export wrote it
