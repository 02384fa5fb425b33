"""The Evaluate page's runs table: a run renamed there keeps its name everywhere; a run deleted
there is gone after one confirmation; a training run cannot be deleted."""
from __future__ import annotations

import os

import pytest

from core import runs
from tiny_runs import finished_run

from apptest_helpers import assert_clean, isolate_app, open_app, texts  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def two_runs(tmp_path, samples_dir, monkeypatch) -> list[str]:
    folder = tmp_path / "runs"
    made = [finished_run(str(folder)), finished_run(str(folder))]
    isolate_app(monkeypatch, folder, tmp_path, samples_dir)
    return made


def table(at) -> dict:
    return at.dataframe[0].value  # the table of all runs


def test_a_renamed_run_shows_its_name_in_the_table_and_the_pickers(two_runs):
    older = os.path.basename(two_runs[0])
    at = open_app("evaluate")
    at.selectbox(key="manage_run").set_value(older).run()
    at.text_input(key=f"run_label_{older}").input("first try, 150 px")
    at.button(key="FormSubmitter:rename_run-Rename").click().run()
    assert_clean(at)
    assert "first try, 150 px" in list(table(at)["run"])
    # The accuracies come right after the run and its dataset: on screen at 1280 px.
    assert list(table(at).columns)[:4] == ["run", "dataset", "test accuracy", "validation accuracy"]
    assert runs.read_run(two_runs[0]).label == "first try, 150 px"
    assert "first try, 150 px" in at.selectbox(key="manage_run").format_func(older)


def test_deleting_a_run_asks_first_then_removes_it(two_runs):
    older, newer = (os.path.basename(d) for d in two_runs)
    at = open_app("evaluate")
    at.selectbox(key="manage_run").set_value(older).run()
    at.button(key="delete_run").click().run()
    assert os.path.isdir(two_runs[0])  # nothing deleted by the first click
    assert "cannot be undone" in texts(at)
    at.button(key="delete_run_cancel").click().run()
    assert os.path.isdir(two_runs[0]) and "cannot be undone" not in texts(at)
    at.button(key="delete_run").click().run()
    at.button(key="delete_run_confirm").click().run()
    assert_clean(at)
    assert not os.path.exists(two_runs[0])
    assert list(table(at)["run"]) == [newer]


def test_a_run_still_training_cannot_be_deleted(two_runs):
    newer = os.path.basename(two_runs[1])
    # Another live process of this machine trains it (the parent of the test process will do).
    runs.write_status(two_runs[1], state=runs.RUNNING, pid=os.getppid())
    at = open_app("evaluate")
    at.selectbox(key="manage_run").set_value(newer).run()
    assert at.button(key="delete_run").disabled


def test_the_models_layers_are_listed_with_their_output_shapes_on_request(tiny_run, tmp_path, samples_dir,
                                                                          monkeypatch):
    import shutil

    folder = tmp_path / "runs"
    shutil.copytree(tiny_run["run_dir"], folder / os.path.basename(tiny_run["run_dir"]))
    isolate_app(monkeypatch, folder, tmp_path, samples_dir)
    at = open_app("evaluate")
    assert not any("output shape" in list(d.value.columns) for d in at.dataframe)  # not loaded until asked
    at.toggle(key="eval_summary").set_value(True).run()
    assert_clean(at)
    layers = next(d.value for d in at.dataframe if "output shape" in d.value.columns)
    model = tiny_run["model"]
    assert list(layers["layer"]) == [layer.name for layer in model.layers]
    assert layers["output shape"].iloc[-1] == f"(None, {len(tiny_run['classes'])})"
    assert layers["parameters"].sum() == model.count_params()
    assert f"{model.count_params():,} parameters" in texts(at)
