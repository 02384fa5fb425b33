"""core.explain: layer discovery, activations, feature grids, Grad-CAM and the heatmap overlay.

The Grad-CAM test trains a tiny convnet (a few seconds) on generated images whose class-1
evidence is a bright patch, then moves the patch to each corner and checks the heatmap follows.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import layers  # noqa: E402
from tiny_models import tiny_convnet as make_tiny_convnet  # noqa: E402

from core import explain, graph  # noqa: E402
from core.cam_methods import CAM_METHODS, CamMethod  # noqa: E402
from core.models import BACKBONES, build_scratch, build_transfer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 32
PATCH = 6
CORNERS = {"top-left": (1, 1), "top-right": (1, SIZE - PATCH - 1),
           "bottom-left": (SIZE - PATCH - 1, 1), "bottom-right": (SIZE - PATCH - 1, SIZE - PATCH - 1)}


def patch_images(n: int, seed: int):
    """Dim noise; class 1 has a bright PATCH x PATCH square somewhere, class 0 has none."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(40, 120, (n, SIZE, SIZE, 3)).astype(np.float32)
    y = rng.integers(0, 2, n)
    for i in np.flatnonzero(y):
        r, c = rng.integers(0, SIZE - PATCH, 2)
        x[i, r:r + PATCH, c:c + PATCH] = rng.uniform(200, 255)
    return x, y


def tiny_convnet(augment: bool = False) -> keras.Model:
    return make_tiny_convnet(SIZE, 16, augment)


@pytest.fixture(scope="module")
def patch_model():
    keras.utils.set_random_seed(0)
    model = tiny_convnet()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = patch_images(512, seed=0)
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    xt, yt = patch_images(100, seed=1)
    assert model.evaluate(xt, yt, verbose=0)[1] >= 0.95, "the toy model did not learn the patch task"
    return model


def patch_at(corner: str) -> np.ndarray:
    image = np.full((SIZE, SIZE, 3), 80, np.uint8)
    r, c = CORNERS[corner]
    image[r:r + PATCH, c:c + PATCH] = 230
    return image


def quadrant(index, shape) -> str:
    r, c = index
    return f"{'top' if r < shape[0] / 2 else 'bottom'}-{'left' if c < shape[1] / 2 else 'right'}"


# --- Grad-CAM ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", list(CAM_METHODS))
@pytest.mark.parametrize("corner", list(CORNERS))
def test_grad_cam_peaks_in_the_corner_holding_the_evidence(patch_model, corner, method):
    heat, cls, probs = explain.grad_cam(patch_model, patch_at(corner), class_index=1, method=method)
    assert cls == 1 and probs[1] > 0.5
    assert heat.shape == (SIZE // 2, SIZE // 2)  # conv2 comes after one 2x pool
    peak = np.unravel_index(np.argmax(heat), heat.shape)
    assert quadrant(peak, heat.shape) == corner
    assert heat.max() == pytest.approx(1.0) and heat.min() >= 0


def test_grad_cam_defaults_to_the_predicted_class_and_last_conv_layer(patch_model):
    heat, cls, probs = explain.grad_cam(patch_model, patch_at("top-left"))
    assert cls == int(np.argmax(probs)) == 1
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert heat.shape == tuple(patch_model.get_layer("conv2").output.shape[1:3])


def test_grad_cam_at_an_earlier_layer_has_that_layers_resolution(patch_model):
    heat, _, _ = explain.grad_cam(patch_model, patch_at("bottom-right"), 1, layer_name="conv1")
    assert heat.shape == (SIZE, SIZE)
    assert quadrant(np.unravel_index(np.argmax(heat), heat.shape), heat.shape) == "bottom-right"


def test_grad_cam_rejects_a_class_the_model_does_not_have(patch_model):
    with pytest.raises(ValueError, match="out of range"):
        explain.grad_cam(patch_model, patch_at("top-left"), class_index=2)


def test_grad_cam_rejects_an_unknown_method(patch_model):
    with pytest.raises(ValueError, match="grad-cam\\+\\+, grad-cam"):
        explain.grad_cam(patch_model, patch_at("top-left"), method="guided")


def test_a_new_cam_method_is_one_weight_function_and_one_entry(patch_model, monkeypatch):
    """Every channel weighted 1: the map is the layer's summed activations (ReLU, peak 1)."""
    import tensorflow as tf

    monkeypatch.setitem(CAM_METHODS, "sum", CamMethod(lambda fmap, grads: tf.ones_like(grads[:, 0, 0, :]),
                                                      "Sum", "every channel counts alike."))
    image = patch_at("top-left")
    heat, _, _ = explain.grad_cam(patch_model, image, 1, "conv2", method="sum")
    summed = np.maximum(explain.activations(patch_model, image, "conv2").sum(-1), 0)
    np.testing.assert_allclose(heat, summed / summed.max(), atol=1e-5)


def test_the_cam_methods_are_named_without_importing_tensorflow():
    """The pages list the methods from core.cam_methods: importing it must not load TensorFlow."""
    import subprocess
    import sys

    code = ("import sys; import core.cam_methods as m; assert 'tensorflow' not in sys.modules; "
            "print(', '.join(f'{k}={v.label}' for k, v in m.CAM_METHODS.items()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "grad-cam++=Grad-CAM++, grad-cam=Grad-CAM"


@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_grad_cam_ignores_what_every_class_shares(patch_model, method):
    """Adding one vector to every class's output weights leaves the softmax, so the model's
    decisions, unchanged; the heatmap must not change either (for the class with no patch too)."""
    shifted = keras.models.clone_model(patch_model)
    kernel, bias = patch_model.get_layer("predictions").get_weights()
    shared = np.abs(np.random.default_rng(0).normal(0, 5, (kernel.shape[0], 1))).astype(np.float32)
    shifted.set_weights(patch_model.get_weights())
    shifted.get_layer("predictions").set_weights([kernel + shared, bias])
    image = patch_at("bottom-left")
    for class_index in (0, 1):
        heat, _, probs = explain.grad_cam(patch_model, image, class_index, method=method)
        heat2, _, probs2 = explain.grad_cam(shifted, image, class_index, method=method)
        np.testing.assert_allclose(probs2, probs, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(heat2, heat, atol=1e-3)


def test_augmentation_is_inactive_when_explaining():
    model = tiny_convnet(augment=True)
    image = patch_at("top-left")
    first, _, p1 = explain.grad_cam(model, image)
    second, _, p2 = explain.grad_cam(model, image)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(p1, model.predict(image[None].astype("float32"), verbose=0)[0], rtol=1e-4)


def test_class_scores_are_the_models_pre_softmax_logits(patch_model):
    image = patch_at("top-left")[None].astype(np.float32)
    _, logits, probs = explain.ClassScores(patch_model)(image)
    np.testing.assert_allclose(probs, patch_model(image), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits - logits[:, :1], np.log(probs) - np.log(probs[:, :1]), rtol=1e-3, atol=1e-3)
    # a model that outputs logits itself is explained through them, and its probabilities are their softmax
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3, activation="relu", name="conv")(inputs))
    logit_model = keras.Model(inputs, layers.Dense(3, name="scores")(x))
    heat, cls, p = explain.grad_cam(logit_model, patch_at("top-left"))
    np.testing.assert_allclose(p, keras.ops.softmax(logit_model(image))[0], rtol=1e-5)
    assert heat.shape == (SIZE - 2, SIZE - 2) and cls == int(np.argmax(p))


# --- layers -----------------------------------------------------------------------------------

def test_conv_layers_of_the_scratch_net_are_its_convs_and_pools():
    model = build_scratch(64, 3)
    assert [l.name for l in model.layers][:2] == ["image", "preprocess"]
    assert explain.conv_layers(model) == ["conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "conv4", "pool4"]
    assert explain.last_conv_layer(model) == "pool4"


def test_conv_layers_skip_an_augmentation_layer_in_older_models():
    model = tiny_convnet(augment=True)
    assert explain.conv_layers(model) == ["conv1", "pool1", "conv2"]


def test_last_conv_layer_needs_a_feature_map():
    inputs = keras.Input((8,))
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(inputs))
    with pytest.raises(ValueError, match="no layer with a 4-D"):
        explain.last_conv_layer(model)


HEAVY = {"resnet50", "efficientnet_b0", "inception_v3"}  # 8-13 s each here: tracing their gradient graph


# 64 px (a 2x2 top map) or the backbone's minimum where that is larger (xception 71, inception_v3 75).
@pytest.mark.parametrize("backbone", [pytest.param(b, marks=pytest.mark.slow) if b in HEAVY else b
                                      for b in BACKBONES])
def test_every_backbone_has_a_last_conv_layer_and_grad_cam_runs(backbone):
    size = max(BACKBONES[backbone].min_size, 64)
    model = build_transfer(backbone, size, 3, weights=None)
    last = explain.last_conv_layer(model)
    # the layer feeding the head is the base's top: that is the one Grad-CAM should default to
    assert graph.producer(model.get_layer("head_pool").input).name == last
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3)).astype(np.uint8)
    heat, cls, probs = explain.grad_cam(model, image)
    assert heat.shape == tuple(model.get_layer(last).output.shape[1:3])
    assert np.isfinite(heat).all() and 0 <= heat.min() and heat.max() <= 1
    assert 0 <= cls < 3 and probs.shape == (3,) and probs.sum() == pytest.approx(1.0, abs=1e-4)


# --- activations and the feature grid -------------------------------------------------------

def test_activations_have_the_layers_shape_and_are_cached():
    model = build_scratch(64, 2)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    for name in explain.conv_layers(model):
        acts = explain.activations(model, image, name)
        assert acts.shape == tuple(model.get_layer(name).output.shape[1:])
    # the sub-model was built once per layer: asking again must not build another
    cached = explain.compiled(model, ("activations", "conv2"), lambda: pytest.fail("built twice"))
    np.testing.assert_allclose(cached(image[None].astype("float32")).numpy()[0],
                               explain.activations(model, image, "conv2"), rtol=1e-5)


def test_activations_match_the_layer_output_and_accept_uint8_float_and_other_sizes():
    model = build_scratch(64, 2)
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    expected = keras.Model(model.inputs[0], model.get_layer("conv1").output)(image[None].astype("float32"))[0]
    np.testing.assert_allclose(explain.activations(model, image, "conv1"), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(explain.activations(model, image.astype(np.float32), "conv1"), expected,
                               rtol=1e-4, atol=1e-5)
    assert explain.activations(model, image, "conv1", max_channels=5).shape == (62, 62, 5)
    big_gray = np.random.default_rng(2).integers(0, 256, (200, 150)).astype(np.uint8)
    assert explain.activations(model, big_gray, "pool1").shape == (31, 31, 32)


def test_activations_reject_a_layer_without_a_feature_map():
    model = build_scratch(64, 2)
    with pytest.raises(ValueError, match="not a feature-map layer"):
        explain.activations(model, np.zeros((64, 64, 3), np.uint8), "head_dense")


def test_feature_grid_tiles_normalized_channels():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(5, 7, 10)).astype(np.float32) * 1000
    acts[..., 3] = 0.0  # a dead channel
    grid = explain.feature_grid(acts, n=10, cols=4)
    assert grid.dtype == np.uint8 and grid.shape == (3 * 5 + 2, 4 * 7 + 3)
    dead = grid[0:5, 3 * 8:3 * 8 + 7]
    assert (dead == 128).all()
    live = grid[0:5, 0:7]
    assert 110 < live.mean() < 146 and live.std() > 30  # centred on gray, contrast kept
    assert explain.feature_grid(acts, n=3, cols=8, scale=4, pad=0).shape == (20, 3 * 28)


# --- overlay ----------------------------------------------------------------------------------

def test_overlay_blends_a_resized_colormap_in_rgb_order():
    image = np.full((40, 60, 3), 100, np.uint8)
    heat = np.zeros((4, 6), np.float32)
    heat[:2, :3] = 1.0
    out = explain.overlay(image, heat, alpha=0.5)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    hot, cold = out[2, 2], out[-3, -3]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # JET: high is red, low is blue, in RGB order
    np.testing.assert_array_equal(explain.overlay(image, heat, alpha=0.0), image)
    jet = cv2.cvtColor(cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(explain.overlay(image, np.ones((2, 2)), alpha=1.0)[0, 0], jet[0, 0])
    assert explain.overlay(image[..., 0], heat).shape == (40, 60, 3)


def test_overlay_of_grad_cam_on_the_original_image(patch_model):
    image = patch_at("top-right")
    heat, _, _ = explain.grad_cam(patch_model, image, 1)
    out = explain.overlay(image, heat)
    r, c = CORNERS["top-right"]
    assert out[r + 3, c + 3, 0] > out[SIZE - 4, 3, 0]  # redder where the evidence is


def test_warming_up_a_model_leaves_its_first_grad_cam_nothing_to_trace():
    from core.cam_methods import DEFAULT_CAM_METHOD

    model = make_tiny_convnet()
    explain.warm_up(model)  # what Inspect starts in the background when the model is chosen
    key = ("grad_cam", explain.last_conv_layer(model), DEFAULT_CAM_METHOD)
    traced = explain.compiled(model, key, lambda: pytest.fail("warm_up did not build the Grad-CAM"))
    assert traced.experimental_get_tracing_count() == 1
    image = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    explain.grad_cam(model, image)  # the first real image: run, not traced again
    assert traced.experimental_get_tracing_count() == 1


def test_a_model_trained_on_grayscale_images_is_explained_from_a_colour_photo():
    """Inspect, Predict and Visualize hand every model an RGB image; a one-channel model gets its gray."""
    from core.models import build_scratch

    model = build_scratch(28, 3, channels=1, conv_blocks=3)
    photo = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    x = explain.as_model_input(model, photo)
    assert x.shape == (28, 28, 1)
    assert explain.probabilities(model, photo).shape == (3,)
    heat, _, _ = explain.grad_cam(model, photo)
    assert heat.ndim == 2
    batch = np.stack([photo[:28, :28]] * 2)  # already at the model's size, in colour (what Predict hands over)
    assert explain.probabilities(model, batch).shape == (2, 3)
