"""core.visualize: maximize with filter and class objectives, regularizers, jitter, on_step.

The toy model learns a faint colour cast over loud noise (tiny_models.tint_images). Optimization
steps are capped through TRANSFERLAB_MAX_STEPS so every test runs in seconds.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import layers  # noqa: E402
from tiny_models import TINT_SIZE as SIZE  # noqa: E402

from core import explain, visualize  # noqa: E402


pytestmark = pytest.mark.usefixtures("few_steps")  # few_steps and tint_model: conftest.py


def gray_noise(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(108, 148, (SIZE, SIZE, 3)).astype(np.float32)


# --- total variation ----------------------------------------------------------------------------

def test_total_variation_measures_roughness():
    flat = np.full((16, 16, 3), 77, np.uint8)
    ramp = np.tile(np.linspace(0, 255, 16), (16, 1))[..., None].repeat(3, -1)
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3))
    assert visualize.total_variation(flat) == 0
    assert 0 < visualize.total_variation(ramp) < visualize.total_variation(noise)
    checker = (np.indices((4, 4)).sum(0) % 2 * 255).astype(np.float32)  # every step is a full 0..1 swing
    assert visualize.total_variation(checker) == pytest.approx(2.0)
    assert visualize.total_variation(checker, beta=1.0) == pytest.approx(2.0)


def test_jitter_draws_seeded_shifts_within_range_and_rolls_the_image():
    jitter = visualize.Jitter(3)
    shifts = np.array([jitter.sample(np.random.default_rng(0)) for _ in range(5)])
    again = np.array([jitter.sample(np.random.default_rng(0)) for _ in range(5)])
    np.testing.assert_array_equal(shifts, again)
    many = np.array([jitter.sample(np.random.default_rng(s)) for s in range(200)])
    assert many.min() == -3 and many.max() == 3
    image = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    rolled = visualize.Jitter.apply(image, np.array([1, -1], np.int32)).numpy()
    np.testing.assert_array_equal(rolled[:, 1, 0], image[:, 0, 1])


# --- ideal class images ------------------------------------------------------------------------

def test_ideal_class_image_makes_the_model_sure_of_the_class(tint_model):
    target = int(np.argmin(explain.probabilities(tint_model, np.full((SIZE, SIZE, 3), 128.0))))
    start = explain.probabilities(tint_model, gray_noise())[target]
    result = visualize.ideal_class_image(tint_model, target, steps=200, seed=0)
    image, prob, history = result.image, result.value, result.history
    assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 3)
    assert start < 0.6 and prob > 0.9
    assert prob == pytest.approx(explain.probabilities(tint_model, image)[target])
    assert len(history) == 40 and not result.stopped  # capped by TRANSFERLAB_MAX_STEPS
    assert history[-1]["score"] > history[0]["score"]  # the class's logit


def test_total_variation_makes_the_ideal_image_smoother(tint_model):
    rough = visualize.ideal_class_image(tint_model, 1, tv_weight=0.0, jitter=0, seed=3)
    smooth = visualize.ideal_class_image(tint_model, 1, tv_weight=0.5, jitter=0, seed=3)
    assert visualize.total_variation(smooth.image) < 0.5 * visualize.total_variation(rough.image)
    assert rough.value > 0.9 and smooth.value > 0.9


def test_on_step_reports_every_step_and_stops_when_it_returns_true(tint_model):
    seen = []

    def on_step(step, steps, image, value):
        seen.append((step, steps, image.shape, image.dtype, value))
        return step >= 20

    result = visualize.ideal_class_image(tint_model, 0, on_step=on_step)
    assert [s[0] for s in seen] == list(range(1, 21)) and {s[1] for s in seen} == {40}
    assert seen[0][2:4] == ((SIZE, SIZE, 3), np.uint8) and all(0 <= s[4] <= 1 for s in seen)
    assert len(result.history) == 20 and result.stopped
    assert [h["value"] for h in result.history] == [s[4] for s in seen]
    finished = visualize.ideal_class_image(tint_model, 0, steps=5, on_step=lambda *a: None)
    assert len(finished.history) == 5 and not finished.stopped


def test_ideal_class_is_reproducible_with_a_seed(tint_model):
    a = visualize.ideal_class_image(tint_model, 1, steps=5, seed=7).image
    b = visualize.ideal_class_image(tint_model, 1, steps=5, seed=7).image
    c = visualize.ideal_class_image(tint_model, 1, steps=5, seed=8).image
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_extra_regularizers_compose(tint_model):
    plain = visualize.ideal_class_image(tint_model, 1, tv_weight=0, jitter=0, seed=1).image
    tame = visualize.ideal_class_image(tint_model, 1, tv_weight=0, jitter=0, seed=1,
                                       regularizers=[visualize.L2Norm(weight=0.8)]).image
    assert np.abs(tame - 127.5).mean() < np.abs(plain - 127.5).mean()


def test_the_recipes_are_maximize_with_their_pieces(tint_model):
    recipe = visualize.ideal_class_image(tint_model, 1, steps=6, tv_weight=0.4, jitter=3, seed=2)
    composed = visualize.maximize(tint_model, visualize.ClassObjective(1), [visualize.TotalVariation(0.4)], 6,
                                  input_modifiers=[visualize.Jitter(3)], lr=6.0, seed=2)
    np.testing.assert_array_equal(recipe.image, composed.image)
    pattern = visualize.filter_pattern(tint_model, "conv2", 3, steps=6)
    same = visualize.maximize(tint_model, visualize.FilterObjective("conv2", 3), steps=6, lr=10.0)
    np.testing.assert_array_equal(pattern.image, same.image)
    assert pattern.value == pytest.approx(same.value) and pattern.value > pattern.history[0]["value"]


def test_maximize_rejects_what_the_model_does_not_have(tint_model):
    with pytest.raises(ValueError, match="out of range: the model has 2 classes"):
        visualize.maximize(tint_model, visualize.ClassObjective(2))
    with pytest.raises(ValueError, match="not a feature-map layer"):
        visualize.maximize(tint_model, visualize.FilterObjective("predictions", 0))


# --- filter patterns -------------------------------------------------------------------------

def test_filter_pattern_excites_its_filter(tint_model):
    for layer, index in (("conv1", 3), ("conv2", 5), ("pool1", 2)):
        start = explain.activations(tint_model, gray_noise(), layer)[..., index].mean()
        pattern = visualize.filter_pattern(tint_model, layer, index, steps=20).image
        assert pattern.dtype == np.uint8 and pattern.shape == (SIZE, SIZE, 3)
        assert explain.activations(tint_model, pattern, layer)[..., index].mean() > 2 * start + 0.1


def test_filter_pattern_wakes_a_filter_that_is_silent_on_the_noise():
    # one filter that fires only where the 3x3 neighbourhood is brighter than 0.7 on average
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Rescaling(1 / 255.0, name="preprocess")(inputs)
    conv = layers.Conv2D(1, 3, activation="relu", name="conv1")
    x = layers.MaxPooling2D(2, name="pool1")(conv(x))
    outputs = layers.Dense(2, activation="softmax", name="predictions")(layers.Flatten(name="head_flatten")(x))
    model = keras.Model(inputs, outputs)
    conv.set_weights([np.full((3, 3, 3, 1), 1 / 27, np.float32), np.array([-0.7], np.float32)])
    for layer in ("conv1", "pool1"):
        assert explain.activations(model, gray_noise(), layer).max() == 0
        pattern = visualize.filter_pattern(model, layer, 0, steps=20).image
        assert explain.activations(model, pattern, layer).mean() > 0.05


def test_filter_pattern_at_a_smaller_size_and_cancel(tint_model):
    pattern = visualize.filter_pattern(tint_model, "conv2", 1, steps=10, size=16, tv_weight=0.2, jitter=2).image
    assert pattern.shape == (16, 16, 3)
    asked = []
    stopped = visualize.filter_pattern(tint_model, "conv2", 1, steps=30,
                                       on_step=lambda *a: asked.append(1) or len(asked) >= 3)
    assert len(asked) == 3 and len(stopped.history) == 3 and stopped.stopped
    with pytest.raises(ValueError, match="out of range"):
        visualize.filter_pattern(tint_model, "conv2", 8)
