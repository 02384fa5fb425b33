"""Explain: what a layer sees (activations) and where the model looks (Grad-CAM).

Small pure functions over a Keras model that takes float images in 0..255 of shape (N, S, S, 3)
and ends in a softmax. One shared mechanism does the plumbing:

| piece | what it does |
|---|---|
| `compiled(model, key, make)` | one `tf.function` per (model, purpose, layer), built once, dropped with the model |
| `ClassScores` | image -> [chosen layer outputs], class logits, probabilities |
| `activations` | a layer's feature maps for one image |
| `feature_grid` | those maps as one normalized mosaic (Deep Learning with Python §5.4.1) |
| `grad_cam` | gradient-weighted class activation map, any method of core.cam_methods (Selvaraju et al. 2017) |
| `overlay` | the ONE place that blends a heatmap onto an image |

Class scores are the pre-softmax logits when the model ends in Dense(softmax) (ours always do):
the logits are rebuilt from the input of that layer and its kernel, so gradients do not vanish
when the model is confident. A model whose output is already logits (linear last layer) is
taken as is; any other falls back to log-probabilities.
Augmentation layers stay inactive: every sub-model is called with training=False.
"""
from __future__ import annotations

import threading
import weakref
from typing import Callable

import cv2
import keras
import numpy as np
import tensorflow as tf

from core import graph
from core.cam_methods import CAM_METHODS, DEFAULT_CAM_METHOD
from core.messages import Explained, N_
from core.models import HEAD_PREFIX, NON_BASE
from core.pipeline import LUMA


class ExplainError(Explained, ValueError):
    """A layer, class, method or image that cannot be looked at this way, in one sentence."""

# Models saved before augmentation moved into the input pipeline still carry an "augmentation" layer.
_NOT_FEATURES = frozenset(NON_BASE) | {"augmentation"}

_compiled: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def compiled(model: keras.Model, key, make: Callable[[], Callable]) -> Callable:
    """The function `make()` built once per (model, key) and kept as long as the model lives.

    `make` must not capture `model` itself (only sub-models and layers), or the cache would keep
    the model alive forever.
    """
    with _lock:
        per_model = _compiled.setdefault(model, {})
        if key not in per_model:
            per_model[key] = make()
        return per_model[key]


# --- layers ---------------------------------------------------------------------------------

def _is_4d(layer) -> bool:
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return False
    return isinstance(out, keras.KerasTensor) and len(out.shape) == 4


def conv_layers(model: keras.Model) -> list[str]:
    """Names of the layers with 4-D (N, H, W, C) outputs, bottom to top.

    Input, augmentation, preprocess and head layers are left out: what remains are the base's
    (or the scratch net's) conv, pool, normalization and activation layers.
    """
    return [l.name for l in model.layers
            if not isinstance(l, keras.layers.InputLayer) and l.name not in _NOT_FEATURES
            and not l.name.startswith(HEAD_PREFIX) and _is_4d(l)]


def last_conv_layer(model: keras.Model) -> str:
    """The last layer with a 4-D output before the head: Grad-CAM's default layer."""
    names = conv_layers(model)
    if not names:
        raise ExplainError(N_("Model '{model}' has no layer with a 4-D (height x width x channels) output, so "
                              "there is no feature map to inspect."), model=model.name)
    return names[-1]


def _input_hw(model: keras.Model) -> tuple[int | None, int | None]:
    shape = model.inputs[0].shape
    return shape[1], shape[2]


def _spec(model: keras.Model) -> tf.TensorSpec:
    return tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)


def as_model_input(model: keras.Model, image) -> np.ndarray:
    """One image as the model wants it: float32 (S, S, 3) in 0..255 (resized, gray/RGBA -> RGB), or
    (S, S, 1) for a model trained on grayscale images.

    Accepts uint8 or float in 0..255, shaped (H, W), (H, W, 1|3|4) or (1, H, W, C).
    """
    x = np.asarray(image)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise ExplainError(N_("Expected one image (H x W x channels), got an array of shape {shape}."), shape=x.shape)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] == 4:
        x = x[..., :3]
    x = x.astype(np.float32)
    h, w = _input_hw(model)
    if h is not None and w is not None and x.shape[:2] != (h, w):
        shrink = x.shape[0] > h or x.shape[1] > w
        x = cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if model.inputs[0].shape[-1] == 1:  # a model trained on grayscale images (TrainConfig.color_mode)
        x = (x @ LUMA)[..., None].astype(np.float32)
    return x


def as_model_batch(model: keras.Model, images) -> np.ndarray:
    """A batch (N, S, S, channels) float32 for the model from an array or a list of images of any size."""
    if not isinstance(images, (list, tuple)):
        images = np.asarray(images)
        if images.ndim == 4 and images.shape[1:] == (*_input_hw(model), model.inputs[0].shape[-1]):
            return images.astype(np.float32, copy=False)
    return np.stack([as_model_input(model, im) for im in images])


def _is_single(images) -> bool:
    return not isinstance(images, (list, tuple)) and np.asarray(images).ndim <= 3


# --- class scores -----------------------------------------------------------------------------

def _output_layer(model: keras.Model):
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExplainError(N_("Only models with one image input and one probability output can be explained."))
    return graph.producer(model.outputs[0])


class ClassScores:
    """image -> ([outputs of `layer_names`], logits, probabilities), all with training=False.

    When the model ends in Dense(softmax), the logits are rebuilt from that layer's input with
    its own kernel and bias: exactly the model's pre-softmax scores. A model ending in a linear
    layer already outputs logits; any other output is taken as probabilities (logits = their log).
    """

    def __init__(self, model: keras.Model, layer_names=()):
        head = _output_layer(model)
        activation = getattr(head, "activation", None)
        self.dense = head if isinstance(head, keras.layers.Dense) and activation is keras.activations.softmax else None
        self.outputs_logits = activation is keras.activations.linear
        outputs = [model.get_layer(n).output for n in layer_names]
        outputs.append(self.dense.input if self.dense is not None else model.outputs[0])
        self.sub = keras.Model(model.inputs[0], outputs, name="class_scores")

    def __call__(self, x):
        *features, last = tf.nest.flatten(self.sub(x, training=False))
        if self.dense is not None:
            logits = tf.matmul(last, self.dense.kernel)
            logits = logits + self.dense.bias if self.dense.use_bias else logits
        elif self.outputs_logits:
            logits = last
        else:
            return features, tf.math.log(last + 1e-12), last
        return features, logits, tf.nn.softmax(logits)


def _make_probabilities(model):
    scores = ClassScores(model)
    return tf.function(lambda x: scores(x)[2], input_signature=[_spec(model)])


def probabilities(model: keras.Model, images, batch_size: int = 64) -> np.ndarray:
    """Class probabilities: (K,) for one image (2-D or 3-D array), (N, K) for a batch."""
    single = _is_single(images)
    x = as_model_batch(model, [images] if single else images)
    fn = compiled(model, ("probabilities",), lambda: _make_probabilities(model))
    out = [fn(tf.constant(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    out = np.concatenate(out) if out else np.zeros((0, int(model.outputs[0].shape[-1])), np.float32)
    return out[0] if single else out


# --- activations ------------------------------------------------------------------------------

def _make_activations(model, layer_name):
    sub = keras.Model(model.inputs[0], model.get_layer(layer_name).output, name=f"acts_{layer_name}")
    return tf.function(lambda x: sub(x, training=False), input_signature=[_spec(model)])


def activations(model: keras.Model, image, layer_name: str, max_channels: int | None = None) -> np.ndarray:
    """The output (H, W, C) of `layer_name` for one image (uint8 or float in 0..255).

    The sub-model and its tf.function are built once per (model, layer): repeated calls are fast.
    """
    if layer_name not in conv_layers(model):
        raise ExplainError(N_("'{layer}' is not a feature-map layer of '{model}'. Choose one of conv_layers(model), "
                              "e.g. '{example}'."), layer=layer_name, model=model.name, example=last_conv_layer(model))
    fn = compiled(model, ("activations", layer_name), lambda: _make_activations(model, layer_name))
    acts = fn(tf.constant(as_model_input(model, image)[None])).numpy()[0]
    return acts[..., :max_channels] if max_channels else acts


def not_a_feature_map(layer_name: str, model: keras.Model) -> ExplainError:
    return ExplainError(N_("'{layer}' is not a feature-map layer of '{model}'."), layer=layer_name, model=model.name)


def class_out_of_range(class_index: int, n_classes: int) -> ExplainError:
    return ExplainError(N_("Class index {index} is out of range: the model has {n} classes."),
                        index=class_index, n=n_classes)


def feature_grid(acts: np.ndarray, n: int | None = None, cols: int = 8, pad: int = 1,
                 scale: int = 1) -> np.ndarray:
    """The first n channels of (H, W, C) activations as one uint8 grayscale mosaic.

    Each channel is normalized on its own (zero mean, unit std, then *64 + 128 as in Deep
    Learning with Python §5.4.1), so weak and strong channels are both visible; a constant
    (dead) channel shows as flat gray. `scale` enlarges each tile (nearest neighbour) because
    late layers are only a few pixels wide; tiles are separated by `pad` black pixels.
    """
    acts = np.asarray(acts, dtype=np.float32)
    if acts.ndim != 3:
        raise ExplainError(N_("Expected activations of shape (H, W, C), got {shape}."), shape=acts.shape)
    h, w, c = acts.shape
    n = c if n is None else max(1, min(n, c))
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    tiles = acts[..., :n].transpose(2, 0, 1)
    tiles = tiles - tiles.mean(axis=(1, 2), keepdims=True)
    tiles = tiles / (tiles.std(axis=(1, 2), keepdims=True) + 1e-5)
    tiles = np.clip(tiles * 64 + 128, 0, 255).astype(np.uint8)
    if scale > 1:
        tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    grid = np.zeros((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad), np.uint8)
    for i, tile in enumerate(tiles):
        r, q = divmod(i, cols)
        grid[r * (h + pad):r * (h + pad) + h, q * (w + pad):q * (w + pad) + w] = tile
    return grid


# --- Grad-CAM ---------------------------------------------------------------------------------

def _make_grad_cam(model, layer_name, method):
    scores = ClassScores(model, [layer_name])
    channel_weights = CAM_METHODS[method].weights

    @tf.function(input_signature=[_spec(model), tf.TensorSpec((), tf.int32)])
    def cam(x, class_index):
        with tf.GradientTape() as tape:
            (fmap,), logits, probs = scores(x)
            c = tf.where(class_index < 0, tf.argmax(probs[0], output_type=tf.int32), class_index)
            # The softmax only sees differences between logits: explain the class's logit relative
            # to their mean, so a part shared by every class's weights cannot show up as evidence.
            score = tf.gather(logits[0], c) - tf.reduce_mean(logits[0])
        weights = channel_weights(fmap, tape.gradient(score, fmap))
        heat = tf.nn.relu(tf.reduce_sum(fmap * weights[:, None, None, :], axis=-1))[0]
        return heat, c, probs[0]

    return cam


def grad_cam(model: keras.Model, image, class_index: int | None = None,
             layer_name: str | None = None, method: str = DEFAULT_CAM_METHOD) -> tuple[np.ndarray, int, np.ndarray]:
    """Grad-CAM for one image: (heatmap HxW in 0..1 at the layer's resolution, class, probabilities).

    class_index None explains the predicted class. layer_name None uses `last_conv_layer`.
    The score explained is the class's logit minus the mean logit (what the softmax sees).
    The map is ReLU(sum_k w_k * A_k) over the layer's channels A_k, the weights w_k given by
    `method`, a key of core.cam_methods.CAM_METHODS (default Grad-CAM++).
    The map is divided by its maximum; it is all zeros when nothing in the layer speaks for the class.
    """
    layer_name = layer_name or last_conv_layer(model)
    if layer_name not in conv_layers(model):
        raise not_a_feature_map(layer_name, model)
    if method not in CAM_METHODS:
        raise ExplainError(N_("Unknown Grad-CAM method '{method}': choose one of {choices}."),
                           method=method, choices=", ".join(CAM_METHODS))
    n_classes = int(model.outputs[0].shape[-1])
    if class_index is not None and not 0 <= class_index < n_classes:
        raise class_out_of_range(class_index, n_classes)
    fn = compiled(model, ("grad_cam", layer_name, method), lambda: _make_grad_cam(model, layer_name, method))
    x = tf.constant(as_model_input(model, image)[None])
    heat, c, probs = fn(x, tf.constant(-1 if class_index is None else int(class_index), tf.int32))
    heat = heat.numpy()
    peak = float(heat.max())
    heat = heat / peak if peak > 0 else np.zeros_like(heat)
    return heat.astype(np.float32), int(c), probs.numpy()


def warm_up(model: keras.Model) -> None:
    """Trace what a first look at the model needs (its probabilities and the default Grad-CAM) on
    a blank image, so that the first real image only runs them: seconds of tracing moved to when
    the model is chosen, in the background."""
    h, w = _input_hw(model)
    blank = np.zeros((h or 224, w or 224, 3), np.uint8)
    probabilities(model, blank)
    grad_cam(model, blank)


def overlay(image_uint8: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4,
            colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """The heatmap (0..1, any resolution) colored and blended onto the image: uint8 RGB (H, W, 3).

    The heatmap is resized to the image (bilinear); result = (1 - alpha) * image + alpha * colors.
    """
    img = np.asarray(image_uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    img = np.clip(img[..., :3], 0, 255).astype(np.float32)
    heat = np.nan_to_num(np.asarray(heatmap, dtype=np.float32))
    heat = cv2.resize(heat, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat = np.uint8(np.round(255 * np.clip(heat, 0, 1)))
    colors = cv2.cvtColor(cv2.applyColorMap(heat, colormap), cv2.COLOR_BGR2RGB).astype(np.float32)
    return np.uint8(np.round(np.clip((1 - alpha) * img + alpha * colors, 0, 255)))
