"""Export a trained ``model.keras`` into a deployable bundle (TFLite, ONNX, manifest, reference).

TensorFlow, tf2onnx and the onnxruntime quantizer are imported by the modules
that need them, never by this package's ``__init__``, so ``segedge export
--help`` works without them.
"""
