"""The pretrained ImageNet classifiers as a subject: keras.applications models with their own top.

No TensorFlow at import time (pages import this module): records, file checks and the class
names are plain Python; `load` imports Keras when first called.

| piece | what it is |
|---|---|
| `CLASSIFIERS`, `DEFAULT` | the classifiers as records: key, label, input size, constructor, weights file |
| `availability(key)` | None when the weights are in the Keras cache now, else the sentence saying what is needed |
| `load(key)` | the model, built once per process: float RGB 0..255 in, 1000 probabilities out, one flat graph |
| `class_names()`, `top_k` | the 1000 ImageNet class names (English) and the k most probable classes |
| `Regularization`, `ideal_image` | the ideal class image with its regularization as a teacher turns it |
| `demo_images()` | the photos that ship in assets/demo/ |

The model is `image -> preprocess -> the application's own layers -> predictions (Dense softmax)`,
so core.explain, core.visualize and core.adversarial work on it as on a trained run's model.
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
from dataclasses import dataclass

import numpy as np

from core.backbones import BACKBONES, WeightsUnavailable, keras_cache_dir
from core.messages import ConfigError, Message, N_

DEFAULT = "mobilenet_v2"
CLASS_INDEX_FILE = "imagenet_class_index.json"
DEMO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "demo")


@dataclass(frozen=True)
class Classifier:
    key: str           # the name used on the command line and in the pages' state
    label: str         # what a user reads
    size: int          # the input size its ImageNet top was trained at, in px
    application: str   # the keras.applications constructor, e.g. "MobileNetV2"
    module: str        # the keras.applications module holding its preprocess_input
    weights_file: str  # the file keras.applications caches under $KERAS_HOME/models
    megabytes: int     # the download size of that file


def _classifier(key: str, size: int, weights_file: str, megabytes: int) -> Classifier:
    """A classifier on one of core.backbones' bases: its label, constructor and module come from there."""
    base = BACKBONES[key]
    return Classifier(key, base.label, size, base.application, base.module, weights_file, megabytes)


# The weights file names are the ones keras.applications passes to get_file (cache_subdir "models").
CLASSIFIERS: dict[str, Classifier] = {c.key: c for c in (
    _classifier("mobilenet_v2", 224, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5", 14),
    _classifier("vgg16", 224, "vgg16_weights_tf_dim_ordering_tf_kernels.h5", 528),
    _classifier("resnet50", 224, "resnet50_weights_tf_dim_ordering_tf_kernels.h5", 98),
    _classifier("inception_v3", 299, "inception_v3_weights_tf_dim_ordering_tf_kernels.h5", 92),
    _classifier("xception", 299, "xception_weights_tf_dim_ordering_tf_kernels.h5", 88),
    _classifier("efficientnet_b0", 224, "efficientnetb0.h5", 21),
)}


def classifier(key: str) -> Classifier:
    """The record of `key`; ConfigError naming the choices when there is none."""
    if key not in CLASSIFIERS:
        raise ConfigError(N_("Unknown pretrained classifier '{key}': choose one of {choices}."),
                          key=key, choices=", ".join(CLASSIFIERS))
    return CLASSIFIERS[key]


def weights_path(key: str) -> str:
    """Where Keras reads (and would download) the classifier's weights."""
    return os.path.join(keras_cache_dir(), classifier(key).weights_file)


def availability(key: str) -> Message | None:
    """None when the classifier's weights are in the Keras cache now; else the sentence saying what
    is needed. Looks at files only: no network access."""
    c = classifier(key)
    if os.path.isfile(weights_path(key)):
        return None
    return Message(N_("The {model} weights are not on this computer: they download once ({mb} MB) on first use "
                      "with an internet connection."), {"model": c.label, "mb": c.megabytes})


# --- the model --------------------------------------------------------------------------------

_models: dict = {}
_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


def load(key: str = DEFAULT):
    """The classifier `key` as one flat keras.Model, built once per process (thread-safe).

    Input: float32 RGB in 0..255, (N, size, size, 3); the application's preprocess_input is the
    model's "preprocess" layer; output: softmax over the 1000 ImageNet classes. Raises ConfigError
    for an unknown key and WeightsUnavailable (one sentence) when the weights are missing and
    cannot be downloaded.
    """
    c = classifier(key)
    with _locks_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _models:
            _models[key] = _build(c)
        return _models[key]


def _build(c: Classifier):
    import keras

    from core.models import Preprocess, load_base

    inputs = keras.Input((c.size, c.size, 3), name="image")
    x = Preprocess(c.key, name="preprocess")(inputs)
    # input_tensor: the application's layers continue our graph, so the model is flat (no nested base).
    return load_base(c.key, x, c.size, include_top=True)


# --- the classes ------------------------------------------------------------------------------

_class_names: list[str] = []


def class_names() -> list[str]:
    """The 1000 ImageNet class names in index order ("tabby", "tiger cat", "African elephant"),
    from Keras' class index file (underscores shown as spaces)."""
    if not _class_names:
        with open(_class_index_path(), encoding="utf-8") as f:
            index = json.load(f)
        _class_names[:] = [index[str(i)][1].replace("_", " ") for i in range(len(index))]
    return _class_names


def _class_index_path() -> str:
    path = os.path.join(keras_cache_dir(), CLASS_INDEX_FILE)
    if os.path.isfile(path):
        return path
    try:
        import keras

        from keras.src.applications.imagenet_utils import CLASS_INDEX_PATH

        return keras.utils.get_file(CLASS_INDEX_FILE, CLASS_INDEX_PATH, cache_subdir="models")
    except Exception:
        raise WeightsUnavailable(N_("The ImageNet class names ({file}) are not in the Keras cache and could not be "
                                    "downloaded: put the file in {folder}, or set KERAS_HOME to a folder whose "
                                    "models/ has it."), file=CLASS_INDEX_FILE, folder=keras_cache_dir()) from None


def top_k(probs, k: int = 5) -> list[tuple[int, str, float]]:
    """The k most probable classes of one probability vector: [(index, name, probability)], best first."""
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    names = class_names()
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(i), names[i], float(probs[i])) for i in order]


# --- the ideal class image --------------------------------------------------------------------

@dataclass(frozen=True)
class Regularization:
    """What keeps an ideal class image looking like an image, as a teacher turns it. All zero
    (NO_REGULARIZATION) is plain gradient ascent: noise that the model is sure about."""
    tv_weight: float = 0.3  # smoothness: share of each step spent lowering total variation
    jitter: int = 8         # random shift in pixels before every step
    l2_weight: float = 0.0  # share of each step spent pulling pixels back to mid-gray


NO_REGULARIZATION = Regularization(0.0, 0, 0.0)


def ideal_image(model, class_index: int, regularization: Regularization = Regularization(), *, steps: int = 150,
                lr: float = 6.0, seed: int = 0, on_step=None):
    """One run of the ideal class image (core.visualize.ideal_class_image) on `model` (a keras.Model
    or a classifier key) with `regularization`: a core.visualize.Maximized."""
    from core import visualize

    model = load(model) if isinstance(model, str) else model
    return visualize.ideal_class_image(model, class_index, steps, on_step, lr=lr, seed=seed,
                                       **dataclasses.asdict(regularization))


# --- the demo photos --------------------------------------------------------------------------

# (file in assets/demo/, what a user reads); sources and licenses in assets/README.md.
DEMO_PHOTOS = (
    ("chelsea.jpg", N_("Cat")),
    ("coffee.jpg", N_("Coffee cup")),
    ("rocket.jpg", N_("Rocket")),
    ("astronaut.jpg", N_("Astronaut")),
)


def demo_images() -> list[tuple[str, str]]:
    """(display name, absolute path) of the demo photos that are present, in DEMO_PHOTOS' order.
    The display name is an English msgid: pages show it with t()."""
    return [(name, os.path.join(DEMO_DIR, file)) for file, name in DEMO_PHOTOS
            if os.path.isfile(os.path.join(DEMO_DIR, file))]
