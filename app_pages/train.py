"""Train: the settings of one training, the base's layers, and the live view of the running job."""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from core import data, pipeline
from core.backbones import BACKBONES
from core.jobs import DEFAULT_DROPOUT, DEFAULT_EPOCHS, DEFAULT_FINE_TUNE_EPOCHS, DEFAULT_LEARNING_RATE, DEFAULTS, \
    OPTIMIZERS, REGISTRY, STRATEGIES, STRATEGY_LABELS, JobBusy, TrainConfig
from ui import cache, charts, state, widgets

STRATEGY_HELP = {
    "scratch": "A small convnet learns everything from your images (rungs 1–2 of the ladder).",
    "feature-extraction": "A network pretrained on ImageNet stays frozen; only a new head learns (rung 3).",
    "fine-tune": "The head first, then the top layers of the base too, at a low learning rate (rung 4).",
}
IMAGE_SIZES = [48, 64, 96, 128, 160, 192, 224, 299]
BATCH_SIZES = [8, 16, 32, 64, 128]
LEARNING_RATES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
LOG_LINES = 12
SESSION = "session"  # persist_state: the settings survive page switches


def main() -> None:
    widgets.page_intro("Train", (
        "Choose how to train: from scratch, on the features of a network pretrained on ImageNet, or by "
        "fine-tuning its top layers. Training runs in the background; the curves show, batch by batch, "
        "whether the model learns (training loss falls) and whether it generalises (validation accuracy "
        "rises) — a widening gap between the two is overfitting."))
    try:
        ds = state.current_dataset()
    except data.DatasetError as e:
        st.error(f"The current dataset cannot be used: {widgets.plain(e)}")
        ds = None
    config = settings(ds)
    if config.strategy != "scratch":
        base_layers_table(config, num_classes(ds))
    start_button(config, ds)
    job_area()


def settings(ds) -> TrainConfig:
    """Every setting of one training: the strategy, then four columns."""
    strategy = st.radio("Strategy", STRATEGIES, index=STRATEGIES.index(DEFAULTS.strategy), horizontal=True,
                        format_func=STRATEGY_LABELS.get, captions=[STRATEGY_HELP[s] for s in STRATEGIES],
                        key="strategy", persist_state=SESSION)
    columns = st.columns(4, gap="medium")
    with columns[0]:
        chosen = model_settings(strategy)
    with columns[1]:
        chosen |= schedule_settings(strategy)
    with columns[2]:
        chosen |= optimizer_settings(strategy)
    with columns[3]:
        chosen |= data_settings(strategy)
    chosen["unfreeze"] = unfreeze_slider(chosen["base"], num_classes(ds)) if strategy == "fine-tune" else 0
    val_fraction, test_fraction, _ = state.split_settings()
    return TrainConfig(data=state.dataset_path(), strategy=strategy, augment_config=state.augment_config().to_dict(),
                       val_fraction=val_fraction, test_fraction=test_fraction, runs_dir=state.runs_dir(), **chosen)


def model_settings(strategy: str) -> dict:
    """The pretrained base, the image size and the batch size."""
    return {
        "base": st.selectbox("Pretrained base", list(BACKBONES), format_func=lambda k: BACKBONES[k].label,
                             key="base", disabled=strategy == "scratch", persist_state=SESSION,
                             help="The ImageNet network whose features are reused (not used from scratch)."),
        "image_size": st.select_slider("Image size (px)", IMAGE_SIZES, value=DEFAULTS.image_size, key="image_size",
                                       persist_state=SESSION),
        "batch_size": st.select_slider("Batch size", BATCH_SIZES, value=DEFAULTS.batch_size, key="batch_size",
                                       persist_state=SESSION),
    }


def schedule_settings(strategy: str) -> dict:
    """Epochs of each phase and dropout (defaults per strategy, as the engine's)."""
    fine_tune = strategy == "fine-tune"
    return {
        "epochs": int(st.number_input("Epochs" + (" (head)" if fine_tune else ""), 1, 500,
                                      value=DEFAULT_EPOCHS[strategy], key=f"epochs_{strategy}",
                                      persist_state=SESSION)),
        "fine_tune_epochs": int(st.number_input("Fine-tune epochs", 1, 500, value=DEFAULT_FINE_TUNE_EPOCHS,
                                                key="fine_tune_epochs", disabled=not fine_tune,
                                                persist_state=SESSION)),
        "dropout": st.slider("Dropout", 0.0, 0.9, step=0.05, value=DEFAULT_DROPOUT[strategy],
                             key=f"dropout_{strategy}", persist_state=SESSION),
    }


def optimizer_settings(strategy: str) -> dict:
    """The optimizer and its learning rates (a low one for fine-tuning, as the references insist)."""
    return {
        "optimizer": st.selectbox("Optimizer", OPTIMIZERS, key="optimizer", persist_state=SESSION),
        "learning_rate": st.select_slider("Learning rate", LEARNING_RATES, value=DEFAULT_LEARNING_RATE,
                                          format_func="{:g}".format, key="learning_rate", persist_state=SESSION),
        "fine_tune_learning_rate": st.select_slider(
            "Fine-tune learning rate", LEARNING_RATES, value=DEFAULTS.fine_tune_learning_rate,
            format_func="{:g}".format, key="fine_tune_learning_rate", disabled=strategy != "fine-tune",
            persist_state=SESSION),
    }


def data_settings(strategy: str) -> dict:
    """Augmentation on or off (its settings come from the Augment page), views, seed."""
    augment = st.toggle("Data augmentation", key="augment", persist_state=SESSION)
    st.caption(f"{widgets.describe_augment(state.augment_config())} — set on the Augment page.")
    views = st.number_input("Augmented views per image", 1, 16, value=DEFAULTS.views, key="views",
                            persist_state=SESSION,
                            disabled=not augment or strategy == "scratch",
                            help="Feature extraction caches the base's output for this many augmented "
                                 "versions of every training image.")
    seed = widgets.seed_input("Seeds the weights, the shuffling and (for a folder of class folders) the split.")
    return {"augment": augment, "views": int(views), "seed": int(seed)}


def num_classes(ds) -> int:
    return len(ds.classes) if ds else 2


def unfreeze_slider(base: str, n_classes: int) -> int:
    """How many layers of the base, counted from the top, train in the fine-tune phase."""
    rows, _ = cache.base_layers(base, n_classes, 0)
    return st.slider(f"Layers of {BACKBONES[base].label} to unfreeze (from the top)", 0, len(rows),
                     value=min(BACKBONES[base].default_unfreeze, len(rows)), key=f"unfreeze_{base}",
                     persist_state=SESSION,
                     help="BatchNormalization layers stay frozen, in inference mode, as the references advise.")


def base_layers_table(config: TrainConfig, num_classes: int) -> None:
    """The base's layers, top first, with those that will train highlighted."""
    n = config.unfreeze if config.strategy == "fine-tune" else 0
    rows, trainable = cache.base_layers(config.base, num_classes, n)
    total = sum(r["params"] for r in rows)
    label = BACKBONES[config.base].label
    with st.expander(f"{label}: {len(rows)} layers · {trainable:,} trainable parameters",
                     expanded=config.strategy == "fine-tune"):
        cols = st.columns(3)
        cols[0].metric("Layers unfrozen", f"{n} of {len(rows)}")
        cols[1].metric("Trainable parameters", f"{trainable:,}", help="The head's and the unfrozen layers'.")
        cols[2].metric("Base parameters", f"{total:,}")
        table = pd.DataFrame(rows).rename(columns={"from_top": "#", "trains": "trains"})
        st.dataframe(table.style.apply(_highlight_trainable, axis=1), hide_index=True, height=300,
                     key="layer_table", column_config={"trains": st.column_config.CheckboxColumn("trains")})


def _highlight_trainable(row) -> list[str]:
    colour = "background-color: rgba(84, 162, 75, 0.18)" if row["trains"] else ""
    return [colour] * len(row)


def memory_note(ds, size: int) -> str:
    """Where the decoded images will live: in memory within the budget, else read from the files."""
    need = pipeline.decoded_bytes(sum(len(items) for items in ds.splits.values()), size)
    try:
        budget = pipeline.memory_budget()
    except data.DatasetError as e:
        return str(e)
    if need <= budget:
        return f"Decoded at {size} px the images take {need / 1e6:,.0f} MB: kept in memory."
    return (f"Decoded at {size} px the images would take {need / 1e6:,.0f} MB, over the memory budget of "
            f"{budget / 1e6:,.0f} MB: they will be read from the files batch by batch, every epoch "
            f"({pipeline.BUDGET_ENV} sets the budget).")


def start_button(config: TrainConfig, ds) -> None:
    """Start (one job at a time per server); the reason when it cannot start."""
    busy = REGISTRY.active()
    problem = None
    if ds is None:
        problem = "Choose a usable dataset on the Dataset page first."
    elif config.strategy != "scratch":
        problem = BACKBONES[config.base].size_problem(config.image_size)
    if problem:
        st.warning(problem)
    else:
        st.caption(f"Trains on {widgets.plain(ds.root)} — {widgets.plain(ds.summary())}. {memory_note(ds, config.image_size)}")
    # Not disabled while a job runs: the registry decides, and its JobBusy message says what to do.
    if st.button("Start training", type="primary", key="start", disabled=bool(problem),
                 help="One training at a time per server: this one is busy." if busy else None):
        try:
            REGISTRY.start(config)
        except JobBusy as e:
            st.error(str(e))
            return
        except ValueError as e:
            st.error(f"These settings cannot be used: {e}")
            return
        st.rerun()


def job_area() -> None:
    """The latest job of this server: live while it runs (any tab re-attaches), its report after."""
    job = REGISTRY.latest()
    st.divider()
    if job is None:
        st.caption("No training has run since the server started. Completed runs are on the Evaluate page.")
    elif job.active:
        live_job()
    else:
        job_report(job)


@st.fragment(run_every=1.0)
def live_job() -> None:
    job = REGISTRY.latest()
    job_report(job)
    if not job.active:
        st.rerun()  # finished: redraw the page (and the sidebar) once, then stop polling


def job_report(job) -> None:
    """Status, progress with ETA, the curves, the result or the error, and the log."""
    stop_button(job)
    snap = job.snapshot()
    c = snap["config"]
    st.subheader(f"Run {widgets.run_name(snap['run_dir'])}")
    st.caption(f"{c['strategy']} · {c['base']} · {c['image_size']} px · started "
               f"{time.strftime('%H:%M:%S', time.localtime(snap['started']))} · dataset {c['data']}")
    icon = widgets.STATE_ICONS.get(snap["state"], "")
    st.markdown(f"{icon} **{snap['state']}**" + (f" · phase **{snap['phase']}**" if snap["phase"] else ""),
                help="Phases: scan, decode, features (train / validation), head, fine-tune, train (scratch), "
                     "evaluate.")
    if job.active:
        st.progress(snap["phase_progress"], text=f"{snap['phase_progress']:.0%} of this phase · "
                                                 f"about {widgets.format_seconds(snap['eta_seconds'])} left")
    if snap["error"]:
        st.error(snap["error"])
    curves(snap)
    result(snap)
    log(snap)


def stop_button(job) -> None:
    """Stop: the job finishes the current batch, keeps the best model so far and evaluates it."""
    if job.active and st.button("Stop", key="stop", icon=":material/stop:", disabled=job.stop_requested):
        job.request_stop()


def curves(snap: dict) -> None:
    """Loss and accuracy: train per batch, validation per epoch."""
    st.plotly_chart(charts.job_curves(snap["batches"], snap["epochs"]), key="job_curves")
    st.caption(f"{widgets.plural(len(snap['batches']), 'batch', 'batches')} · {widgets.plural(len(snap['epochs']), 'epoch')} "
               "recorded")


def result(snap: dict) -> None:
    """The outcome of a finished or stopped run."""
    r = snap["result"]
    if not r:
        return
    cols = st.columns(4)
    cols[0].metric("Best validation accuracy", _pct(r.get("val_accuracy")))
    cols[1].metric(f"Accuracy on {r.get('evaluated_on', 'test')}", _pct(r.get("test_accuracy")))
    cols[2].metric("Epochs", r.get("epochs_run"))
    cols[3].metric("Time", widgets.format_seconds(r.get("seconds")))
    st.page_link("app_pages/evaluate.py", label="Look at the errors on the Evaluate page", icon=":material/analytics:")


def _pct(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def log(snap: dict) -> None:
    """The last lines of the job's log; all of it folded below."""
    lines = snap["logs"]
    st.code("\n".join(lines[-LOG_LINES:]) or "(no log yet)", language=None)
    if len(lines) > LOG_LINES:
        with st.expander(f"Full log ({len(lines)} lines)"):
            st.code("\n".join(lines), language=None)


main()
