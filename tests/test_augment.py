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
    assert names == ["RandomAffine", "RandomBrightness", "RandomContrast", "RandomHue"]
    for geometric in ("rotation", "width_shift", "height_shift", "shear", "zoom", "horizontal_flip",
                      "vertical_flip"):
        value = True if "flip" in geometric else 0.2
        names = [type(l).__name__ for l in build_augmentation(AugmentConfig(**{geometric: value})).layers]
        assert names == ["RandomAffine"], geometric


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


def _apply(image, **params):
    """core.augment.transforms with one image's parameters, applied the way RandomAffine applies it."""
    import tensorflow as tf

    from core.augment import resample, transforms

    h, w = image.shape[:2]
    defaults = dict(rotation=0.0, shift_x=0.0, shift_y=0.0, shear_x=0.0, shear_y=0.0, zoom=1.0, flip_x=1.0,
                    flip_y=1.0)
    args = {k: tf.constant([float(v)]) for k, v in {**defaults, **params}.items()}
    out = resample(tf.constant(image[None], tf.float32), transforms(h, w, **args))
    return np.round(np.asarray(out)[0]).astype(np.uint8)


def test_the_composed_transform_rotates_shifts_flips_and_zooms_about_the_centre():
    img = random_rgb(9, seed=4)
    assert (_apply(img) == img).all()
    assert (_apply(img, flip_x=-1) == img[:, ::-1]).all() and (_apply(img, flip_y=-1) == img[::-1]).all()
    assert (_apply(img, rotation=np.pi) == img[::-1, ::-1]).all()
    quarter = _apply(img, rotation=np.pi / 2)
    assert (quarter == np.rot90(img, 1)).all() or (quarter == np.rot90(img, -1)).all()
    shifted = _apply(img, shift_x=2)  # the output samples 2 px further right: content moves left
    assert (shifted[:, :-2] == img[:, 2:]).all() and (shifted[:, -2:] == img[:, -1:]).all()  # edges repeated
    half = _apply(img, zoom=0.5)  # zoom in: the centre pixel stays, its neighbours spread out
    assert (half[4, 4] == img[4, 4]).all() and (half[4, 6] == img[4, 5]).all()


def test_geometric_settings_cost_one_resampling_in_the_training_pipeline():
    import tensorflow as tf

    aug = build_augmentation(AugmentConfig.classic(), seed=0)
    graph = tf.function(lambda x: aug(x, training=True)).get_concrete_function(
        tf.TensorSpec((None, 16, 16, 3), tf.float32)).graph
    kinds = [op.type for op in graph.get_operations()]
    assert kinds.count("ImageProjectiveTransformV3") == 1
