"""The class activation map methods: how each weighs the channels of a feature map.

core.explain.grad_cam does the plumbing once (the gradient of the class score with respect to a
layer's feature maps, the weighted sum, the ReLU); a method is only its channel weights, as in
pytorch-grad-cam's subclasses. Adding one is one function here and one entry in CAM_METHODS.

No TensorFlow at import: the pages read the names, labels and descriptions from here. The weight
functions import it when core.explain traces them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from core.messages import N_


def grad_cam_weights(fmap, grads):
    """One weight per channel: its gradient averaged over the map (Selvaraju et al. 2017)."""
    import tensorflow as tf

    return tf.reduce_mean(grads, axis=(1, 2))


def grad_cam_plus_plus_weights(fmap, grads):
    """The positive gradients only, each weighted so that small and large regions of evidence
    count alike (Chattopadhay et al. 2018, with the exponential score's closed form)."""
    import tensorflow as tf

    g2 = tf.square(grads)
    denom = 2.0 * g2 + tf.reduce_sum(fmap, axis=(1, 2), keepdims=True) * g2 * grads
    alpha = g2 / tf.where(denom != 0, denom, tf.ones_like(denom))
    return tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2))


@dataclass(frozen=True)
class CamMethod:
    weights: Callable  # (feature maps (N, H, W, C), d score / d maps) -> channel weights (N, C)
    label: str
    description: str   # one sentence, shown beside the method's name (marked N_: the page translates it)


CAM_METHODS: dict[str, CamMethod] = {
    "grad-cam++": CamMethod(grad_cam_plus_plus_weights, "Grad-CAM++",
                            N_("counts only positive gradients, weighted so small and large regions count "
                               "alike: it covers the whole object more often.")),
    "grad-cam": CamMethod(grad_cam_weights, "Grad-CAM", N_("weighs each channel by its mean gradient.")),
}
DEFAULT_CAM_METHOD = "grad-cam++"  # on real photos it covers the whole object more often (docs/BENCHMARKS.md, cats)
