"""Train: the settings of one training, the base's layers, and the live view of the running job."""
from __future__ import annotations

import time

import streamlit as st

from core import data, runs
from core.jobs import REGISTRY, NotYours, TrainConfig, UnknownJob, write_failure_sentence
from ui import charts, i18n, inside, live, state, train_form, widgets
from ui.i18n import fmt_int, nt, t

LOG_LINES = 12


def main() -> None:
    widgets.page_intro(t("Train"), t(
        "Choose how to train: from scratch, on the features of a network pretrained on ImageNet, or by "
        "fine-tuning its top layers. Training runs in the background; the curves show, batch by batch, "
        "whether the model learns (training loss falls) and whether it generalises (validation accuracy "
        "rises) — a widening gap between the two is overfitting."), page="train")
    job = shown_job()
    # The person's own training while it waits or runs comes first: after a refresh it is what they
    # came back to, and it shows before the form's work (the dataset's scan, the base's layers).
    own_first = job is not None and job.active and job.owner == state.owner_id()
    if own_first:
        job_area()
        st.subheader(t("The next training"))
    try:
        ds = state.current_dataset()
    except data.DatasetError as e:
        st.error(t("The current dataset cannot be used: {why}", why=widgets.plain(i18n.error_text(e))))
        ds = None
    config = train_form.settings(ds)
    start_button(config, ds)
    if config.strategy != "scratch":
        live.cache_controls(config.runs_dir)
    if not own_first:
        job_area()


def start_button(config: TrainConfig, ds) -> None:
    """Start: the training joins the server's queue; the reason when it cannot start."""
    problem = train_form.start_problem(config, ds)
    if problem:
        st.warning(problem)
    else:
        st.caption(t("Trains on {folder} — {summary}. {memory}", folder=widgets.plain(ds.root),
                     summary=widgets.plain(i18n.tm(ds.summary())),
                     memory=train_form.memory_note(ds, config.image_size)))
    slow = None if problem else train_form.slow_note(config, ds)
    if slow:
        st.info(slow, icon=":material/hourglass_top:")
    ready = not problem and train_form.weights_ready(config)
    if st.button(t("Start training"), type="primary", key="start", disabled=not ready,
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
    recipe = train_form.recipe_line(c)
    if recipe:
        st.caption(recipe)
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
    if snap["run_dir"]:
        inside.warm_run(snap["run_dir"])  # the first Grad-CAM on Evaluate or Inspect will not wait for tracing
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
