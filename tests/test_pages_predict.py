"""The Predict page, driven with AppTest: uploads, a folder to CSV (confined to the data roots),
and the export buttons, on one tiny trained run (tests/tiny_runs.py) copied into each test's runs folder.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import streamlit as st

import core.jobs
from core.predict import Predictor, predict_folder
from core.jobs import JobRegistry

from apptest_helpers import assert_clean, isolate_app, open_app, texts  # noqa: E402

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def env(tmp_path, tiny_run, samples_dir, monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(Path(tiny_run["run_dir"]).parent, runs)
    data_root = tmp_path / "data"
    data_root.mkdir()
    isolate_app(monkeypatch, runs, data_root, samples_dir)
    run_dir = next(runs.iterdir())
    yield {"run_dir": str(run_dir), "run_id": run_dir.name, "data": data_root, "outside": tmp_path / "outside",
           "classes": tiny_run["classes"], "paths": tiny_run["paths"]}
    st.cache_data.clear()
    st.cache_resource.clear()


def image_captions(at) -> list[str]:
    return [c for image in at.image for c in image.captions]


def test_predict_is_after_evaluate_and_asks_for_a_run_first(tmp_path, samples_dir, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("TRANSFERLAB_SAMPLES_DIR", samples_dir)
    monkeypatch.setattr(core.jobs, "REGISTRY", JobRegistry())
    at = open_app("predict")
    assert at.title[0].value == "Predict"
    assert "No trained model yet" in at.info[0].value


def test_pages_list_predict_after_evaluate(tmp_path, samples_dir, monkeypatch):
    """The navigation a run of app.py hands to st.navigation (the sidebar's list, in its order)."""
    monkeypatch.setenv("TRANSFERLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("TRANSFERLAB_SAMPLES_DIR", samples_dir)
    monkeypatch.setattr(core.jobs, "REGISTRY", JobRegistry())
    navigations = []
    navigation = st.navigation

    def recorded(pages, *args, **kwargs):
        navigations.append(list(pages))
        return navigation(pages, *args, **kwargs)

    monkeypatch.setattr(st, "navigation", recorded)
    open_app()
    pages = [(page.url_path, page.title) for page in navigations[-1]]
    assert pages.index(("predict", "Predict")) == pages.index(("evaluate", "Evaluate")) + 1


def test_uploads_get_a_prediction_each_and_bad_files_a_reason(env):
    at = open_app("predict")
    assert at.selectbox(key="inside_run").value == env["run_id"]
    good = [(os.path.basename(p), open(p, "rb").read(), "image/png") for p in env["paths"][:3]]
    at.file_uploader(key="predict_uploads").set_value(good + [("notes.png", b"not an image", "image/png")]).run()
    assert_clean(at)
    assert [e.value for e in at.error] == ["notes.png cannot be used: not an image (the file's content is not a "
                                           "known image format)."]
    want = Predictor.from_run(env["run_dir"])
    from core.predict import predict_files

    expected = predict_files(want, [(n, c) for n, c, _ in good])
    captions = image_captions(at)
    assert captions == [f"{r['path']}: {r['predicted']} {r['confidence']:.0%}" for r in expected]
    assert len(at.dataframe) == 1
    table = at.dataframe[0].value
    assert list(table["path"]) == [n for n, _, _ in good] + ["notes.png"]
    assert list(table["predicted"])[:3] == [r["predicted"] for r in expected]
    assert {f"prob_{c}" for c in env["classes"]} <= set(table.columns) and "error" in table.columns


def test_a_folder_outside_the_data_roots_is_refused(env):
    env["outside"].mkdir()
    at = open_app("predict")
    at.text_input(key="predict_folder").input(str(env["outside"])).run()
    at.button(key="predict_folder_go").click().run()
    assert_clean(at)
    assert "is outside the folders this server may read" in at.error[0].value
    assert not at.get("download_button") or all(b.proto.label != "Download the CSV" for b in at.get("download_button"))
    at.text_input(key="predict_folder").input(str(env["data"] / "missing")).run()
    at.button(key="predict_folder_go").click().run()
    assert "Folder not found" in at.error[0].value


def test_a_folder_becomes_a_table_and_a_csv(env):
    folder = env["data"] / "new"
    (folder / "sub").mkdir(parents=True)
    for i, p in enumerate(env["paths"][:4]):
        shutil.copy(p, folder / ("sub" if i % 2 else "") / os.path.basename(p))
    (folder / "empty.jpg").write_bytes(b"")
    at = open_app("predict")
    at.text_input(key="predict_folder").input(str(folder)).run()
    at.button(key="predict_folder_go").click().run()
    assert_clean(at)
    rows = at.session_state["predict_folder_result"]["rows"]
    expected = predict_folder(Predictor.from_run(env["run_dir"]), str(folder))
    assert [(r["path"], r["predicted"], r["error"]) for r in rows] == \
        [(r["path"], r["predicted"], r["error"]) for r in expected]
    assert len(rows) == 5 and sum(bool(r["error"]) for r in rows) == 1
    assert "5 files" in texts(at) and "1 could not be used" in texts(at)
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 5
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download the CSV" in labels
    assert not [f for f in os.listdir(folder) if f.endswith(".csv")]  # nothing written into the folder


def test_export_tflite_int8_and_savedmodel_from_the_page(env):
    at = open_app("predict")
    assert at.checkbox(key="predict_export_int8").proto.disabled  # keras is the default format: no int8
    at.selectbox(key="predict_export_format").set_value("tflite").run()
    at.checkbox(key="predict_export_int8").check().run()
    at.button(key="predict_export_go").click().run()
    assert_clean(at)
    path = os.path.join(env["run_dir"], "export", "tflite-int8", "model.tflite")
    assert os.path.getsize(path) > 0 and os.path.exists(os.path.join(os.path.dirname(path), "export.json"))
    assert "Exported to" in at.success[0].value
    labels = [b.proto.label for b in at.get("download_button")]
    assert f"Download {env['run_id']}-int8.tflite" in labels and "Download export.json" in labels
    at.selectbox(key="predict_export_format").set_value("savedmodel").run()
    at.button(key="predict_export_go").click().run()
    assert_clean(at)
    assert os.path.isdir(os.path.join(env["run_dir"], "export", "savedmodel", "saved_model"))
    assert "Download the SavedModel (zip)" in [b.proto.label for b in at.get("download_button")]


def test_export_after_the_chosen_run_was_deleted_refuses_instead_of_exporting_another(env):
    older = Path(env["run_dir"]).parent / "20000101-000000-scratch-scratch"
    shutil.copytree(env["run_dir"], older)
    at = open_app("predict")
    at.selectbox(key="inside_run").set_value(older.name).run()
    assert_clean(at)
    shutil.rmtree(older)  # deleted (another tab, a shell) while the page shows it
    at.button(key="predict_export_go").click().run()
    assert_clean(at)
    assert [e.value for e in at.error] == [
        f"Run {older.name} no longer exists (it was deleted), so nothing was exported. Choose the run to "
        "export above and click Export again."]
    assert not os.path.exists(os.path.join(env["run_dir"], "export"))  # the other run was not exported
    assert not at.success
