"""core.graph: the private Keras attributes it reads still mean what they meant.

Pinned to the Keras version of requirements.txt: upgrading Keras fails here first, so whoever
upgrades re-checks core/graph.py (and then updates the pin).
"""
import os
import re
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from core import graph  # noqa: E402

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"


def pinned_keras() -> str:
    return re.search(r"^keras==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE).group(1)


def test_keras_is_the_version_core_graph_was_checked_on():
    assert keras.__version__ == pinned_keras(), (
        f"Keras {keras.__version__} is installed, core/graph.py was checked on {pinned_keras()}: check "
        "that its private attributes still mean the same, then update requirements.txt")


def small_model() -> keras.Model:
    inputs = keras.Input((8, 8, 3), name="image")
    conv = layers.Conv2D(4, 3, name="conv")(inputs)
    pool = layers.MaxPooling2D(2, name="pool")(conv)
    outputs = layers.Dense(2, name="predictions")(layers.Flatten(name="flat")(pool))
    return keras.Model(inputs, outputs)


def test_producer_is_the_layer_that_made_the_tensor():
    model = small_model()
    assert graph.producer(model.outputs[0]) is model.get_layer("predictions")
    assert graph.producer(model.get_layer("pool").input) is model.get_layer("conv")
    assert graph.producer(model.inputs[0]).name == "image"


def test_nodes_run_from_the_input_to_the_output_and_ignore_sub_models():
    model = small_model()
    keras.Model(model.inputs[0], model.get_layer("pool").output)  # adds nodes to the shared layers
    nodes = list(graph.nodes_input_first(model))
    assert [n.operation.name for n in nodes] == ["image", "conv", "pool", "flat", "predictions"]
    conv = nodes[1]
    assert [graph.producer(t).name for t in conv.input_tensors] == ["image"]
