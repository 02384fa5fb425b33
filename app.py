"""Transfer Lab: image classification with little data.

This file is the frame around every page: the navigation and the sidebar, which shows the
current dataset, the current (or last) training run with its status, and the training device.
Run it with `streamlit run app.py`.

The pages live in app_pages/, not pages/: with a pages/ folder next to this file, Streamlit
still starts in its old directory mode whenever the first request after a start is a deep link
(/train), and then runs that page alone, without this file's navigation and sidebar.
"""
from __future__ import annotations

import os

import streamlit as st

from core import data, devices
from core.runs import list_runs
from core.jobs import REGISTRY
from ui import cache, runtime, state, widgets

PAGES = [
    st.Page("app_pages/dataset.py", title="Dataset", icon=":material/folder_open:", default=True),
    st.Page("app_pages/augment.py", title="Augment", icon=":material/auto_awesome:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("app_pages/predict.py", title="Predict", icon=":material/batch_prediction:"),
    st.Page("app_pages/inspect.py", title="Inspect", icon=":material/center_focus_strong:"),
    st.Page("app_pages/visualize.py", title="Visualize", icon=":material/palette:"),
]


def main() -> None:
    devices.configure()  # before any page imports TensorFlow: its log level and thread pools
    runtime.keep_keras_state()  # a training thread runs in this process (see ui/runtime.py)
    st.set_page_config(page_title="Transfer Lab", page_icon=":material/layers:", layout="wide")
    page = st.navigation(PAGES)
    with st.sidebar:
        dataset_panel()
        job_panel()
    page.run()
    with st.sidebar:  # after the page: the first call imports TensorFlow, which takes seconds
        device_panel()


def dataset_panel() -> None:
    """The dataset every page works on."""
    path = state.dataset_path()
    st.markdown("**Dataset**")
    label = "built-in shapes sample" if state.is_sample(path) else os.path.basename(path)
    st.markdown(f":material/folder: {label}")
    try:
        st.caption(state.current_dataset().summary())
    except data.DatasetError as e:
        st.caption(f":red[cannot be used: {e}]")


def job_panel() -> None:
    """The training job: polled every second while it runs, static otherwise."""
    job = REGISTRY.latest()
    if job is not None and job.active:
        live_job_status()
    else:
        job_status()


@st.fragment(run_every=1.0)
def live_job_status() -> None:
    job_status()
    job = REGISTRY.latest()
    if job is None or not job.active:
        st.rerun()  # the job just ended: redraw everything once, then stop polling


def job_status() -> None:
    """The current job's state and phase, or the last run on disk when none ran in this server."""
    st.markdown("**Training**")
    job = REGISTRY.latest()
    if job is not None:
        snap = job.snapshot()
        st.markdown(widgets.job_headline(snap))
        st.caption(f"{snap['config']['strategy']} · {snap['config']['base']} · run "
                   f"{widgets.run_name(snap['run_dir'])}")
        if snap["state"] in ("running", "stopping"):
            st.progress(snap["phase_progress"])
        return
    runs = list_runs(state.runs_dir(), REGISTRY.active_run_dirs())
    if runs:
        last = runs[0]
        st.markdown(f"Last run: {widgets.STATE_ICONS.get(last['state'], '')} {last['state']}")
        st.caption(last["id"])
    else:
        st.caption("No run yet: start one on the Train page.")


def device_panel() -> None:
    """Where training runs (GPU when TensorFlow sees one; several GPUs train with MirroredStrategy)."""
    st.markdown("**Device**")
    st.caption(f"Training runs on: {cache.training_device()}")


main()
