"""Visualize: inputs grown by gradient ascent until they excite the model (activation maximization).

One mechanism and small composable pieces, in the manner of tf-keras-vis:

| piece | what it is |
|---|---|
| `maximize(model, objective, regularizers, steps, on_step)` | gradient ascent from gray noise on the objective, minus the regularizers, through the input modifiers |
| `FilterObjective(layer, index)` | one filter's mean activation, raised before its ReLU (Deep Learning with Python §5.4.2) |
| `ClassObjective(class_index)` | one class's pre-softmax logit (Simonyan et al. 2013) |
| `TotalVariation`, `L2Norm` | regularizers: penalties on roughness and on saturation |
| `Jitter` | input modifier: a random shift before every step (Mahendran & Vedaldi 2015) |
| `filter_pattern`, `ideal_class_image` | the two recipes the Visualize page draws: `maximize` with their defaults |

Every one returns a `Maximized`: the uint8 image, the objective's value on it, the per-step
history. `on_step(step, steps, image, value)` is called after every step with the image reached;
returning True stops the ascent there (the result holds that image).

All images are float pixels in 0..255 and stay there (every step clips to the valid range).
Gradient ascent takes normalized steps: each term's gradient is divided by its RMS, so `lr` is the
RMS pixel change per step and a regularizer's weight is the share of the step it gets, whatever
the model's scale. Optimization steps can be capped by the environment variable
TRANSFERLAB_MAX_STEPS (tests use it). Inputs that fool the model are in core.adversarial.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import keras
import numpy as np
import tensorflow as tf

from core import graph
from core.explain import ClassScores, ExplainError, class_out_of_range, compiled, conv_layers, not_a_feature_map
from core.messages import N_

MAX_STEPS_ENV = "TRANSFERLAB_MAX_STEPS"

OnStep = Callable[[int, int, np.ndarray, float], "bool | None"]


def capped_steps(steps: int) -> int:
    """`steps`, lowered to $TRANSFERLAB_MAX_STEPS when that is set."""
    cap = os.environ.get(MAX_STEPS_ENV)
    return min(int(steps), int(cap)) if cap else int(steps)


# --- regularizers and input modifiers -------------------------------------------------------

def _tv(images, beta: float = 2.0):
    """Per-image total variation of a (N, H, W, C) tensor in pixels 0..255, measured in 0..1 units."""
    x = images / 255.0
    dy = tf.abs(x[:, 1:, :, :] - x[:, :-1, :, :]) ** beta
    dx = tf.abs(x[:, :, 1:, :] - x[:, :, :-1, :]) ** beta
    return tf.reduce_mean(dy, axis=(1, 2, 3)) + tf.reduce_mean(dx, axis=(1, 2, 3))


def total_variation(image, beta: float = 2.0) -> float:
    """Roughness of an image (H, W[, C]) or batch in 0..255: mean |vertical step|^beta + mean
    |horizontal step|^beta, steps measured in 0..1 units. 0 for a flat image; beta=1 is the
    classic anisotropic TV, beta=2 (default) punishes sharp noise more than edges."""
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim == 3:
        x = x[None]
    return float(tf.reduce_mean(_tv(tf.constant(x), beta)))


@dataclass(frozen=True)
class TotalVariation:
    """Penalizes roughness (see `total_variation`): pushes neighbouring pixels together."""
    weight: float = 0.3
    beta: float = 2.0

    def __call__(self, images):
        return _tv(images, self.beta)


@dataclass(frozen=True)
class L2Norm:
    """Penalizes distance from mid-gray: keeps the image from saturating."""
    weight: float = 0.05

    def __call__(self, images):
        return tf.reduce_mean(((images - 127.5) / 127.5) ** 2, axis=(1, 2, 3))


@dataclass(frozen=True)
class Jitter:
    """Shifts the image by up to `pixels` in each direction (wrapping) before every step, so the
    result must work at many offsets and loses the high-frequency patterns that only work at one.

    An input modifier: `sample` draws its parameters on the host (seeded), `apply` runs inside the
    compiled step, `spec` describes the parameters."""
    pixels: int = 8
    spec = tf.TensorSpec((2,), tf.int32)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(-self.pixels, self.pixels + 1, size=2).astype(np.int32)

    @staticmethod
    def apply(images, shift):
        """The images shifted by shift = (dy, dx) pixels, wrapping around; (0, 0) leaves them be."""
        return tf.roll(images, shift, axis=[1, 2])


# --- objectives -------------------------------------------------------------------------------

class Objective(Protocol):
    """What `maximize` raises. `build(model)` returns f(images, index) -> (score to raise, value to
    report), one of each per image; `index` (the filter, the class) is an argument of the compiled
    step so that one trace serves them all, and `key` names what the trace depends on."""
    key: tuple
    index: int

    def check(self, model: keras.Model) -> None: ...

    def build(self, model: keras.Model) -> Callable: ...


_RELUS = ("relu", "relu6")


def _is_relu(layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return True
    return getattr(getattr(layer, "activation", None), "__name__", "") in _RELUS


def _pre_relu_response(model: keras.Model, layer_name: str):
    """image -> the layer's output, taken before its ReLU when it has one.

    A filter that is silent (ReLU at 0) everywhere on the starting noise has no gradient, and plain
    gradient ascent would return the noise. ReLU is monotone, so raising the pre-activation raises
    the activation; max-pooling commutes with it, so pools over a ReLU are looked through too.
    """
    layer, pools = model.get_layer(layer_name), []
    while isinstance(layer, keras.layers.MaxPooling2D):
        pools.append(layer)
        layer = graph.producer(layer.input)
    linear = None
    if isinstance(layer, (keras.layers.ReLU, keras.layers.Activation)) and _is_relu(layer):
        tensor = layer.input
    elif (_is_relu(layer) and hasattr(layer, "convolution_op")
          and getattr(layer, "data_format", "channels_last") == "channels_last"):
        tensor = layer.input

        def linear(t, conv=layer):
            z = conv.convolution_op(t, conv.kernel)
            return z + conv.bias if conv.use_bias else z
    else:
        tensor, pools = model.get_layer(layer_name).output, []
    sub = keras.Model(model.inputs[0], tensor, name=f"filter_{layer_name}")

    def response(x):
        z = sub(x, training=False)
        z = linear(z) if linear is not None else z
        for pool in reversed(pools):
            z = pool(z)
        return z

    return response


@dataclass(frozen=True)
class FilterObjective:
    """The mean activation of filter `index` of `layer` (border pixels left out: they see padding).
    For ReLU filters (and max pools over them) the pre-ReLU response is raised, so filters silent on
    the starting noise still get a gradient. Its value is the same mean."""
    layer: str
    index: int

    @property
    def key(self) -> tuple:
        return ("filter", self.layer)

    def check(self, model: keras.Model) -> None:
        if self.layer not in conv_layers(model):
            raise not_a_feature_map(self.layer, model)
        channels = int(model.get_layer(self.layer).output.shape[-1])
        if not 0 <= self.index < channels:
            raise ExplainError(N_("Layer '{layer}' has {n} filters; {index} is out of range."),
                               layer=self.layer, n=channels, index=self.index)

    def build(self, model: keras.Model) -> Callable:
        response = _pre_relu_response(model, self.layer)

        def objective(x, index):
            acts = tf.gather(response(x), index, axis=-1)
            if acts.shape[1] > 4 and acts.shape[2] > 4:
                acts = acts[:, 2:-2, 2:-2]
            value = tf.reduce_mean(acts, axis=(1, 2))
            return value, value

        return objective


@dataclass(frozen=True)
class ClassObjective:
    """The pre-softmax logit of class `class_index`: raising the logit rather than the probability
    keeps the image from winning only by suppressing the other classes. Its value is the class's
    probability."""
    class_index: int
    key = ("class",)

    @property
    def index(self) -> int:
        return self.class_index

    def check(self, model: keras.Model) -> None:
        n_classes = int(model.outputs[0].shape[-1])
        if not 0 <= self.class_index < n_classes:
            raise class_out_of_range(self.class_index, n_classes)

    def build(self, model: keras.Model) -> Callable:
        scores = ClassScores(model)

        def objective(x, index):
            _, logits, probs = scores(x)
            return tf.gather(logits, index, axis=-1), tf.gather(probs, index, axis=-1)

        return objective


# --- the shared gradient-ascent mechanism ---------------------------------------------------

@dataclass(frozen=True)
class Maximized:
    """What `maximize` reached."""
    image: np.ndarray      # uint8 (S, S, 3): the optimized input itself, not contrast-stretched
    value: float           # the objective's value on `image` (a class's probability, a filter's mean)
    history: list[dict]    # per step: step, score (what was raised), value - on that step's modified input
    stopped: bool = False  # on_step stopped the ascent before its last step


def _unit(grads):
    rms = tf.sqrt(tf.reduce_mean(tf.square(grads), axis=(1, 2, 3), keepdims=True))
    return grads / (rms + 1e-12)


def _make_ascent(objective, regularizers: tuple, modifiers: tuple, image_spec: tf.TensorSpec):
    """(step, evaluate) as tf.functions.

    step: x <- clip(x + lr * (unit(d objective) - sum_i w_i unit(d reg_i))), the objective seeing
    the modified image, the regularizers the image itself; evaluate: the objective's value on x.
    """
    index_spec = tf.TensorSpec((), tf.int32)

    @tf.function(input_signature=[image_spec, index_spec, tf.TensorSpec((), tf.float32),
                                  tf.TensorSpec((len(regularizers),), tf.float32),
                                  tuple(m.spec for m in modifiers)])
    def step(x, index, lr, weights, params):
        with tf.GradientTape() as tape:
            tape.watch(x)
            moved = x
            for modifier, p in zip(modifiers, params):
                moved = modifier.apply(moved, p)
            score, value = objective(moved, index)
            total = tf.reduce_sum(score)
        direction = _unit(tape.gradient(total, x))
        for i, reg in enumerate(regularizers):
            with tf.GradientTape() as tape:
                tape.watch(x)
                penalty = tf.reduce_sum(reg(x))
            direction -= weights[i] * _unit(tape.gradient(penalty, x))
        return tf.clip_by_value(x + lr * direction, 0.0, 255.0), score, value

    @tf.function(input_signature=[image_spec, index_spec])
    def evaluate(x, index):
        return objective(x, index)[1]

    return step, evaluate


def _structure(regularizers: Sequence) -> tuple:
    """What the compiled step depends on: the regularizers without their weights (passed at run time)."""
    return tuple(dataclasses.replace(r, weight=0.0) for r in regularizers)


def _at_size(objective, size: int, model_hw: tuple[int, int]):
    """The objective over images of size x size, resized up to the model inside the gradient."""
    if (size, size) == model_hw:
        return objective
    return lambda x, index: objective(tf.image.resize(x, model_hw), index)


def _noise(rng: np.random.Generator, h: int, w: int) -> tf.Tensor:
    return tf.constant(rng.uniform(108.0, 148.0, (1, h, w, 3)).astype(np.float32))


def _to_uint8(x) -> np.ndarray:
    return np.uint8(np.round(np.clip(np.asarray(x)[0], 0, 255)))


def _model_size(model: keras.Model) -> tuple[int, int]:
    h, w = model.inputs[0].shape[1:3]
    if h is None or w is None:
        raise ExplainError(N_("Pass an explicit size: the model accepts images of any size."))
    return h, w


def maximize(model: keras.Model, objective: Objective, regularizers: Sequence = (), steps: int = 100,
             on_step: OnStep | None = None, *, input_modifiers: Sequence = (), lr: float = 6.0,
             size: int | None = None, seed: int = 0) -> Maximized:
    """Gradient ascent from gray noise (seeded) on `objective`, minus `regularizers`, each step
    through `input_modifiers`; `steps` (capped by TRANSFERLAB_MAX_STEPS) normalized steps of RMS
    size `lr` pixels. `size` smaller than the model's input gives smoother, coarser images (resized
    up to the model inside the gradient); None uses the model's input size.

    `on_step(step, steps, image, value)` is called after every step with the uint8 image reached
    and the objective's value on that step's input; returning True stops there.
    """
    objective.check(model)
    h, w = _model_size(model)
    size = size or h
    regs, modifiers = tuple(regularizers), tuple(input_modifiers)
    step, evaluate = compiled(
        model, ("maximize", objective.key, size, _structure(regs), modifiers),
        lambda: _make_ascent(_at_size(objective.build(model), size, (h, w)), _structure(regs), modifiers,
                             tf.TensorSpec((1, size, size, 3), tf.float32)))
    rng = np.random.default_rng(seed)
    x = _noise(rng, size, size)
    index, rate = tf.constant(objective.index, tf.int32), tf.constant(lr, tf.float32)
    weights = tf.constant([r.weight for r in regs], tf.float32)
    total, history, stopped = capped_steps(steps), [], False
    for i in range(1, total + 1):
        params = tuple(tf.constant(m.sample(rng)) for m in modifiers)
        x, score, value = step(x, index, rate, weights, params)
        history.append({"step": i, "score": float(score[0]), "value": float(value[0])})
        if on_step is not None and on_step(i, total, _to_uint8(x), history[-1]["value"]) and i < total:
            stopped = True
            break
    image = _to_uint8(x)
    value = float(evaluate(tf.constant(image[None], tf.float32), index)[0])
    return Maximized(image, value, history, stopped)


def _jitter(jitter: int | Jitter) -> tuple:
    """The input modifiers for a recipe's `jitter` argument: pixels, or a Jitter."""
    jitter = jitter if isinstance(jitter, Jitter) else Jitter(int(jitter))
    return (jitter,) if jitter.pixels > 0 else ()


# --- the two recipes --------------------------------------------------------------------------

def filter_pattern(model: keras.Model, layer_name: str, filter_index: int, steps: int = 30,
                   on_step: OnStep | None = None, *, lr: float = 10.0, size: int | None = None,
                   seed: int = 0, tv_weight: float = 0.0, jitter: int | Jitter = 0) -> Maximized:
    """The input that maximizes the mean activation of one filter (Deep Learning with Python
    §5.4.2): plain gradient ascent, optionally smoothed (`tv_weight`) and jittered (pixels)."""
    regs = (TotalVariation(tv_weight),) if tv_weight else ()
    return maximize(model, FilterObjective(layer_name, filter_index), regs, steps, on_step,
                    input_modifiers=_jitter(jitter), lr=lr, size=size, seed=seed)


def ideal_class_image(model: keras.Model, class_index: int, steps: int = 150, on_step: OnStep | None = None,
                      *, lr: float = 6.0, tv_weight: float = 0.3, jitter: int | Jitter = 8, seed: int = 0,
                      regularizers: Sequence = (), l2_weight: float = 0.0) -> Maximized:
    """What the model thinks class `class_index` looks like: ascent on the class's logit with
    `jitter` pixels of random shift per step, `TotalVariation(tv_weight)` and `L2Norm(l2_weight)`
    plus any extra `regularizers`, so that the result looks like an image and not like static (all
    of them 0: plain gradient ascent). Its value is the model's probability for the class on the
    returned image."""
    regs = ((TotalVariation(tv_weight),) if tv_weight else ()) + ((L2Norm(l2_weight),) if l2_weight else ())
    regs += tuple(regularizers)
    return maximize(model, ClassObjective(class_index), regs, steps, on_step,
                    input_modifiers=_jitter(jitter), lr=lr, seed=seed)
