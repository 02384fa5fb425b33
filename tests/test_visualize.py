"""core.visualize: filter patterns, ideal-class images, FGSM and targeted attacks.

The toy task is a faint colour cast over loud noise (class 0 a little red, class 1 a little
blue): easy to learn, and - like real photos - decided by many pixels a little each, which is what
makes small adversarial perturbations work. Optimization steps are capped through
TRANSFERLAB_MAX_STEPS so every test runs in seconds.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import layers  # noqa: E402
from tiny_models import tiny_convnet as make_tiny_convnet  # noqa: E402

from core import explain, visualize  # noqa: E402
from core.visualize import MAX_STEPS_ENV  # noqa: E402

SIZE = 32
CAST = 6.0  # pixel levels added to red and taken from blue (or the reverse), noise spans 136


@pytest.fixture(autouse=True)
def few_steps(monkeypatch):
    monkeypatch.setenv(MAX_STEPS_ENV, "40")


def tint_images(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.uniform(60, 196, (n, SIZE, SIZE, 3)).astype(np.float32)
    y = rng.integers(0, 2, n)
    cast = np.where(y == 0, CAST, -CAST)[:, None, None]
    x[..., 0] += cast
    x[..., 2] -= cast
    return x, y


def tiny_convnet() -> keras.Model:
    return make_tiny_convnet(SIZE, 8)


@pytest.fixture(scope="module")
def tint_model():
    keras.utils.set_random_seed(0)
    model = tiny_convnet()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*tint_images(256, seed=0), epochs=10, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def test_set(tint_model):
    x, y = tint_images(100, seed=1)
    assert (explain.probabilities(tint_model, x).argmax(-1) == y).mean() >= 0.95, "toy model did not learn"
    return x, y


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
    image, prob, history = visualize.ideal_class_image(tint_model, target, steps=200, seed=0)
    assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 3)
    assert start < 0.6 and prob > 0.9
    assert prob == pytest.approx(explain.probabilities(tint_model, image)[target])
    assert len(history) == 40  # capped by TRANSFERLAB_MAX_STEPS
    assert history[-1]["logit"] > history[0]["logit"]


def test_total_variation_makes_the_ideal_image_smoother(tint_model):
    rough, p_rough, _ = visualize.ideal_class_image(tint_model, 1, tv_weight=0.0, jitter=0, seed=3)
    smooth, p_smooth, _ = visualize.ideal_class_image(tint_model, 1, tv_weight=0.5, jitter=0, seed=3)
    assert visualize.total_variation(smooth) < 0.5 * visualize.total_variation(rough)
    assert p_rough > 0.9 and p_smooth > 0.9


def test_ideal_class_callback_reports_progress_and_can_cancel(tint_model):
    seen = []

    def callback(step, image, prob):
        seen.append((step, image.shape, image.dtype))
        return step < 20

    _, _, history = visualize.ideal_class_image(tint_model, 0, callback=callback, callback_every=10)
    assert [s for s, _, _ in seen] == [10, 20] and seen[0][1:] == ((SIZE, SIZE, 3), np.uint8)
    assert len(history) == 20

    calls = []
    _, _, history = visualize.ideal_class_image(tint_model, 0, should_stop=lambda: len(calls.append(1) or calls) >= 5)
    assert len(history) == 5


def test_ideal_class_is_reproducible_with_a_seed(tint_model):
    a, _, _ = visualize.ideal_class_image(tint_model, 1, steps=5, seed=7)
    b, _, _ = visualize.ideal_class_image(tint_model, 1, steps=5, seed=7)
    c, _, _ = visualize.ideal_class_image(tint_model, 1, steps=5, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_extra_regularizers_compose(tint_model):
    plain, _, _ = visualize.ideal_class_image(tint_model, 1, tv_weight=0, jitter=0, seed=1)
    tame, _, _ = visualize.ideal_class_image(tint_model, 1, tv_weight=0, jitter=0, seed=1,
                                             regularizers=[visualize.L2Norm(weight=0.8)])
    assert np.abs(tame - 127.5).mean() < np.abs(plain - 127.5).mean()


# --- filter patterns -------------------------------------------------------------------------

def test_filter_pattern_excites_its_filter(tint_model):
    for layer, index in (("conv1", 3), ("conv2", 5), ("pool1", 2)):
        start = explain.activations(tint_model, gray_noise(), layer)[..., index].mean()
        pattern = visualize.filter_pattern(tint_model, layer, index, steps=20)
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
        pattern = visualize.filter_pattern(model, layer, 0, steps=20)
        assert explain.activations(model, pattern, layer).mean() > 0.05


def test_filter_pattern_at_a_smaller_size_and_cancel(tint_model):
    pattern = visualize.filter_pattern(tint_model, "conv2", 1, steps=10, size=16, tv_weight=0.2, jitter=2)
    assert pattern.shape == (16, 16, 3)
    asked = []
    visualize.filter_pattern(tint_model, "conv2", 1, steps=30, should_stop=lambda: asked.append(1) or len(asked) >= 3)
    assert len(asked) == 3
    with pytest.raises(ValueError, match="out of range"):
        visualize.filter_pattern(tint_model, "conv2", 8)


# --- adversarial examples --------------------------------------------------------------------

def test_fgsm_flips_most_predictions_with_an_exact_small_perturbation(tint_model, test_set):
    x, y = test_set
    epsilon = 8 / 255
    adv = visualize.fgsm(tint_model, x, y, epsilon)
    assert adv.shape == x.shape and adv.dtype == np.float32
    before = explain.probabilities(tint_model, x).argmax(-1)
    after = explain.probabilities(tint_model, adv).argmax(-1)
    assert (before != after).mean() >= 0.8
    delta = np.abs(adv - x)
    assert delta.max() == pytest.approx(epsilon * 255, abs=1e-3)
    inside = (x >= epsilon * 255) & (x <= 255 - epsilon * 255)  # pixels that cannot hit the range limits
    moved = delta[inside][delta[inside] > 0]
    np.testing.assert_allclose(moved, epsilon * 255, atol=1e-3)


def test_fgsm_clips_only_at_the_ends_of_the_pixel_range(tint_model):
    white = np.full((1, SIZE, SIZE, 3), 255.0, np.float32)
    adv = visualize.fgsm(tint_model, white, [1], 4 / 255)
    assert adv.max() <= 255 and adv.min() >= 255 - 4
    with pytest.raises(ValueError, match="fraction of the pixel range"):
        visualize.fgsm(tint_model, white, [1], 8)


def test_targeted_attack_reaches_the_target_inside_the_epsilon_ball(tint_model, test_set):
    x, y = test_set
    image, label = x[0], int(y[0])
    epsilon = 12 / 255
    adv, probs = visualize.targeted_attack(tint_model, image, 1 - label, epsilon, steps=10)
    assert probs.argmax() == 1 - label and probs[1 - label] > 0.9
    assert np.abs(adv - image).max() <= epsilon * 255 + 1e-3
    assert adv.min() >= 0 and adv.max() <= 255
    np.testing.assert_allclose(probs, explain.probabilities(tint_model, adv), rtol=1e-5)
    stopped, _ = visualize.targeted_attack(tint_model, image, 1 - label, epsilon, should_stop=lambda: True)
    np.testing.assert_array_equal(stopped, image)


def test_accuracy_falls_as_epsilon_grows(tint_model, test_set):
    x, y = test_set
    curve = visualize.accuracy_vs_epsilon(tint_model, x, y, [0, 2 / 255, 8 / 255, 16 / 255], batch_size=32)
    eps, acc = zip(*curve)
    assert eps == (0, 2 / 255, 8 / 255, 16 / 255)
    assert acc[0] >= 0.95 and acc[2] <= 0.2 and acc[3] <= 0.2
    assert all(a >= b for a, b in zip(acc, acc[1:]))
    adv = visualize.fgsm(tint_model, x, y, 8 / 255)
    assert acc[2] == pytest.approx((explain.probabilities(tint_model, adv).argmax(-1) == y).mean())
    assert np.isnan(visualize.accuracy_vs_epsilon(tint_model, x, y, [0], should_stop=lambda: True)[0][1])


def test_perturbation_image_centres_on_gray():
    original = np.full((4, 4, 3), 100.0)
    adversarial = original.copy()
    adversarial[0, 0, 0] += 2
    adversarial[1, 1, 1] -= 1
    view = visualize.perturbation_image(original, adversarial)
    assert view.dtype == np.uint8 and view[0, 0, 0] == 255 and view[2, 2, 2] == 128
    assert view[1, 1, 1] == 64
