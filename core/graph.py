"""The one place that reads Keras' private graph attributes.

Keras 3 has no public way to ask which layer produced a symbolic tensor, or which nodes belong to
one functional model (a layer shared with sub-models - every activation or Grad-CAM model we build
shares the trained model's layers - collects the nodes of all of them in its public inbound
nodes). Both are needed to walk a trained graph: `producer` (core.explain, core.visualize) and
`nodes_input_first` (core.models.cut_points). They read `KerasTensor._keras_history` and
`Functional._nodes_by_depth`, which any Keras release may change: tests/test_graph.py pins the
Keras version they were checked on, so an upgrade fails there first, naming this file.
"""
from __future__ import annotations

from typing import Iterator

import keras


def producer(tensor) -> keras.Operation:
    """The layer (or operation) whose output `tensor` is, in a functional graph."""
    return tensor._keras_history.operation


def nodes_input_first(model: keras.Model) -> Iterator:
    """The nodes of this functional model only (each with `.operation` and `.input_tensors`), from
    the input up to the output - not the nodes that sub-models built on its layers added."""
    by_depth = model._nodes_by_depth  # depth 0 holds the output nodes
    for depth in sorted(by_depth, reverse=True):
        yield from by_depth[depth]
