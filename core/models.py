"""Models: the seeds' small convnet and transfer models on keras.applications bases.

Transfer models are one flat functional graph: image -> preprocess -> the base's own layers ->
head_pool -> head_dropout -> predictions (or head_flatten -> head_dense -> head_dropout -> predictions). No nested base model, so every layer can be reached by
name for activations and Grad-CAM. Augmentation is not part of a model: training applies it in
the input pipeline (core.pipeline.make_tf_dataset), so saved models hold only what inference needs.
"""
from __future__ import annotations

import os
import re

import keras
from keras import layers

from core import graph
from core.backbones import BACKBONES, Backbone, WeightsUnavailable, keras_cache_dir  # noqa: F401  (raised / re-exported)
from core.messages import ConfigError, N_


NON_BASE = ("image", "preprocess")
HEAD_PREFIX = ("head_", "predictions")


def application(spec: Backbone):
    """The keras.applications constructor of a backbone."""
    return getattr(keras.applications, spec.application)


def preprocess_input(spec: Backbone):
    """The backbone's own preprocess_input."""
    return getattr(keras.applications, spec.module).preprocess_input


@keras.saving.register_keras_serializable(package="transferlab")
class Preprocess(layers.Layer):
    """The backbone's own preprocess_input, as a layer so saved models carry it."""

    def __init__(self, backbone: str, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone

    def call(self, x):
        return preprocess_input(BACKBONES[self.backbone])(x)

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


def _weights_unavailable(backbone: str, size: int, error: Exception) -> WeightsUnavailable:
    url = re.search(r"https?://\S+", str(error))
    url = url.group(0).rstrip(".:,;)'\"") if url else None
    base = BACKBONES[backbone].label
    if url:
        file = os.path.basename(url)
        return WeightsUnavailable(
            N_("ImageNet weights for {base} at {size} px are not in the Keras cache and could not be downloaded "
               "({file}). Download {url} and put it at {path}, or set KERAS_HOME to a folder whose models/ has it."),
            base=base, size=size, file=file, url=url, path=os.path.join(keras_cache_dir(), file))
    return WeightsUnavailable(
        N_("ImageNet weights for {base} at {size} px are not in the Keras cache and could not be downloaded "
           "(the weights file). Put the file in {folder}, or set KERAS_HOME to a folder whose models/ has it."),
        base=base, size=size, folder=keras_cache_dir())


def load_base(backbone: str, input_tensor, image_size: int, weights: str | None = "imagenet"):
    """The keras.applications base built on input_tensor (no top). Raises WeightsUnavailable."""
    spec = BACKBONES[backbone]
    if spec.size_problem(image_size):
        raise ConfigError(spec.size_problem(image_size))
    try:
        return application(spec)(include_top=False, weights=weights, input_tensor=input_tensor,
                                 input_shape=(image_size, image_size, 3), **dict(spec.kwargs))
    except Exception as e:
        if weights and ("fetch failure" in str(e) or "URL" in str(e) or isinstance(e, OSError)):
            raise _weights_unavailable(backbone, image_size, e) from None
        raise


def _l2(weight: float):
    """The L2 weight decay of the layers trained from scratch, or none."""
    return keras.regularizers.L2(weight) if weight else None


def build_scratch(image_size: int, num_classes: int, dropout: float = 0.5, *, channels: int = 3,
                  conv_blocks: int = 4, batch_norm: bool = False, l2: float = 0.0) -> keras.Model:
    """Deep Learning with Python §5.2: Conv 32-64-128-128 + MaxPool, Flatten, Dropout, Dense 512.

    conv_blocks: the first 1..4 of those blocks (small images, e.g. 28 px digits, take 3); with
    batch_norm each conv is followed by BatchNormalization before its ReLU; l2 decays every kernel."""
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = layers.Rescaling(1 / 255.0, name="preprocess")(inputs)
    for i, filters in enumerate((32, 64, 128, 128)[:conv_blocks], 1):
        if batch_norm:
            x = layers.Conv2D(filters, 3, use_bias=False, kernel_regularizer=_l2(l2), name=f"conv{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
        else:
            x = layers.Conv2D(filters, 3, activation="relu", kernel_regularizer=_l2(l2), name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(512, activation="relu", kernel_regularizer=_l2(l2), name="head_dense")(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=_l2(l2), name="predictions")(x)
    return keras.Model(inputs, outputs, name="scratch_convnet")


def build_dense(image_size: int, num_classes: int, dropout: float = 0.0, *, channels: int = 3,
                l2: float = 0.0, units: int = 512) -> keras.Model:
    """A plain dense network (Deep Learning with Python §2.1's for digits): Flatten, Dense 512 ReLU,
    Dropout, the output."""
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = layers.Rescaling(1 / 255.0, name="preprocess")(inputs)
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dense(units, activation="relu", kernel_regularizer=_l2(l2), name="head_dense")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=_l2(l2), name="predictions")(x)
    return keras.Model(inputs, outputs, name="dense_network")


def _head(x, num_classes: int, dropout: float, head: str, units: int, l2: float):
    """The transfer head on x (the base's output, or cached features): pooling = global average
    pooling, Dropout, the output; flatten_dense = Flatten, Dense `units` ReLU, Dropout, the output
    (Deep Learning with Python §5.3). Its layers are named head_* and predictions."""
    if head == "flatten_dense":
        x = layers.Flatten(name="head_flatten")(x)
        x = layers.Dense(units, activation="relu", kernel_regularizer=_l2(l2), name="head_dense")(x)
    elif len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", kernel_regularizer=_l2(l2), name="predictions")(x)


def build_transfer(backbone: str, image_size: int, num_classes: int, dropout: float = 0.2,
                   weights: str | None = "imagenet", *, head: str = "pooling", head_units: int = 256,
                   l2: float = 0.0) -> keras.Model:
    """A flat transfer model with the whole base frozen."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = Preprocess(backbone, name="preprocess")(inputs)
    base = load_base(backbone, x, image_size, weights)
    outputs = _head(base.output, num_classes, dropout, head, head_units, l2)
    model = keras.Model(inputs, outputs, name=f"{backbone}_transfer")
    unfreeze_top(model, 0)
    return model


def build_head(feature_dim: int, num_classes: int, dropout: float, *, head: str = "pooling",
               head_units: int = 256, l2: float = 0.0) -> keras.Model:
    """The transfer head alone, trained on cached features (the output of feature_model: pooled,
    or flattened); the same layer names as in the full model."""
    inputs = keras.Input((feature_dim,), name="features")
    x = inputs
    if head == "flatten_dense":  # the features are flat already
        x = layers.Dense(head_units, activation="relu", kernel_regularizer=_l2(l2), name="head_dense")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=_l2(l2), name="predictions")(x)
    return keras.Model(inputs, outputs, name="head")


FEATURE_LAYERS = ("head_pool", "head_flatten")  # where the base's features enter the head, as one vector


def feature_layer(model: keras.Model):
    """The head's first layer: its output is the image's feature vector (pooled, or flattened)."""
    return next(model.get_layer(name) for name in FEATURE_LAYERS if name in {l.name for l in model.layers})


def feature_model(model: keras.Model) -> keras.Model:
    """image -> the base's features as the head takes them (pooled, or flattened)."""
    return keras.Model(model.inputs, feature_layer(model).output)


def head_weight_layers(head: keras.Model) -> list[str]:
    """The names of the head's layers that have weights (copied between a head and its full model)."""
    return [l.name for l in head.layers if l.weights]


def base_layers(model: keras.Model) -> list:
    """The base's layers, bottom to top (not the input, preprocess or head)."""
    return [l for l in model.layers
            if l.name not in NON_BASE and not l.name.startswith(HEAD_PREFIX)
            and not isinstance(l, keras.layers.InputLayer)]


def unfreeze_top(model: keras.Model, n: int) -> int:
    """Make the top n base layers trainable (BatchNorm stays frozen, in inference mode).

    Everything below stays frozen; head layers stay trainable. Returns the trainable weight count.
    """
    base = base_layers(model)
    top = {id(l) for l in base[max(0, len(base) - n):]} if n > 0 else set()
    for layer in base:
        layer.trainable = id(layer) in top and not isinstance(layer, layers.BatchNormalization)
    return trainable_params(model)


def trainable_params(model: keras.Model) -> int:
    return int(sum(int(w.numpy().size) for w in model.trainable_weights))


def layer_table(model: keras.Model, n: int) -> list[dict]:
    """One row per base layer, top first: what `unfreeze_top(model, n)` would train."""
    base = base_layers(model)
    rows = []
    for depth, layer in enumerate(reversed(base), 1):
        in_top = depth <= n
        is_bn = isinstance(layer, layers.BatchNormalization)
        rows.append({
            "from_top": depth,
            "name": layer.name,
            "type": type(layer).__name__,
            "params": int(layer.count_params()) if layer.built else 0,
            "trains": bool(in_top and not is_bn and layer.weights),
            "note": N_("BatchNorm stays frozen") if in_top and is_bn else "",
        })
    return rows


def cut_points(model: keras.Model, n: int):
    """The tensors where the frozen part of the graph hands over to the trainable top n layers.

    Returns (prefix, suffix) models: prefix = image -> cut tensors (all frozen, deterministic),
    suffix = cut tensors -> predictions. Training the suffix trains the full model's layers.
    """
    base = base_layers(model)
    top_ids = {id(l) for l in base[max(0, len(base) - n):]} if n > 0 else set()
    top_ids |= {id(l) for l in model.layers if l.name.startswith(HEAD_PREFIX)}
    cut, seen = [], set()
    # Only this model's own nodes: building sub-models adds nodes to the shared layers.
    for node in graph.nodes_input_first(model):
        if id(node.operation) not in top_ids:
            continue
        for t in node.input_tensors:
            if id(graph.producer(t)) not in top_ids and id(t) not in seen:
                seen.add(id(t))
                cut.append(t)
    prefix = keras.Model(model.inputs, cut, name="frozen_prefix")
    suffix = keras.Model(cut, model.outputs, name="trainable_suffix")
    return prefix, suffix
