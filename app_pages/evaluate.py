"""Evaluate: how good the trained runs are, where they go wrong, and how they compare."""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from core.jobs import REGISTRY
from core.jobs import is_admin
from core.runs import LABEL_MAX, Run, RunInUse, RunNotYours, RunWriteError, delete_run, list_runs, set_label
from ui import cache, charts, i18n, inside, results, state, widgets
from ui.i18n import N_, fmt_int, fmt_num, fmt_pct, t, tm

GALLERY_MAX = 24
LADDER_BARS = 12  # the newest evaluated runs in the ladder chart
SMOOTHING = 0.8   # the book's smooth_curve factor
# Why a run has no test results, by its state; any other state: NO_RESULTS[None].
NO_RESULTS = {"running": N_("No test results for this run: it is still training."),
              "interrupted": N_("No test results for this run: the server stopped while it trained."),
              None: N_("No test results for this run: it has no evaluation.")}
ACCURACY_ON = {"test": N_("Accuracy (test)"), "validation": N_("Accuracy (validation)")}
LOSS_ON = {"test": N_("Loss (test)"), "validation": N_("Loss (validation)")}
SUMMARY_HEADERS = {"layer": N_("layer"), "type": N_("type"), "output shape": N_("output shape"),
                   "parameters": N_("parameters"), "trains": N_("trains")}
PER_CLASS_HEADERS = {"class": N_("class"), "precision": N_("precision"), "recall": N_("recall"), "f1": N_("f1"),
                     "support": N_("support")}


def main() -> None:
    widgets.page_intro(t("Evaluate"), t(
        "A model is judged on images it never trained on: the test split (or validation, when the "
        "dataset has no test split). The confusion matrix shows which classes it mixes up; choose a cell "
        "to see those very images and how sure the model was. The table lists every run in the shape of "
        "the ladder: from scratch, with augmentation, feature extraction, fine-tuning."), page="evaluate")
    runs = list_runs(state.runs_dir(), REGISTRY.active_run_dirs())
    if not runs:
        st.info(t("No run yet: start one on the Train page."))
        return
    ladder_table(runs)
    chosen = run_picker(runs)
    if not chosen:
        return
    compare_curves(chosen)
    run = detail_picker(chosen)
    if run.has_model:
        inside.warm(inside.model_ref(run))  # Grad-CAM here or on Inspect next will not wait for tracing
    test_metrics(run)
    model_summary(run)


def ladder_table(runs: list[Run]) -> None:
    """Every run: its dataset, test and validation accuracy, strategy, base, size, epochs, time, state."""
    st.subheader(t("All runs"))
    table = pd.DataFrame([results.shown_row(results.ladder_row(r)) for r in runs], columns=list(results.LADDER_HEADERS))
    st.dataframe(table, hide_index=True, key="ladder", column_config=headers(results.LADDER_HEADERS))
    ladder_chart(runs)
    manage_runs(runs)


def ladder_chart(runs: list[Run]) -> None:
    """The evaluated runs as bars of their test accuracy, oldest first, like the rungs of a ladder."""
    evaluated = [r for r in reversed(runs) if r.metrics][-LADDER_BARS:]
    if len(evaluated) < 2 and not any(r.config.get("recipe") for r in evaluated):
        return
    with st.expander(t("Ladder: test accuracy of each run"), expanded=False):
        st.plotly_chart(charts.ladder([ladder_bar(r) for r in evaluated]), key="ladder_chart")
        st.caption(t("Bars: our test accuracy. A red line beside a bar: the figure the run's recipe published."))


def ladder_bar(run: Run) -> dict:
    recipe = results.recipe_of(run.config.get("recipe"))
    return {"label": results.short_label(run), "ours": run.metrics["accuracy"],
            "published": recipe.accuracy if recipe else None}


def manage_runs(runs: list[Run]) -> None:
    """Rename a run (the name shows in the table and the legends) or delete it, after a confirmation.
    A run that is still training cannot be deleted."""
    with st.expander(t("Rename or delete a run"), icon=":material/edit:"):
        by_id = {r.id: r for r in runs}
        run_id = st.selectbox(t("Run"), list(by_id), key="manage_run",
                              format_func=lambda i: by_id[i].name if by_id[i].label is None
                              else f"{by_id[i].name} ({i})")
        run = by_id[run_id]
        owner = checked_owner()
        if owner is not None and run.status.get("owner") not in (None, owner):
            st.caption(t("Started by someone else: only they (or the teacher's admin token) can rename or delete it."))
            return
        with st.form("rename_run", border=False):
            name = st.text_input(t("Name"), value=run.label or "", max_chars=LABEL_MAX, key=f"run_label_{run.id}",
                                 placeholder=run.id, help=t("Leave empty to name the run by its folder again."))
            if st.form_submit_button(t("Rename"), icon=":material/edit:"):
                try:
                    set_label(run.run_dir, name, owner)
                except (RunNotYours, RunWriteError) as e:
                    st.error(i18n.error_text(e))
                else:
                    st.rerun()
        delete_run_button(run)


def checked_owner() -> str | None:
    """The owner whose runs this browser may change; None (any run) for the teacher's admin token."""
    owner = state.owner_id()
    return None if is_admin(owner) else owner


def delete_run_button(run: Run) -> None:
    """Delete…, then a second button that names what goes: a click by mistake deletes nothing."""
    if run.state in ("running", "queued"):
        st.button(t("Delete…"), key="delete_run", disabled=True, icon=":material/delete:",
                  help=t("This run is still training or waiting in the queue: stop or cancel it on the Train page "
                         "first."))
        return
    asking = st.session_state.get("delete_asked") == run.id
    if not asking:
        if st.button(t("Delete…"), key="delete_run", icon=":material/delete:"):
            st.session_state["delete_asked"] = run.id
            st.rerun()
        return
    st.warning(t("Delete run {run} and all its files (model, curves, predictions)? This cannot be undone.",
                 run=widgets.plain(run.name)))
    yes, no = st.columns(2)
    if yes.button(t("Delete for good"), key="delete_run_confirm", type="primary", icon=":material/delete_forever:"):
        st.session_state.pop("delete_asked", None)
        try:
            delete_run(run.run_dir, REGISTRY.active_run_dirs(), checked_owner())
        except (RunInUse, RunNotYours, RunWriteError) as e:
            st.error(i18n.error_text(e))
            return
        st.toast(t("Run {run} deleted.", run=run.name))
        st.rerun()
    if no.button(t("Keep it"), key="delete_run_cancel"):
        st.session_state.pop("delete_asked", None)
        st.rerun()


def headers(labels: dict[str, str], percent=(), decimals: dict[str, int] | None = None) -> dict:
    """Column configs that show a table's columns under their translated headers (the table keeps
    its own column names): some as percentages, some with a fixed number of decimals."""
    decimals = decimals or {}

    def column(key: str, label: str):
        if key in percent:
            return st.column_config.NumberColumn(label, format="percent")
        if key in decimals:
            return st.column_config.NumberColumn(label, format=f"%.{decimals[key]}f")
        return st.column_config.Column(label)

    return {key: column(key, t(label)) for key, label in labels.items()}


def run_picker(runs: list[Run]) -> list[Run]:
    """The runs to look at (not the damaged ones: the table says why); the newest evaluated by default."""
    by_id = {r.id: r for r in runs if not r.damaged}
    if not by_id:
        st.info(t("Every run is damaged (see the state column above): train a new one on the Train page."))
        return []
    looked = state.run_looked_at()
    default = looked if looked in by_id else next((i for i, r in by_id.items() if r.metrics), next(iter(by_id)))
    chosen = st.multiselect(t("Runs to look at"), list(by_id), default=[default], key="eval_runs",
                            format_func=lambda i: t("{run} ({state})", run=by_id[i].name, state=t(by_id[i].state)),
                            persist_state="session")
    return [by_id[i] for i in chosen if i in by_id]


def compare_curves(chosen: list[Run]) -> None:
    """Train (dotted) and validation (solid) curves of the chosen runs, overlaid."""
    st.subheader(t("Curves") if len(chosen) == 1 else t("Curves of {n} runs", n=fmt_int(len(chosen))))
    if not any(r.history for r in chosen):
        st.caption(t("No epoch finished yet in these runs."))
        return
    smooth = st.toggle(t("Smooth the curves"), key="eval_smooth", help=t(
        "Draws each curve as its running average (each point is 80 % the previous smoothed point and 20 % "
        "itself), as the book does: the trend of a noisy validation curve is easier to see."))
    st.plotly_chart(charts.history_curves(chosen, [results.short_label(r) for r in chosen],
                                          SMOOTHING if smooth else 0.0), key="history_curves")


def detail_picker(chosen: list[Run]) -> Run:
    """Which of the chosen runs the test results below are about (the run looked at, if chosen)."""
    ids = [r.id for r in chosen]
    names = {r.id: r.name for r in chosen}
    if len(ids) > 1:
        state.preselect_run("eval_detail", ids)
        pick = st.selectbox(t("Test results of"), ids, key="eval_detail", format_func=names.get,
                            on_change=state.picked_run, args=("eval_detail",))
    else:
        pick = ids[0]
    state.look_at_run(pick)
    return chosen[ids.index(pick)]


def test_metrics(run: Run) -> None:
    """Accuracy and loss, per-class precision and recall, the confusion matrix and its images."""
    metrics = run.metrics
    st.subheader(t("Test results — {run}", run=run.name))
    if not metrics:
        st.info(no_results(run))
        return
    where = metrics.get("evaluated_on", "test")
    cols = st.columns(3)
    cols[0].metric(t(ACCURACY_ON[where]), fmt_pct(metrics["accuracy"], 1))
    cols[1].metric(t(LOSS_ON[where]), fmt_num(metrics["loss"], 3))
    cols[2].metric(t("Images evaluated"), fmt_int(metrics["count"]))
    if where == "validation":
        st.caption(t("This dataset has no test split: the numbers are on the validation images, which also "
                     "chose the best epoch, so they are a little optimistic."))
    cell = cell_picker(run, metrics)
    left, right = st.columns(2, gap="large")
    with left:
        per_class_table(metrics)
    with right:
        confusion(metrics, cell)
    if cell is not None:
        cell_gallery(run, metrics, cell)


def model_summary(run: Run) -> None:
    """The model's layers with their output shapes: what model.summary() prints, as a table."""
    if not run.has_model:
        return
    # A toggle, not an expander: an expander's content runs even while folded, and loading the
    # model costs seconds that a visit to this page should not pay.
    if st.toggle(t("The model's layers (output shapes and parameters)"), key="eval_summary"):
        problem = inside.model_problem(run)
        if problem:
            st.error(problem)
            return
        rows, params, trained = inside.layer_summary(inside.model_ref(run))
        st.caption(t("{layers} layers · {params} parameters, {trained} of them trained",
                     layers=fmt_int(len(rows)), params=fmt_int(params), trained=fmt_int(trained)))
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="model_summary", column_config=headers(SUMMARY_HEADERS))


def no_results(run: Run) -> str:
    """Why a run has no test results, as one sentence."""
    if run.state == "failed":
        # The status keeps the engine's English sentence: translated when the catalog knows it.
        return t("No test results for this run: it failed: {error}.", error=tm(run.status.get("error") or ""))
    return t(NO_RESULTS.get(run.state, NO_RESULTS[None]))


def per_class_table(metrics: dict) -> None:
    """Precision (how often a prediction of the class is right) and recall (how much of it is found)."""
    rows = [{"class": c, **v} for c, v in metrics["per_class"].items()]
    st.markdown(t("**Per class**"))
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="per_class", column_config=headers(
        PER_CLASS_HEADERS, percent=("precision", "recall"), decimals={"f1": 3}))


def cell_picker(run: Run, metrics: dict) -> tuple[int, int] | None:
    """The confusion-matrix cell whose images are shown: mistakes first, the biggest first."""
    cm, classes = metrics["confusion_matrix"], metrics["classes"]
    cells = results.confusion_cells(cm, classes)
    key = f"eval_cell_{run.id}"
    st.session_state.setdefault(key, 0 if cells else None)
    # A click on a cell of the matrix (drawn below) chooses that cell, as its pill would. The
    # matrix keeps its selection across reruns, so only a new click moves the pills.
    clicked = charts.cell_of_selection(st.session_state.get("confusion"))
    if clicked != st.session_state.get("eval_cell_clicked"):
        st.session_state["eval_cell_clicked"] = clicked
        if clicked in cells:
            st.session_state[key] = cells.index(clicked)
    # Options are indices: a tuple as an option would be read as a list of defaults.
    pick = st.pills(t("Show the images of a cell (true → predicted)"), range(len(cells)), key=key,
                    format_func=lambda i: results.cell_label(cells[i], cm, classes))
    return cells[pick] if pick is not None else None


def confusion(metrics: dict, cell: tuple[int, int] | None) -> None:
    """Rows: the true class; columns: the predicted class; the chosen cell outlined."""
    st.markdown(t("**Confusion matrix**"))
    st.plotly_chart(charts.confusion_matrix(metrics["confusion_matrix"], metrics["classes"], cell), key="confusion",
                    on_select="rerun", selection_mode="points")
    st.caption(t("Click a cell to see its images."))


def cell_gallery(run: Run, metrics: dict, cell: tuple[int, int]) -> None:
    """The images of one cell, most confident first, with the predicted probabilities."""
    classes = metrics["classes"]
    chosen = results.in_cell(results.predictions(run), cell)
    true, pred = cell
    names = {"true": widgets.plain(classes[true]), "predicted": widgets.plain(classes[pred]), "n": fmt_int(len(chosen))}
    if len(chosen) > GALLERY_MAX:
        st.markdown(t("**True {true}, predicted {predicted}** — {n} images (the {shown} most confident shown)",
                      shown=fmt_int(GALLERY_MAX), **names))
    else:
        st.markdown(t("**True {true}, predicted {predicted}** — {n} images", **names))
    shown = chosen[:GALLERY_MAX]
    cam = run.has_model and st.toggle(t("Grad-CAM: where the model looked"), key="eval_gradcam",
                                      help=t("Each image with the heatmap of its predicted class (see Inspect)."))
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
