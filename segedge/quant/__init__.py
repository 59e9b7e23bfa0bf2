"""Why int8 lost accuracy: per-layer quantization error and the float-fallback search.

Runs after export, on a run folder and its bundle; needs the ``export`` extra
(TensorFlow for the TFLite debugger, onnxruntime's quantizer for ONNX). One
job per module: ``context`` (run + bundle + images), ``tflite_layers`` /
``onnx_layers`` (per-layer errors), ``report`` / ``report_files`` (the
tables and their files), ``search`` (the K search), ``scoring`` (mIoU and its
noise), ``requant_tflite`` / ``requant_onnx`` (re-quantization per runtime),
``fallback`` (one K -> one trial, the pick), ``apply`` (all-or-nothing write),
``stage`` (the entry point commands call) and ``show`` (printing).
"""
