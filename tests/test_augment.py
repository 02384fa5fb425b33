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


def test_fill_modes_fill_what_a_shift_uncovers_as_image_data_generator_did():
    """Shifted 2 px (content moves left): the two columns that come in from outside the image are the
    edge pixel repeated (nearest), the image mirrored at its edge (reflect: d c b a | a b c d), or black."""
    import tensorflow as tf

    from core.augment import resample, transforms

    row = np.array([10, 20, 30, 40, 50, 60], np.float32)
    img = np.repeat(np.tile(row[None, :, None], (6, 1, 1)), 3, axis=2)
    matrix = transforms(6, 6, *[tf.constant([v]) for v in (0.0, 2.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0)])
    expected = {"nearest": [30, 40, 50, 60, 60, 60], "reflect": [30, 40, 50, 60, 60, 50],
                "constant": [30, 40, 50, 60, 0, 0]}
    for mode, columns in expected.items():
        out = np.asarray(resample(tf.constant(img[None]), matrix, mode))[0]
        assert np.round(out[3, :, 0]).tolist() == columns, mode
    c = AugmentConfig(width_shift=0.3, fill_mode="constant")
    assert AugmentConfig.from_dict(c.to_dict()) == c and c.problem() is None
    assert "nearest, reflect, constant" in str(AugmentConfig(fill_mode="wrap").problem())


def test_channel_shift_moves_each_channel_by_its_own_amount_within_the_image_range():
    img = np.full((8, 8, 3), 100, np.uint8)
    img[0, 0], img[7, 7] = 20, 200  # the image's range: 20..200
    aug = build_augmentation(AugmentConfig(channel_shift=30), seed=0)
    assert [type(l).__name__ for l in aug.layers] == ["RandomChannelShift"]
    out = np.asarray(aug(np.repeat(img[None].astype(np.float32), 4, axis=0), training=True))
    shifts = out[:, 3, 3, :] - 100  # one value per image and channel
    assert np.abs(shifts).max() <= 30 and len({round(float(s), 3) for s in shifts.ravel()}) > 4
    assert np.allclose(out[:, 1:7, 1:7, :], 100 + shifts[:, None, None, :])  # the whole channel moves
    assert out.min() >= 20 and out.max() <= 200  # clipped to the image's own range
    assert (np.asarray(aug(img[None].astype(np.float32), training=False)) == img).all()
