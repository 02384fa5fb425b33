"""Transfer Lab: image classification with little data.

This file is the frame around every page: the navigation and the sidebar, which shows the
current dataset, the current (or last) training run with its status, and the training device.
Run it with `streamlit run app.py`.

The pages live in app_pages/, not pages/: with a pages/ folder next to this file, Streamlit
still starts in its old directory mode whenever the first request after a start is a deep link
(/train), and then runs that page alone, without this file's navigation and sidebar.
"""
from __future__ import annotations

import logging
import os
import uuid

import streamlit as st

from core import data, devices
from core.runs import list_runs
from core.jobs import REGISTRY, STRATEGY_LABELS
from ui import cache, i18n, presenter, runtime, state, widgets
from ui.i18n import fmt_int, nt, t

def pages() -> list:
    """The navigation, its titles in the session's language (so it is made on every run)."""
    return [
        st.Page(page="app_pages/dataset.py", title=t("Dataset"), icon=":material/folder_open:", default=True),
        st.Page(page="app_pages/augment.py", title=t("Augment"), icon=":material/auto_awesome:"),
        st.Page(page="app_pages/train.py", title=t("Train"), icon=":material/model_training:"),
        st.Page(page="app_pages/evaluate.py", title=t("Evaluate"), icon=":material/analytics:"),
        st.Page(page="app_pages/predict.py", title=t("Predict"), icon=":material/batch_prediction:"),
        st.Page(page="app_pages/inspect.py", title=t("Inspect"), icon=":material/center_focus_strong:"),
        st.Page(page="app_pages/visualize.py", title=t("Visualize"), icon=":material/palette:"),
    ]


def main() -> None:
    devices.configure()  # before any page imports TensorFlow: its log level and thread pools
    runtime.keep_keras_state()  # a training thread runs in this process (see ui/runtime.py)
    st.set_page_config(page_title="Transfer Lab", page_icon=":material/layers:", layout="wide")
    state.keep_in_url()  # ?dataset=…&run=…&aug=…&lang=…&me=…&present=…: a refresh or a shared link opens where the person was
    state.owner_id()     # ?me=<token>: whose trainings are this browser's
    presenter.apply()    # ?present=1: larger type for a projector
    page = st.navigation(pages())
    with st.sidebar:
        i18n.language_switch()
        presenter.switch(on_change=state.presenting_changed)
        dataset_panel()
        job_panel()
    run_page(page)
    with st.sidebar:  # after the page: the first call imports TensorFlow, which takes seconds
        device_panel()


def run_page(page) -> None:
    """The page; an error nobody expected is one sentence with a reference to the server log
    (where the traceback is), never a traceback with the server's paths in the browser."""
    try:
        page.run()  # st.rerun, st.stop and st.switch_page raise BaseExceptions: they pass through
    except Exception:
        reference = uuid.uuid4().hex[:8]
        server_log().exception("Unexpected error on a page (reference %s)", reference)
        st.error(t("Something went wrong on this page. The details are in the server's log under the "
                   "reference {reference}: please pass it on to whoever runs this server.", reference=reference))


def server_log() -> logging.Logger:
    """The server's log (stderr of `streamlit run`), where unexpected errors leave their traceback."""
    log = logging.getLogger("transferlab")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    return log


def dataset_panel() -> None:
    """The dataset every page works on (scanned here first, with a progress bar, on whichever page).

    Scanned before its name is drawn: until the scan is done the panel shows the previous dataset
    whole, never the new name over the old summary."""
    path = state.dataset_path()
    try:
        ds, problem = state.current_dataset(), None
    except data.DatasetError as e:
        ds, problem = None, e
    st.markdown(t("**Dataset**"))
    label = t("built-in shapes sample") if state.is_sample(path) else widgets.plain(os.path.basename(path))
    st.markdown(f":material/folder: {label}")
    if problem is not None:
        st.caption(t(":red[cannot be used: {reason}]", reason=widgets.plain(i18n.error_text(problem))))
        return
    st.caption(nt("{n} class ({names})", "{n} classes ({names})", len(ds.classes),
                  names=widgets.comma_list(widgets.plain(c) for c in ds.classes)))
    images = {split: len(ds.splits.get(split, [])) for split in data.SPLITS}
    st.caption(t("train {train}, validation {validation}, test {test}; {skipped} skipped",
                 **{split: fmt_int(n) for split, n in images.items()}, skipped=fmt_int(len(ds.skipped))))


def job_panel() -> None:
    """The training job: polled every second while it runs, static otherwise."""
    job = REGISTRY.latest(state.owner_id())
    if job is not None and job.active:
        live_job_status()
    else:
        job_status()


@st.fragment(run_every=1.0)
def live_job_status() -> None:
    job_status()
    job = REGISTRY.latest(state.owner_id())
    if job is None or not job.active:
        st.rerun()  # the job just ended: redraw everything once, then stop polling


def job_status() -> None:
    """The current job's state and phase, or the last run on disk when none ran in this server."""
    st.markdown(t("**Training**"))
    job = REGISTRY.latest(state.owner_id())
    if job is not None:
        snap = job.snapshot()
        st.markdown(widgets.job_headline(snap))
        st.caption(job_caption(snap))
        if snap["state"] in ("running", "stopping"):
            st.progress(snap["phase_progress"])
        return
    runs = list_runs(state.runs_dir(), REGISTRY.active_run_dirs())
    if runs:
        last = runs[0]
        st.markdown(t("Last run: {state}", state=widgets.state_label(last.state)))
        st.caption(f"{last.id}: {i18n.tm(last.damaged)}" if last.damaged else last.id)
    else:
        st.caption(t("No run yet: start one on the Train page."))


def job_caption(snap: dict) -> str:
    """'Fine-tuning · MobileNetV2 · run 20240101-…': the strategy, the base (none from scratch), the run."""
    strategy, base = snap["config"]["strategy"], snap["config"]["base"]
    run = widgets.run_name(snap["run_dir"])
    shown = t(STRATEGY_LABELS.get(strategy, strategy))
    if strategy == "scratch":
        return t("{strategy} · run {run}", strategy=shown, run=run)
    return t("{strategy} · {base} · run {run}", strategy=shown, base=base, run=run)


def device_panel() -> None:
    """Where training runs (GPU when TensorFlow sees one; several GPUs train with MirroredStrategy)."""
    st.markdown(t("**Device**"))
    st.caption(t("Training runs on: {device}", device=i18n.tm(cache.training_device())))


main()
