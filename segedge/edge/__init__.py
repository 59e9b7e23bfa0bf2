"""On-device inference and benchmarking: LiteRT or onnxruntime, numpy and PIL. Never TensorFlow."""
