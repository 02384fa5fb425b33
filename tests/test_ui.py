"""The dashboard's pure helpers (ui/): folder rules, run tables, chart data. No Streamlit run."""
from __future__ import annotations

import os

import pytest

from core.augment import AugmentConfig
from core.runs import Run
from ui import cache, charts, folders, i18n, results, widgets


@pytest.fixture
def roots(tmp_path, monkeypatch):
    inside, outside = tmp_path / "data", tmp_path / "elsewhere"
    (inside / "set" / "cats").mkdir(parents=True)
    outside.mkdir()
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(inside))
    monkeypatch.setenv("TRANSFERLAB_SAMPLES_DIR", str(tmp_path / "samples"))
    return inside, outside


def test_data_roots_come_from_the_environment_plus_the_samples(roots, tmp_path):
    inside, _ = roots
    assert folders.data_roots() == [str(inside), str(tmp_path / "samples")]


def test_default_root_is_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("TRANSFERLAB_DATA_ROOTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert folders.data_roots()[0] == os.path.realpath(tmp_path)


def test_paths_outside_the_roots_are_refused_even_through_links(roots):
    inside, outside = roots
    assert folders.allowed_folder(str(inside / "set")) == str(inside / "set")
    for sneaky in (str(outside), str(inside / ".." / "elsewhere"), "/"):
        with pytest.raises(folders.FolderNotAllowed, match="outside the folders"):
            folders.allowed_folder(sneaky)
    os.symlink(outside, inside / "link")
    with pytest.raises(folders.FolderNotAllowed):
        folders.allowed_folder(str(inside / "link"))
    with pytest.raises(folders.FolderNotAllowed, match="Type the path"):
        folders.allowed_folder("  ")
    # A sibling whose name starts like a root is not inside it.
    (inside.parent / "data2").mkdir()
    with pytest.raises(folders.FolderNotAllowed):
        folders.allowed_folder(str(inside.parent / "data2"))


def test_a_refused_folder_is_a_sentence_the_catalog_can_translate(roots):
    """Issue 13: the refusal is one catalog sentence with the folder and the roots as placeholders."""
    _, outside = roots
    with pytest.raises(folders.FolderNotAllowed) as refused:
        folders.allowed_folder(str(outside))
    assert refused.value.message.msgid.startswith("{folder} is outside the folders this server may read")
    assert refused.value.message.params["folder"] == str(outside)
    assert i18n.error_text(refused.value) == str(refused.value)  # English: the sentence as it was


def test_spinners_of_cached_loaders_speak_the_session_language(monkeypatch):
    """Issue 13: a cache decorator's spinner text is fixed at import; it is translated when shown."""
    from streamlit.string_util import clean_text  # what st.spinner does with its text

    monkeypatch.setattr(i18n, "language", lambda: "ja")
    assert clean_text(cache.Translated(i18n.N_("Augment"))) == "データ拡張"


def test_browsing_never_climbs_above_a_root(roots):
    inside, _ = roots
    assert folders.parent_within_roots(str(inside)) is None
    assert folders.parent_within_roots(str(inside / "set")) == str(inside)
    assert folders.subfolders(str(inside / "set")) == ["cats"]


def test_recent_folders_newest_first_and_only_allowed_ones(roots, tmp_path):
    inside, outside = roots
    runs = str(tmp_path / "runs")
    folders.remember_folder(str(inside), runs)
    folders.remember_folder(str(inside / "set"), runs)
    folders.remember_folder(str(outside), runs)  # e.g. remembered under other roots
    folders.remember_folder(str(inside), runs)
    assert folders.recent_folders(runs) == [str(inside), str(inside / "set")]


@pytest.mark.parametrize("content", ["5", "true", '{"a": 1}', '"/data"', "[5, null]", "not json"])
def test_a_recent_folders_file_of_the_wrong_shape_reads_as_empty_and_open_still_works(roots, tmp_path, content):
    inside, _ = roots
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / folders.RECENT_FILE).write_text(content)
    assert folders.recent_folders(str(runs)) == []
    folders.remember_folder(str(inside), str(runs))  # what Open does: it used to raise here
    assert folders.recent_folders(str(runs)) == [str(inside)]


def run(history=(), state="finished", result=None, metrics=None, config=None):
    return Run(id="r1", run_dir="/nowhere", state=state, history=list(history), metrics=metrics, has_model=False,
               config=config or {"strategy": "feature-extraction", "base": "mobilenet_v2", "image_size": 160,
                                 "augment": True},
               status={"started": 100.0, "updated": 130.0, **({"result": result} if result else {})})


def test_ladder_row_of_a_finished_and_of_a_running_run():
    done = results.ladder_row(run(result={"epochs_run": 5, "seconds": 12.34, "val_accuracy": 0.9},
                                  metrics={"accuracy": 0.88, "evaluated_on": "test"}))
    assert done == {"run": "r1", "dataset": None, "recipe": None, "published": None, "difference": None, "strategy": "feature extraction + augmentation", "base": "mobilenet_v2",
                    "image size": 160, "epochs": 5, "time (s)": 12.3, "validation accuracy": 0.9,
                    "test accuracy": 0.88, "evaluated on": "test", "state": "finished"}
    history = [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7},
               {"epoch": 3, "val_accuracy": None, "partial": True}]
    running = results.ladder_row(run(history, state="running"))
    assert (running["epochs"], running["validation accuracy"], running["time (s)"]) == (2, 0.7, 30.0)
    assert running["test accuracy"] is None


def test_every_strategy_has_a_label_for_the_runs_table():
    from core.jobs import STRATEGIES, STRATEGY_LABELS

    assert set(results.STRATEGY_LABELS) == set(STRATEGIES) == set(STRATEGY_LABELS)
    assert results.strategy_label("fine-tune", augment=True) == "fine-tuning + augmentation"
    assert results.strategy_label(None) == "?"


def test_confusion_cells_put_mistakes_first():
    cm = [[5, 0, 2], [1, 4, 0], [0, 0, 6]]
    cells = results.confusion_cells(cm, ["a", "b", "c"])
    assert cells == [(0, 2), (1, 0), (2, 2), (0, 0), (1, 1)]
    assert results.cell_label((0, 2), cm, ["a", "b", "c"]) == "✗ a → c (2)"
    preds = [{"path": "x", "true": 0, "pred": 2, "probs": [0.2, 0.1, 0.7]},
             {"path": "y", "true": 0, "pred": 2, "probs": [0.1, 0.0, 0.9]},
             {"path": "z", "true": 0, "pred": 0, "probs": [0.9, 0.1, 0.0]}]
    assert [r["path"] for r in results.in_cell(preds, (0, 2))] == ["y", "x"]
    assert results.probability_caption(preds[0], ["a", "b", "c"]) == "c 0.70 · a 0.20 · b 0.10"


def test_batches_are_placed_in_epochs():
    batches = [{"phase": "head", "epoch": e, "batch": b} for e in (1, 2) for b in (1, 2, 3, 4)]
    batches += [{"phase": "head", "epoch": 3, "batch": 1}]
    assert charts.batch_positions(batches) == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]


def test_live_curves_have_train_batches_and_validation_epochs():
    batches = [{"phase": "train", "epoch": 1, "batch": b, "loss": 1.0 / b, "accuracy": 0.1 * b} for b in (1, 2)]
    epochs = [{"phase": "train", "epoch": 1, "loss": 0.7, "accuracy": 0.2, "val_loss": 0.8, "val_accuracy": 0.3}]
    fig = charts.job_curves(batches, epochs)
    names = [t.name for t in fig.data]
    assert names.count("train (per batch)") == 2 and names.count("validation") == 2
    assert list(fig.data[0].y) == [1.0, 0.5]


def test_augment_summary_and_durations():
    assert widgets.describe_augment(AugmentConfig()) == "no transformation (identity)"
    assert widgets.describe_augment(AugmentConfig.classic()) == \
        "rotation ±40°, shift 0.2/0.2, shear 0.2, zoom 0.2, horizontal flip"
    assert widgets.format_seconds(75.4) == "1 min 15 s"
    assert widgets.format_seconds(None) == "—"


def test_plain_shows_names_from_files_as_they_are():
    """Issue 18.7: names reach Markdown escaped (no image, link, emphasis, icon, list), readable as they are."""
    assert widgets.plain("![p](http://x/y.png)") == "!\\[p\\](http\\://x/y.png)"
    assert widgets.plain("a*b*") == "a\\*b\\*"
    assert widgets.plain(":red[x] :material/home:") == "\\:red\\[x\\] \\:material/home:"
    assert widgets.plain("1. www.x.org\n# title") == "1\\. www\\.x.org \\# title"
    assert widgets.plain("_x_ and snake_case.png: 40%") == "\\_x\\_ and snake_case.png: 40%"
    assert widgets.plain(os.fsdecode(b"caf\xff")) == "caf\ufffd"


def test_the_accuracy_axis_zooms_to_the_data():
    low, high = charts.accuracy_range([0.975, 0.99, 0.981])
    assert 0.95 < low < 0.975 and 0.99 < high <= 1.01  # 97–99 % curves fill the axis
    assert charts.accuracy_range([]) == [0, 1.02]
    assert charts.accuracy_range([0.0, 1.0])[0] == 0.0 and charts.accuracy_range([0.0, 1.0])[1] <= 1.01


def test_smoothing_is_the_books_moving_average_and_keeps_gaps():
    smoothed = charts.smooth([1.0, 0.0, None, 0.0], 0.8)
    assert smoothed[2] is None and [smoothed[i] for i in (0, 1, 3)] == pytest.approx([1.0, 0.8, 0.64])
    assert charts.smooth([0.3, 0.9], 0.0) == [0.3, 0.9]


def test_a_click_on_a_confusion_matrix_cell_names_that_cell():
    fig = charts.confusion_matrix([[5, 1], [2, 7]], ["cat", "dog"])
    markers = fig.data[1]
    assert [tuple(c) for c in markers.customdata] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    click = {"selection": {"points": [{"x": 1, "y": 0, "customdata": [0, 1]}]}}
    assert charts.cell_of_selection(click) == (0, 1)
    assert charts.cell_of_selection({"selection": {"points": []}}) is None
    assert charts.cell_of_selection(None) is None


def test_the_runs_table_reads_without_none_and_in_one_percent_format():
    failed = results.ladder_row(run(state="failed", config={"strategy": "scratch", "base": "scratch",
                                                            "data": "/data/cats_and_dogs_small"}))
    shown = results.shown_row(failed)
    assert None not in shown.values() and "None" not in map(str, shown.values())
    assert shown["dataset"] == "cats_and_dogs_small" and shown["test accuracy"] == results.MISSING
    done = results.shown_row(results.ladder_row(run(result={"val_accuracy": 0.98},
                                                    metrics={"accuracy": 0.978, "evaluated_on": "test"})))
    assert (done["validation accuracy"], done["test accuracy"]) == ("98.0%", "97.8%")
    assert list(results.LADDER_HEADERS)[:4] == ["run", "dataset", "test accuracy", "validation accuracy"]


def test_a_run_of_a_recipe_shows_the_published_figure_and_the_difference():
    from core.recipes import RECIPES

    name, recipe = next(iter(RECIPES.items()))
    row = results.ladder_row(run(metrics={"accuracy": recipe.accuracy + 0.016, "evaluated_on": "test"},
                                 config={"strategy": "scratch", "base": "scratch", "recipe": name}))
    assert (row["recipe"], row["published"], row["difference"]) == (recipe.title, recipe.accuracy, "+1.6")
    unknown = results.ladder_row(run(config={"strategy": "scratch", "recipe": "gone-recipe"}))
    assert (unknown["recipe"], unknown["published"], unknown["difference"]) == ("gone-recipe", None, None)
