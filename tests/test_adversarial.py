"""core.adversarial: FGSM, the targeted attack, accuracy against epsilon, the perturbation image.

The toy model learns a faint colour cast over loud noise (tiny_models.tint_images): decided by many
pixels a little each, which is what makes small adversarial perturbations work. Attack steps are
capped through TRANSFERLAB_MAX_STEPS so every test runs in seconds.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from tiny_models import TINT_SIZE as SIZE  # noqa: E402
from tiny_models import tint_images  # noqa: E402

from core import adversarial, explain  # noqa: E402


pytestmark = pytest.mark.usefixtures("few_steps")  # few_steps and tint_model: conftest.py


@pytest.fixture(scope="module")
def test_set(tint_model):
    x, y = tint_images(100, seed=1)
    assert (explain.probabilities(tint_model, x).argmax(-1) == y).mean() >= 0.95, "toy model did not learn"
    return x, y


# --- attacks --------------------------------------------------------------------

def test_fgsm_flips_most_predictions_with_an_exact_small_perturbation(tint_model, test_set):
    x, y = test_set
    epsilon = 8 / 255
    adv = adversarial.fgsm(tint_model, x, y, epsilon)
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
    adv = adversarial.fgsm(tint_model, white, [1], 4 / 255)
    assert adv.max() <= 255 and adv.min() >= 255 - 4
    with pytest.raises(ValueError, match="fraction of the pixel range"):
        adversarial.fgsm(tint_model, white, [1], 8)


def test_targeted_attack_reaches_the_target_inside_the_epsilon_ball(tint_model, test_set):
    x, y = test_set
    image, label = x[0], int(y[0])
    epsilon = 12 / 255
    adv, probs = adversarial.targeted_attack(tint_model, image, 1 - label, epsilon, steps=10)
    assert probs.argmax() == 1 - label and probs[1 - label] > 0.9
    assert np.abs(adv - image).max() <= epsilon * 255 + 1e-3
    assert adv.min() >= 0 and adv.max() <= 255
    np.testing.assert_allclose(probs, explain.probabilities(tint_model, adv), rtol=1e-5)
    steps = []
    stopped, _ = adversarial.targeted_attack(tint_model, image, 1 - label, epsilon,
                                             on_step=lambda step, total, x: steps.append((step, total)) or True)
    assert steps == [(1, 10)]  # stopped after its first step: every pixel moved by one step at most
    assert 0 < np.abs(stopped - image).max() <= epsilon / 4 * 255 + 1e-3


def test_accuracy_falls_as_epsilon_grows(tint_model, test_set):
    x, y = test_set
    curve = adversarial.accuracy_vs_epsilon(tint_model, x, y, [0, 2 / 255, 8 / 255, 16 / 255], batch_size=32)
    eps, acc = zip(*curve)
    assert eps == (0, 2 / 255, 8 / 255, 16 / 255)
    assert acc[0] >= 0.95 and acc[2] <= 0.2 and acc[3] <= 0.2
    assert all(a >= b for a, b in zip(acc, acc[1:]))
    adv = adversarial.fgsm(tint_model, x, y, 8 / 255)
    assert acc[2] == pytest.approx((explain.probabilities(tint_model, adv).argmax(-1) == y).mean())
    reports = []
    first = adversarial.accuracy_vs_epsilon(tint_model, x, y, [0, 8 / 255], batch_size=32,
                                            on_step=lambda done, total: reports.append((done, total)) or True)
    assert reports == [(1, 4)]  # stopped after the first batch: the accuracies are that batch's
    assert first == adversarial.accuracy_vs_epsilon(tint_model, x[:32], y[:32], [0, 8 / 255], batch_size=32)
    assert np.isnan(adversarial.accuracy_vs_epsilon(tint_model, x[:0], y[:0], [0])[0][1])


def test_perturbation_image_centres_on_gray():
    original = np.full((4, 4, 3), 100.0)
    attacked = original.copy()
    attacked[0, 0, 0] += 2
    attacked[1, 1, 1] -= 1
    view = adversarial.perturbation_image(original, attacked)
    assert view.dtype == np.uint8 and view[0, 0, 0] == 255 and view[2, 2, 2] == 128
    assert view[1, 1, 1] == 64
