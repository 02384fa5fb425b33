"""Evaluate: how good the trained runs are, where they go wrong, and how they compare."""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from core.jobs import REGISTRY
from core.runs import Run, list_runs
from ui import cache, charts, inside, results, state, widgets

GALLERY_MAX = 24


def main() -> None:
    widgets.page_intro("Evaluate", (
        "A model is judged on images it never trained on: the test split (or validation, when the "
        "dataset has no test split). The confusion matrix shows which classes it mixes up; choose a cell "
        "to see those very images and how sure the model was. The table lists every run in the shape of "
        "the ladder: from scratch, with augmentation, feature extraction, fine-tuning."))
    runs = list_runs(state.runs_dir(), REGISTRY.active_run_dirs())
    if not runs:
        st.info("No run yet: start one on the Train page.")
        return
    ladder_table(runs)
    chosen = run_picker(runs)
    if not chosen:
        return
    compare_curves(chosen)
    run = detail_picker(chosen)
    test_metrics(run)


def ladder_table(runs: list[Run]) -> None:
    """Every run: strategy, base, image size, epochs, time, validation and test accuracy, state."""
    st.subheader("All runs")
    table = pd.DataFrame([results.ladder_row(r) for r in runs])
    pct = st.column_config.NumberColumn(format="percent")
    st.dataframe(table, hide_index=True, key="ladder",
                 column_config={"validation accuracy": pct, "test accuracy": pct})


def run_picker(runs: list[Run]) -> list[Run]:
    """The runs to look at (not the damaged ones: the table says why); the newest evaluated by default."""
    by_id = {r.id: r for r in runs if not r.damaged}
    if not by_id:
        st.info("Every run is damaged (see the state column above): train a new one on the Train page.")
        return []
    default = next((i for i, r in by_id.items() if r.metrics), next(iter(by_id)))
    chosen = st.multiselect("Runs to look at", list(by_id), default=[default], key="eval_runs",
                            format_func=lambda i: f"{i} ({by_id[i].state})", persist_state="session")
    return [by_id[i] for i in chosen if i in by_id]


def compare_curves(chosen: list[Run]) -> None:
    """Train (dotted) and validation (solid) curves of the chosen runs, overlaid."""
    st.subheader("Curves" if len(chosen) == 1 else f"Curves of {len(chosen)} runs")
    if not any(r.history for r in chosen):
        st.caption("No epoch finished yet in these runs.")
        return
    st.plotly_chart(charts.history_curves(chosen), key="history_curves")


def detail_picker(chosen: list[Run]) -> Run:
    """Which of the chosen runs the test results below are about."""
    if len(chosen) == 1:
        return chosen[0]
    ids = [r.id for r in chosen]
    pick = st.selectbox("Test results of", ids, key="eval_detail")
    return chosen[ids.index(pick)]


def test_metrics(run: Run) -> None:
    """Accuracy and loss, per-class precision and recall, the confusion matrix and its images."""
    metrics = run.metrics
    st.subheader(f"Test results — {run.id}")
    if not metrics:
        why = {"running": "it is still training", "failed": "it failed: " + str(run.status.get("error", "")),
               "interrupted": "the server stopped while it trained"}.get(run.state, "it has no evaluation")
        st.info(f"No test results for this run: {why}.")
        return
    where = metrics.get("evaluated_on", "test")
    cols = st.columns(3)
    cols[0].metric(f"Accuracy ({where})", f"{metrics['accuracy']:.1%}")
    cols[1].metric(f"Loss ({where})", f"{metrics['loss']:.3f}")
    cols[2].metric("Images evaluated", metrics["count"])
    if where == "validation":
        st.caption("This dataset has no test split: the numbers are on the validation images, which also "
                   "chose the best epoch, so they are a little optimistic.")
    cell = cell_picker(run, metrics)
    left, right = st.columns(2, gap="large")
    with left:
        per_class_table(metrics)
    with right:
        confusion(metrics, cell)
    if cell is not None:
        cell_gallery(run, metrics, cell)


def per_class_table(metrics: dict) -> None:
    """Precision (how often a prediction of the class is right) and recall (how much of it is found)."""
    rows = [{"class": c, **v} for c, v in metrics["per_class"].items()]
    pct = st.column_config.NumberColumn(format="percent")
    st.markdown("**Per class**")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="per_class",
                 column_config={"precision": pct, "recall": pct, "f1": st.column_config.NumberColumn(format="%.3f")})


def cell_picker(run: Run, metrics: dict) -> tuple[int, int] | None:
    """The confusion-matrix cell whose images are shown: mistakes first, the biggest first."""
    cm, classes = metrics["confusion_matrix"], metrics["classes"]
    cells = results.confusion_cells(cm, classes)
    # Options are indices: a tuple as an option would be read as a list of defaults.
    pick = st.pills("Show the images of a cell (true → predicted)", range(len(cells)), key=f"eval_cell_{run.id}",
                    default=0 if cells else None, format_func=lambda i: results.cell_label(cells[i], cm, classes))
    return cells[pick] if pick is not None else None


def confusion(metrics: dict, cell: tuple[int, int] | None) -> None:
    """Rows: the true class; columns: the predicted class; the chosen cell outlined."""
    st.markdown("**Confusion matrix**")
    st.plotly_chart(charts.confusion_matrix(metrics["confusion_matrix"], metrics["classes"], cell), key="confusion")


def cell_gallery(run: Run, metrics: dict, cell: tuple[int, int]) -> None:
    """The images of one cell, most confident first, with the predicted probabilities."""
    classes = metrics["classes"]
    chosen = results.in_cell(results.predictions(run), cell)
    t, p = cell
    st.markdown(f"**True {widgets.plain(classes[t])}, predicted {widgets.plain(classes[p])}** — {len(chosen)} images"
                + (f" (the {GALLERY_MAX} most confident shown)" if len(chosen) > GALLERY_MAX else ""))
    shown = chosen[:GALLERY_MAX]
    cam = run.has_model and st.toggle("Grad-CAM: where the model looked", key="eval_gradcam",
                                         help="Each image with the heatmap of its predicted class (see Inspect).")
    problem = cam and inside.model_problem(run)
    if problem:
        st.error(problem)
        cam = False
    widgets.image_grid([inside.grad_cam_image(run, r["path"]) if cam else
                        cache.thumbnail(r["path"]) if os.path.exists(r["path"]) else None for r in shown],
                       [results.probability_caption(r, classes) for r in shown], columns=6)
    if run.has_model and shown:
        inside.inspect_link(run, [r["path"] for r in shown])


main()
