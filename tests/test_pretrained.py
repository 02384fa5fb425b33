"""core.pretrained: the ImageNet classifier as a subject, on the demo photos, offline (MobileNetV2 at
224 px and the class index are in ../shared/weights, KERAS_HOME).

The model tests share one MobileNetV2 built once per session; each runs the real 3.5-million-weight
network on a 224-px image, so they are marked slow. The cheap ones (records, availability, names,
demo photos, the command line's refusals) run in the fast tier.
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from core import pretrained
from core.messages import ConfigError

pytestmark = pytest.mark.timeout(600)

CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat"}


def demo(name: str) -> str:
    return dict(pretrained.demo_images())[name]


@pytest.fixture(scope="session")
def imagenet_model():
    return pretrained.load(pretrained.DEFAULT)


def cat_photo() -> np.ndarray:
    """The demo cat as the Predict page and the command line feed it: centre crop at 224 px."""
    from core.images import load_image

    return load_image(demo("Cat"), pretrained.CLASSIFIERS[pretrained.DEFAULT].size)


def run_cli(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.predict", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})


# --- without TensorFlow -----------------------------------------------------------------------

def test_importing_and_asking_core_pretrained_leaves_tensorflow_unloaded():
    code = ("import sys; from core import pretrained as p; p.availability('vgg16'); p.class_names(); "
            "p.demo_images(); p.top_k([0.1] * 1000); print(sorted({'tensorflow', 'keras'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_every_classifier_is_a_backbone_at_its_imagenet_size():
    assert pretrained.DEFAULT in pretrained.CLASSIFIERS
    assert {c.size for k, c in pretrained.CLASSIFIERS.items() if k in ("inception_v3", "xception")} == {299}
    assert pretrained.CLASSIFIERS["mobilenet_v2"].label == "MobileNetV2"
    with pytest.raises(ConfigError, match="Unknown pretrained classifier 'alexnet': choose one of mobilenet_v2"):
        pretrained.load("alexnet")


def test_availability_says_which_weights_must_download(tmp_path, monkeypatch):
    assert pretrained.availability("mobilenet_v2") is None  # in ../shared/weights
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    missing = pretrained.availability("vgg16")
    assert str(missing) == ("The VGG16 weights are not on this computer: they download once (528 MB) on first use "
                            "with an internet connection.")
    assert pretrained.availability("mobilenet_v2") is not None  # this cache is empty
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / pretrained.CLASSIFIERS["vgg16"].weights_file).write_bytes(b"")
    assert pretrained.availability("vgg16") is None


def test_class_names_are_the_thousand_imagenet_classes_in_index_order():
    names = pretrained.class_names()
    assert len(names) == 1000 and len(set(names)) > 990  # ImageNet has two "crane"s and two "maillot"s
    assert names[281] == "tabby" and names[386] == "African elephant" and not [n for n in names if "_" in n]
    probs = np.zeros(1000)
    probs[[281, 386, 954]] = [0.2, 0.5, 0.3]
    assert pretrained.top_k(probs, 2) == [(386, "African elephant", 0.5), (954, "banana", 0.3)]


def test_demo_photos_ship_with_their_license_and_stay_small():
    photos = pretrained.demo_images()
    assert "Cat" in dict(photos) and all(os.path.isabs(path) and os.path.isfile(path) for _, path in photos)
    assert sum(os.path.getsize(path) for _, path in photos) < 3 * 2 ** 20
    readme = open(os.path.join(ROOT, "assets", "README.md"), encoding="utf-8").read()
    for _, path in photos:
        assert f"`{os.path.basename(path)}`" in readme


def test_cli_refuses_an_unknown_classifier_in_one_sentence():
    p = run_cli("--pretrained", "alexnet", demo("Cat"), timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: Unknown pretrained classifier 'alexnet': choose one of " + ", ".join(pretrained.CLASSIFIERS) + "."]


# --- MobileNetV2 ------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_demo_cat_is_a_cat(imagenet_model):
    from core import explain

    probs = explain.probabilities(imagenet_model, cat_photo())
    top = pretrained.top_k(probs, 5)
    print("demo cat, top 5:", top)
    assert top[0][1] in CAT_CLASSES


@pytest.mark.slow
def test_grad_cam_puts_most_of_its_mass_on_the_cat(imagenet_model):
    """The cat fills the bottom-right 256 px square (a third of the area) of a plain gray canvas."""
    import cv2

    from core import explain

    canvas = np.full((448, 448, 3), 128, np.uint8)
    cat = cat_photo()
    canvas[192:, 192:] = cv2.resize(cat, (256, 256), interpolation=cv2.INTER_LINEAR)
    on_cat = np.zeros((448, 448), bool)
    on_cat[192:, 192:] = True
    probs = explain.probabilities(imagenet_model, canvas)
    cat_class = int(probs.argmax())
    assert pretrained.class_names()[cat_class] in CAT_CLASSES
    heat, explained, _ = explain.grad_cam(imagenet_model, canvas, cat_class)
    heat = cv2.resize(heat, (448, 448), interpolation=cv2.INTER_LINEAR)
    share = float(heat[on_cat].sum() / heat.sum())
    print(f"Grad-CAM mass on the cat: {share:.2f} (the cat covers {on_cat.mean():.2f} of the image)")
    assert explained == cat_class and share > 0.5


@pytest.mark.slow
def test_the_ideal_tabby_is_a_tabby_and_regularization_makes_it_smoother(imagenet_model):
    from core.visualize import total_variation

    tabby = pretrained.class_names().index("tabby")
    smooth = pretrained.ideal_image(imagenet_model, tabby, pretrained.Regularization(tv_weight=0.3, jitter=4),
                                    steps=80, lr=6.0)
    plain = pretrained.ideal_image(imagenet_model, tabby, pretrained.NO_REGULARIZATION, steps=30, lr=6.0)
    print(f"ideal tabby: regularized p={smooth.value:.3f} TV={total_variation(smooth.image):.4f}, "
          f"plain p={plain.value:.3f} TV={total_variation(plain.image):.4f}")
    assert smooth.value >= 0.9 and plain.value >= 0.9
    assert total_variation(smooth.image) < total_variation(plain.image) / 3


@pytest.mark.slow
def test_attacks_turn_the_cat_into_another_class_two_pixel_levels_away(imagenet_model):
    from core import adversarial

    cat = cat_photo()
    elephant = pretrained.class_names().index("African elephant")
    targeted = adversarial.attack(imagenet_model, cat, target=elephant, levels=2, steps=10)
    print(f"cat -> African elephant: top {pretrained.top_k(targeted.after, 1)}, "
          f"max pixel difference {targeted.max_change:.3f} levels")
    assert targeted.succeeded and int(targeted.after.argmax()) == elephant
    assert targeted.max_change <= 2 + 1e-3
    assert pretrained.class_names()[int(targeted.before.argmax())] in CAT_CLASSES
    untargeted = adversarial.attack(imagenet_model, cat, levels=2, steps=10)
    assert untargeted.succeeded and untargeted.max_change <= 2 + 1e-3
    assert untargeted.perturbation.dtype == np.uint8 and untargeted.perturbation.shape == cat.shape


@pytest.mark.slow
def test_cli_prints_the_top_classes_as_csv_then_json(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(open(demo("Cat"), "rb").read())
    (folder / "notes.txt").write_text("not an image")
    p = run_cli("--pretrained", "mobilenet_v2", str(folder), "--top", "3")
    assert p.returncode == 0, p.stderr[-2000:]
    *table, last = p.stdout.strip().splitlines()
    result = json.loads(last)
    reader = csv.DictReader(io.StringIO("\n".join(table)))
    rows = {os.path.basename(r["path"]): r for r in reader}
    assert reader.fieldnames == ["path", "predicted", "confidence", "class_1", "prob_1", "class_2", "prob_2",
                                 "class_3", "prob_3", "error"]
    assert rows["cat.jpg"]["predicted"] in CAT_CLASSES and rows["cat.jpg"]["class_1"] == rows["cat.jpg"]["predicted"]
    assert float(rows["cat.jpg"]["prob_1"]) >= float(rows["cat.jpg"]["prob_2"]) >= float(rows["cat.jpg"]["prob_3"])
    assert "not an image" in rows["notes.txt"]["error"]
    assert result["pretrained"] == "mobilenet_v2" and result["images"] == 2 and result["errors"] == 1


@pytest.mark.slow
def test_cli_without_the_weights_says_so_in_one_sentence(tmp_path):
    """VGG16's weights are not in an empty cache; the download goes to a closed local port, so it
    fails at once instead of waiting on the network."""
    closed = "http://127.0.0.1:9"
    p = run_cli("--pretrained", "vgg16", demo("Cat"), timeout=240,
                env={"KERAS_HOME": str(tmp_path), "https_proxy": closed, "HTTPS_PROXY": closed,
                     "http_proxy": closed, "HTTP_PROXY": closed})
    assert p.returncode == 2
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ImageNet weights for VGG16 at 224 px are not in the Keras cache and could not "
                           "be downloaded (vgg16_weights_tf_dim_ordering_tf_kernels.h5)."), p.stderr[-2000:]
    assert "Traceback" not in p.stderr


@pytest.mark.slow
def test_inspect_and_filter_patterns_work_on_the_pretrained_base(imagenet_model):
    """The flat graph: every layer of the application is a layer of the model, reachable by name."""
    from core import explain, visualize

    layers = explain.conv_layers(imagenet_model)
    assert layers[0] == "Conv1" and explain.last_conv_layer(imagenet_model) == "out_relu"
    assert explain.activations(imagenet_model, cat_photo(), "block_3_expand_relu").shape == (56, 56, 144)
    pattern = visualize.filter_pattern(imagenet_model, "block_3_expand_relu", 7, steps=10)
    assert pattern.history[-1]["value"] > pattern.history[0]["value"]
