"""Adversarial examples: inputs that fool the model, a pixel level or two away from real ones.

| function | what it does |
|---|---|
| `fgsm` | one signed-gradient step of size epsilon that raises the loss of the true label (Goodfellow et al. 2014) |
| `targeted_attack` | projected signed-gradient descent on the loss of a chosen class, inside the epsilon L-inf ball (Madry et al. 2017) |
| `untargeted_attack` | the same ascent on the loss of the image's own class, until another class wins |
| `attack` | either of the two on one image, with what a page shows: before, after, perturbation, pixel change |
| `accuracy_vs_epsilon` | accuracy under FGSM for several epsilons |
| `perturbation_image` | the change made visible, mid-gray for none |

Images are float pixels in 0..255; epsilon is a fraction of that range (2/255 is two pixel levels).
Like core.visualize's ascent, the long ones call `on_step(step, steps, ...)` after every step (or
batch), and returning True stops them there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from core.explain import (ClassScores, ExplainError, as_model_batch, as_model_input, class_out_of_range, compiled,
                          probabilities)
from core.messages import N_
from core.visualize import capped_steps


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


def loss_gradient(model: keras.Model, x: np.ndarray, labels) -> np.ndarray:
    """d cross-entropy(labels) / d pixels, per image (from logits: no softmax saturation)."""
    fn = compiled(model, ("loss_gradient",), lambda: _make_loss_gradient(model))
    return fn(tf.constant(x), tf.constant(np.asarray(labels, np.int32).reshape(-1))).numpy()


def _pixels(epsilon: float) -> float:
    if not 0 <= epsilon <= 1:
        raise ExplainError(N_("epsilon is a fraction of the pixel range (e.g. 2/255 = {example}); got {epsilon}."),
                           example=f"{2 / 255:.4f}", epsilon=epsilon)
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
        grads = loss_gradient(model, x[i:i + batch_size], labels[i:i + batch_size])
        out[i:i + batch_size] = np.clip(x[i:i + batch_size] + eps * np.sign(grads), 0, 255)
    return out


def _projected_steps(model: keras.Model, x0: np.ndarray, label: int, direction: float, eps: float, alpha: float,
                     steps: int, on_step, done=None) -> np.ndarray:
    """Signed-gradient steps of `alpha` pixels on the cross-entropy of `label` (direction -1 lowers
    it: towards the label; +1 raises it: away from it), each projected into the L-inf ball of `eps`
    pixels around x0 and into 0..255. Stops early when on_step returns True or done(x) holds."""
    lo, hi = np.maximum(x0 - eps, 0), np.minimum(x0 + eps, 255)
    x, total = x0.copy(), capped_steps(steps)
    for i in range(1, total + 1):
        x = np.clip(x + direction * alpha * np.sign(loss_gradient(model, x, [label])), lo, hi)
        if (on_step is not None and on_step(i, total, x[0])) or (done is not None and done(x[0])):
            break
    return x


def targeted_attack(model: keras.Model, image, target_class: int, epsilon: float, steps: int = 10,
                    step_size: float | None = None,
                    on_step: Callable[[int, int, np.ndarray], bool | None] | None = None):
    """Iterative targeted attack: (adversarial float image (S, S, 3) in 0..255, its probabilities).

    Each step moves every pixel by `step_size` against the gradient of the target class's
    cross-entropy, then projects back into the L-inf ball of radius `epsilon` around the original
    and into 0..255 (PGD, no random start). epsilon and step_size are in the 0..1 scale;
    step_size defaults to epsilon / 4. `on_step(step, steps, image)` is called after every step;
    returning True stops there.
    """
    _check_class(model, target_class)
    x0 = as_model_input(model, image)[None]
    eps = _pixels(epsilon)
    alpha = _pixels(step_size) if step_size is not None else eps / 4
    x = _projected_steps(model, x0, target_class, -1.0, eps, alpha, steps, on_step)
    return x[0], probabilities(model, x[0])


def untargeted_attack(model: keras.Model, image, epsilon: float, steps: int = 10, step_size: float | None = None,
                      label: int | None = None,
                      on_step: Callable[[int, int, np.ndarray], bool | None] | None = None):
    """Iterative untargeted attack (the iterated FGSM, Kurakin et al. 2016): (adversarial image,
    its probabilities). Raises the cross-entropy of `label` (default: the class the model predicts
    for the image) with the steps of targeted_attack, and stops as soon as another class wins."""
    x0 = as_model_input(model, image)[None]
    label = int(probabilities(model, x0[0]).argmax()) if label is None else label
    _check_class(model, label)
    eps = _pixels(epsilon)
    alpha = _pixels(step_size) if step_size is not None else eps / 4
    x = _projected_steps(model, x0, label, 1.0, eps, alpha, steps, on_step,
                         done=lambda x: int(probabilities(model, x).argmax()) != label)
    return x[0], probabilities(model, x[0])


def _check_class(model: keras.Model, class_index: int) -> None:
    n_classes = int(model.outputs[0].shape[-1])
    if not 0 <= class_index < n_classes:
        raise class_out_of_range(class_index, n_classes)


@dataclass(frozen=True)
class Attacked:
    """One attack on one image, as a page shows it."""
    original: np.ndarray       # float (S, S, 3) in 0..255: the image as the model saw it
    adversarial: np.ndarray    # float (S, S, 3) in 0..255
    before: np.ndarray         # probabilities on the original
    after: np.ndarray          # probabilities on the adversarial image
    target: int | None         # the class aimed at; None for an untargeted attack
    levels: float              # epsilon in pixel levels (2 = two of 255)
    steps: int                 # the steps asked for

    @property
    def perturbation(self) -> np.ndarray:
        """The change, amplified to be seen (perturbation_image)."""
        return perturbation_image(self.original, self.adversarial)

    @property
    def max_change(self) -> float:
        """The largest change of any pixel, in pixel levels."""
        return float(np.abs(self.adversarial - self.original).max())

    @property
    def succeeded(self) -> bool:
        """The target class wins (targeted), or the original top class no longer does (untargeted)."""
        winner = int(self.after.argmax())
        return winner == self.target if self.target is not None else winner != int(self.before.argmax())


def attack(model: keras.Model, image, target: int | None = None, levels: float = 2, steps: int = 10,
           on_step: Callable[[int, int, np.ndarray], bool | None] | None = None) -> Attacked:
    """A targeted attack towards class `target`, or an untargeted one (target None) away from the
    predicted class, inside +-`levels` pixel levels (epsilon = levels / 255), `steps` steps."""
    original = as_model_input(model, image)
    epsilon = levels / 255
    if target is None:
        adv, after = untargeted_attack(model, original, epsilon, steps, on_step=on_step)
    else:
        adv, after = targeted_attack(model, original, target, epsilon, steps, on_step=on_step)
    return Attacked(original, adv, probabilities(model, original), after, target, float(levels), int(steps))


def accuracy_vs_epsilon(model: keras.Model, images, labels, epsilons: Sequence[float], batch_size: int = 64,
                        on_step: Callable[[int, int], bool | None] | None = None):
    """[(epsilon, accuracy under FGSM)] for each epsilon (0..1 scale; 0 is the clean accuracy).

    The FGSM direction does not depend on epsilon, so each batch's gradient is computed once.
    `on_step(batches done, batches)` is called after every batch; returning True stops there, and
    the accuracies then cover the images done.
    """
    x = as_model_batch(model, images)
    labels = np.asarray(labels, np.int32).reshape(-1)
    eps = [_pixels(e) for e in epsilons]
    correct, seen = np.zeros(len(eps)), 0
    batches = -(-len(x) // batch_size)
    for done, i in enumerate(range(0, len(x), batch_size), 1):
        xb, yb = x[i:i + batch_size], labels[i:i + batch_size]
        direction = np.sign(loss_gradient(model, xb, yb))
        for k, e in enumerate(eps):
            adv = np.clip(xb + e * direction, 0, 255)
            correct[k] += int((probabilities(model, adv).argmax(-1) == yb).sum())
        seen += len(xb)
        if on_step is not None and on_step(done, batches):
            break
    return [(float(e), float(c / seen) if seen else float("nan")) for e, c in zip(epsilons, correct)]


def perturbation_image(original, adversarial) -> np.ndarray:
    """The perturbation made visible: uint8, mid-gray = unchanged, scaled so the largest change
    reaches black or white."""
    delta = np.asarray(adversarial, np.float32) - np.asarray(original, np.float32)
    peak = float(np.abs(delta).max())
    return np.uint8(np.round(127.5 + (delta / peak * 127.5 if peak > 0 else delta)))
