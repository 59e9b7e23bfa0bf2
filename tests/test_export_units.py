"""Export pieces that need no conversion: option parsing, run-folder checks, calibration and reference choice."""

from __future__ import annotations

import numpy as np
import pytest

from segedge.commands.export import resolve_formats
from segedge.contract.preprocess import PreprocessSpec
from segedge.contract.targets import parse_targets
from segedge.data.splits import Split
from segedge.export.calibration import CalibrationSource, OrtCalibrationReader, load_calibration, pick_ids
from segedge.export.options import CalibMethod, ExportOptions, IntIO
from segedge.export.reference import reference_split
from segedge.export.run import open_run
from segedge.util.errors import ConfigError, ExportError, ModelError

SPEC = PreprocessSpec(32, 32, "mobilenet")


@pytest.mark.parametrize(("formats", "int8", "expected"), [
    (None, False, ["fp32", "int8"]),
    (None, True, ["fp32", "int8", "onnx", "onnx-int8"]),
    (["onnx"], True, ["fp32", "int8", "onnx", "onnx-int8"]),
    (["fp16"], True, ["fp32", "fp16", "int8", "onnx", "onnx-int8"]),
    (["fp16"], False, ["fp16"]),
    (["fp16,onnx", "dynamic"], False, ["fp16", "dynamic", "onnx"]),
    (["all"], True, ["fp32", "fp16", "dynamic", "int8", "onnx", "onnx-int8"]),
])
def test_int8_shorthand_adds_both_runtimes_int8_and_their_float_baselines(formats, int8, expected):
    assert [t.name for t in parse_targets(resolve_formats(formats, int8))] == expected


@pytest.mark.parametrize("kwargs", [dict(calib=0), dict(eval_count=-1), dict(int8_io="int16"),
                                    dict(calib_method="median")])
def test_export_options_reject_bad_values(kwargs):
    values = dict(calib=10, eval_count=10, int8_io="uint8", calib_method="minmax") | kwargs
    with pytest.raises(ConfigError):
        ExportOptions.build(**values)


def test_export_options_accept_every_choice():
    for io in IntIO:
        for method in CalibMethod:
            assert ExportOptions.build(1, 1, io.value, method.value).calib_method is method


def test_pick_ids_spreads_over_train_and_skips_excluded():
    train = [f"t{i:02d}" for i in range(20)]
    picked = pick_ids(train, 5, exclude=["t00"])
    assert len(picked) == 5 and "t00" not in picked and set(picked) <= set(train)
    assert picked[-1] == "t19"  # spread to the end, not the first five
    assert pick_ids(train[:3], 10) == train[:3]


def test_empty_calibration_source_is_an_error(synth_root):
    from segedge.data.voc import VocDataset

    with pytest.raises(ExportError, match="calibration source is empty"):
        load_calibration(VocDataset.open(synth_root), ["a", "b"], 4, SPEC, exclude=["a", "b"])
    with pytest.raises(ConfigError):
        pick_ids(["a"], 0)


def test_calibration_batches_are_preprocessed_like_inference(synth_root):
    from segedge.data.voc import VocDataset

    dataset = VocDataset.open(synth_root)
    source = load_calibration(dataset, dataset.ids("train"), 3, SPEC)
    batches = list(source.batches())
    assert len(batches) == 3 and all(b.shape == (1, 32, 32, 3) and b.dtype == np.float32 for b in batches)
    assert -1.0 <= min(b.min() for b in batches) and max(b.max() for b in batches) <= 1.0
    reader = OrtCalibrationReader(source, "image")
    fed = []
    while (item := reader.get_next()) is not None:
        fed.append(item["image"])
    reader.rewind()
    assert len(fed) == 3 and reader.get_next() is not None
    np.testing.assert_array_equal(fed[0], batches[0])


def test_calibration_source_refuses_empty_arrays():
    with pytest.raises(ExportError):
        CalibrationSource([], np.zeros((0, 32, 32, 3), np.uint8), SPEC)


def test_reference_prefers_test_then_val():
    assert reference_split(Split("seed", 0, ["a"], ["b"], ["c"])) == ("test", ["c"])
    assert reference_split(Split("official", 0, ["a"], ["b"], [])) == ("val", ["b"])
    with pytest.raises(ExportError):
        reference_split(Split("official", 0, ["a"], [], []))


def test_run_folder_problems_name_the_file(tmp_path):
    with pytest.raises(ModelError, match="run folder not found"):
        open_run(tmp_path / "nope")
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ModelError, match="config.json"):
        open_run(run)
    (run / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        open_run(run)
    (run / "config.json").write_text('{"preprocess": {"height": 32, "width": 32, "scaling": "mobilenet"}}')
    Split("official", 0, ["a"], ["b"]).save(run / "split.json")
    with pytest.raises(ModelError, match="model.keras"):
        open_run(run)
    (run / "config.json").write_text('{"preprocess": {"height": 32, "width": 32, "scaling": "weird"}}')
    with pytest.raises(ModelError, match="scaling"):
        open_run(run)
