"""Issue 6: a read-only dataset stays untouched, and no path from the browser leads out of the
data roots or the runs folder. (Bad files: test_reliability_inputs.py; kills, stops and
errors: test_reliability_jobs.py; two users: e2e/test_reliability.py.)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

import core.jobs
from core import runs
from core.jobs import Job, JobRegistry
from tiny_runs import tiny_config
from ui import folders

from apptest_helpers import APP, assert_clean, open_app, texts  # noqa: E402
from test_reliability_inputs import make_corpus  # noqa: E402

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def env(tmp_path, samples_dir, monkeypatch):
    """Data root tmp/data (with the bad-file corpus), something outside it, runs in tmp/runs."""
    root, outside = tmp_path / "data", tmp_path / "outside"
    corpus = make_corpus(str(root / "corpus"))
    (outside / "secret" / "cats").mkdir(parents=True)
    (outside / "secret" / "dogs").mkdir(parents=True)
    for cls in ("cats", "dogs"):
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(outside / "secret" / cls / f"{i}.png")
    os.symlink(outside, root / "link_out")
    monkeypatch.setenv("TRANSFERLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(root))
    monkeypatch.setenv("TRANSFERLAB_SAMPLES_DIR", samples_dir)
    registry = JobRegistry()
    monkeypatch.setattr(core.jobs, "REGISTRY", registry)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield {"root": root, "outside": outside, "corpus": corpus, "runs": tmp_path / "runs", "registry": registry}
    for job in list(registry._jobs.values()):
        job.request_stop()
        job.thread.join(120)
    st.cache_data.clear()
    st.cache_resource.clear()


def open_typed(at: AppTest, path: str) -> AppTest:
    at.text_input(key="typed_path").input(path)
    at.button(key="open_typed").click().run()
    assert_clean(at)
    return at


# ---------------------------------------------------------------- nothing is written into a dataset

def tree(root: str) -> dict[str, tuple]:
    """Every entry under root (links not followed): mode, size, modification time in ns."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = os.path.normpath(os.path.join(dirpath, name))
            s = os.lstat(path)
            out[os.path.relpath(path, root)] = (s.st_mode, s.st_size, s.st_mtime_ns)
    return out


def test_a_read_only_dataset_is_never_written(env):
    """chmod a-w on the corpus, then the Dataset and Augment pages and a training on it: the tree
    (names, sizes, modification times) is the same after. Tests run as root, which writes through
    any mode, so the snapshot is the proof, not a permission error."""
    corpus = env["corpus"]
    for dirpath, dirnames, filenames in os.walk(corpus):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o444)
        os.chmod(dirpath, 0o555)
    before = tree(corpus)
    try:
        at = open_typed(open_app(), corpus)
        assert "Skipped files" in [m.label for m in at.metric]
        at.switch_page("app_pages/augment.py").run()
        assert_clean(at)
        assert len(at.image) == 12
        result = Job(tiny_config(corpus, env["runs"], epochs=1)).run()
        assert result and result["test_accuracy"] is not None
        assert tree(corpus) == before
        assert Path(result["run_dir"]).resolve().is_relative_to(env["runs"].resolve())
    finally:
        for dirpath, dirnames, filenames in os.walk(corpus):
            os.chmod(dirpath, 0o755)


# ---------------------------------------------------------------- confinement: ui/folders.py

def test_allowed_folder_refuses_every_way_out(env):
    root, outside = str(env["root"]), str(env["outside"])
    roots = [os.path.realpath(root)]
    os.symlink(os.path.join(root, "link_out"), os.path.join(root, "corpus", "a", "chain"))  # link -> link -> out
    for sneaky in ("..", "/", "/etc", outside, os.path.join(root, ".."), os.path.join(root, "corpus", "..", ".."),
                   os.path.join(root, "link_out"), os.path.join(root, "link_out", "secret"),
                   os.path.join(root, "corpus", "a", "chain"), "~", root + "-sibling", "./" * 3):
        with pytest.raises(folders.FolderNotAllowed, match="outside the folders this server may read"):
            folders.allowed_folder(sneaky, roots)
    for invalid in ("/tmp/\0", root + "\0/corpus"):
        with pytest.raises(folders.FolderNotAllowed, match="not a valid path on this server"):
            folders.allowed_folder(invalid, roots)
    # Inside stays inside, whatever the spelling.
    real_corpus = os.path.realpath(env["corpus"])
    assert folders.allowed_folder(os.path.join(root, "corpus", "a", "..", "."), roots) == real_corpus


# ---------------------------------------------------------------- confinement: the Dataset page

def test_dataset_page_refuses_typed_paths_out_of_the_roots(env):
    at = open_app()
    for typed in ("..", "/etc", "~", "{root}/..", "{root}/corpus/../../outside/secret", "{root}/link_out/secret",
                  "{outside}/secret", "/tmp/\0"):
        open_typed(at, typed.format(root=env["root"], outside=env["outside"]))
        assert at.error and ("outside the folders this server may read" in at.error[0].value
                             or "not a valid path" in at.error[0].value), (typed, [e.value for e in at.error])
        assert "dataset_path" not in at.session_state  # still on the sample
        assert "cats, dogs" not in texts(at)  # nothing of what lies outside is shown


def test_dataset_page_browser_does_not_follow_a_link_out(env):
    at = open_app()
    assert at.session_state["browse_dir"] == os.path.realpath(env["root"])
    assert "link_out" in at.selectbox(key="browse_child").options
    at.selectbox(key="browse_child").set_value("link_out").run()
    at.button(key="browse_down").click().run()
    assert_clean(at)
    assert any("outside the folders this server may read" in e.value for e in at.error)
    assert at.session_state["browse_dir"] == os.path.realpath(env["root"])  # did not move
    assert "secret" not in at.selectbox(key="browse_child").options  # nothing outside is listed
    at.button(key="browse_use").click().run()  # "use this folder" on the root itself: allowed, not usable
    assert_clean(at)
    # and opening the link itself as a dataset is refused too
    at.selectbox(key="browse_child").set_value("link_out").run()
    at.button(key="browse_use").click().run()
    assert any("outside the folders this server may read" in e.value for e in at.error)
    assert at.session_state.get("dataset_path") != os.path.realpath(env["outside"])


def test_recent_list_never_offers_a_folder_out_of_the_roots(env):
    env["runs"].mkdir()
    (env["runs"] / folders.RECENT_FILE).write_text(json.dumps(
        [str(env["outside"] / "secret"), str(env["root"] / "link_out" / "secret"), "/etc", env["corpus"]]))
    at = open_app()
    assert at.selectbox(key="recent_choice").options == [os.path.realpath(env["corpus"])]


# ---------------------------------------------------------------- confinement: run ids

def _fake_run(runs_dir: str, name: str) -> str:
    from tiny_models import tiny_convnet

    run_dir = runs.create_run(runs_dir, {"strategy": "scratch", "base": "scratch", "image_size": 32,
                                        "classes": ["a", "b"]})
    runs.save_model(run_dir, tiny_convnet(32))
    runs.write_status(run_dir, state=runs.FINISHED)
    return run_dir


def test_run_ids_from_the_browser_cannot_leave_the_runs_folder(env, tmp_path):
    """Pages look runs up by id among core.runs.list_runs (the runs folder's own subfolders); a
    forged id from the browser is dropped, never joined to a path."""
    real = _fake_run(str(env["runs"]), "real")
    elsewhere = str(tmp_path / "elsewhere-runs" / "foreign-run")  # a run folder outside the runs folder
    os.rename(_fake_run(str(tmp_path / "elsewhere-runs"), "other"), elsewhere)
    forged = [os.path.relpath(elsewhere, env["runs"]), elsewhere, "..", "../elsewhere-runs"]
    for page, key in (("inspect", "inside_run"), ("visualize", "inside_run")):
        for run_id in forged:
            at = AppTest.from_file(APP, default_timeout=90)
            at.session_state[key] = run_id
            at.run()
            at.switch_page(f"app_pages/{page}.py").run()
            assert_clean(at)
            assert at.session_state[key] == os.path.basename(real), (page, run_id)
    for run_id in forged:
        at = AppTest.from_file(APP, default_timeout=90)
        at.session_state["eval_runs"] = [run_id]
        at.run()
        at.switch_page("app_pages/evaluate.py").run()
        assert_clean(at)
        assert os.path.basename(elsewhere) not in texts(at)
        assert at.multiselect(key="eval_runs").value in ([], [os.path.basename(real)])
    assert [r.run_dir for r in runs.list_runs(str(env["runs"]))] == [real]


# ---------------------------------------------------------------- confinement: the Predict page's folder

def test_predict_page_refuses_folders_out_of_the_roots(env):
    _fake_run(str(env["runs"]), "real")
    at = open_app("predict")
    for typed in ("..", "/etc", "{root}/link_out/secret", "{outside}/secret", "{root}/..", "/tmp/\0"):
        at.text_input(key="predict_folder").input(typed.format(root=env["root"], outside=env["outside"]))
        at.button(key="predict_folder_go").click().run()
        assert_clean(at)
        assert any("outside the folders this server may read" in e.value or "not a valid path" in e.value
                   for e in at.error), (typed, [e.value for e in at.error])
        assert "predict_folder_result" not in at.session_state
    # Inside the roots it reads the folder (the corpus: its bad files become rows with a reason).
    at.text_input(key="predict_folder").input(env["corpus"])
    at.button(key="predict_folder_go").click().run()
    assert_clean(at)
    rows = at.session_state["predict_folder_result"]["rows"]
    assert any(r["error"] for r in rows) and any(r["predicted"] for r in rows)


# ---------------------------------------------------------------- models: Keras' safe mode

def _lambda_run(runs_dir: str) -> str:
    """A run folder whose model.keras holds a Lambda layer: Python bytecode that would run on load."""
    import keras

    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Lambda(lambda t: t * 2.0, name="code")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    run_dir = runs.create_run(runs_dir, {"strategy": "scratch", "base": "scratch", "image_size": 32,
                                        "classes": ["a", "b"]})
    keras.Model(inputs, outputs).save(os.path.join(run_dir, "model.keras"))
    runs.write_status(run_dir, state=runs.FINISHED)
    return run_dir


def test_a_model_file_with_code_in_it_or_damaged_is_refused_with_a_message(env):
    damaged = _fake_run(str(env["runs"]), "damaged")
    Path(damaged, "model.keras").write_bytes(b"PK\3\4 not really a zip")
    with pytest.raises(runs.ModelUnavailable, match="cannot be loaded: the file is damaged"):
        runs.load_model(damaged)
    coded = _lambda_run(str(env["runs"]))  # the newest: the pages choose it first
    with pytest.raises(runs.ModelUnavailable, match="contains Python code .* safe mode never runs"):
        runs.load_model(coded)
    # Every page that loads a model says so instead of showing a traceback.
    for page in ("inspect", "visualize", "predict"):
        at = open_app(page)
        assert any("contains Python code" in e.value for e in at.error), (page, [e.value for e in at.error])
        at.selectbox(key="inside_run").set_value(os.path.basename(damaged)).run()
        assert_clean(at)
        assert any("the file is damaged" in e.value for e in at.error), (page, [e.value for e in at.error])


def test_a_model_file_that_claims_gigabytes_is_refused_before_it_is_read(env):
    """A few kB of zip whose member declares gigabytes: refused from the archive's directory alone,
    without Keras reading the member into memory (it took 1.9 GB before)."""
    import resource
    import zipfile

    bomb = _fake_run(str(env["runs"]), "bomb")
    with zipfile.ZipFile(Path(bomb, "model.keras"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", "{}")
        with z.open("model.weights.h5", "w", force_zip64=True) as member:
            block = bytes(16 * 1024 ** 2)
            for _ in range(96):  # 1.5 GB of zeros: about 1.5 MB on disk
                member.write(block)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(runs.ModelUnavailable, match=r"would unpack to 1\.6 GB from a file of .* MB"):
        runs.load_model(bomb)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, grown_mb
