"""Train: the settings of one training, the base's layers, and the live view of the running job."""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from core import data, pipeline, runs
from core.backbones import BACKBONES
from core.jobs import DEFAULT_DROPOUT, DEFAULT_EPOCHS, DEFAULT_FINE_TUNE_EPOCHS, DEFAULT_LEARNING_RATE, DEFAULTS, \
    OPTIMIZERS, REGISTRY, STRATEGIES, STRATEGY_LABELS, NotYours, TrainConfig, UnknownJob, write_failure_sentence
from ui import cache, charts, i18n, live, state, widgets
from ui.i18n import N_, fmt_int, fmt_num, nt, t

STRATEGY_HELP = {
    "scratch": N_("A small convnet learns everything from your images (rungs 1–2 of the ladder)."),
    "feature-extraction": N_("A network pretrained on ImageNet stays frozen; only a new head learns (rung 3)."),
    "fine-tune": N_("The head first, then the top layers of the base too, at a low learning rate (rung 4)."),
}
# The layer table's columns (core.models.layer_table's keys) as the user reads them.
LAYER_COLUMNS = {"from_top": "#", "name": N_("name"), "type": N_("type"), "params": N_("params"),
                 "trains": N_("trains"), "note": N_("note")}
IMAGE_SIZES = [48, 64, 96, 128, 160, 192, 224, 299]
BATCH_SIZES = [8, 16, 32, 64, 128]
LEARNING_RATES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
LOG_LINES = 12
SESSION = "session"  # persist_state: the settings survive page switches


def main() -> None:
    widgets.page_intro(t("Train"), t(
        "Choose how to train: from scratch, on the features of a network pretrained on ImageNet, or by "
        "fine-tuning its top layers. Training runs in the background; the curves show, batch by batch, "
        "whether the model learns (training loss falls) and whether it generalises (validation accuracy "
        "rises) — a widening gap between the two is overfitting."))
    try:
        ds = state.current_dataset()
    except data.DatasetError as e:
        st.error(t("The current dataset cannot be used: {why}", why=widgets.plain(i18n.error_text(e))))
        ds = None
    config = settings(ds)
    if config.strategy != "scratch":
        base_layers_table(config, num_classes(ds))
    start_button(config, ds)
    if config.strategy != "scratch":
        live.cache_controls(config.runs_dir)
    job_area()


def strategy_label(strategy: str) -> str:
    return t(STRATEGY_LABELS[strategy])


def settings(ds) -> TrainConfig:
    """Every setting of one training: the strategy, then four columns."""
    strategy = st.radio(t("Strategy"), STRATEGIES, index=STRATEGIES.index(DEFAULTS.strategy), horizontal=True,
                        format_func=strategy_label, captions=[t(STRATEGY_HELP[s]) for s in STRATEGIES],
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
        "base": st.selectbox(t("Pretrained base"), list(BACKBONES), format_func=lambda k: BACKBONES[k].label,
                             key="base", disabled=strategy == "scratch", persist_state=SESSION,
                             help=t("The ImageNet network whose features are reused (not used from scratch).")),
        "image_size": st.select_slider(t("Image size (px)"), IMAGE_SIZES, value=DEFAULTS.image_size,
                                       key="image_size", persist_state=SESSION),
        "batch_size": st.select_slider(t("Batch size"), BATCH_SIZES, value=DEFAULTS.batch_size, key="batch_size",
                                       persist_state=SESSION),
    }


def schedule_settings(strategy: str) -> dict:
    """Epochs of each phase and dropout (defaults per strategy, as the engine's)."""
    fine_tune = strategy == "fine-tune"
    return {
        "epochs": int(st.number_input(t("Epochs (head)") if fine_tune else t("Epochs"), 1, 500,
                                      value=DEFAULT_EPOCHS[strategy], key=f"epochs_{strategy}",
                                      persist_state=SESSION)),
        "fine_tune_epochs": int(st.number_input(t("Fine-tune epochs"), 1, 500, value=DEFAULT_FINE_TUNE_EPOCHS,
                                                key="fine_tune_epochs", disabled=not fine_tune,
                                                persist_state=SESSION)),
        "dropout": st.slider(t("Dropout"), 0.0, 0.9, step=0.05, value=DEFAULT_DROPOUT[strategy],
                             key=f"dropout_{strategy}", persist_state=SESSION),
    }


def optimizer_settings(strategy: str) -> dict:
    """The optimizer and its learning rates (a low one for fine-tuning, as the references insist)."""
    return {
        "optimizer": st.selectbox(t("Optimizer"), OPTIMIZERS, key="optimizer", persist_state=SESSION),
        "learning_rate": st.select_slider(t("Learning rate"), LEARNING_RATES, value=DEFAULT_LEARNING_RATE,
                                          format_func="{:g}".format, key="learning_rate", persist_state=SESSION),
        "fine_tune_learning_rate": st.select_slider(
            t("Fine-tune learning rate"), LEARNING_RATES, value=DEFAULTS.fine_tune_learning_rate,
            format_func="{:g}".format, key="fine_tune_learning_rate", disabled=strategy != "fine-tune",
            persist_state=SESSION),
    }


def data_settings(strategy: str) -> dict:
    """Augmentation on or off (its settings come from the Augment page), views, seed."""
    augment = st.toggle(t("Data augmentation"), key="augment", persist_state=SESSION)
    st.caption(t("{augmentation} — set on the Augment page.",
                 augmentation=widgets.describe_augment(state.augment_config())))
    views = st.number_input(t("Augmented views per image"), 1, 16, value=DEFAULTS.views, key="views",
                            persist_state=SESSION,
                            disabled=not augment or strategy == "scratch",
                            help=t("Feature extraction caches the base's output for this many augmented "
                                   "versions of every training image."))
    seed = widgets.seed_input(t("Seeds the weights, the shuffling and (for a folder of class folders) the split."))
    return {"augment": augment, "views": int(views), "seed": int(seed)}


def num_classes(ds) -> int:
    return len(ds.classes) if ds else 2


def unfreeze_slider(base: str, n_classes: int) -> int:
    """How many layers of the base, counted from the top, train in the fine-tune phase."""
    rows, _ = cache.base_layers(base, n_classes, 0)
    return st.slider(t("Layers of {base} to unfreeze (from the top)", base=BACKBONES[base].label), 0, len(rows),
                     value=min(BACKBONES[base].default_unfreeze, len(rows)), key=f"unfreeze_{base}",
                     persist_state=SESSION,
                     help=t("BatchNormalization layers stay frozen, in inference mode, as the references advise."))


def base_layers_table(config: TrainConfig, num_classes: int) -> None:
    """The base's layers, top first, with those that will train highlighted."""
    n = config.unfreeze if config.strategy == "fine-tune" else 0
    rows, trainable = cache.base_layers(config.base, num_classes, n)
    total = sum(r["params"] for r in rows)
    label = BACKBONES[config.base].label
    with st.expander(t("{base}: {layers} layers · {params} trainable parameters", base=label,
                       layers=fmt_int(len(rows)), params=fmt_int(trainable)),
                     expanded=config.strategy == "fine-tune"):
        cols = st.columns(3)
        cols[0].metric(t("Layers unfrozen"), t("{n} of {total}", n=fmt_int(n), total=fmt_int(len(rows))))
        cols[1].metric(t("Trainable parameters"), fmt_int(trainable), help=t("The head's and the unfrozen layers'."))
        cols[2].metric(t("Base parameters"), fmt_int(total))
        st.dataframe(layer_table(rows), hide_index=True, height=300, key="layer_table",
                     column_config={t("trains"): st.column_config.CheckboxColumn(t("trains"))})


def layer_table(rows: list[dict]):
    """The rows in the reader's language (the note, the headers), those that will train highlighted."""
    table = pd.DataFrame(rows, columns=list(LAYER_COLUMNS))
    table["note"] = [t(note) if note else note for note in table["note"]]
    trains = list(table["trains"])
    table = table.rename(columns={key: t(header) for key, header in LAYER_COLUMNS.items()})
    green = "background-color: rgba(84, 162, 75, 0.18)"
    return table.style.apply(lambda row: [green if trains[row.name] else ""] * len(row), axis=1)


def memory_note(ds, size: int) -> str:
    """Where the decoded images will live: in memory within the budget, else read from the files."""
    need = pipeline.decoded_bytes(sum(len(items) for items in ds.splits.values()), size)
    try:
        budget = pipeline.memory_budget()
    except data.DatasetError as e:
        return i18n.error_text(e)
    if need <= budget:
        return t("Decoded at {size} px the images take {need} MB: kept in memory.",
                 size=fmt_int(size), need=fmt_num(need / 1e6, 0))
    return t("Decoded at {size} px the images would take {need} MB, over the memory budget of {budget} MB: "
             "they will be read from the files batch by batch, every epoch ({variable} sets the budget).",
             size=fmt_int(size), need=fmt_num(need / 1e6, 0), budget=fmt_num(budget / 1e6, 0),
             variable=pipeline.BUDGET_ENV)


def start_button(config: TrainConfig, ds) -> None:
    """Start: the training joins the server's queue; the reason when it cannot start."""
    problem = None
    if ds is None:
        problem = t("Choose a usable dataset on the Dataset page first.")
    elif config.strategy != "scratch":
        problem = BACKBONES[config.base].size_problem(config.image_size)
        problem = i18n.tm(problem) if problem else None
    if problem:
        st.warning(problem)
    else:
        st.caption(t("Trains on {folder} — {summary}. {memory}", folder=widgets.plain(ds.root),
                     summary=widgets.plain(i18n.tm(ds.summary())), memory=memory_note(ds, config.image_size)))
    if st.button(t("Start training"), type="primary", key="start", disabled=bool(problem),
                 help=t("This server runs {n} trainings at a time; the others wait their turn in a queue.",
                        n=fmt_int(REGISTRY.workers))):
        try:
            REGISTRY.start(config, owner=state.owner_id())
        except runs.RunWriteError as e:  # the queued run's folder could not be written
            st.error(i18n.tm(write_failure_sentence(e, config.runs_dir)))
            return
        except ValueError as e:
            st.error(t("These settings cannot be used: {why}", why=i18n.error_text(e)))
            return
        st.rerun()


def shown_job():
    """This person's latest training (any tab of theirs re-attaches), else anyone's, read-only."""
    return REGISTRY.latest(state.owner_id())


def job_area() -> None:
    """The job shown: live while it waits or runs, its report after."""
    job = shown_job()
    st.divider()
    if job is None:
        st.caption(t("No training has run since the server started. Completed runs are on the Evaluate page."))
    elif job.active:
        live_job()
    else:
        job_report(job)


@st.fragment(run_every=1.0)
def live_job() -> None:
    job = shown_job()
    job_report(job)
    if not job.active:
        st.rerun()  # finished: redraw the page (and the sidebar) once, then stop polling


def job_report(job) -> None:
    """Status, place in the queue or progress with ETA, the curves, the result or the error, and the log."""
    stop_button(job)
    snap = job.snapshot()
    c = snap["config"]
    st.subheader(t("Run {name}", name=widgets.run_name(snap["run_dir"])))
    st.caption(t("{strategy} · {base} · {size} px · started {time} · dataset {folder}", strategy=c["strategy"],
                 base=c["base"], size=fmt_int(c["image_size"]),
                 time=time.strftime("%H:%M:%S", time.localtime(snap["started"])), folder=widgets.plain(c["data"])))
    st.markdown(headline(snap), help=t("Phases: scan, decode, features (train / validation), head, fine-tune, "
                                       "train (scratch), evaluate."))
    queue_summary()
    if snap["state"] == "queued":
        queue_place(job)
    elif job.active:
        live.progress_view(snap)
    if snap["error"]:
        st.error(i18n.tm(snap["error"]))
    curves(snap)
    result(snap)
    log(snap)


def headline(snap: dict) -> str:
    """':material/directions_run: **running** · phase **head**' in the reader's language."""
    icon, state_word = widgets.STATE_ICONS.get(snap["state"], ""), t(snap["state"])
    if snap["phase"] and snap["state"] in ("running", "stopping"):  # an ended run has no phase any more
        return t("{icon} **{state}** · phase **{phase}**", icon=icon, state=state_word, phase=t(snap["phase"]))
    return f"{icon} **{state_word}**"


def stop_button(job) -> None:
    """Stop (the job finishes the current batch, keeps the best model so far and evaluates it), or
    Cancel while it waits; only for its owner (or the admin token): others follow it read-only."""
    if not job.active:
        return
    if not job.may_be_stopped_by(state.owner_id()):
        st.caption(t("Started by someone else: you can follow it, not stop it."))
        return
    queued = job.state == "queued"
    if st.button(t("Cancel") if queued else t("Stop"), key="cancel" if queued else "stop",
                 icon=":material/close:" if queued else ":material/stop:", disabled=job.stop_requested):
        try:
            REGISTRY.stop(job.id, state.owner_id())
        except (NotYours, UnknownJob) as e:
            st.error(i18n.error_text(e))


def queue_place(job) -> None:
    """Where a waiting training stands, and about how long until it starts."""
    place, wait = REGISTRY.place(job), REGISTRY.wait_estimate(job)
    if place is None:
        return
    wait_text = widgets.format_seconds(wait) if wait is not None else t("unknown (no training has finished yet)")
    st.info(t("Waiting in the queue: place {place}. Estimated wait: {wait}.", place=fmt_int(place), wait=wait_text),
            icon=":material/hourglass_top:")


def queue_summary() -> None:
    """How busy the server is: trainings running and waiting, whoever started them."""
    running, waiting = len(REGISTRY.running()), len(REGISTRY.queue())
    if running or waiting:
        st.caption(t("On this server: {running} running, {waiting} waiting (at most {workers} at a time).",
                     running=fmt_int(running), waiting=fmt_int(waiting), workers=fmt_int(REGISTRY.workers)))


def curves(snap: dict) -> None:
    """Loss and accuracy: train per batch, validation per epoch; before the first batch, what is happening."""
    if not snap["batches"]:
        live.before_curves(snap)
    st.plotly_chart(charts.job_curves(snap["batches"], snap["epochs"]), key="job_curves")
    complete = [e for e in snap["epochs"] if not e.get("partial")]
    words = dict(batches=nt("{n} batch", "{n} batches", len(snap["batches"])),
                 epochs=nt("{n} epoch", "{n} epochs", len(complete)))
    if len(complete) < len(snap["epochs"]):  # stopped mid-epoch: that epoch is drawn but not counted
        st.caption(t("{batches} · {epochs} recorded, and the epoch that was stopped partway", **words))
    else:
        st.caption(t("{batches} · {epochs} recorded", **words))


def result(snap: dict) -> None:
    """The outcome of a finished or stopped run."""
    r = snap["result"]
    if not r:
        return
    cols = st.columns(4)
    cols[0].metric(t("Best validation accuracy"), _pct(r.get("val_accuracy")))
    cols[1].metric(t("Accuracy on {split}", split=t(r.get("evaluated_on") or "test")), _pct(r.get("test_accuracy")))
    cols[2].metric(t("Epochs"), r.get("epochs_run"))
    cols[3].metric(t("Time"), widgets.format_seconds(r.get("seconds")))
    st.page_link(page="app_pages/evaluate.py", label=t("Look at the errors on the Evaluate page"),
                 icon=":material/analytics:")


def _pct(value) -> str:
    return "—" if value is None else i18n.fmt_pct(value, 1)


def log_line(line) -> str:
    """One line of the job's log in the reader's language (a core.jobs.LogLine, or its English text)."""
    message = getattr(line, "message", None)
    return str(line) if message is None else f"[{line.time}] {i18n.tm(message)}"


def log(snap: dict) -> None:
    """The last lines of the job's log; all of it folded below."""
    lines = [log_line(line) for line in snap["logs"]]
    st.code("\n".join(lines[-LOG_LINES:]) or t("(no log yet)"), language=None)
    if len(lines) > LOG_LINES:
        with st.expander(t("Full log ({n} lines)", n=fmt_int(len(lines)))):
            st.code("\n".join(lines), language=None)


main()
