"""The augmentation config: one object, turned into one geometric transform and Keras' colour layers.

The Augment page's preview, the scratch model's augmentation and the feature cache's augmented
views all call `build_augmentation(config)`, so what a user previews is what training does.
Images are float 0..255 throughout.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from core.messages import ConfigError, Message, N_

FILL_MODES = ("nearest", "reflect", "constant")  # as Keras' ImageDataGenerator's (constant: 0, black)
FILL_MODE_LABELS = {"nearest": N_("Nearest edge pixel"), "reflect": N_("Reflect"), "constant": N_("Constant (black)")}


@dataclass
class AugmentConfig:
    rotation: float = 0.0          # degrees, random in [-rotation, +rotation]
    width_shift: float = 0.0       # fraction of the width
    height_shift: float = 0.0      # fraction of the height
    shear: float = 0.0             # shear intensity, fraction (0..1)
    zoom: float = 0.0              # fraction, random zoom in [-zoom, +zoom]
    horizontal_flip: bool = False
    vertical_flip: bool = False
    brightness: float = 0.0        # fraction of the value range
    contrast: float = 0.0          # fraction
    hue: float = 0.0               # fraction of a full turn of the colour wheel (0..0.5)
    fill_mode: str = "nearest"     # points outside the image: nearest edge pixel, reflect, or constant (black)
    channel_shift: float = 0.0     # 0..255: each channel shifted by one random value in [-shift, +shift]

    @classmethod
    def classic(cls) -> "AugmentConfig":
        """The settings of Deep Learning with Python §5.2 (what 'augmentation on' means by default)."""
        return cls(rotation=40, width_shift=0.2, height_shift=0.2, shear=0.2, zoom=0.2,
                   horizontal_flip=True)

    @classmethod
    def light(cls) -> "AugmentConfig":
        """The Keras blog's settings (Chollet 2016, "Building powerful image classification models
        using very little data"): shear, zoom and flips only, no rotation or shift."""
        return cls(shear=0.2, zoom=0.2, horizontal_flip=True)

    @classmethod
    def preset(cls, name: str) -> "AugmentConfig":
        presets = {"classic": cls.classic, "light": cls.light}
        if name not in presets:
            raise ConfigError(N_("Unknown augmentation preset '{preset}': choose one of {choices}."),
                              preset=name, choices=", ".join(presets))
        return presets[name]()

    @classmethod
    def from_dict(cls, d: dict | None) -> "AugmentConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)

    def is_identity(self) -> bool:
        return replace(self, fill_mode="nearest") == AugmentConfig()  # the fill matters only when moving

    def problem(self) -> Message | None:
        """Why these settings cannot be used, or None."""
        if self.fill_mode not in FILL_MODES:
            return Message(N_("Unknown fill mode '{value}': choose one of {choices}."),
                           {"value": self.fill_mode, "choices": ", ".join(FILL_MODES)})
        if not 0 <= self.channel_shift <= 255:
            return Message(N_("The channel shift must be between 0 and 255."))
        return None


def transforms(height, width, rotation, shift_x, shift_y, shear_x, shear_y, zoom, flip_x, flip_y):
    """[B, 8] projective transforms (`keras.ops.image.affine_transform`'s layout), one per image,
    composing flip, zoom, shear and rotation about the image's centre, then a shift.

    Each argument is a [B] float tensor: rotation in radians, shifts in pixels, shear as a fraction,
    zoom as a scale (above 1 shows more of the image, i.e. zooms out), flips as +1 or -1. The
    transform maps an output pixel to the input point it samples: M = R · Shear · Zoom · Flip.
    """
    import tensorflow as tf

    cos, sin = tf.cos(rotation), tf.sin(rotation)
    a0 = (cos - sin * shear_y) * zoom * flip_x
    a1 = (cos * shear_x - sin) * zoom * flip_y
    b0 = (sin + cos * shear_y) * zoom * flip_x
    b1 = (sin * shear_x + cos) * zoom * flip_y
    cx, cy = (tf.cast(width, tf.float32) - 1) / 2, (tf.cast(height, tf.float32) - 1) / 2
    a2 = cx + shift_x - a0 * cx - a1 * cy
    b2 = cy + shift_y - b0 * cx - b1 * cy
    zero = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=1)


def resample(images, matrices, fill_mode: str = "nearest"):
    """Each image of a (B, H, W, C) batch resampled once through its row of `matrices` ([B, 8], as
    `transforms` makes them): bilinear; points outside the image take the nearest edge pixel, the
    image mirrored at its edge (reflect: d c b a | a b c d, as scipy's and so ImageDataGenerator's)
    or 0 (constant)."""
    import keras

    return keras.ops.image.affine_transform(keras.ops.cast(images, "float32"), matrices,
                                            interpolation="bilinear", fill_mode=fill_mode, fill_value=0.0)


def shift_channels(images, shifts):
    """ImageDataGenerator's channel shift: each channel of each image plus its own value of `shifts`
    ([B, C]), clipped to that image's own darkest and brightest values before the shift."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value(images + shifts[:, None, None, :], low, high)


_layer_classes: dict = {}


def _random_layer_classes() -> dict:
    """RandomAffine and RandomChannelShift, defined on first use (Keras and TensorFlow load only
    when augmentation runs)."""
    if _layer_classes:
        return _layer_classes
    import keras
    import tensorflow as tf

    class SeededLayer(keras.layers.Layer):
        """A layer drawing from its own generator: seeded, or not when seed is None."""

        def __init__(self, config: "AugmentConfig", seed: int | None = None, **kwargs):
            super().__init__(**kwargs)
            self.config = config
            self.seed = seed
            with tf.init_scope():  # eagerly, wherever the layer is built (tf.data, tf.function)
                self._generator = (tf.random.Generator.from_seed(seed) if seed is not None
                                   else tf.random.Generator.from_non_deterministic_state())

        def compute_output_shape(self, input_shape):
            return input_shape

    class RandomChannelShift(SeededLayer):
        """ImageDataGenerator's channel_shift_range: every channel of an image shifted by its own
        random value in [-shift, +shift] (0..255 units), clipped to the image's own range."""

        def call(self, images, training=True):
            if not training:
                return images
            shift = self.config.channel_shift
            shape = [tf.shape(images)[0], tf.shape(images)[3]]
            return shift_channels(images, self._generator.uniform(shape, -shift, shift))

    class RandomAffine(SeededLayer):
        """Flip, rotation, shift, shear and zoom in one resampling per image (bilinear, edges
        repeated), as Keras' ImageDataGenerator did: one transform instead of a layer each, so four
        geometric settings cost what one does. Ranges as Keras' RandomFlip, RandomRotation,
        RandomTranslation, RandomShear and RandomZoom."""

        def _uniform(self, n, low, high):
            return self._generator.uniform([n], low, high)

        def call(self, images, training=True):
            if not training:
                return images
            c = self.config
            n = tf.shape(images)[0]
            h, w = tf.shape(images)[1], tf.shape(images)[2]
            ones, zeros = tf.ones([n]), tf.zeros([n])

            def spread(amount, scale=1.0):
                return self._uniform(n, -amount, amount) * scale if amount else zeros

            def flip(on):
                return tf.where(self._uniform(n, 0.0, 1.0) < 0.5, -ones, ones) if on else ones

            t = transforms(h, w, spread(c.rotation, np.pi / 180),
                           spread(c.width_shift, tf.cast(w, tf.float32)),
                           spread(c.height_shift, tf.cast(h, tf.float32)),
                           spread(c.shear), spread(c.shear),
                           1.0 + spread(c.zoom), flip(c.horizontal_flip), flip(c.vertical_flip))
            return resample(images, t, c.fill_mode)

    _layer_classes.update(RandomAffine=RandomAffine, RandomChannelShift=RandomChannelShift)
    return _layer_classes


def build_augmentation(config: AugmentConfig, seed: int | None = None):
    """A keras.Sequential named 'augmentation' (active only when training=True): the geometric
    settings as one RandomAffine, then the channel shift and Keras' colour layers."""
    import keras
    from keras import layers

    c = config
    steps = []
    if c.horizontal_flip or c.vertical_flip or c.rotation or c.width_shift or c.height_shift or c.shear or c.zoom:
        steps.append(_random_layer_classes()["RandomAffine"](c, seed=seed, name="random_affine"))
    if c.channel_shift:
        steps.append(_random_layer_classes()["RandomChannelShift"](c, seed=seed, name="random_channel_shift"))
    if c.brightness:
        steps.append(layers.RandomBrightness(c.brightness, value_range=(0, 255), seed=seed))
    if c.contrast:
        steps.append(layers.RandomContrast(c.contrast, value_range=(0, 255), seed=seed))
    if c.hue:
        steps.append(layers.RandomHue(c.hue, value_range=(0, 255), seed=seed))
    return keras.Sequential(steps, name="augmentation")


def preview(image: np.ndarray, config: AugmentConfig, n: int = 9, seed: int = 0) -> list[np.ndarray]:
    """n augmented variants (uint8 HxWxC) of one uint8 image, through the training layers."""
    aug = build_augmentation(config, seed=seed)
    batch = np.repeat(image[None].astype(np.float32), n, axis=0)
    if not aug.layers:
        return [image.copy() for _ in range(n)]
    out = np.asarray(aug(batch, training=True))
    return [np.clip(v, 0, 255).astype(np.uint8) for v in out]
