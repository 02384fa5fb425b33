"""The Inspect and Visualize pages (and Evaluate's Grad-CAM gallery), driven with AppTest.

One tiny run is trained once for the module (a scratch convnet, 48 px, one epoch on 30 generated
images: a few seconds); every test opens the app on a runs folder holding a copy of it, with a
fresh job registry, empty caches, and optimizations capped at a few steps (TRANSFERLAB_MAX_STEPS).
"""
from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

import core.jobs
from core.runs import write_predictions
from core.sample import make_shapes
from core.jobs import Job, JobRegistry
from tiny_runs import tiny_config

from apptest_helpers import assert_clean, open_app, texts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A runs folder with one finished, evaluated run of the scratch convnet."""
    base = tmp_path_factory.mktemp("inside")
    data = make_shapes(str(base / "shapes"), per_class=10, size=48)
    runs = base / "runs"
    result = Job(tiny_config(data, runs, epochs=1)).run()
    assert result and result["test_accuracy"] is not None, result
    return runs


@pytest.fixture
def env(tmp_path, trained, samples_dir, monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(trained, runs)
    monkeypatch.setenv("TRANSFERLAB_RUNS_DIR", str(runs))
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(tmp_path))
    monkeypatch.setenv("TRANSFERLAB_SAMPLES_DIR", samples_dir)
    monkeypatch.setenv("TRANSFERLAB_MAX_STEPS", "3")
    monkeypatch.setattr(core.jobs, "REGISTRY", JobRegistry())
    st.cache_data.clear()
    st.cache_resource.clear()
    run_dir = next(runs.iterdir())
    yield {"runs": runs, "run_dir": run_dir, "run_id": run_dir.name,
           "predictions": json.loads((run_dir / "predictions.json").read_text()),
           "classes": json.loads((run_dir / "config.json").read_text())["classes"]}
    st.cache_data.clear()
    st.cache_resource.clear()


def image_captions(at: AppTest) -> list[str]:
    """The caption of every st.image on the page, in page order."""
    return [c for image in at.image for c in image.captions]


def png_bytes(size=40) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


# ---------------------------------------------------------------- Inspect

def test_inspect_without_a_trained_run_says_what_to_do(tmp_path, samples_dir, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("TRANSFERLAB_SAMPLES_DIR", samples_dir)
    monkeypatch.setattr(core.jobs, "REGISTRY", JobRegistry())
    for page in ("inspect", "visualize"):
        at = open_app(page)
        assert "No trained model yet" in at.info[0].value


def test_inspect_shows_probabilities_activations_and_grad_cam(env):
    at = open_app("inspect")
    assert at.title[0].value == "Inspect"
    subheaders = [s.value for s in at.subheader]
    assert subheaders == ["Class probabilities", "Intermediate activations", "Where the model looks (Grad-CAM)"]
    assert at.selectbox(key="inside_run").value == env["run_id"]
    first = env["predictions"][0]
    assert at.selectbox(key="inspect_image").value == first["path"]
    assert len(at.get("plotly_chart")) == 1  # the probabilities
    captions = image_captions(at)
    assert len(captions) == 4  # the image, the activation grid, the image and its Grad-CAM
    pred = env["classes"][first["pred"]]
    assert captions[0].startswith(f"{os.path.basename(first['path'])}: {pred}")
    assert "the first 32" in captions[1] or "the first" in captions[1]
    assert f"evidence for {pred}" in captions[3]


def test_inspect_layer_channels_and_grad_cam_controls(env):
    at = open_app("inspect")
    run_id = env["run_id"]
    layers = at.selectbox(key=f"inspect_act_layer_{run_id}").options
    assert len(layers) >= 4  # conv and pool layers of the scratch net
    at.selectbox(key=f"inspect_act_layer_{run_id}").select_index(len(layers) - 1).run()
    assert_clean(at)
    layer = at.selectbox(key=f"inspect_act_layer_{run_id}").value
    at.slider(key=f"inspect_act_n_{run_id}_{layer}").set_value(2).run()
    assert_clean(at)
    assert "the first 2," in image_captions(at)[1]
    # Grad-CAM of another class, at another layer, with another opacity.
    other = 1 - env["predictions"][0]["pred"] if len(env["classes"]) > 1 else 0
    at.selectbox(key=f"inspect_cam_class_{run_id}").set_value(other).run()
    at.selectbox(key=f"inspect_cam_layer_{run_id}").select_index(0).run()
    at.slider(key="inspect_cam_opacity").set_value(0.8).run()
    assert_clean(at)
    cam = image_captions(at)[3]
    assert f"evidence for {env['classes'][other]}" in cam
    assert at.selectbox(key=f"inspect_cam_layer_{run_id}").value in cam
    assert "Grad-CAM++" in cam  # the default method
    at.selectbox(key="inspect_cam_method").set_value("grad-cam").run()
    assert_clean(at)
    cam = image_captions(at)[3]
    assert "Grad-CAM," in cam and "Grad-CAM++" not in cam


def rewrite_predictions(env, wrong=()) -> list[dict]:
    """The run's predictions.json rewritten so that the model got exactly the images numbered in
    `wrong` wrong (each taken for the next class), whatever the tiny training happened to learn."""
    n = len(env["classes"])
    records = []
    for i, record in enumerate(env["predictions"]):
        pred = (record["true"] + 1) % n if i in wrong else record["true"]
        records.append({**record, "pred": pred, "probs": [0.8 if c == pred else 0.2 / (n - 1) for c in range(n)]})
    write_predictions(str(env["run_dir"]), records)
    return records


def test_inspect_mistakes_only_and_uploads(env):
    rewrite_predictions(env, wrong=())
    at = open_app("inspect")
    at.toggle(key="inspect_mistakes").set_value(True).run()
    assert_clean(at)
    assert "got every one of these images right" in texts(at)

    assert len(env["predictions"]) >= 3
    records = rewrite_predictions(env, wrong={1, len(env["predictions"]) - 1})
    at = open_app("inspect")
    at.toggle(key="inspect_mistakes").set_value(True).run()
    assert_clean(at)
    mistakes = [r for r in records if r["true"] != r["pred"]]
    assert len(at.selectbox(key="inspect_image").options) == len(mistakes)
    assert at.selectbox(key="inspect_image").value == mistakes[0]["path"]
    assert all(o.endswith("✗") for o in at.selectbox(key="inspect_image").options)

    at.radio(key="inspect_source").set_value("upload").run()
    at.file_uploader(key="inspect_upload").set_value(("notes.png", b"not an image at all", "image/png")).run()
    assert_clean(at)
    assert "notes.png cannot be used: not an image" in at.error[0].value
    at.file_uploader(key="inspect_upload").set_value(("noise.png", png_bytes(), "image/png")).run()
    assert_clean(at)
    assert not at.error
    assert image_captions(at)[0].startswith("noise.png: ")


# ---------------------------------------------------------------- Visualize

def test_visualize_draws_filter_patterns_with_progress(env):
    at = open_app("visualize")
    assert [s.value for s in at.subheader][:2] == ["Filter patterns", "\"Ideal\" class image"]
    at.slider(key="vis_filter_n").set_value(3).run()
    at.button(key="vis_filter_start").click().run()
    assert_clean(at)
    assert at.session_state["vis_filter_work"]["status"] == "done"
    captions = image_captions(at)
    assert [c for c in captions if c.startswith("filter ")] == ["filter 0", "filter 1", "filter 2"]
    assert "3 filters in" in texts(at)


def test_visualize_ideal_class_image_reports_the_probability(env):
    at = open_app("visualize")
    at.button(key="vis_ideal_start").click().run()
    assert_clean(at)
    work = at.session_state["vis_ideal_work"]
    assert work["status"] == "done" and work["total"] == 3  # capped by TRANSFERLAB_MAX_STEPS
    assert 0 <= work["probability"] <= 1
    name = env["classes"][0]
    assert any(c.startswith(f"the ideal {name}: the model gives it ") for c in image_captions(at))


def test_cancelled_and_interrupted_work_shows_what_was_reached(env):
    at = open_app("visualize")
    partial = {"status": "running", "started": 0.0, "run": env["run_id"], "target": 0, "total": 150,
               "step": 40, "probability": 0.25, "image": np.full((48, 48, 3), 128, np.uint8),
               "points": [{"step": 40, "probability": 0.25}]}
    # A run that was still going when the script was rerun by another click.
    at.session_state["vis_ideal_work"] = dict(partial)
    at.run()
    assert_clean(at)
    assert at.session_state["vis_ideal_work"]["status"] == "interrupted"
    assert any("stopped (the page was changed) at step 40 of 150" in c for c in image_captions(at))
    # The Cancel button's callback marks running work as cancelled.
    from ui import long_task

    state = {"vis_ideal_work": dict(partial)}
    with pytest.MonkeyPatch.context() as m:
        m.setattr(long_task.st, "session_state", state)
        long_task._cancel("vis_ideal")
    assert state["vis_ideal_work"]["status"] == "cancelled"


def test_the_ideal_image_of_one_class_is_not_shown_under_another(env):
    at = open_app("visualize")
    at.button(key="vis_ideal_start").click().run()
    first, second = env["classes"][:2]
    assert any(c.startswith(f"the ideal {first}: ") for c in image_captions(at))
    at.selectbox(key=f"vis_ideal_class_{env['run_id']}").set_value(1).run()
    assert_clean(at)
    assert not any(c.startswith("the ideal ") for c in image_captions(at)), image_captions(at)
    at.selectbox(key=f"vis_ideal_class_{env['run_id']}").set_value(0).run()  # still there for its class
    assert any(c.startswith(f"the ideal {first}: ") for c in image_captions(at))
    assert second != first


def test_cancel_buttons_are_disabled_unless_their_work_runs(env):
    at = open_app("visualize")
    cancels = [b for b in at.button if b.label == "Cancel"]
    assert len(cancels) == 3 and all(b.disabled for b in cancels)
    at.select_slider(key="vis_acc_n").set_value(16).run()
    at.button(key="vis_acc_start").click().run()
    assert at.session_state["vis_acc_work"]["status"] == "done"
    assert all(b.disabled for b in at.button if b.label == "Cancel")


def test_visualize_fgsm_and_targeted_attack(env):
    at = open_app("visualize")
    assert at.radio(key="vis_adv_method").value == "fgsm"
    assert at.slider(key="vis_adv_eps").value == 2.0
    captions = image_captions(at)
    assert any(c.startswith("original: ") for c in captions)
    assert any(c.startswith("adversarial (±2/255): ") for c in captions)
    assert any("amplified" in c or "no pixel changed" in c for c in captions)
    assert "Prediction **" in texts(at)
    at.radio(key="vis_adv_method").set_value("targeted").run()
    at.slider(key="vis_adv_eps").set_value(8.0).run()
    assert_clean(at)
    assert "Target **" in texts(at)
    assert any(c.startswith("adversarial (±8/255): ") for c in image_captions(at))


def test_visualize_accuracy_against_epsilon(env):
    at = open_app("visualize")
    at.select_slider(key="vis_acc_n").set_value(16).run()
    at.button(key="vis_acc_start").click().run()
    assert_clean(at)
    work = at.session_state["vis_acc_work"]
    assert work["status"] == "done" and work["n"] == min(16, len(env["predictions"]))
    eps, acc = zip(*work["points"])
    assert eps[0] == 0 and len(eps) == 7 and all(0 <= a <= 1 for a in acc)
    clean = np.mean([r["true"] == r["pred"] for r in env["predictions"]])
    if work["n"] == len(env["predictions"]):  # the whole split: accuracy at epsilon 0 is the run's
        assert acc[0] == pytest.approx(clean, abs=1e-6)
    assert any(c.proto.spec and "accuracy under FGSM" in c.proto.spec for c in at.get("plotly_chart"))


# ---------------------------------------------------------------- Evaluate -> Inspect

def test_evaluate_gallery_shows_grad_cam_and_opens_inspect(env):
    at = open_app("evaluate")
    before = [u for image in at.image for u in image.value]
    at.toggle(key="eval_gradcam").set_value(True).run()
    assert_clean(at)
    after = [u for image in at.image for u in image.value]
    assert len(after) == len(before) and after != before
    chooser = at.selectbox(key="eval_inspect_image")
    chooser.select_index(len(chooser.options) - 1)
    name = chooser.options[-1]  # the file name of the last image of the gallery
    at.button(key="eval_open_inspect").click().run()
    assert_clean(at)
    assert at.title[0].value == "Inspect"
    path = at.selectbox(key="inspect_image").value
    assert os.path.basename(path) == name and path in {r["path"] for r in env["predictions"]}
    assert image_captions(at)[0].startswith(name)
