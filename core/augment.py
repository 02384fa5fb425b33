"""The augmentation config: one object, turned into Keras preprocessing layers.

The Augment page's preview, the scratch model's augmentation and the feature cache's augmented
views all call `build_augmentation(config)`, so what a user previews is what training does.
Images are float 0..255 throughout.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np


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
            raise ValueError(f"Unknown augmentation preset '{name}': choose one of {', '.join(presets)}.")
        return presets[name]()

    @classmethod
    def from_dict(cls, d: dict | None) -> "AugmentConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)

    def is_identity(self) -> bool:
        return self == AugmentConfig()


def build_augmentation(config: AugmentConfig, seed: int | None = None):
    """A keras.Sequential named 'augmentation' (active only when training=True)."""
    import keras
    from keras import layers

    c = config
    steps = []
    if c.horizontal_flip or c.vertical_flip:
        mode = ("horizontal_and_vertical" if c.horizontal_flip and c.vertical_flip
                else "horizontal" if c.horizontal_flip else "vertical")
        steps.append(layers.RandomFlip(mode, seed=seed))
    if c.rotation:
        steps.append(layers.RandomRotation(c.rotation / 360.0, fill_mode="nearest", seed=seed))
    if c.width_shift or c.height_shift:
        steps.append(layers.RandomTranslation(c.height_shift, c.width_shift, fill_mode="nearest", seed=seed))
    if c.shear:
        steps.append(layers.RandomShear(x_factor=c.shear, y_factor=c.shear, fill_mode="nearest", seed=seed))
    if c.zoom:
        steps.append(layers.RandomZoom(c.zoom, fill_mode="nearest", seed=seed))
    if c.brightness:
        steps.append(layers.RandomBrightness(c.brightness, value_range=(0, 255), seed=seed))
    if c.contrast:
        steps.append(layers.RandomContrast(c.contrast, value_range=(0, 255), seed=seed))
    if c.hue:
        steps.append(layers.RandomHue(c.hue, value_range=(0, 255), seed=seed))
    return keras.Sequential(steps, name="augmentation")


def preview(image: np.ndarray, config: AugmentConfig, n: int = 9, seed: int = 0) -> list[np.ndarray]:
    """n augmented variants (uint8 HxWx3) of one uint8 image, through the training layers."""
    aug = build_augmentation(config, seed=seed)
    batch = np.repeat(image[None].astype(np.float32), n, axis=0)
    if not aug.layers:
        return [image.copy() for _ in range(n)]
    out = np.asarray(aug(batch, training=True))
    return [np.clip(v, 0, 255).astype(np.uint8) for v in out]
