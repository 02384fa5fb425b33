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

    def size_problem(self, image_size: int) -> Message | None:
        """Why this base cannot take images of image_size px, or None when it can."""
        if image_size < self.min_size:
            return Message(N_("{base} needs images of at least {size} px."),
                           {"base": self.label, "size": self.min_size})
        return None


def keras_cache_dir() -> str:
    """The folder where keras.applications reads and downloads weights: $KERAS_HOME/models (default
    ~/.keras), or /tmp/.keras/models when that home cannot be written (as keras' get_file does)."""
    home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    if os.path.isdir(home) and not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return os.path.join(home, "models")


class WeightsUnavailable(Explained, RuntimeError):
    """Pretrained weights are missing from the Keras cache and could not be downloaded."""


# default_unfreeze: MobileNetV2's 54 = the TF tutorial's "fine-tune from layer 100".
BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("mobilenet_v2", "MobileNetV2", "MobileNetV2", "mobilenet_v2", 32, 54),
    Backbone("mobilenet", "MobileNet", "MobileNet", "mobilenet", 32, 12),
    Backbone("mobilenet_025", "MobileNet (alpha 0.25)", "MobileNet", "mobilenet", 32, 12, (("alpha", 0.25),)),
    Backbone("vgg16", "VGG16", "VGG16", "vgg16", 32, 4),
    Backbone("resnet50", "ResNet50", "ResNet50", "resnet50", 32, 33),
    Backbone("efficientnet_b0", "EfficientNetB0", "EfficientNetB0", "efficientnet", 32, 30),
    Backbone("xception", "Xception", "Xception", "xception", 71, 16),
    Backbone("inception_v3", "InceptionV3", "InceptionV3", "inception_v3", 75, 31),
)}
