"""ui.live: the Train page's live view says what a running training does, how far, how fast, how long
the whole run has left, and shows the images going through; the feature cache can be emptied there."""
from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from apptest_helpers import APP, assert_clean, isolate_app, texts
from conftest import save_image


def snapshot(images: list[str], phase="features (train)", eta=(40.0, 90.0)) -> dict:
    """A job snapshot during feature extraction, as core.jobs.Job.snapshot() gives it."""
    return {"state": "running", "phase": phase, "batches": [], "config": {"batch_size": 32},
            "progress": {"phase": phase, "done": 320, "total": 2000, "unit": "images", "per_second": 41.3,
                         "eta_range": list(eta) if eta else None, "images": images,
                         "next": ["features (validation)", "head", "evaluate"]}}


def render(snap: dict, lang: str | None = None) -> AppTest:
    def script(snap, lang):
        import streamlit as st

        from ui import live

        if lang:
            st.query_params["lang"] = lang
        live.progress_view(snap)
        live.before_curves(snap)

    at = AppTest.from_function(script, args=(snap, lang), default_timeout=30).run()
    assert_clean(at)
    return at


def progress_texts(at: AppTest) -> str:
    return "\n".join(p.proto.text for p in at.get("progress"))


def test_the_live_view_shows_the_phase_counts_rate_whole_run_eta_and_images(tmp_path):
    paths = [str(tmp_path / f"cat.{i}.png") for i in range(3)]
    for p in paths:
        save_image(p)
    at = render(snapshot(paths))
    shown = texts(at)
    assert "Running the training images through the frozen base" in shown
    assert "320 of 2,000 images · 41.3 images per second" in progress_texts(at)
    assert "About 40 s to 1 min 30 s left for the whole run" in shown
    assert "Then: features (validation), head, evaluate" in shown
    assert len(at.image) == 1 and len(at.image[0].proto.imgs) == 3  # the images going through
    assert "No curves yet" in shown  # the chart area says what is happening


def test_before_any_rate_is_measured_it_says_so_instead_of_guessing():
    at = render(snapshot([], eta=None))
    assert "measuring the speed of this machine first" in texts(at)


def test_a_phase_without_images_says_why(tmp_path):
    snap = snapshot([], phase="head")
    snap["progress"].update(unit="batches", done=10, total=90, per_second=20.0)
    at = render(snap)
    assert "10 of 90 batches · 20 batches per second (640 images per second)" in progress_texts(at)
    assert "the head learns from the features stored earlier" in texts(at)


def test_the_live_view_in_japanese_runs_cleanly(tmp_path):
    at = render(snapshot([]), lang="ja")
    assert "学習" in texts(at) or "画像" in progress_texts(at) or at.markdown  # no exception is what counts


@pytest.fixture
def app_env(tmp_path, samples_dir, monkeypatch):
    runs, data_root = tmp_path / "runs", tmp_path / "data"
    data_root.mkdir()
    isolate_app(monkeypatch, runs, data_root, samples_dir)
    return runs


def test_the_train_page_shows_the_feature_cache_and_empties_it(app_env):
    from core import feature_cache

    feature_cache.FeatureCache(str(app_env)).save("entry", [np.zeros((1000, 300), np.float32)])
    at = AppTest.from_file(APP, default_timeout=300).run()  # the page builds the base's layer table: slow under load
    at.switch_page("app_pages/train.py").run()
    assert_clean(at)
    assert "Feature cache: 1.2 MB in 1 entries" in texts(at)
    at.button(key="clear_feature_cache").click().run()
    assert_clean(at)
    assert feature_cache.usage(str(app_env)).entries == 0
    assert "Feature cache: 0 MB in 0 entries" in texts(at)
