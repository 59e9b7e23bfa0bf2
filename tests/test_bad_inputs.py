"""Hostile inputs: each case is one readable line naming the file, a non-zero exit, nothing new written.

``REJECTED`` is a table of ``Case(name, build, expect_exit, must_contain)``.
``build(env)`` damages a private copy of a generated dataset, run folder or
bundle (``Env`` copies them into ``tmp_path`` on first use) and returns the
CLI arguments to run. The test then runs ``segedge`` in-process and checks:

- the exit code is ``expect_exit`` (``segedge.util.errors``: 2 config/usage,
  3 data, 4 model, 7 parity gate, 8 output);
- every ``must_contain`` string is in the output (templates: ``{first}`` is
  the first training id of the synthetic dataset); the offending file or value
  is always one of them;
- no exception escaped (a traceback) and the word "Traceback" is not printed;
- nothing in the workspace changed or appeared (file bytes compared), except
  the paths a case names in ``may_write`` (bench writes its report before the
  gate fails, by design).

Cases that must be *accepted* (odd but valid image modes, missing parent
folders) live in their own tables at the end. Interrupted runs (SIGKILL) are in
``tests/test_faults_train.py`` and ``tests/test_export_mechanics.py``.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segedge.cli import app
from segedge.data.voc import VocDataset
from segedge.util import fileio, outputs

runner = CliRunner()

# bench, as fast as it goes: one artifact, one thread, one run, no Keras row, no plot or gallery.
QUICK_BENCH = ["--format", "fp32", "--threads", "1", "--runs", "1", "--warmup", "0", "--e2e-images", "0",
               "--no-keras", "--gallery", "0", "--no-plot"]


@pytest.fixture(scope="module")
def bundles(micro_run: Path, synth_root: Path, tmp_path_factory) -> dict[str, Path]:
    """Read-only micro bundles: ``main`` (fp32 TFLite + ONNX, 64 px, 21 classes) and two foreign exports
    whose artifacts get planted into ``main``: ``px96`` (96 px input) and ``classes5`` (5 output classes)."""
    pytest.importorskip("tensorflow")
    from fixtures_export import micro_model, write_run

    from segedge.contract.targets import parse_targets
    from segedge.data.synth import SynthConfig, generate
    from segedge.export.bundle import export_bundle

    base = tmp_path_factory.mktemp("bad_input_bundles")
    run96 = write_run(synth_root, base / "run96", micro_model(96), image_size=96)
    five = generate(base / "voc5", SynthConfig(images=6, size=64, num_classes=5))  # a 5-class run needs 5-class data
    run5 = write_run(five, base / "run5", micro_model(classes=5))
    built = {"main": (micro_run, "fp32,onnx"), "px96": (run96, "fp32"), "classes5": (run5, "fp32,onnx")}
    for name, (run, formats) in built.items():
        export_bundle(run, base / name, parse_targets(formats), eval_count=2)
    return {name: base / name for name in built}


class Env:
    """A case's private workspace (``tmp_path``); inputs are copied in on first use."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.request, self.tmp, self.monkeypatch = request, tmp_path, monkeypatch
        self.out = tmp_path / "out"  # where a command is told to write; never created by a case

    # -- inputs --------------------------------------------------------------------------------------
    @cached_property
    def synth_root(self) -> Path:
        return self.request.getfixturevalue("synth_root")

    @cached_property
    def voc(self) -> Path:
        return Path(shutil.copytree(self.synth_root, self.tmp / "voc"))

    @cached_property
    def first(self) -> str:
        return VocDataset.open(self.synth_root).ids("train")[0]

    @cached_property
    def photo(self) -> Path:
        """One good JPEG in its own folder (what a user points predict at)."""
        folder = self.tmp / "photos"
        folder.mkdir()
        return Path(shutil.copy2(self.synth_root / "JPEGImages" / f"{self.first}.jpg", folder / "photo.jpg"))

    @cached_property
    def run(self) -> Path:
        return Path(shutil.copytree(self.request.getfixturevalue("micro_run"), self.tmp / "run"))

    @cached_property
    def bundles(self) -> dict[str, Path]:
        return self.request.getfixturevalue("bundles")

    @cached_property
    def bundle(self) -> Path:
        return Path(shutil.copytree(self.bundles["main"], self.tmp / "bundle"))

    # -- damage helpers ------------------------------------------------------------------------------
    def manifest(self, edit: Callable[[dict], object]) -> None:
        path = self.bundle / "manifest.json"
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))

    def plant(self, artifact: str, data: bytes) -> Path:
        """Replace an artifact's bytes and record their sha256 in the manifest, so the sha check passes
        and what fires is the check under test (a loader, the input size, the class count)."""
        path = self.bundle / json.loads((self.bundle / "manifest.json").read_text())["artifacts"][artifact]["file"]
        path.write_bytes(data)

        def record(manifest: dict) -> None:
            manifest["artifacts"][artifact].update(sha256=fileio.sha256_file(path), bytes=len(data))

        self.manifest(record)
        return path

    def readonly(self, folder: Path) -> Path:
        """A folder nobody may write into, root included (``chattr +i``: chmod does not stop root)."""
        folder.mkdir(parents=True, exist_ok=True)
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here (needs root on ext4/xfs/btrfs)")
        self.request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(folder)], check=True))
        return folder

    def occupy_out(self) -> None:
        """``--out`` already holds a user's file, which the command must refuse to touch."""
        self.out.mkdir()
        (self.out / "notes.txt").write_text("mine")

    def disk_full(self) -> None:
        """Every rename into place fails as on a full disk (each segedge write ends in ``os.replace``)."""
        def full(src, dst, *args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

        self.monkeypatch.setattr(os, "replace", full)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Env], list]         # damages the workspace; returns the CLI arguments
    expect_exit: int
    must_contain: tuple[str, ...]        # all must be in the output ({first} = first training id)
    may_write: tuple[str, ...] = ()      # workspace paths (prefixes) the command may create
    slow: bool = False                   # needs TensorFlow (a micro bundle / run, or the train command)


def needs_tensorflow(cases: list[Case]) -> list[Case]:
    return [dataclasses.replace(case, slow=True) for case in cases]


# ---------------------------------------------------------------------------------------------------------------
# Data: `segedge data check` / `data synth` on a damaged copy of the synthetic VOC folder.
# ---------------------------------------------------------------------------------------------------------------
def _image(env: Env) -> Path:
    return env.voc / "JPEGImages" / f"{env.first}.jpg"


def _mask(env: Env) -> Path:
    return env.voc / "SegmentationClass" / f"{env.first}.png"


def check(env: Env) -> list:
    return ["data", "check", env.voc]


def zero_byte_jpeg(env):
    _image(env).write_bytes(b"")
    return check(env)


def truncated_jpeg(env):
    _image(env).write_bytes(_image(env).read_bytes()[:300])
    return check(env)


def text_named_jpg(env):
    _image(env).write_text("this is not an image\n")
    return check(env)


def mask_wrong_size(env):
    mask = Image.open(_mask(env))
    mask.resize((mask.width // 2, mask.height), Image.NEAREST).save(_mask(env))
    return check(env)


def mask_values_out_of_range(env):
    mask = Image.open(_mask(env))
    values = np.asarray(mask).copy()
    values[:3, :3] = 77
    bad = Image.fromarray(values, "P")
    bad.putpalette(mask.getpalette())
    bad.save(_mask(env))
    return check(env)


def rgb_mask_not_voc_colours(env):
    Image.new("RGB", Image.open(_mask(env)).size, (13, 200, 77)).save(_mask(env))
    return check(env)


def id_without_image(env):
    split = env.voc / "ImageSets/Segmentation/train.txt"
    split.write_text(split.read_text() + "ghost_000001\n")
    return check(env)


def empty_split_file(env):
    (env.voc / "ImageSets/Segmentation/val.txt").write_text("")
    return check(env)


def missing_split_files(env):
    for name in ("train", "val", "trainval"):
        (env.voc / f"ImageSets/Segmentation/{name}.txt").unlink()
    return check(env)


def traversal_in_split(env):
    split = env.voc / "ImageSets/Segmentation/train.txt"
    split.write_text("../../../etc/passwd\n" + split.read_text())
    return check(env)


def absolute_path_in_split(env):
    split = env.voc / "ImageSets/Segmentation/val.txt"
    split.write_text("/etc/hostname\n" + split.read_text())
    return check(env)


def duplicate_ids(env):
    split = env.voc / "ImageSets/Segmentation/train.txt"
    split.write_text(split.read_text() + split.read_text().splitlines()[0] + "\n")
    return check(env)


def check_root_missing(env):
    return ["data", "check", env.tmp / "missing-voc"]


def not_a_voc_folder(env):
    shutil.rmtree(env.voc / "JPEGImages")
    return check(env)


def synth_negative_count(env):
    return ["data", "synth", env.out, "--images", "-4"]


def synth_zero_count(env):
    return ["data", "synth", env.out, "--images", "0"]


def synth_out_not_empty(env):
    env.occupy_out()
    return ["data", "synth", env.out, "--images", "3", "--size", "32"]


def synth_out_not_empty_overwrite(env):
    env.occupy_out()
    return ["data", "synth", env.out, "--images", "3", "--size", "32", "--overwrite"]


def synth_disk_full(env):
    env.disk_full()
    return ["data", "synth", env.tmp / "new" / "voc", "--images", "3", "--size", "32"]


def synth_read_only_folder(env):
    return ["data", "synth", env.readonly(env.tmp / "locked") / "voc", "--images", "3", "--size", "32"]


DATA = [
    Case("zero_byte_jpeg", zero_byte_jpeg, 3, ("{first}.jpg", "empty")),
    Case("truncated_jpeg", truncated_jpeg, 3, ("{first}.jpg",)),
    Case("text_named_jpg", text_named_jpg, 3, ("{first}.jpg", "not a readable image")),
    Case("mask_wrong_size", mask_wrong_size, 3, ("{first}.png",)),
    Case("mask_values_out_of_range", mask_values_out_of_range, 3, ("{first}.png", "77")),
    Case("rgb_mask_not_voc_colours", rgb_mask_not_voc_colours, 3, ("{first}.png", "(13, 200, 77)")),
    Case("id_without_image", id_without_image, 3, ("ghost_000001.jpg",)),
    Case("empty_split_file", empty_split_file, 3, ("val.txt",)),
    Case("missing_split_files", missing_split_files, 3, ("train.txt",)),
    Case("traversal_in_split", traversal_in_split, 3, ("train.txt", "../../../etc/passwd")),
    Case("absolute_path_in_split", absolute_path_in_split, 3, ("val.txt", "/etc/hostname")),
    Case("duplicate_ids", duplicate_ids, 3, ("listed twice",)),
    Case("check_root_missing", check_root_missing, 3, ("missing-voc", "not found")),
    Case("not_a_voc_folder", not_a_voc_folder, 3, ("voc", "JPEGImages")),
    Case("synth_negative_count", synth_negative_count, 2, ("--images",)),
    Case("synth_zero_count", synth_zero_count, 2, ("--images",)),
    Case("synth_out_not_empty", synth_out_not_empty, 8, ("/out: holds 1 file not written by segedge (notes.txt)",)),
    Case("synth_out_not_empty_overwrite", synth_out_not_empty_overwrite, 8,
         ("/out: holds 1 file not written by segedge (notes.txt)",)),
    Case("synth_disk_full", synth_disk_full, 8, ("new/voc", "disk is full")),
    Case("synth_read_only_folder", synth_read_only_folder, 8, ("locked/voc", "not writable")),
]


# ---------------------------------------------------------------------------------------------------------------
# Predict: bad images, bad model files, bad manifests, bad options, unwritable output.
# ---------------------------------------------------------------------------------------------------------------
def predict(env: Env, *inputs, model=None) -> list:
    return ["predict", model if model is not None else env.bundle, *inputs, "--out", env.out]


def predict_empty_folder(env):
    (env.tmp / "empty").mkdir()
    return predict(env, env.tmp / "empty")


def predict_zero_byte_image(env):
    (env.tmp / "zero.jpg").write_bytes(b"")
    return predict(env, env.tmp / "zero.jpg")


def predict_truncated_image(env):
    (env.tmp / "cut.jpg").write_bytes(env.photo.read_bytes()[:300])
    return predict(env, env.tmp / "cut.jpg")


def predict_text_as_jpg(env):
    (env.tmp / "notes.jpg").write_text("this is not an image\n")
    return predict(env, env.tmp / "notes.jpg")


def _half(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


def truncated_tflite(env):  # a half-copied file as found: the manifest's sha256 catches it
    model = env.bundle / "model_fp32.tflite"
    model.write_bytes(_half(model))
    return predict(env, env.photo, model=model)


def truncated_tflite_listed(env):  # ... and with the sha256 matching, the loader must still say what is wrong
    env.plant("fp32", _half(env.bundles["main"] / "model_fp32.tflite"))
    return predict(env, env.photo, "--format", "fp32")


def truncated_onnx_listed(env):
    env.plant("onnx", _half(env.bundles["main"] / "model_fp32.onnx"))
    return predict(env, env.photo, "--format", "onnx")


def random_bytes_tflite_listed(env):
    env.plant("fp32", np.random.default_rng(0).bytes(6000))
    return predict(env, env.photo, model=env.bundle / "model_fp32.tflite")


def random_bytes_onnx_listed(env):
    env.plant("onnx", np.random.default_rng(1).bytes(6000))
    return predict(env, env.photo, model=env.bundle / "model_fp32.onnx")


def random_bytes_model_alone(env):  # a downloaded "model" with no bundle around it
    (env.tmp / "dl").mkdir()
    (env.tmp / "dl" / "model.tflite").write_bytes(np.random.default_rng(2).bytes(6000))
    return predict(env, env.photo, model=env.tmp / "dl" / "model.tflite")


def input_size_differs_from_manifest(env):  # a 96 px artifact under a 64 px manifest
    env.plant("fp32", (env.bundles["px96"] / "model_fp32.tflite").read_bytes())
    return predict(env, env.photo, "--format", "fp32")


def class_count_differs_tflite(env):  # a 5-class artifact under a 21-class manifest
    env.plant("fp32", (env.bundles["classes5"] / "model_fp32.tflite").read_bytes())
    return predict(env, env.photo, "--format", "fp32")


def class_count_differs_onnx(env):
    env.plant("onnx", (env.bundles["classes5"] / "model_fp32.onnx").read_bytes())
    return predict(env, env.photo, "--format", "onnx")


def manifest_missing(env):
    (env.bundle / "manifest.json").unlink()
    return predict(env, env.photo)


def manifest_missing_beside_model(env):  # a TFLite file whose metadata is not segedge's (renamed entry)
    (env.bundle / "manifest.json").unlink()
    model = env.bundle / "model_fp32.tflite"
    name = b"\x07\x00\x00\x00segedge\x00"  # the flatbuffer string naming segedge's metadata entry
    assert model.read_bytes().count(name) == 1
    model.write_bytes(model.read_bytes().replace(name, b"\x07\x00\x00\x00foreign\x00"))
    return predict(env, env.photo, model=model)


def manifest_not_json(env):
    (env.bundle / "manifest.json").write_text('{"schema_version": 1, "classes": [')
    return predict(env, env.photo)


def manifest_json_but_not_an_object(env):
    (env.bundle / "manifest.json").write_text("[1, 2, 3]\n")
    return predict(env, env.photo)


def manifest_unknown_schema(env):
    env.manifest(lambda m: m.update(schema_version=99))
    return predict(env, env.photo)


def manifest_field_missing(env):
    env.manifest(lambda m: m.pop("preprocess"))
    return predict(env, env.photo)


def sha256_mismatch_predict(env):
    with open(env.bundle / "model_fp32.tflite", "ab") as handle:
        handle.write(b"\0")
    return predict(env, env.photo, "--format", "fp32")


def predict_threads_zero(env):
    return predict(env, env.photo, "--threads", "0")


def predict_model_missing(env):
    return predict(env, env.photo, model=env.tmp / "missing-bundle")


def predict_input_missing(env):
    return predict(env, env.tmp / "missing-photo.jpg")


def predict_disk_full(env):
    env.disk_full()
    return predict(env, env.photo)


def predict_out_not_empty(env):
    env.occupy_out()
    return predict(env, env.photo)


def predict_read_only_out(env):
    env.readonly(env.out)
    return predict(env, env.photo)


PREDICT = needs_tensorflow([
    Case("predict_empty_folder", predict_empty_folder, 3, ("empty", "matched no image files")),
    Case("predict_zero_byte_image", predict_zero_byte_image, 3, ("zero.jpg", "empty (0 bytes)")),
    Case("predict_truncated_image", predict_truncated_image, 3, ("cut.jpg", "not a readable image")),
    Case("predict_text_as_jpg", predict_text_as_jpg, 3, ("notes.jpg", "not a readable image")),
    Case("truncated_tflite", truncated_tflite, 4, ("model_fp32.tflite", "sha256", "truncated")),
    Case("truncated_tflite_listed", truncated_tflite_listed, 4, ("model_fp32.tflite", "not a valid TFLite model")),
    Case("truncated_onnx_listed", truncated_onnx_listed, 4, ("model_fp32.onnx", "not a valid ONNX model")),
    Case("random_bytes_tflite_listed", random_bytes_tflite_listed, 4,
         ("model_fp32.tflite", "not a valid TFLite model")),
    Case("random_bytes_onnx_listed", random_bytes_onnx_listed, 4, ("model_fp32.onnx", "not a valid ONNX model")),
    Case("random_bytes_model_alone", random_bytes_model_alone, 4, ("dl/model.tflite", "no manifest.json beside it")),
    Case("input_size_differs_from_manifest", input_size_differs_from_manifest, 4,
         ("model_fp32.tflite", "96x96", "64x64")),
    Case("class_count_differs_tflite", class_count_differs_tflite, 4, ("model_fp32.tflite", "5 output classes", "21")),
    Case("class_count_differs_onnx", class_count_differs_onnx, 4, ("model_fp32.onnx", "5 output classes", "21")),
    Case("manifest_missing", manifest_missing, 4, ("bundle/manifest.json", "not found")),
    Case("manifest_missing_beside_model", manifest_missing_beside_model, 4,
         ("model_fp32.tflite", "no manifest.json beside it")),
    Case("manifest_not_json", manifest_not_json, 4, ("bundle/manifest.json", "not valid JSON")),
    Case("manifest_json_but_not_an_object", manifest_json_but_not_an_object, 4,
         ("bundle/manifest.json", "not an object")),
    Case("manifest_unknown_schema", manifest_unknown_schema, 4, ("bundle/manifest.json", "schema_version 99")),
    Case("manifest_field_missing", manifest_field_missing, 4, ("bundle/manifest.json", "preprocess")),
    Case("sha256_mismatch_predict", sha256_mismatch_predict, 4, ("model_fp32.tflite", "sha256", "does not match")),
    Case("predict_threads_zero", predict_threads_zero, 2, ("--threads", "got 0")),
    Case("predict_model_missing", predict_model_missing, 4, ("missing-bundle", "no such bundle")),
    Case("predict_input_missing", predict_input_missing, 3, ("missing-photo.jpg", "no such image")),
    Case("predict_disk_full", predict_disk_full, 8, ("out/.segedge.json", "disk is full")),
    Case("predict_read_only_out", predict_read_only_out, 8, ("out/.segedge.json", "not writable")),
    Case("predict_out_not_empty", predict_out_not_empty, 8, ("/out: holds 1 file not written by segedge (notes.txt)",)),
])


# ---------------------------------------------------------------------------------------------------------------
# Bench: a tampered artifact is a failed row and a failed gate (the report is still written), bad options.
# ---------------------------------------------------------------------------------------------------------------
def bench(env: Env, *extra) -> list:
    return ["bench", env.bundle, "--out", env.tmp / "report", *extra]


def sha256_mismatch_bench(env):
    with open(env.bundle / "model_fp32.tflite", "ab") as handle:
        handle.write(b"\0")
    return bench(env, *QUICK_BENCH)


def truncated_tflite_listed_bench(env):
    env.plant("fp32", _half(env.bundles["main"] / "model_fp32.tflite"))
    return bench(env, *QUICK_BENCH)


def bench_threads_zero(env):
    return bench(env, "--threads", "0")


def bench_runs_zero(env):
    return bench(env, "--runs", "0")


def bench_bundle_missing(env):
    return ["bench", env.tmp / "missing-bundle", "--out", env.tmp / "report"]


def bench_data_missing(env):
    return bench(env, "--data", env.tmp / "missing-voc", *QUICK_BENCH)


def bench_keras_model_missing(env):
    return bench(env, "--keras-model", env.tmp / "missing.keras")


BENCH = [
    Case("sha256_mismatch_bench", sha256_mismatch_bench, 7,
         ("model_fp32.tflite", "sha256", "does not match", "parity gate failed"), may_write=("report",), slow=True),
    Case("truncated_tflite_listed_bench", truncated_tflite_listed_bench, 7,
         ("model_fp32.tflite", "not a valid TFLite model", "parity gate failed"), may_write=("report",), slow=True),
    Case("bench_threads_zero", bench_threads_zero, 2, ("--threads", "'0'"), slow=True),
    Case("bench_runs_zero", bench_runs_zero, 2, ("--runs",), slow=True),
    Case("bench_bundle_missing", bench_bundle_missing, 4, ("missing-bundle", "manifest not found")),
    Case("bench_data_missing", bench_data_missing, 3, ("missing-voc", "dataset folder not found"), slow=True),
    Case("bench_keras_model_missing", bench_keras_model_missing, 4, ("missing.keras", "not found"), slow=True),
]


# ---------------------------------------------------------------------------------------------------------------
# Export: a damaged RUN (model.keras), bad options, an existing or unwritable --out.
# ---------------------------------------------------------------------------------------------------------------
def export(env: Env, *extra, run=None, out=None) -> list:
    return ["export", run if run is not None else env.run, "--out", out if out is not None else env.out,
            "--format", "fp32", "--eval-images", "2", *extra]


def export_model_keras_missing(env):
    (env.run / "model.keras").unlink()
    return export(env)


def export_model_keras_truncated(env):
    (env.run / "model.keras").write_bytes(_half(env.run / "model.keras"))
    return export(env)


def export_model_keras_with_lambda(env):  # safe_mode: a .keras file never runs Python code it carries
    import keras

    inputs = keras.Input((64, 64, 3))
    doubled = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    keras.Model(inputs, keras.layers.Conv2D(21, 1)(doubled)).save(env.run / "model.keras")
    return export(env)


def export_unknown_format(env):
    return export(env, "--format", "fp33")


def export_calib_zero(env):
    return export(env, "--calib-images", "0")


def export_eval_negative(env):
    return export(env, "--eval-images", "-1")


def export_run_missing(env):
    return export(env, run=env.tmp / "missing-run")


def export_data_missing(env):
    return export(env, "--data", env.tmp / "missing-voc")


def export_out_not_empty(env):
    env.occupy_out()
    return export(env)


def export_out_not_empty_overwrite(env):
    env.occupy_out()
    return export(env, "--overwrite")


def export_disk_full(env):
    env.disk_full()
    return export(env)


def export_read_only_folder(env):
    return export(env, out=env.readonly(env.tmp / "locked") / "bundle")


EXPORT = needs_tensorflow([
    Case("export_model_keras_missing", export_model_keras_missing, 4, ("run/model.keras", "not found")),
    Case("export_model_keras_truncated", export_model_keras_truncated, 4,
         ("run/model.keras", "truncated, corrupt or not a .keras archive")),
    Case("export_model_keras_with_lambda", export_model_keras_with_lambda, 4,
         ("run/model.keras", "Lambda", "safe mode")),
    Case("export_unknown_format", export_unknown_format, 2, ("'fp33'", "fp32, fp16")),
    Case("export_calib_zero", export_calib_zero, 2, ("--calib-images", "got 0")),
    Case("export_eval_negative", export_eval_negative, 2, ("--eval-images", "got -1")),
    Case("export_run_missing", export_run_missing, 4, ("missing-run", "not found")),
    Case("export_data_missing", export_data_missing, 3, ("missing-voc", "dataset folder not found")),
    Case("export_out_not_empty", export_out_not_empty, 8, ("/out: holds 1 file not written by segedge (notes.txt)",)),
    Case("export_out_not_empty_overwrite", export_out_not_empty_overwrite, 8,
         ("/out: holds 1 file not written by segedge (notes.txt)",)),
    Case("export_disk_full", export_disk_full, 8, ("out/model_fp32.tflite", "disk is full")),
    Case("export_read_only_folder", export_read_only_folder, 8, ("locked/bundle", "not writable")),
])


# ---------------------------------------------------------------------------------------------------------------
# Train: bad paths and counts, an --out that already holds something, an unwritable --out.
# ---------------------------------------------------------------------------------------------------------------
TINY_TRAIN = ["--image-size", "32", "--batch-size", "4", "--epochs", "1", "--steps-per-epoch", "1",
              "--validation-steps", "1", "--run-eagerly"]


def train(env: Env, *extra, data=None, out=None) -> list:
    return ["train", data if data is not None else env.voc, "--out", out if out is not None else env.out,
            *TINY_TRAIN, *extra]


def train_data_missing(env):
    return train(env, data=env.tmp / "missing-voc")


def train_resume_missing(env):
    return ["train", "--resume", env.tmp / "missing-run"]


def train_epochs_zero(env):
    return train(env, "--epochs", "0")


def train_out_holds_a_run(env):
    env.out.mkdir()
    (env.out / "config.json").write_text("{}\n")
    outputs.write_marker(env.out, "run", ["config.json"])
    return train(env)


def train_out_holds_an_unmarked_config(env):
    env.out.mkdir()
    (env.out / "config.json").write_text("{}\n")
    return train(env, "--overwrite")


def train_out_not_empty(env):
    env.occupy_out()
    return train(env)


def train_disk_full(env):
    env.disk_full()
    return train(env)


def train_read_only_folder(env):
    return train(env, out=env.readonly(env.tmp / "locked") / "run")


TRAIN = needs_tensorflow([
    Case("train_data_missing", train_data_missing, 3, ("missing-voc", "dataset folder not found")),
    Case("train_resume_missing", train_resume_missing, 4, ("missing-run", "not found")),
    Case("train_epochs_zero", train_epochs_zero, 2, ("--epochs",)),
    Case("train_out_holds_a_run", train_out_holds_a_run, 8,
         ("/out: already holds a segedge run", "--resume", "--overwrite")),
    Case("train_out_holds_an_unmarked_config", train_out_holds_an_unmarked_config, 8,
         ("/out: holds 1 file not written by segedge (config.json)",)),
    Case("train_out_not_empty", train_out_not_empty, 8, ("/out: holds 1 file not written by segedge (notes.txt)",)),
    Case("train_disk_full", train_disk_full, 8, ("out/.segedge.json", "disk is full")),
    Case("train_read_only_folder", train_read_only_folder, 8, ("locked/run", "not writable")),
])

REJECTED = [*DATA, *PREDICT, *BENCH, *EXPORT, *TRAIN]


def _snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` -> its bytes' sha256 (folders: "dir")."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _params(cases: list[Case]) -> list:
    return [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in cases]


def test_case_names_are_unique():
    names = [c.name for c in REJECTED]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", _params(REJECTED))
def test_rejected_with_one_clear_line(case: Case, request, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("SEGEDGE_DEBUG", raising=False)  # a --debug run earlier in this process sets it
    env = Env(request, tmp_path, monkeypatch)
    argv = [str(a) for a in case.build(env)]
    expected = [text.format(first=env.first) if "{first}" in text else text for text in case.must_contain]
    before = _snapshot(tmp_path)

    result = runner.invoke(app, argv)
    monkeypatch.undo()  # the disk is writable again before anything else runs

    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"an exception escaped: {result.exception!r}\n{result.output}")
    assert result.exit_code == case.expect_exit, result.output
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.output, f"{text!r} not in:\n{result.output}"
    after = _snapshot(tmp_path)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    unexpected = {p for p in changed if not p.startswith(case.may_write)} if case.may_write else changed
    assert not unexpected, f"the command left or changed: {sorted(unexpected)}"
    assert not [p for p in after if fileio.TMP_PREFIX in p], "temporary files left behind"


# ---------------------------------------------------------------------------------------------------------------
# Accepted: odd but valid inputs are converted, not rejected.
# ---------------------------------------------------------------------------------------------------------------
ODD_MODES = [("RGBA", ".png"), ("L", ".jpg"), ("CMYK", ".jpg"), ("I;16", ".png")]


def _as_mode(image: Image.Image, mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    return image.convert(mode)


def _first(root: Path) -> str:
    return VocDataset.open(root).ids("train")[0]


@pytest.mark.parametrize("mode,suffix", ODD_MODES)
def test_odd_image_modes_are_accepted_and_converted(mode: str, suffix: str, synth_root: Path, tmp_path: Path):
    from segedge.data.images import read_image

    source = VocDataset.open(synth_root).load_image(_first(synth_root))
    path = tmp_path / f"odd{suffix}"
    _as_mode(source, mode).save(path)
    image = read_image(path)
    assert image.mode == "RGB" and image.size == source.size
    assert np.asarray(image).std() > 0


@pytest.mark.slow
@pytest.mark.parametrize("mode,suffix", ODD_MODES)
def test_predict_accepts_odd_image_modes_at_their_own_size(mode: str, suffix: str, bundles, synth_root: Path,
                                                          tmp_path: Path):
    source = VocDataset.open(synth_root).load_image(_first(synth_root)).resize((57, 41))
    path = tmp_path / "in" / f"odd{suffix}"
    path.parent.mkdir()
    _as_mode(source, mode).save(path)
    assert Image.open(path).mode == mode
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", str(bundles["main"]), str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    mask = Image.open(out / "odd.png")
    assert mask.size == (57, 41) and mask.mode == "P"
    assert (out / "odd_overlay.jpg").is_file()


def test_synth_creates_missing_parent_folders(tmp_path: Path):
    out = tmp_path / "not" / "yet" / "voc"
    result = runner.invoke(app, ["data", "synth", str(out), "--images", "3", "--size", "32"])
    assert result.exit_code == 0, result.output
    assert len(list((out / "JPEGImages").glob("*.jpg"))) == 3
    assert not [p for p in out.parent.iterdir() if p.name.startswith(fileio.TMP_PREFIX)]
