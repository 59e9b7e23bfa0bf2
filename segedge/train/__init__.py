"""Training (TensorFlow/Keras). Import its submodules lazily; the edge never imports this."""
