"""The bundle contract: what export writes and edge, bench and serve read (TensorFlow-free)."""
