"""Write the two tiny models ``segedge doctor`` runs: segedge/bench/doctor_models/{tiny.tflite,tiny.onnx}.

Run once on a machine with the export extra (TensorFlow, onnx); the files are
committed as package data so ``doctor`` on a Pi (no TensorFlow, no onnx)
can prove each runtime loads AND runs a model. Both compute y = 2 * x + 1 on
a float32 [1, 4] input, so doctor checks the output against values it knows.

    python benchmarks/make_doctor_models.py
"""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "segedge" / "bench" / "doctor_models"


def write_tflite(path: Path) -> None:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def affine(x):
        return x * 2.0 + 1.0

    converter = tf.lite.TFLiteConverter.from_concrete_functions([affine.get_concrete_function()], affine)
    path.write_bytes(converter.convert())


def write_onnx(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    two = numpy_helper.from_array(np.array([2.0], np.float32), "two")
    one = numpy_helper.from_array(np.array([1.0], np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Add", ["t", "one"], ["y"])],
        "segedge_doctor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[two, one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_tflite(OUT / "tiny.tflite")
    write_onnx(OUT / "tiny.onnx")
    for path in sorted(OUT.iterdir()):
        print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
