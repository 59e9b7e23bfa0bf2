"""Bench stage: run every artifact of a bundle in fresh processes, score it, gate it, report it.

Imports ``segedge.edge`` (it runs the edge runtime), never the other way round,
and never TensorFlow: the optional Keras row is built by ``segedge.train.keras_backend``
inside its own child process.
"""
