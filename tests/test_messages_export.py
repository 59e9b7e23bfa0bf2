"""What ``segedge export`` prints for each artifact: the mIoU with its basis; older manifests still read."""

from __future__ import annotations

import numpy as np
import pytest

from segedge.export.verify import basis_text, describe, miou_basis


def test_export_line_names_the_images_and_size_its_miou_was_measured_on():
    result = {"agreement": 0.99, "miou": 0.422, "miou_basis": miou_basis(100, "test", 96, 96)}
    line = describe("int8", 2_500_000, result, "int8")
    assert line.endswith("mIoU 42.20 % (100 test images at 96x96 model size)")
    assert basis_text(miou_basis(1, "val", 160, 224)) == "1 val image at 160x224 model size"


def test_a_manifest_from_before_the_basis_still_prints():
    line = describe("fp32", 26_000_000, {"agreement": 1.0, "miou": 0.5}, "fp32")
    assert line.endswith("mIoU 50.00 %")
    assert basis_text(None) == ""
    assert basis_text({"images": 3, "split": "val", "resolution": "original"}) == (
        "3 val images at each image's own resolution")


@pytest.mark.slow
def test_int8_stem_pads_the_pixels_with_127(micro_bundle):
    """pixels.py's docstring states it: the float pad value 127.5 is stored as 127 in the int8 file."""
    pytest.importorskip("ai_edge_litert", reason="reads a TFLite file: needs segedge[edge]")
    from ai_edge_litert.interpreter import OpResolverType

    from segedge.contract.manifest import load_manifest
    from segedge.contract.runtime import tflite_interpreter_class

    manifest = load_manifest(micro_bundle)
    size = manifest.preprocess.height
    interpreter = tflite_interpreter_class()(
        model_path=str(micro_bundle / manifest.artifacts["int8"].file), experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                           np.full((1, size, size, 3), 200, dtype=np.uint8))
    interpreter.invoke()
    first = next(op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D")
    index = int(first["inputs"][0])
    scale, zero_point = next(d for d in interpreter.get_tensor_details() if d["index"] == index)["quantization"]
    padded = (interpreter.get_tensor(index).astype(np.float64) - zero_point) * scale
    assert padded.shape[1:3] == (size + 1, size + 1)  # 'same', stride 2: one row and one column after
    assert (padded[:, :size, :size] == 200).all()
    assert (padded[:, size, :] == 127).all() and (padded[:, :, size] == 127).all()
