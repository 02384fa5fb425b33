"""The live view of a running training: what it is doing now in plain words, how far it is, how fast,
how long the whole run has left, and a few of the images going through; and the feature cache's
size with the button that empties it. Reads job snapshots (core.jobs) only."""
from __future__ import annotations

import os

import streamlit as st

from core import feature_cache
from ui import widgets
from ui.i18n import N_, fmt_int, fmt_num, t

# The engine's phase names (core.training) as a learner reads them.
PHASE_WORDS = {
    "scan": N_("Checking every image file of the dataset"),
    "decode": N_("Reading the images into memory"),
    "features (train)": N_("Running the training images through the frozen base (its features are stored)"),
    "features (validation)": N_("Running the validation images through the frozen base"),
    "head": N_("Training the new head on the stored features"),
    "fine-tune": N_("Fine-tuning the top layers of the base together with the head"),
    "train": N_("Training the convnet on the images"),
    "evaluate": N_("Testing the best model on images it has never seen"),
}
# What the chart area says before the first training batch, by phase.
BEFORE_CURVES = N_("No curves yet: the loss and accuracy curves start with the first training batch, after this "
                   "phase.")
NO_IMAGES = {
    "head": N_("No image is read in this phase: the head learns from the features stored earlier, which is why "
               "its epochs take seconds."),
    "fine-tune": N_("No image is read in this phase: the unfrozen layers learn from the stored activations of the "
                    "frozen layers below them."),
}
THUMBNAIL_WIDTH = 96


def phase_words(phase: str) -> str:
    return t(PHASE_WORDS.get(phase, phase))


def counts_line(progress: dict, batch_size: int) -> str:
    """'320 of 2,000 images · 41 images per second' (batches: also the images per second they hold)."""
    done, total, rate = fmt_int(progress["done"]), fmt_int(progress["total"]), progress["per_second"]
    if progress["unit"] == "batches":
        counted = t("{done} of {total} batches", done=done, total=total)
        speed = rate and t("{rate} batches per second ({images} images per second)", rate=fmt_num(rate, 1),
                           images=fmt_int(rate * batch_size))
    else:
        counted = t("{done} of {total} images", done=done, total=total)
        speed = rate and t("{rate} images per second", rate=fmt_num(rate, 1))
    return t("{counted} · {speed}", counted=counted, speed=speed) if speed else counted


def eta_line(progress: dict) -> str:
    """The whole run's time left as a range, or why there is none yet."""
    if progress["eta_range"] is None:
        return t("Time left for the whole run: measuring the speed of this machine first…")
    low, high = progress["eta_range"]
    if widgets.format_seconds(low) == widgets.format_seconds(high):
        return t("About {time} left for the whole run (every phase).", time=widgets.format_seconds(high))
    return t("About {low} to {high} left for the whole run (every phase, from the speed measured so far).",
             low=widgets.format_seconds(low), high=widgets.format_seconds(high))


def progress_view(snap: dict) -> None:
    """The running job's phase in words, its progress bar with counts and rate, the whole run's ETA,
    the phases still to come, and a few of the images going through."""
    progress = snap.get("progress") or {}
    if not progress.get("phase"):
        st.info(t("Starting: loading TensorFlow and reading the settings…"))
        return
    st.markdown(t("**Now:** {what}", what=phase_words(progress["phase"])))
    if progress["total"]:
        st.progress(min(1.0, progress["done"] / progress["total"]),
                    text=counts_line(progress, snap["config"].get("batch_size") or 1))
    st.caption(eta_line(progress))
    if progress["next"]:
        st.caption(t("Then: {phases}", phases=widgets.comma_list(t(p) for p in progress["next"])))
    images = [p for p in progress["images"] if os.path.isfile(p)]
    if images:
        st.image(images, width=THUMBNAIL_WIDTH, caption=[os.path.basename(p) for p in images])
    elif progress["phase"] in NO_IMAGES:
        st.caption(t(NO_IMAGES[progress["phase"]]))


def before_curves(snap: dict) -> None:
    """What the chart area says while no batch has trained yet (never an empty, silent chart)."""
    st.info(t(BEFORE_CURVES) if snap["state"] in ("queued", "running", "stopping") else
            t("This run stopped before its first training batch: there are no curves to show."))


def cache_controls(runs_dir: str) -> None:
    """The feature cache's size, and a button that empties it."""
    held = feature_cache.usage(runs_dir)
    columns = st.columns([3, 1], vertical_alignment="center")
    if columns[1].button(t("Empty the feature cache"), key="clear_feature_cache", disabled=held.entries == 0,
                         icon=":material/delete_sweep:"):
        freed = feature_cache.clear(runs_dir)
        st.toast(t("Feature cache emptied: {size} MB freed.", size=fmt_num(freed.bytes / 1e6, 1)))
        held = feature_cache.usage(runs_dir)
    limit = feature_cache.limit_bytes()
    columns[0].caption(t("Feature cache: {size} MB in {n} entries (at most {limit} MB). A second run on the same "
                         "images and base reads the base's features from it instead of computing them again.",
                         size=fmt_num(held.bytes / 1e6, 1), n=fmt_int(held.entries), limit=fmt_int(limit / 1024 ** 2)))
