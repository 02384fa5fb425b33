"""What a person chose survives a refresh, a second tab and a shared link (issue 14, bugs 1, 5, 6).

A refresh is a new AppTest (a new session) opened on the URL the first one left: the same
?dataset=…&run=…&aug=…&lang=… query parameters, the same server (job registry, runs folder).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

import core.jobs
from core import data
from core.augment import AugmentConfig
from core.sample import make_shapes
from ui import folders, state

from apptest_helpers import APP, assert_clean, isolate_app, open_app, start_small_training, texts

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def env(tmp_path, samples_dir, monkeypatch):
    runs, data_root = tmp_path / "runs", tmp_path / "data"
    data_root.mkdir()
    isolate_app(monkeypatch, runs, data_root, samples_dir)
    yield {"runs": runs, "data": data_root}
    for job in list(core.jobs.REGISTRY._jobs.values()):  # never leave a training thread behind
        job.request_stop()
        job.thread.join(120)
    st.cache_data.clear()


@pytest.fixture
def shapes(env) -> str:
    return make_shapes(str(env["data"] / "shapes"), per_class=10, size=48)


def url(at: AppTest, name: str):
    """A query parameter of the app's URL as the browser would show it (None when absent)."""
    value = at.query_params.get(name)
    return value[-1] if isinstance(value, list) else value


def reload(at: AppTest, page: str | None = None) -> AppTest:
    """A refresh (or a second tab on the same URL): a new session opened on at's URL."""
    fresh = AppTest.from_file(APP, default_timeout=120)
    for name in ("dataset", "run", "aug", "lang"):
        if url(at, name) is not None:
            fresh.query_params[name] = url(at, name)
    fresh.run()
    if page:
        fresh.switch_page(f"app_pages/{page}.py").run()
    assert_clean(fresh)
    return fresh


def sidebar_text(at: AppTest) -> str:
    return "\n".join([m.value for m in at.sidebar.markdown] + [c.value for c in at.sidebar.caption])


def open_typed(at: AppTest, path: str) -> AppTest:
    at.text_input(key="typed_path").input(path)
    at.button(key="open_typed").click().run()
    assert_clean(at)
    return at


# ---------------------------------------------------------------- bug 1: the dataset

def test_a_chosen_dataset_is_in_the_url_and_a_refresh_opens_on_it(env, shapes):
    at = open_typed(open_app(), shapes)
    assert url(at, "dataset") == os.path.realpath(shapes)
    at.switch_page("app_pages/train.py").run()  # navigation drops query parameters: put back
    assert url(at, "dataset") == os.path.realpath(shapes)
    again = reload(at)
    assert "shapes" in sidebar_text(again) and "built-in shapes sample" not in sidebar_text(again)
    assert f"Current dataset: {os.path.realpath(shapes)}" in texts(again)
    train = reload(at, "train")
    assert f"Trains on {os.path.realpath(shapes)}" in texts(train)


@pytest.mark.parametrize("where", ["outside", "vanished"])
def test_a_dataset_link_that_cannot_be_used_falls_back_to_the_sample_with_a_warning(env, tmp_path, where):
    folder = make_shapes(str((tmp_path if where == "outside" else env["data"]) / "elsewhere"), per_class=3, size=32)
    if where == "vanished":
        shutil.rmtree(folder)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["dataset"] = folder
    at.run()
    assert_clean(at)
    assert any("The dataset of this link" in w.value and "built-in sample" in w.value for w in at.warning)
    assert "built-in shapes sample" in sidebar_text(at)
    assert url(at, "dataset") is None


def test_a_refresh_during_a_training_shows_the_job_and_its_dataset(env, shapes):
    at = open_typed(open_app(), shapes)
    at.switch_page("app_pages/train.py").run()
    assert_clean(at)
    start_small_training(at, epochs=30)
    job = core.jobs.REGISTRY.latest()
    try:
        assert job is not None and job.active
        again = reload(at, "train")
        shown = texts(again)
        assert f"Trains on {os.path.realpath(shapes)}" in shown  # the form: the job's dataset, not the sample
        assert f"dataset {os.path.realpath(shapes)}" in shown     # the running job
        assert "built-in shapes sample" not in sidebar_text(again)
    finally:
        job.request_stop()
        job.thread.join(120)


def test_the_sidebar_scans_before_it_names_the_dataset(env, shapes, monkeypatch):
    """While a new folder is scanned, the sidebar still shows the old name with the old summary:
    nothing of the sidebar's dataset panel is drawn before the scan."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    drawn_before_scan = []
    scan = state.current_dataset

    def watched_scan():
        ctx = get_script_run_ctx()
        sidebar = [c for root, c in ctx.cursors.items() if root == 1]  # RootContainer.SIDEBAR
        drawn_before_scan.append(sidebar[0].index if sidebar else 0)
        return scan()

    monkeypatch.setattr(state, "current_dataset", watched_scan)
    at = open_typed(open_app(), shapes)
    assert drawn_before_scan
    language_and_presenter_switches = 2
    assert drawn_before_scan[0] <= language_and_presenter_switches, drawn_before_scan


# ---------------------------------------------------------------- bug 1: augmentation and runs

def test_augmentation_settings_are_in_the_url_and_come_back(env):
    at = open_app("augment")
    assert url(at, "aug") is None  # the classic settings: nothing to keep
    at.slider(key="aug_rotation").set_value(10.0).run()
    at.checkbox(key="aug_horizontal_flip").uncheck().run()
    assert url(at, "aug") == "rotation:10,width_shift:0.2,height_shift:0.2,shear:0.2,zoom:0.2"
    again = reload(at, "augment")
    assert again.slider(key="aug_rotation").value == 10.0
    assert again.checkbox(key="aug_horizontal_flip").value is False
    assert state.decode_augment("none") == AugmentConfig().to_dict()


@pytest.mark.parametrize("bad", ["rotation:lots", "spin:3", "zoom:-1", "zoom:nan"])
def test_augmentation_links_that_cannot_be_read_are_refused(bad):
    with pytest.raises(state.BadLink):
        state.decode_augment(bad)


@pytest.fixture
def two_runs(env, tmp_path_factory):
    """Two finished, evaluated runs (one tiny training, copied under a second id)."""
    from core.jobs import Job
    from tiny_runs import tiny_config

    base = tmp_path_factory.mktemp("url_runs")
    shapes = make_shapes(str(base / "shapes"), per_class=8, size=48)
    result = Job(tiny_config(shapes, base / "runs", epochs=1)).run()
    assert result and result["test_accuracy"] is not None, result
    first = next((base / "runs").iterdir())
    env["runs"].mkdir(exist_ok=True)
    older, newer = env["runs"] / "20200101-000000-scratch-scratch", env["runs"] / "20200102-000000-scratch-scratch"
    shutil.copytree(first, older)
    shutil.copytree(first, newer)
    return older.name, newer.name


def test_the_run_looked_at_is_in_the_url_and_every_page_opens_on_it(env, two_runs):
    older, newer = two_runs
    at = open_app("evaluate")
    at.multiselect(key="eval_runs").set_value([newer, older]).run()
    at.selectbox(key="eval_detail").set_value(older).run()
    assert url(at, "run") == older
    at.switch_page("app_pages/dataset.py").run()
    at.switch_page("app_pages/evaluate.py").run()  # navigating away and back keeps it
    assert at.selectbox(key="eval_detail").value == older
    inspect = reload(at, "inspect")
    assert inspect.selectbox(key="inside_run").value == older
    inspect.selectbox(key="inside_run").set_value(newer).run()
    assert url(inspect, "run") == newer
    assert reload(inspect, "visualize").selectbox(key="inside_run").value == newer


def test_a_run_link_that_is_not_in_the_runs_folder_is_refused(env, two_runs):
    for bad in ("20990101-000000-none", "../runs", ".."):
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params["run"] = bad
        at.run()
        assert_clean(at)
        assert any("of this link is not in this server's runs folder" in w.value for w in at.warning), bad
        assert url(at, "run") is None


# ---------------------------------------------------------------- bug 5: the program's own folder

def test_the_programs_own_folder_is_no_default_data_root(monkeypatch):
    monkeypatch.delenv("TRANSFERLAB_DATA_ROOTS", raising=False)
    monkeypatch.chdir(data.APP_FOLDER)
    roots = folders.data_roots()
    assert data.APP_FOLDER not in roots
    assert roots[0] == os.path.dirname(data.APP_FOLDER)


def program_like(root: Path) -> str:
    """A folder shaped like a program's: docs/, samples/ and app_pages/ with a few images among text."""
    for name in ("docs", "samples", "app_pages"):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 32), (40 * i, 90, 160)).save(root / name / f"figure{i}.png")
        for i in range(6):
            (root / name / f"notes{i}.md").write_text("# not an image")
    return str(root)


def test_a_folder_that_does_not_look_like_a_dataset_has_its_reasons(tmp_path):
    ds = data.scan(program_like(tmp_path / "project"))
    reasons = [str(r) for r in folders.doubts(ds)]
    assert any("look like a program's folders" in r and "docs" in r for r in reasons), reasons
    assert any("of its" in r and "files cannot be used" in r for r in reasons), reasons
    assert folders.doubts(data.scan(make_shapes(str(tmp_path / "shapes"), per_class=4, size=32))) == []


def test_opening_such_a_folder_asks_first(env):
    folder = program_like(env["data"] / "project")
    at = open_typed(open_app(), folder)
    question = [w.value for w in at.warning if "doesn't look like a dataset" in w.value]
    assert question and "Use it anyway?" in question[0]
    assert "built-in shapes sample" in sidebar_text(at)  # not chosen yet
    at.button(key="doubt_no").click().run()
    assert not [w for w in at.warning if "doesn't look like a dataset" in w.value]
    assert "built-in shapes sample" in sidebar_text(at)
    open_typed(at, folder).button(key="doubt_yes").click().run()
    assert_clean(at)
    assert url(at, "dataset") == os.path.realpath(folder)
    assert "project" in sidebar_text(at)
