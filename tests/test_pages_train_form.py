"""The Train page's form (recipes, advanced settings, bases without weights, unfreezing in layers that
learn) and the Augment page's new controls, driven with AppTest on the built-in sample."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import streamlit as st
from PIL import Image

import core.jobs
from ui import augment_files

from apptest_helpers import assert_clean, isolate_app, open_app, texts  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def env(tmp_path, samples_dir, monkeypatch):
    runs, data_root = tmp_path / "runs", tmp_path / "data"
    data_root.mkdir()
    isolate_app(monkeypatch, runs, data_root, samples_dir)
    registry = core.jobs.REGISTRY
    yield {"runs": runs, "registry": registry}
    for job in list(registry._jobs.values()):  # never leave a training thread behind
        job.request_stop()
        job.thread.join(120)
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """A Keras cache with no weights in it: every base must be downloaded."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


def started_configs(env, monkeypatch) -> list:
    """Start records the TrainConfig the page would run instead of training."""
    configs = []
    monkeypatch.setattr(env["registry"], "start", lambda config, owner=None: configs.append(config))
    return configs


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def trains(at):
    return next(d.value for d in at.dataframe if "trains" in d.value.columns)["trains"]


# ---------------------------------------------------------------- recipes

def test_choosing_a_recipe_fills_the_form_and_none_brings_the_defaults_back(env):
    at = open_app("train")
    at.selectbox(key="recipe").set_value("tf-tutorial").run()
    assert_clean(at)
    assert at.radio(key="strategy").value == "fine-tune"
    assert at.selectbox(key="base").value == "mobilenet_v2" and at.number_input(key="image_size").value == 160
    assert at.select_slider(key="learning_rate").value == 1e-4
    assert at.selectbox(key="fine_tune_optimizer").value == "rmsprop"
    assert at.number_input(key="epochs_fine-tune").value == 10 and at.number_input(key="fine_tune_epochs").value == 10
    assert at.toggle(key="end_to_end").value and at.radio(key="resize").value == "stretch"
    assert at.toggle(key="augment").value
    assert at.session_state["augment_config"]["fill_mode"] == "reflect"  # the tutorial's augmentation
    assert metric(at, "Layers unfrozen").startswith("18 of")  # "from layer 100": MobileNetV2's top 54 layers
    page = texts(at)
    assert "Transfer learning and fine-tuning" in page and "94% / 98%" in page  # source and published figures
    assert "Changed from the recipe" not in page
    at.number_input(key="epochs_fine-tune").set_value(1).run()
    assert "Changed from the recipe: epochs" in texts(at)  # still editable, and the change is said
    at.selectbox(key="recipe").set_value("").run()
    assert_clean(at)
    assert at.radio(key="strategy").value == "feature-extraction" and at.number_input(key="image_size").value == 160
    assert at.radio(key="resize").value == "crop" and not at.toggle(key="end_to_end").value


def test_a_started_recipe_run_records_the_recipe_and_its_status_shows_the_published_figure(env):
    at = open_app("train")
    at.selectbox(key="recipe").set_value("dlwp-5.2-scratch").run()
    assert at.number_input(key="image_size").value == 150 and at.selectbox(key="optimizer").value == "rmsprop"
    at.number_input(key="image_size").set_value(48)
    at.number_input(key="epochs_scratch").set_value(1).run()
    at.button(key="start").click().run()
    assert_clean(at)
    job = env["registry"].latest()
    job.thread.join(120)
    snap = job.snapshot()
    assert snap["error"] is None, snap["error"]
    config = snap["config"]
    assert config["recipe"] == "dlwp-5.2-scratch" and config["recipe_version"] == 1
    assert config["recipe_changes"] == ["epochs", "image_size"]
    assert config["optimizer"] == "rmsprop" and config["learning_rate"] == 1e-4 and config["batch_size"] == 20
    at.run()
    assert "published 71% validation accuracy · changed: epochs, image_size" in texts(at)


def test_the_advanced_settings_reach_the_train_config(env, monkeypatch):
    configs = started_configs(env, monkeypatch)
    at = open_app("train")
    at.radio(key="strategy").set_value("fine-tune").run()
    at.radio(key="head").set_value("flatten_dense").run()
    at.number_input(key="head_units").set_value(64)
    at.selectbox(key="fine_tune_optimizer").set_value("sgd").run()
    at.slider(key="momentum").set_value(0.8)
    at.toggle(key="nesterov").set_value(True)
    at.number_input(key="l2").set_value(0.001)
    at.number_input(key="per_class").set_value(5)
    at.toggle(key="end_to_end").set_value(True)
    at.radio(key="resize").set_value("stretch").run()
    at.button(key="start").click().run()
    assert_clean(at)
    (config,) = configs
    assert (config.head, config.head_units, config.fine_tune_optimizer, config.momentum, config.nesterov) == \
        ("flatten_dense", 64, "sgd", 0.8, True)
    assert (config.l2, config.per_class, config.end_to_end, config.resize) == (0.001, 5, True, "stretch")
    assert config.recipe is None

    at.radio(key="strategy").set_value("scratch").run()
    at.radio(key="network").set_value("convnet")
    at.number_input(key="conv_blocks").set_value(3)
    at.toggle(key="batch_norm").set_value(True)
    at.radio(key="color_mode").set_value("grayscale")
    at.number_input(key="image_size").set_value(28).run()
    at.button(key="start").click().run()
    config = configs[-1]
    assert (config.conv_blocks, config.batch_norm, config.color_mode, config.image_size) == (3, True, "grayscale", 28)


def test_settings_the_engine_refuses_are_said_before_start(env):
    at = open_app("train")
    at.radio(key="strategy").set_value("scratch").run()
    at.number_input(key="image_size").set_value(28).run()  # four conv + pool blocks need 48 px
    assert any("at least 48 px" in w.value for w in at.warning)
    assert at.button(key="start").disabled


def test_a_base_without_weights_is_marked_and_start_says_what_is_needed(env, no_weights):
    at = open_app("train")
    at.selectbox(key="base").set_value("vgg16").run()
    assert_clean(at)
    assert "VGG16 — download needed (59 MB, internet)" in at.selectbox(key="base").options
    warning = "\n".join(w.value for w in at.warning)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in warning and "internet" in warning
    assert at.button(key="start").disabled  # no failed run: nothing starts until the person agrees
    assert env["registry"].latest() is None
    at.checkbox(key="download_weights").check().run()
    assert not at.button(key="start").disabled
    recipe_titles = at.selectbox(key="recipe").options
    assert any(title.endswith("download needed") for title in recipe_titles)


def test_a_slow_recipe_says_how_slow_before_start(env):
    at = open_app("train")
    at.selectbox(key="recipe").set_value("dlwp-5.3-frozen-augment").run()
    assert_clean(at)
    slow = "\n".join(i.value for i in at.info)
    assert slow.startswith("Slow on a CPU: about") and "hours" in slow and "docs/BENCHMARKS.md" in slow


# ---------------------------------------------------------------- unfreezing, augmentation default

def test_the_unfreeze_control_counts_the_layers_that_learn(env):
    at = open_app("train")
    at.radio(key="strategy").set_value("fine-tune").run()
    at.selectbox(key="base").set_value("vgg16").run()
    assert_clean(at)
    slider = at.slider(key="unfreeze_vgg16")
    assert (slider.max, slider.value) == (13, 3)  # VGG16's 13 conv layers; block5's three by default
    assert metric(at, "Layers unfrozen") == "3 of 13 layers that learn"
    assert "Will learn: block5_conv3, block5_conv2, block5_conv1" in texts(at)
    at.slider(key="unfreeze_vgg16").set_value(4).run()
    assert trains(at).sum() == 4  # block5's three and block4_conv3, pooling layers in between
    assert "block4_conv3" in texts(at)


def test_train_augmentation_follows_the_augment_page(env):
    at = open_app("train")
    assert not at.toggle(key="augment").value
    at.switch_page("app_pages/augment.py").run()
    at.switch_page("app_pages/train.py").run()
    assert at.toggle(key="augment").value  # the person set augmentation there
    at.toggle(key="augment").set_value(False).run()
    at.switch_page("app_pages/augment.py").run()
    at.switch_page("app_pages/train.py").run()
    assert not at.toggle(key="augment").value  # switched off here: stays off


# ---------------------------------------------------------------- Augment

def test_augment_page_has_fill_mode_channel_shift_and_a_download_of_copies(env):
    at = open_app("augment")
    at.radio(key="aug_fill_mode").set_value("reflect").run()
    at.slider(key="aug_channel_shift").set_value(30.0).run()
    assert_clean(at)
    config = at.session_state["augment_config"]
    assert config["fill_mode"] == "reflect" and config["channel_shift"] == 30
    at.number_input(key="aug_copies").set_value(7).run()
    button = at.get("download_button")[0]
    assert "Download 7 augmented copies" in button.proto.label and not button.proto.disabled


def test_the_download_is_a_zip_of_n_pngs_with_ascii_names():
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    stem = augment_files.ascii_stem("chat été 01.jpg")
    archive = zipfile.ZipFile(io.BytesIO(augment_files.augmented_zip(
        image, {"rotation": 30.0, "horizontal_flip": True}, 12, 0, stem)))
    names = archive.namelist()
    assert len(names) == 12 and names[0] == "chat_t_01_aug_01.png" and all(n.isascii() for n in names)
    copies = [np.asarray(Image.open(archive.open(n))) for n in names]
    assert all(c.shape == (32, 32, 3) for c in copies)
    assert any(not np.array_equal(c, image) for c in copies)
    assert augment_files.ascii_stem("日本.png") == augment_files.FALLBACK_STEM
    assert augment_files.zip_name(stem) == "chat_t_01_augmented.zip"



def test_every_recipe_value_is_one_the_form_can_show():
    """The learning-rate and batch-size sliders offer fixed choices: each recipe's must be among them."""
    from core import recipes
    from ui import train_form

    for recipe in recipes.RECIPES.values():
        values = train_form.form_values(recipe.overrides)
        assert values["batch_size"] in train_form.BATCH_SIZES, recipe.name
        for key in ("learning_rate", "fine_tune_learning_rate"):
            assert values[key] in train_form.LEARNING_RATES, (recipe.name, key)
