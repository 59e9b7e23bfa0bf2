"""Training (TensorFlow/Keras). Import its submodules lazily; the edge never imports this.

``config`` (TrainConfig, presets) and ``rundir`` (the RUN folder) are TF-free;
``fit.train(config)`` imports TensorFlow when called; ``model``, ``pipeline``,
``losses`` and ``callbacks`` are what it composes.
"""
