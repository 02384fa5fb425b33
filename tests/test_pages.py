"""The dashboard's pages, driven with Streamlit's AppTest (no browser).

Each test runs app.py in-process on small generated images, with a fresh job registry and empty
caches, and with the runs folder and data roots in a temporary folder.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

import core.jobs
from core.sample import make_shapes
from core.jobs import JobRegistry
from ui.results import confusion_cells

from apptest_helpers import assert_clean, open_app, start_small_training, texts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def env(tmp_path, samples_dir, monkeypatch):
    """Runs folder and data root in tmp_path, a fresh job registry, empty Streamlit caches."""
    runs, data_root = tmp_path / "runs", tmp_path / "data"
    data_root.mkdir()
    monkeypatch.setenv("TRANSFERLAB_RUNS_DIR", str(runs))
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(data_root))
    monkeypatch.setenv("TRANSFERLAB_SAMPLES_DIR", samples_dir)
    registry = JobRegistry()
    monkeypatch.setattr(core.jobs, "REGISTRY", registry)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield {"runs": runs, "data": data_root, "registry": registry}
    for job in registry.queue():  # never leave a training thread behind: cancel the waiting ones first
        registry.stop(job.id, job.owner)
    for job in list(registry._jobs.values()):
        job.request_stop()
        if job.thread:
            job.thread.join(120)
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def shapes(env) -> str:
    """30 small images in 3 class folders, plus a corrupt file and a text file."""
    root = make_shapes(str(env["data"] / "shapes"), per_class=10, size=48)
    Path(root, "circle", "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    Path(root, "square", "notes.txt").write_text("not an image")
    return root








def table(at: AppTest, column: str):
    """The first st.dataframe with this column, as a pandas DataFrame."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def open_folder(at: AppTest, path: str) -> AppTest:
    at.text_input(key="typed_path").input(path)
    at.button(key="open_typed").click().run()
    assert_clean(at)
    return at


def png_bytes(size=40) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 120, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def wait_for(job, timeout=120) -> None:
    job.thread.join(timeout)
    assert not job.active, "the training job did not finish in time"


def test_streamlit_leaves_the_keras_session_of_a_running_training_alone(env):
    """Streamlit clears the Keras session and runs a full GC after every run (see ui/runtime.py)."""
    import tomllib

    from ui import runtime

    open_app()
    assert runtime.keras_state_kept()
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False


# ---------------------------------------------------------------- sidebar and Dataset

def test_no_pages_folder_next_to_app():
    """A pages/ folder switches Streamlit to its old mode on deep links (see app.py)."""
    assert not (ROOT / "pages").exists(), "move the pages to app_pages/ (see the docstring of app.py)"


def test_sample_is_the_default_dataset_and_the_sidebar_says_so(env):
    at = open_app()
    assert at.title[0].value == "Dataset"
    assert metric(at, "Classes") == "3"
    assert int(metric(at, "Train images")) > 100
    side = "\n".join([m.value for m in at.sidebar.markdown] + [c.value for c in at.sidebar.caption])
    assert "built-in shapes sample" in side
    assert "circle, square, triangle" in side
    assert "No run yet" in side
    assert "CPU" in side or "GPU" in side  # the training device
    assert len(at.get("plotly_chart")) == 2  # counts per split, image sizes
    assert len(at.image) >= 3  # a gallery row per class


def test_typed_folder_shows_counts_gallery_and_skipped_files(env, shapes):
    at = open_folder(open_app(), shapes)
    assert metric(at, "Classes") == "3"
    assert metric(at, "Skipped files") == "2"
    skipped = table(at, "reason")
    reasons = dict(zip(skipped["file"], skipped["reason"]))
    assert "truncated or corrupt" in reasons[os.path.join("circle", "broken.png")] or \
        "not an image" in reasons[os.path.join("circle", "broken.png")]
    assert "not an image" in reasons[os.path.join("square", "notes.txt")]
    assert sum(int(metric(at, f"{s} images")) for s in ("Train", "Validation", "Test")) == 30
    assert "shapes" in "\n".join(m.value for m in at.sidebar.markdown)
    # The folder is remembered in the runs folder and offered under Recent.
    assert json.loads((env["runs"] / "recent_datasets.json").read_text())[0] == os.path.realpath(shapes)
    assert os.path.realpath(shapes) in at.selectbox(key="recent_choice").options


def test_split_fractions_and_seed_change_the_split(env, shapes):
    at = open_folder(open_app(), shapes)
    before = int(metric(at, "Validation images"))
    at.slider(key="val_fraction").set_value(0.3).run()
    assert_clean(at)
    assert int(metric(at, "Validation images")) > before


def test_folder_outside_the_data_roots_is_refused(env):
    at = open_folder(open_app(), "/etc")
    assert "outside the folders this server may read" in at.error[0].value
    assert "built-in shapes sample" in "\n".join(m.value for m in at.sidebar.markdown)


def test_unusable_folder_shows_the_reason_not_a_traceback(env):
    single = env["data"] / "one_class" / "cats"
    single.mkdir(parents=True)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(single / "a.png")
    at = open_folder(open_app(), str(env["data"] / "one_class"))
    assert any("Need at least two class folders" in e.value for e in at.error)


def test_browse_goes_into_a_folder_and_opens_it(env, shapes):
    at = open_app()
    at.selectbox(key="browse_child").set_value("shapes").run()
    at.button(key="browse_down").click().run()
    assert "shapes" in at.session_state["browse_dir"]
    at.button(key="browse_use").click().run()
    assert_clean(at)
    assert at.session_state["dataset_path"] == os.path.realpath(shapes)
    assert metric(at, "Skipped files") == "2"


# ---------------------------------------------------------------- Augment

def test_sliders_make_the_one_augment_config_and_the_grid(env):
    at = open_app("augment")
    assert len(at.image) == 12  # the original and 11 variants
    assert at.session_state["augment_config"]["rotation"] == 40  # the classic settings by default
    at.slider(key="aug_rotation").set_value(90.0).run()
    at.checkbox(key="aug_vertical_flip").check().run()
    assert_clean(at)
    config = at.session_state["augment_config"]
    assert config["rotation"] == 90 and config["vertical_flip"] is True
    at.button(key="aug_none").click().run()
    assert at.session_state["augment_config"] == {k: (False if isinstance(v, bool) else v if isinstance(v, str)
                                                      else 0.0) for k, v in config.items()}  # fill_mode: a word
    assert at.slider(key="aug_rotation").value == 0
    at.button(key="aug_light").click().run()
    assert at.session_state["augment_config"]["shear"] == 0.2 and at.slider(key="aug_zoom").value == 0.2
    assert at.slider(key="aug_rotation").value == 0 and at.checkbox(key="aug_horizontal_flip").value


def test_upload_an_image_or_see_why_it_cannot_be_used(env):
    at = open_app("augment")
    at.radio(key="aug_source").set_value("Upload one").run()
    at.file_uploader(key="aug_upload").set_value(("fake.png", b"this is text", "image/png")).run()
    assert_clean(at)
    assert "fake.png cannot be used: not an image" in at.error[0].value
    at.file_uploader(key="aug_upload").set_value(("grey.png", png_bytes(), "image/png")).run()
    assert_clean(at)
    assert not at.error and len(at.image) == 12


# ---------------------------------------------------------------- Train

def test_layer_table_follows_the_number_of_unfrozen_layers(env):
    at = open_app("train")
    at.radio(key="strategy").set_value("fine-tune").run()
    assert_clean(at)
    rows = table(at, "trains")
    assert rows["trains"].sum() > 0
    trainable = metric(at, "Trainable parameters")
    at.slider(key="unfreeze_mobilenet_v2").set_value(0).run()
    assert not table(at, "trains")["trains"].any()
    assert metric(at, "Trainable parameters") != trainable
    assert metric(at, "Layers unfrozen").startswith("0 of")


def test_the_train_page_says_where_the_decoded_images_will_live(env, monkeypatch):
    at = open_app("train")
    assert "MB: kept in memory." in texts(at)
    monkeypatch.setenv("TRANSFERLAB_MEMORY_BUDGET_MB", "0")
    at.run()
    assert_clean(at)
    assert "over the memory budget of 0 MB: they will be read from the files batch by batch" in texts(at)


def test_training_streams_then_reports_and_evaluate_shows_it(env, shapes):
    at = open_folder(open_app(), shapes)
    at.switch_page("app_pages/augment.py").run()
    at.slider(key="aug_rotation").set_value(15.0).run()
    at.switch_page("app_pages/train.py").run()
    at.toggle(key="augment").set_value(True)
    start_small_training(at, epochs=2)
    job = env["registry"].latest()
    assert job is not None
    # The page that started the job shows it live (curves, progress, stop button).
    assert at.get("plotly_chart") and at.button(key="stop")
    wait_for(job)
    snap = job.snapshot()
    assert snap["error"] is None, snap["error"]
    assert snap["config"]["augment"] and snap["config"]["augment_config"]["rotation"] == 15  # one source of truth
    assert snap["config"]["data"] == os.path.realpath(shapes)
    at.run()
    assert_clean(at)
    assert "2 epochs recorded" in texts(at)  # and every batch: 3 per epoch on 21 training images
    assert any(m.label.startswith("Accuracy on") for m in at.metric)
    assert "finished" in "\n".join(m.value for m in at.sidebar.markdown)

    at.switch_page("app_pages/evaluate.py").run()
    assert_clean(at)
    ladder = table(at, "state")
    assert list(ladder["state"]) == ["finished"]
    assert ladder["strategy"][0] == "from scratch + augmentation"
    assert ladder["epochs"][0] == 2
    per_class = table(at, "precision")
    assert set(per_class["class"]) == {"circle", "square", "triangle"}
    run_id = os.path.basename(snap["run_dir"])
    assert len(at.image) >= 1  # the gallery of the default cell
    # Every non-empty cell can be chosen; the gallery shows exactly that cell's images.
    metrics = json.loads(Path(snap["run_dir"], "metrics.json").read_text())
    predictions = json.loads(Path(snap["run_dir"], "predictions.json").read_text())
    cells = confusion_cells(metrics["confusion_matrix"], metrics["classes"])
    pills = at.pills(key=f"eval_cell_{run_id}")
    assert len(pills.options) == len(cells)
    for index, (t, p) in enumerate(cells):
        at.pills(key=f"eval_cell_{run_id}").set_value(index).run()
        assert_clean(at)
        n = sum(1 for r in predictions if r["true"] == t and r["pred"] == p)
        assert f"{n} images" in texts(at)
        assert len(at.image) == min(n, 24)


@pytest.mark.skipif(not os.path.exists(os.path.join(os.environ.get("KERAS_HOME", "~/.keras"), "models",
                                                    "mobilenet_2_5_128_tf_no_top.h5")),
                    reason="needs the offline MobileNet 0.25 weights (KERAS_HOME=../shared/weights)")
def test_feature_extraction_on_offline_weights_with_augmented_views(env, shapes):
    at = open_folder(open_app(), shapes)
    at.switch_page("app_pages/train.py").run()
    at.selectbox(key="base").set_value("mobilenet_025").run()
    assert any("MobileNet (alpha 0.25)" in e.label for e in at.expander)
    assert table(at, "trains")["trains"].sum() == 0  # feature extraction: the whole base stays frozen
    at.toggle(key="augment").set_value(True).run()
    at.number_input(key="views").set_value(2)
    start_small_training(at, strategy="feature-extraction", epochs=2, size=128)
    job = env["registry"].latest()
    wait_for(job)
    snap = job.snapshot()
    assert snap["error"] is None, snap["error"]
    assert {e["phase"] for e in snap["epochs"]} == {"head"} and len(snap["epochs"]) == 2
    assert snap["config"]["views"] == 2 and snap["config"]["base"] == "mobilenet_025"
    at.run()
    assert_clean(at)
    assert any(m.label == "Best validation accuracy" for m in at.metric)


def test_a_second_session_start_is_queued_shows_its_place_and_others_jobs_are_read_only(env, shapes, monkeypatch):
    monkeypatch.setattr(env["registry"], "_workers", 1)
    at = open_folder(open_app(), shapes)
    at.switch_page("app_pages/train.py").run()
    start_small_training(at, epochs=30)
    job = env["registry"].latest()
    # Another person (another browser, another ?me= token) starts too: queued behind it, not refused.
    other = open_folder(open_app(), shapes)
    other.switch_page("app_pages/train.py").run()
    assert other.query_params["me"] != at.query_params["me"]
    start_small_training(other, epochs=1)
    waiting = env["registry"].latest()
    assert waiting is not job and waiting.state == "queued"
    assert any("Waiting in the queue: place 1. Estimated wait:" in i.value for i in other.info)
    assert "stop" not in [b.key for b in other.button] and other.button(key="cancel")
    # A third person sees the latest training read-only: no Stop, no Cancel.
    third = open_app("train")
    assert not [b for b in third.button if b.key in ("stop", "cancel")]
    assert "Started by someone else: you can follow it, not stop it." in texts(third)
    other.button(key="cancel").click().run()
    assert_clean(other)
    assert waiting.state == "cancelled"
    # The first person's tab (a refresh keeps ?me=) stops its own training.
    at.run()
    at.button(key="stop").click().run()
    assert_clean(at)
    assert job.stop_requested
    wait_for(job)
    assert job.snapshot()["state"] == "stopped"


def test_a_failing_job_shows_its_error(env, shapes):
    at = open_folder(open_app(), shapes)
    at.switch_page("app_pages/train.py").run()
    # The folder disappears after the page checked it: the job's scan fails, the page says why.
    os.rename(shapes, shapes + "-moved")
    start_small_training(at)
    wait_for(env["registry"].latest())
    at.run()
    assert_clean(at)
    assert any("Folder not found" in e.value for e in at.error)


def test_settings_survive_a_page_switch(env):
    at = open_app("train")
    at.radio(key="strategy").set_value("scratch").run()
    at.number_input(key="image_size").set_value(64).run()
    at.number_input(key="epochs_scratch").set_value(3).run()
    at.switch_page("app_pages/evaluate.py").run()
    at.switch_page("app_pages/train.py").run()
    assert_clean(at)
    assert at.radio(key="strategy").value == "scratch"
    assert at.number_input(key="image_size").value == 64
    assert at.number_input(key="epochs_scratch").value == 3


# ---------------------------------------------------------------- Evaluate

def test_evaluate_without_runs_says_what_to_do(env):
    at = open_app("evaluate")
    assert "No run yet" in at.info[0].value


def test_evaluate_lists_interrupted_and_failed_runs(env):
    from core import runs

    for state, pid in (("running", 999999), ("failed", None)):
        run_dir = runs.create_run(str(env["runs"]), {"strategy": "feature-extraction", "base": "vgg16",
                                                     "image_size": 128})
        runs.write_status(run_dir, state=state, pid=pid, error="boom" if state == "failed" else None)
    at = open_app("evaluate")
    assert sorted(table(at, "state")["state"]) == ["failed", "interrupted"]
    assert "No test results for this run" in at.info[0].value


def test_evaluate_lists_a_training_queued_before_a_restart_as_not_started(env):
    from core import runs

    runs.create_run(str(env["runs"]), {"strategy": "scratch", "base": "scratch", "image_size": 48},
                    state=runs.QUEUED, owner="someone")  # written by a server that is gone
    at = open_app("evaluate")
    assert list(table(at, "state")["state"]) == ["not started"]
    assert "No test results for this run" in at.info[0].value
