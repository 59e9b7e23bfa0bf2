"""Why int8 lost accuracy: per-layer quantization error and the float-fallback search.

Runs after export, on a run folder and its bundle; needs the ``export`` extra
(TensorFlow for the TFLite debugger, onnxruntime's quantizer for ONNX).
"""
