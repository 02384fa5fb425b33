"""core.augment: one config, the same layers for preview and training."""
from __future__ import annotations

import numpy as np

from conftest import random_rgb
from core.augment import AugmentConfig, build_augmentation, preview


def test_identity_config_builds_no_layer_and_preview_returns_copies():
    img = random_rgb(16)
    assert AugmentConfig().is_identity()
    assert build_augmentation(AugmentConfig()).layers == []
    out = preview(img, AugmentConfig(), n=3)
    assert len(out) == 3 and all((o == img).all() for o in out)


def test_every_parameter_becomes_a_layer():
    c = AugmentConfig(rotation=30, width_shift=0.1, height_shift=0.1, shear=0.2, zoom=0.2,
                      horizontal_flip=True, vertical_flip=True, brightness=0.2, contrast=0.2, hue=0.1)
    names = [type(l).__name__ for l in build_augmentation(c).layers]
    assert names == ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomShear", "RandomZoom",
                     "RandomBrightness", "RandomContrast", "RandomHue"]


def test_preview_gives_varied_images_of_the_same_shape_and_range():
    img = random_rgb(24, seed=1)
    out = preview(img, AugmentConfig.classic(), n=6, seed=2)
    assert len(out) == 6 and all(o.shape == img.shape and o.dtype == np.uint8 for o in out)
    assert len({o.tobytes() for o in out}) > 1  # not all the same
    assert any(not (o == img).all() for o in out)


def test_flip_only_is_an_exact_mirror_or_the_image():
    img = random_rgb(12, seed=3)
    for o in preview(img, AugmentConfig(horizontal_flip=True), n=8):
        assert (o == img).all() or (o == img[:, ::-1]).all()


def test_config_round_trips_through_a_dict_and_ignores_unknown_keys():
    c = AugmentConfig(rotation=12, hue=0.05)
    assert AugmentConfig.from_dict({**c.to_dict(), "unknown": 1}) == c
    assert AugmentConfig.from_dict(None) == AugmentConfig()


def test_presets_by_name_and_a_clear_error_for_an_unknown_one():
    import pytest

    assert AugmentConfig.preset("classic") == AugmentConfig.classic()
    assert AugmentConfig.preset("light") == AugmentConfig(shear=0.2, zoom=0.2, horizontal_flip=True)
    with pytest.raises(ValueError, match="classic, light"):
        AugmentConfig.preset("heavy")
