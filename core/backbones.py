"""The pretrained bases a transfer model can stand on: names and facts, no TensorFlow.

Pages, the command line and the config read these records without importing Keras; core.models
turns a record into a keras.applications model. Adding a backbone is one line here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from core.messages import Explained, Message, N_


@dataclass(frozen=True)
class Backbone:
    name: str              # the key used in configs, run folders and on the command line
    label: str             # what a user reads
    application: str       # the keras.applications constructor, e.g. "MobileNetV2"
    module: str            # the keras.applications module holding its preprocess_input
    min_size: int          # the smallest input its architecture accepts, in px
    default_unfreeze: int  # top layers fine-tuning unfreezes unless told otherwise
    kwargs: tuple = ()     # extra constructor arguments, as (name, value) pairs
    # The ImageNet weights file (no top) keras.applications looks for in $KERAS_HOME/models;
    # {rows}: the input size for the bases that have weights per size (96, 128, 160, 192, 224).
    weights_file: str = ""

    def size_problem(self, image_size: int) -> Message | None:
        """Why this base cannot take images of image_size px, or None when it can."""
        if image_size < self.min_size:
            return Message(N_("{base} needs images of at least {size} px."),
                           {"base": self.label, "size": self.min_size})
        return None


    def weights_name(self, image_size: int) -> str:
        """The weights file keras.applications loads for this size (the per-size bases fall back
        to their 224 px weights for other sizes, as Keras does)."""
        rows = image_size if image_size in _PER_SIZE_WEIGHTS else 224
        return self.weights_file.format(rows=rows)

    def weights_cached(self, image_size: int) -> bool:
        """Its ImageNet weights are in the Keras cache (loadable offline)."""
        return os.path.isfile(os.path.join(keras_cache_dir(), self.weights_name(image_size)))


_PER_SIZE_WEIGHTS = (96, 128, 160, 192, 224)


def keras_cache_dir() -> str:
    """Where keras.applications keeps downloaded weights: $KERAS_HOME/models, else ~/.keras/models."""
    return os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "models")


class WeightsUnavailable(Explained, RuntimeError):
    """Pretrained weights are missing from the Keras cache and could not be downloaded."""


# default_unfreeze: MobileNetV2's 54 = the TF tutorial's "fine-tune from layer 100".
BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("mobilenet_v2", "MobileNetV2", "MobileNetV2", "mobilenet_v2", 32, 54,
             weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"),
    Backbone("mobilenet", "MobileNet", "MobileNet", "mobilenet", 32, 12,
             weights_file="mobilenet_1_0_{rows}_tf_no_top.h5"),
    Backbone("mobilenet_025", "MobileNet (alpha 0.25)", "MobileNet", "mobilenet", 32, 12, (("alpha", 0.25),),
             weights_file="mobilenet_2_5_{rows}_tf_no_top.h5"),
    Backbone("vgg16", "VGG16", "VGG16", "vgg16", 32, 4,
             weights_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    Backbone("resnet50", "ResNet50", "ResNet50", "resnet50", 32, 33,
             weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    Backbone("efficientnet_b0", "EfficientNetB0", "EfficientNetB0", "efficientnet", 32, 30,
             weights_file="efficientnetb0_notop.h5"),
    Backbone("xception", "Xception", "Xception", "xception", 71, 16,
             weights_file="xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    Backbone("inception_v3", "InceptionV3", "InceptionV3", "inception_v3", 75, 31,
             weights_file="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
)}
