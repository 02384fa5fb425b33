"""Visualize: inputs that excite the model (filter patterns, "ideal class" images) and inputs that
fool it (FGSM and targeted iterative attacks).

| function | what it does |
|---|---|
| `filter_pattern` | gradient ascent from noise to the input that maximizes one filter's mean activation (Deep Learning with Python §5.4.2) |
| `ideal_class_image` | gradient ascent from noise on one class's logit, with jitter and total variation so it looks like an image (Simonyan et al. 2013; Mahendran & Vedaldi 2015) |
| `fgsm` | one signed-gradient step of size epsilon that raises the loss of the true label (Goodfellow et al. 2014) |
| `targeted_attack` | projected signed-gradient descent on the loss of a chosen class, inside the epsilon L-inf ball (Madry et al. 2017) |
| `accuracy_vs_epsilon` | accuracy under FGSM for several epsilons |

Composable pieces in the manner of tf-keras-vis: regularizers (`TotalVariation`, `L2Norm`) and an
input modifier (`Jitter`) are small frozen objects. All images are float pixels in 0..255 and
stay there (every ascent step clips to the valid range). Gradient ascent takes normalized steps:
each term's gradient is divided by its RMS, so `lr` is the RMS pixel change per step and a
regularizer's weight is the share of the step it gets, whatever the model's scale. Optimization
steps can be capped by the environment variable TRANSFERLAB_MAX_STEPS (tests use it).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from core.explain import ClassScores, as_model_batch, as_model_input, compiled, conv_layers, probabilities

MAX_STEPS_ENV = "TRANSFERLAB_MAX_STEPS"


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
    `sample` draws a shift on the host (seeded), `apply` runs inside the compiled step."""
    pixels: int = 8

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(-self.pixels, self.pixels + 1, size=2).astype(np.int32)

    @staticmethod
    def apply(images, shift):
        """The images shifted by shift = (dy, dx) pixels, wrapping around; (0, 0) leaves them be."""
        return tf.roll(images, shift, axis=[1, 2])


_NO_SHIFT = np.zeros(2, np.int32)


# --- the shared gradient-ascent mechanism ---------------------------------------------------

def _unit(grads):
    rms = tf.sqrt(tf.reduce_mean(tf.square(grads), axis=(1, 2, 3), keepdims=True))
    return grads / (rms + 1e-12)


def _make_ascent(objective, regularizers: tuple, image_spec: tf.TensorSpec):
    """One tf.function step: x <- clip(x + lr * (unit(d objective) - sum_i w_i unit(d reg_i))).

    `objective(x, index)` returns (score to maximize, value to report), one per image; it sees
    the jittered image, the regularizers the image itself.
    """
    @tf.function(input_signature=[image_spec, tf.TensorSpec((), tf.int32), tf.TensorSpec((2,), tf.int32),
                                  tf.TensorSpec((), tf.float32), tf.TensorSpec((len(regularizers),), tf.float32)])
    def step(x, index, shift, lr, weights):
        with tf.GradientTape() as tape:
            tape.watch(x)
            score, report = objective(Jitter.apply(x, shift), index)
            total = tf.reduce_sum(score)
        direction = _unit(tape.gradient(total, x))
        for i, reg in enumerate(regularizers):
            with tf.GradientTape() as tape:
                tape.watch(x)
                penalty = tf.reduce_sum(reg(x))
            direction -= weights[i] * _unit(tape.gradient(penalty, x))
        return tf.clip_by_value(x + lr * direction, 0.0, 255.0), score, report

    return step


def _ascend(step, x, index: int, steps: int, lr: float, regularizers: Sequence, jitter: Jitter | None,
            rng: np.random.Generator, on_step: Callable | None = None):
    """Runs `step` up to `steps` times; on_step(i, x, score, report) returning False stops."""
    weights = tf.constant([r.weight for r in regularizers], tf.float32)
    index, lr = tf.constant(index, tf.int32), tf.constant(lr, tf.float32)
    for i in range(1, capped_steps(steps) + 1):
        shift = jitter.sample(rng) if jitter else _NO_SHIFT
        x, score, report = step(x, index, tf.constant(shift), lr, weights)
        if on_step is not None and on_step(i, x, float(score[0]), float(report[0])) is False:
            break
    return x


def _structure(regularizers: Sequence) -> tuple:
    """What the compiled step depends on: the regularizers without their weights (passed at run time)."""
    return tuple(dataclasses.replace(r, weight=0.0) for r in regularizers)


def _noise(rng: np.random.Generator, h: int, w: int) -> tf.Tensor:
    return tf.constant(rng.uniform(108.0, 148.0, (1, h, w, 3)).astype(np.float32))


def _to_uint8(x) -> np.ndarray:
    return np.uint8(np.round(np.clip(np.asarray(x)[0], 0, 255)))


def _jitter(jitter) -> Jitter | None:
    if isinstance(jitter, Jitter):
        return jitter if jitter.pixels > 0 else None
    return Jitter(int(jitter)) if jitter else None


def _model_size(model: keras.Model) -> tuple[int, int]:
    h, w = model.inputs[0].shape[1:3]
    if h is None or w is None:
        raise ValueError("Pass an explicit size: the model accepts images of any size.")
    return h, w


# --- filter patterns --------------------------------------------------------------------------

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
        layer = layer.input._keras_history.operation
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


def _filter_objective(model, layer_name, size):
    response = _pre_relu_response(model, layer_name)
    h, w = _model_size(model)

    def objective(x, index):
        if (size, size) != (h, w):
            x = tf.image.resize(x, (h, w))
        acts = tf.gather(response(x), index, axis=-1)
        if acts.shape[1] > 4 and acts.shape[2] > 4:
            acts = acts[:, 2:-2, 2:-2]  # border pixels see padding: keep them out of the objective
        value = tf.reduce_mean(acts, axis=(1, 2))
        return value, value

    return objective


def filter_pattern(model: keras.Model, layer_name: str, filter_index: int, steps: int = 30,
                   lr: float = 10.0, size: int | None = None, seed: int = 0, tv_weight: float = 0.0,
                   jitter: int | Jitter = 0, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """The uint8 image (size x size x 3) that maximizes the mean activation of one filter.

    Gradient ascent from gray noise (Deep Learning with Python §5.4.2). For ReLU filters (and max
    pools over them) the pre-ReLU response is maximized, so filters silent on the noise still get a
    gradient; the ReLU is monotone, so this raises the activation too. `size` smaller than the
    model's input gives smoother, coarser patterns (the image is resized up to the model inside the
    gradient); None uses the model's input size. The returned pixels are the optimized input
    itself, not contrast-stretched.
    """
    if layer_name not in conv_layers(model):
        raise ValueError(f"'{layer_name}' is not a feature-map layer of '{model.name}'.")
    channels = int(model.get_layer(layer_name).output.shape[-1])
    if not 0 <= filter_index < channels:
        raise ValueError(f"Layer '{layer_name}' has {channels} filters; {filter_index} is out of range.")
    h, w = _model_size(model)
    size = size or h
    regs = (TotalVariation(tv_weight),) if tv_weight else ()
    step = compiled(model, ("filter_ascent", layer_name, size, _structure(regs)),
                    lambda: _make_ascent(_filter_objective(model, layer_name, size), _structure(regs),
                                         tf.TensorSpec((1, size, size, 3), tf.float32)))
    rng = np.random.default_rng(seed)
    stop = (lambda *a: not should_stop()) if should_stop else None
    x = _ascend(step, _noise(rng, size, size), filter_index, steps, lr, regs, _jitter(jitter), rng, stop)
    return _to_uint8(x)


# --- ideal class images ----------------------------------------------------------------------

def _class_objective(model):
    scores = ClassScores(model)

    def objective(x, index):
        _, logits, probs = scores(x)
        return tf.gather(logits, index, axis=-1), tf.gather(probs, index, axis=-1)

    return objective


def ideal_class_image(model: keras.Model, class_index: int, steps: int = 150, lr: float = 6.0,
                      tv_weight: float = 0.3, jitter: int | Jitter = 8, seed: int = 0,
                      callback: Callable[[int, np.ndarray, float], bool | None] | None = None,
                      callback_every: int = 10, regularizers: Sequence = (),
                      should_stop: Callable[[], bool] | None = None):
    """What the model thinks class `class_index` looks like: (uint8 image, probability, history).

    Gradient ascent from gray noise on the class's pre-softmax logit (raising the logit rather
    than the softmax keeps the image from winning only by suppressing the other classes), with
    `jitter` pixels of random shift per step and `TotalVariation(tv_weight)` plus any extra
    `regularizers`. `lr` is the RMS pixel change per step. `callback(step, image, probability)`
    is called every `callback_every` steps and after the last; returning False stops early, as
    does `should_stop()` returning True. The probability returned is the model's on the returned
    uint8 image; history holds one dict (step, logit, probability) per step, measured on the
    jittered input of that step.
    """
    n_classes = int(model.outputs[0].shape[-1])
    if not 0 <= class_index < n_classes:
        raise ValueError(f"Class index {class_index} is out of range: the model has {n_classes} classes.")
    h, w = _model_size(model)
    regs = ((TotalVariation(tv_weight),) if tv_weight else ()) + tuple(regularizers)
    step = compiled(model, ("class_ascent", _structure(regs)),
                    lambda: _make_ascent(_class_objective(model), _structure(regs),
                                         tf.TensorSpec((1, h, w, 3), tf.float32)))
    rng = np.random.default_rng(seed)
    history: list[dict] = []
    total = capped_steps(steps)

    def on_step(i, x, logit, prob):
        history.append({"step": i, "logit": logit, "probability": prob})
        if should_stop is not None and should_stop():
            return False
        if callback is not None and (i % max(1, callback_every) == 0 or i == total):
            return callback(i, _to_uint8(x), prob)
        return True

    x = _ascend(step, _noise(rng, h, w), class_index, total, lr, regs, _jitter(jitter), rng, on_step)
    image = _to_uint8(x)
    return image, float(probabilities(model, image)[class_index]), history


# --- adversarial examples -------------------------------------------------------------------

def _make_loss_gradient(model):
    scores = ClassScores(model)

    @tf.function(input_signature=[tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32),
                                  tf.TensorSpec((None,), tf.int32)])
    def loss_gradient(x, labels):
        with tf.GradientTape() as tape:
            tape.watch(x)
            _, logits, _ = scores(x)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        return tape.gradient(loss, x)

    return loss_gradient


def _loss_gradient(model, x: np.ndarray, labels) -> np.ndarray:
    """d cross-entropy(labels) / d pixels, per image (from logits: no softmax saturation)."""
    fn = compiled(model, ("loss_gradient",), lambda: _make_loss_gradient(model))
    return fn(tf.constant(x), tf.constant(np.asarray(labels, np.int32).reshape(-1))).numpy()


def _pixels(epsilon: float) -> float:
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon is a fraction of the pixel range (e.g. 2/255 = {2 / 255:.4f}); "
                         f"got {epsilon}.")
    return float(epsilon) * 255.0


def fgsm(model: keras.Model, images, labels, epsilon: float, batch_size: int = 64) -> np.ndarray:
    """FGSM adversarial images: x + epsilon * 255 * sign(d loss(true label) / dx), clipped to 0..255.

    `epsilon` is in the 0..1 scale (2/255 means two pixel levels); images and the result are float
    pixels in 0..255, shape (N, S, S, 3). The result is not rounded, so every perturbed pixel moves
    by exactly epsilon * 255 - except where that would leave 0..255, the one place it is clipped
    (a white pixel cannot get whiter). Pixels whose gradient is exactly zero do not move.
    """
    x = as_model_batch(model, images)
    labels = np.asarray(labels, np.int32).reshape(-1)
    eps = _pixels(epsilon)
    out = np.empty_like(x)
    for i in range(0, len(x), batch_size):
        grads = _loss_gradient(model, x[i:i + batch_size], labels[i:i + batch_size])
        out[i:i + batch_size] = np.clip(x[i:i + batch_size] + eps * np.sign(grads), 0, 255)
    return out


def targeted_attack(model: keras.Model, image, target_class: int, epsilon: float, steps: int = 10,
                    step_size: float | None = None, should_stop: Callable[[], bool] | None = None):
    """Iterative targeted attack: (adversarial float image (S, S, 3) in 0..255, its probabilities).

    Each step moves every pixel by `step_size` against the gradient of the target class's
    cross-entropy, then projects back into the L-inf ball of radius `epsilon` around the original
    and into 0..255 (PGD, no random start). epsilon and step_size are in the 0..1 scale;
    step_size defaults to epsilon / 4. Stops early when `should_stop()` returns True.
    """
    n_classes = int(model.outputs[0].shape[-1])
    if not 0 <= target_class < n_classes:
        raise ValueError(f"Class index {target_class} is out of range: the model has {n_classes} classes.")
    x0 = as_model_input(model, image)[None]
    eps = _pixels(epsilon)
    alpha = _pixels(step_size) if step_size is not None else eps / 4
    lo, hi = np.maximum(x0 - eps, 0), np.minimum(x0 + eps, 255)
    x = x0.copy()
    for _ in range(capped_steps(steps)):
        if should_stop is not None and should_stop():
            break
        x = np.clip(x - alpha * np.sign(_loss_gradient(model, x, [target_class])), lo, hi)
    return x[0], probabilities(model, x[0])


def accuracy_vs_epsilon(model: keras.Model, images, labels, epsilons: Sequence[float],
                        batch_size: int = 64, should_stop: Callable[[], bool] | None = None):
    """[(epsilon, accuracy under FGSM)] for each epsilon (0..1 scale; 0 is the clean accuracy).

    The FGSM direction does not depend on epsilon, so each batch's gradient is computed once.
    `should_stop()` is checked between batches; stopped early, accuracies cover the images done.
    """
    x = as_model_batch(model, images)
    labels = np.asarray(labels, np.int32).reshape(-1)
    eps = [_pixels(e) for e in epsilons]
    correct, seen = np.zeros(len(eps)), 0
    for i in range(0, len(x), batch_size):
        if should_stop is not None and should_stop():
            break
        xb, yb = x[i:i + batch_size], labels[i:i + batch_size]
        direction = np.sign(_loss_gradient(model, xb, yb))
        for k, e in enumerate(eps):
            adv = np.clip(xb + e * direction, 0, 255)
            correct[k] += int((probabilities(model, adv).argmax(-1) == yb).sum())
        seen += len(xb)
    return [(float(e), float(c / seen) if seen else float("nan")) for e, c in zip(epsilons, correct)]


def perturbation_image(original, adversarial) -> np.ndarray:
    """The perturbation made visible: uint8, mid-gray = unchanged, scaled so the largest change
    reaches black or white."""
    delta = np.asarray(adversarial, np.float32) - np.asarray(original, np.float32)
    peak = float(np.abs(delta).max())
    return np.uint8(np.round(127.5 + (delta / peak * 127.5 if peak > 0 else delta)))
