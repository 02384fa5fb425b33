"""Whether a base's ImageNet weights are on this machine, and what fetching them takes — no TensorFlow.

keras.applications looks for one file per base (and, for the MobileNets, per image size) in the
Keras cache (KERAS_HOME/models) and downloads it when it is missing. The Train page asks here before
Start, so that a base whose file is absent on an offline machine says so instead of failing a run.
The file names are keras.applications' own (pinned by a test against the installed Keras).
"""
from __future__ import annotations

import os

from core.backbones import BACKBONES

# keras.applications' sizes with their own MobileNet weights; another size loads the 224 px file.
_MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)
_MOBILENET_SIZES = (128, 160, 192, 224)
_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
# Size of each no-top weights file, in MB (keras.applications' releases), for "download needed (N MB)".
DOWNLOAD_MB = {"mobilenet_v2": 9.4, "mobilenet": 17.2, "mobilenet_025": 2.1, "vgg16": 58.9, "resnet50": 94.7,
               "efficientnet_b0": 16.7, "xception": 83.7, "inception_v3": 87.9}


def keras_cache_dir() -> str:
    return os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "models")


def weights_file(base: str, image_size: int) -> str:
    """The file name keras.applications loads for `base` (no top) at `image_size` px."""
    spec = BACKBONES[base]
    alpha = float(dict(spec.kwargs).get("alpha", 1.0))
    if spec.application == "MobileNetV2":
        rows = image_size if image_size in _MOBILENET_V2_SIZES else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}_no_top.h5"
    if spec.application == "MobileNet":
        rows = image_size if image_size in _MOBILENET_SIZES else 224
        return f"mobilenet_{_ALPHA_TEXT[alpha]}_{rows}_tf_no_top.h5"
    if spec.application.startswith("EfficientNet"):
        return f"{spec.application.lower()}_notop.h5"
    return f"{spec.module}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def weights_available(base: str, image_size: int) -> bool:
    """The weights file is in the Keras cache: the base builds without a download."""
    return os.path.isfile(os.path.join(keras_cache_dir(), weights_file(base, image_size)))
