"""Predict, Inspect and Visualize on a pretrained ImageNet classifier (MobileNetV2, offline from
KERAS_HOME), driven with AppTest: with no trained run at all, on the sample photos, an uploaded
image and the dataset's images; a classifier whose weights are missing says so in one sentence.

Optimizations are capped at a few steps (TRANSFERLAB_MAX_STEPS). The model is loaded once per
test process (core.pretrained keeps it), so only the first test pays for it.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import pretrained

from apptest_helpers import APP, assert_clean, isolate_app, open_app, texts  # noqa: E402

pytestmark = [pytest.mark.timeout(900),
              pytest.mark.skipif(pretrained.availability("mobilenet_v2") is not None,
                                 reason="MobileNetV2's ImageNet weights are not in KERAS_HOME")]
TIMEOUT = 300  # s per script run: a first gradient through MobileNetV2 is traced, on two busy cores
CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat"}


@pytest.fixture
def env(tmp_path, samples_dir, monkeypatch):
    """An app with no run at all."""
    data_root = tmp_path / "data"
    data_root.mkdir()
    isolate_app(monkeypatch, tmp_path / "runs", data_root, samples_dir)
    monkeypatch.setenv("TRANSFERLAB_MAX_STEPS", "2")
    yield
    st.cache_data.clear()


def pretrained_page(page: str) -> AppTest:
    """The page with the pretrained classifier chosen as its model."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(f"app_pages/{page}.py").run()
    at.radio(key="inside_source").set_value("pretrained").run()
    assert_clean(at)
    return at


def image_captions(at: AppTest) -> list[str]:
    return [c for image in at.image for c in image.captions]


def png_bytes(size=64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def has_demo_cat() -> bool:
    return any(name == "Cat" for name, _ in pretrained.demo_images())


# ---------------------------------------------------------------- the picker

def test_the_classifier_picker_lists_all_and_a_missing_one_says_why(env):
    at = open_app("predict")
    assert "No trained model yet" in at.info[0].value  # a trained run is still the first choice
    at.radio(key="inside_source").set_value("pretrained").run()
    assert_clean(at)
    picker = at.selectbox(key="inside_pretrained")
    assert picker.value == pretrained.DEFAULT
    assert picker.options[0].startswith("MobileNetV2 · 224 px")
    assert len(picker.options) == len(pretrained.CLASSIFIERS)
    missing = [k for k in pretrained.CLASSIFIERS if pretrained.availability(k) is not None]
    if not missing:
        pytest.skip("every classifier's weights are here")
    marked = [o for o in picker.options if o.endswith("weights not on this server")]
    assert len(marked) == len(missing), picker.options
    picker.set_value(missing[0]).run()
    assert_clean(at)
    assert [w.value for w in at.warning] == [str(pretrained.availability(missing[0]))]
    assert not at.dataframe and not at.image


# ---------------------------------------------------------------- Predict

def test_predict_gives_the_top_five_of_each_classifier(env):
    at = pretrained_page("predict")
    sources = at.radio(key="predict_pretrained_source")
    assert sources.options == ["Sample images", "The dataset's images", "Upload one"]
    if has_demo_cat():  # the sample photos are the first choice, the cat first among them
        top = at.dataframe[0].value
        assert top["class"].iloc[0] in CAT_CLASSES, top
    sources.set_value("dataset_files").run()
    assert_clean(at)
    assert at.selectbox(key="predict_pretrained_dataset_image").options  # the generated sample dataset
    sources = at.radio(key="predict_pretrained_source").set_value("upload").run()
    at.file_uploader(key="predict_pretrained_upload").set_value(("noise.png", png_bytes(), "image/png")).run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table.columns) == ["class", "probability"] and len(table) == 5
    assert set(table["class"]) <= set(pretrained.class_names())
    assert list(table["probability"]) == sorted(table["probability"], reverse=True)
    side_by_side = at.multiselect(key="predict_compare_mobilenet_v2")
    assert side_by_side.value == ["mobilenet_v2"]
    assert set(side_by_side.options) == {o for o in at.selectbox(key="inside_pretrained").options
                                         if not o.endswith("weights not on this server")}
    assert "noise.png" in image_captions(at)


# ---------------------------------------------------------------- Inspect

def test_inspect_explains_any_of_the_thousand_classes(env):
    at = pretrained_page("inspect")
    assert [s.value for s in at.subheader] == ["Class probabilities", "Intermediate activations",
                                               "Where the model looks (Grad-CAM)"]
    assert "The 5 most probable of 1,000 classes." in texts(at)
    classes = at.selectbox(key="inspect_cam_class_pretrained-mobilenet_v2")
    assert len(classes.options) == 1001  # the predicted class, then all 1,000
    elephant = pretrained.class_names().index("African elephant")
    classes.set_value(elephant).run()
    assert_clean(at)
    assert "evidence for African elephant" in image_captions(at)[-1]
    layers = at.selectbox(key="inspect_act_layer_pretrained-mobilenet_v2").options
    assert len(layers) > 20  # every layer with feature maps of MobileNetV2
    if has_demo_cat():
        assert image_captions(at)[0].split(": ")[1].rsplit(" ", 1)[0] in CAT_CLASSES


# ---------------------------------------------------------------- Visualize

@pytest.mark.slow
def test_visualize_ideal_image_with_and_without_regularization(env):
    at = pretrained_page("visualize")
    target = at.selectbox(key="vis_ideal_class_pretrained-mobilenet_v2")
    assert target.value == pretrained.class_names().index("tabby")
    assert at.toggle(key="vis_ideal_compare_pretrained").value  # side by side by default for a pretrained classifier
    at.slider(key="vis_ideal_tv").set_value(0.5).run()
    at.button(key="vis_ideal_start").click().run()
    assert_clean(at)
    work = at.session_state["vis_ideal_work"]
    assert work["status"] == "done" and work["settings"]["tv_weight"] == 0.5
    assert work["plain"]["image"].shape == (224, 224, 3)
    captions = image_captions(at)
    assert any(c.startswith("the ideal tabby: the model gives it ") for c in captions)
    assert any(c.startswith("without regularization: p(tabby) = ") for c in captions)
    assert "Total variation 0.5, jitter 8 px" in texts(at)
    # "No regularization" turns every regularizer off and the comparison with it.
    at.toggle(key="vis_ideal_plain").set_value(True).run()
    assert at.slider(key="vis_ideal_tv").disabled and at.toggle(key="vis_ideal_compare_pretrained").disabled


@pytest.mark.slow
def test_visualize_targeted_attack_and_filter_patterns(env):
    at = pretrained_page("visualize")
    assert len([b for b in at.button if b.label == "Cancel"]) == 2  # no accuracy-against-epsilon sample
    captions = image_captions(at)
    assert any(c.startswith("original: ") for c in captions)
    assert any(c.startswith("ε = 2/255") and "1 step;" in c for c in at.caption.values)
    at.radio(key="vis_adv_method").set_value("targeted").run()
    assert_clean(at)
    target = at.selectbox(key="vis_adv_target_pretrained-mobilenet_v2")
    chosen = pretrained.class_names()[target.value]
    assert "Target **" in texts(at) and chosen in texts(at)
    assert any(c.startswith("ε = 2/255") and "2 steps;" in c for c in at.caption.values)  # capped at 2
    at.slider(key="vis_filter_n").set_value(2).run()
    at.button(key="vis_filter_start").click().run()
    assert_clean(at)
    assert [c for c in image_captions(at) if c.startswith("filter ")] == ["filter 0", "filter 1"]


# ---------------------------------------------------------------- Japanese

@pytest.mark.slow
def test_each_page_opens_in_japanese_on_the_pretrained_classifier(env, monkeypatch):
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    from ui import i18n

    # AppTest calls a widget's format_func in the test's own thread, where there is no ?lang (as in
    # test_i18n): there, the language is the one under test.
    in_app = i18n.language
    monkeypatch.setattr(i18n, "language", lambda: in_app() if get_script_run_ctx() else "ja")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["lang"] = "ja"
    at.run()
    for page, title in (("predict", "予測"), ("inspect", "モデルの中身"), ("visualize", "可視化")):
        at.switch_page(f"app_pages/{page}.py").run()
        at.radio(key="inside_source").set_value("pretrained").run()
        assert_clean(at)
        assert at.title[0].value == title, page
        assert not at.warning, page
