"""A run with a damaged file beside a good one: the sidebar, Evaluate, Inspect and Predict show
"damaged: <why>" for it, keep working for the good one, and never offer the damaged run's model.

Driven with AppTest on one tiny trained run (tests/tiny_runs.py) given a history, metrics and
predictions; each damage case of issue 18 part 3 (tests/run_damage.py) is applied to a newer copy.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import streamlit as st

from core import runs
from run_damage import DAMAGE, ISSUE_CASES

from apptest_helpers import assert_clean, isolate_app, open_app, texts  # noqa: E402

pytestmark = pytest.mark.timeout(300)
GOOD, BAD = "20260101-000000-scratch-scratch", "20270101-000000-scratch-scratch"  # BAD is the newest


@pytest.fixture(scope="module")
def evaluated(tiny_run) -> str:
    """The tiny run with one epoch of history, its metrics and its predictions, as training leaves them."""
    d, labels, classes = tiny_run["run_dir"], tiny_run["labels"], tiny_run["classes"]
    probs = tiny_run["model"].predict(tiny_run["images"].astype(np.float32), verbose=0)
    pred = probs.argmax(axis=1)
    n = len(classes)
    runs.append_history(d, {"epoch": 1, "phase": "head", "loss": 0.5, "accuracy": 0.8, "val_loss": 0.5,
                            "val_accuracy": 0.8, "partial": False})
    runs.write_metrics(d, {"accuracy": float((pred == labels).mean()), "loss": 0.5, "count": len(labels),
                           "classes": classes, "evaluated_on": "test",
                           "confusion_matrix": [[int(((labels == t) & (pred == p)).sum()) for p in range(n)]
                                                for t in range(n)],
                           "per_class": {c: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
                                         for c in classes}})
    runs.write_predictions(d, [{"path": path, "true": int(t), "pred": int(k), "probs": [float(x) for x in p]}
                               for path, t, k, p in zip(tiny_run["paths"], labels, pred, probs)])
    return d


@pytest.fixture
def damaged(request, evaluated, tmp_path, samples_dir, monkeypatch):
    """A runs folder: the good run, and a newer copy of it damaged as the case says."""
    folder = tmp_path / "runs"
    shutil.copytree(evaluated, folder / GOOD)
    shutil.copytree(evaluated, folder / BAD)
    damage, why = DAMAGE[request.param]
    damage(str(folder / BAD))
    isolate_app(monkeypatch, folder, tmp_path, samples_dir)
    yield why
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.mark.parametrize("damaged", ISSUE_CASES, indirect=True)
def test_evaluate_inspect_and_predict_work_beside_a_damaged_run(damaged):
    why = damaged
    at = open_app("evaluate")  # fails on any exception box, the sidebar's included
    assert f"{BAD}: " in texts(at) and why in texts(at)  # the sidebar's last run: damaged, and why
    ladder = at.dataframe[0].value  # the table of all runs
    states = dict(zip(ladder["run"], ladder["state"]))
    assert states[GOOD] == "finished" and states[BAD].startswith("damaged: ") and why in states[BAD]
    assert at.multiselect(key="eval_runs").value == [GOOD]
    assert BAD not in at.multiselect(key="eval_runs").options
    assert f"Test results — {GOOD}" in texts(at)
    for page in ("inspect", "predict"):
        at.switch_page(f"app_pages/{page}.py").run()
        assert_clean(at)
        picker = at.selectbox(key="inside_run")
        assert picker.value == GOOD and BAD not in picker.options  # never offered as a model
        assert any(c.value.startswith(f"Not offered: run {BAD} is damaged: ") and why in c.value for c in at.caption)
