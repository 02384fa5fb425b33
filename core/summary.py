"""A model's layers as a table: what `model.summary()` prints, as rows a page can show."""
from __future__ import annotations

import math


def _shape(layer) -> str:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):  # a layer used twice has no single output
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def summary_rows(model, expand_nested: bool = True) -> list[dict]:
    """One row per layer: name, type, output shape, parameters and whether they train. A model
    nested in the model (the pretrained base) is expanded, its layers named base/layer."""
    rows = []

    def add(layers, prefix: str) -> None:
        for layer in layers:
            inner = getattr(layer, "layers", None)
            rows.append({"layer": prefix + layer.name, "type": type(layer).__name__, "output shape": _shape(layer),
                         "parameters": int(layer.count_params()) if layer.built else 0,
                         "trains": bool(layer.trainable and layer.trainable_weights)})
            if expand_nested and inner:
                add(inner, prefix + layer.name + "/")

    add(model.layers, "")
    return rows


def parameter_counts(model) -> tuple[int, int]:
    """(all parameters, the trainable ones) of the model."""
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return int(model.count_params()), trainable
